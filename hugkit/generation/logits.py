"""Score processing for one decoding step, in transformers' order and with its exact arithmetic.

A processor is called as ``processor(input_ids, scores)``: the token ids so far ``(rows, length)`` (prompt padding
included, as transformers sees them) and the float32 scores ``(rows, vocab)`` of the next token; it returns new
scores. Any callable with that signature works, so do subclasses of ``LogitsProcessor`` written for transformers and
transformers' own processor instances. ``LogitsProcessorList`` applies a list of them in order. The protocol lives in
``logits_base.py`` and the sampling warpers in ``warpers.py``; both are re-exported here under their usual names.

``build_processors`` picks the processors a resolved GenerationConfig asks for, in the order of transformers 5's
``_get_logits_processor``: sequence bias, penalties, length and token rules, then the user's processors merged in
(a user processor of the same class replaces the built one, the rest are appended), then the sampling warpers
(temperature, top-h, top-k, top-p, min-p, typical, epsilon, eta) when sampling, and log-softmax renormalisation last.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Iterable

import torch

from .logits_base import (  # noqa: F401  (the protocol, re-exported)
    NEG_INF, LogitsProcessor, LogitsProcessorList, _check_positive_int, _check_unit_interval, _extra_parameters,
    _token_tensor,
)
from .warpers import (  # noqa: F401  (the sampling warpers, re-exported under their old home)
    EpsilonLogitsWarper, EtaLogitsWarper, MinPLogitsWarper, TemperatureLogitsWarper, TopHLogitsWarper,
    TopKLogitsWarper, TopPLogitsWarper, TypicalLogitsWarper,
)

logger = logging.getLogger(__name__)

__all__ = [
    "LogitsProcessor", "LogitsProcessorList", "MinLengthLogitsProcessor", "MinNewTokensLengthLogitsProcessor",
    "TemperatureLogitsWarper", "RepetitionPenaltyLogitsProcessor", "EncoderRepetitionPenaltyLogitsProcessor",
    "TopPLogitsWarper", "TopKLogitsWarper", "TopHLogitsWarper", "MinPLogitsWarper", "TypicalLogitsWarper",
    "EpsilonLogitsWarper", "EtaLogitsWarper", "NoRepeatNGramLogitsProcessor", "EncoderNoRepeatNGramLogitsProcessor",
    "SequenceBiasLogitsProcessor", "NoBadWordsLogitsProcessor", "PrefixConstrainedLogitsProcessor",
    "ForcedBOSTokenLogitsProcessor", "ForcedEOSTokenLogitsProcessor", "InfNanRemoveLogitsProcessor",
    "ExponentialDecayLengthPenalty", "LogitNormalization", "SuppressTokensAtBeginLogitsProcessor",
    "SuppressTokensLogitsProcessor", "build_processors", "merge_user_list",
]


# --- length rules ------------------------------------------------------------------------------------


class MinLengthLogitsProcessor(LogitsProcessor):
    """Forbid EOS while the sequence (prompt included; the decoder's ids for an encoder-decoder) is shorter than
    ``min_length``."""

    def __init__(self, min_length: int, eos_token_id, device: str = "cpu") -> None:
        _check_positive_int(min_length, "min_length", 0)
        self.min_length = min_length
        self.eos_token_id = _token_tensor(eos_token_id, "eos_token_id", device)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[-1] >= self.min_length:
            return scores.clone()
        vocab = torch.arange(scores.shape[-1], device=scores.device)
        return torch.where(torch.isin(vocab, self.eos_token_id.to(scores.device)), -math.inf, scores)


class MinNewTokensLengthLogitsProcessor(LogitsProcessor):
    """Forbid EOS until ``min_new_tokens`` tokens follow the first ``prompt_length_to_skip`` ones."""

    def __init__(self, prompt_length_to_skip: int, min_new_tokens: int, eos_token_id, device: str = "cpu") -> None:
        _check_positive_int(prompt_length_to_skip, "prompt_length_to_skip", 0)
        _check_positive_int(min_new_tokens, "min_new_tokens", 0)
        self.prompt_length_to_skip = prompt_length_to_skip
        self.min_new_tokens = min_new_tokens
        self.eos_token_id = _token_tensor(eos_token_id, "eos_token_id", device)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[-1] - self.prompt_length_to_skip >= self.min_new_tokens:
            return scores.clone()
        vocab = torch.arange(scores.shape[-1], device=scores.device)
        return torch.where(torch.isin(vocab, self.eos_token_id.to(scores.device)), -math.inf, scores)


class ForcedBOSTokenLogitsProcessor(LogitsProcessor):
    """Make ``bos_token_id`` the only choice for the first generated token (when the ids so far are one token)."""

    def __init__(self, bos_token_id: int) -> None:
        self.bos_token_id = bos_token_id

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[-1] != 1:
            return scores
        forced = torch.full_like(scores, -math.inf)
        forced[:, self.bos_token_id] = 0
        return forced


class ForcedEOSTokenLogitsProcessor(LogitsProcessor):
    """Make EOS the only choice for the token at position ``max_length - 1`` (the last one)."""

    def __init__(self, max_length: int, eos_token_id, device: str = "cpu") -> None:
        self.max_length = max_length
        self.eos_token_id = _token_tensor(eos_token_id, "forced_eos_token_id", device)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[-1] != self.max_length - 1:
            return scores
        forced = torch.full_like(scores, -math.inf)
        forced[:, self.eos_token_id] = 0
        return forced


class ExponentialDecayLengthPenalty(LogitsProcessor):
    """Raise EOS's score exponentially once ``start`` tokens follow the prompt: ``(start, decay_factor)``."""

    def __init__(
        self, exponential_decay_length_penalty: tuple[int, float], eos_token_id, input_ids_seq_length: int
    ) -> None:
        try:
            start, factor = exponential_decay_length_penalty
        except (TypeError, ValueError):
            raise ValueError(
                "exponential_decay_length_penalty should be a pair (start_index, decay_factor), found "
                f"{exponential_decay_length_penalty!r}."
            ) from None
        self.regulation_start = start + input_ids_seq_length
        self.regulation_factor = factor
        self.eos_token_id = _token_tensor(eos_token_id, "eos_token_id")

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        length = input_ids.shape[-1]
        if length <= self.regulation_start:
            return scores
        eos = self.eos_token_id = self.eos_token_id.to(scores.device)
        eos_scores = scores[:, eos]
        penalty = torch.abs(eos_scores) * (pow(self.regulation_factor, length - self.regulation_start) - 1)
        penalties = torch.zeros_like(scores)
        penalties[:, eos] = penalty.masked_fill(~torch.isfinite(eos_scores), 0.0)
        return scores + penalties


# --- penalties and bans ------------------------------------------------------------------------------


class RepetitionPenaltyLogitsProcessor(LogitsProcessor):
    """Divide positive scores (multiply negative ones) of every token already in the sequence by ``penalty``.

    ``prompt_ignore_length``: an int (skip that many leading tokens of every row) or a ``(rows,)`` tensor (per row,
    e.g. each row's left padding, which transformers does not penalise).
    """

    def __init__(self, penalty: float, prompt_ignore_length: int | torch.Tensor | None = None) -> None:
        if not isinstance(penalty, (int, float)) or isinstance(penalty, bool) or not penalty > 0:
            raise ValueError(f"repetition_penalty should be a float > 0 (1.0 = no penalty), found {penalty!r}.")
        if isinstance(prompt_ignore_length, int) and prompt_ignore_length < 0:
            raise ValueError(f"prompt_ignore_length should be an int >= 0, found {prompt_ignore_length!r}.")
        if isinstance(prompt_ignore_length, torch.Tensor) and prompt_ignore_length.dim() != 1:
            raise ValueError(
                f"prompt_ignore_length should be one length per row, shape (rows,), found shape "
                f"{tuple(prompt_ignore_length.shape)}."
            )
        self.penalty = float(penalty)
        self.prompt_ignore_length = prompt_ignore_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        vocab = scores.shape[-1]
        if input_ids.dim() == 1:
            input_ids = input_ids[:, None]
        ignore = self.prompt_ignore_length
        if isinstance(ignore, int):
            input_ids = input_ids[:, ignore:]
        elif isinstance(ignore, torch.Tensor):
            if ignore.shape[0] != input_ids.shape[0]:
                if ignore.shape[0] == 0 or input_ids.shape[0] % ignore.shape[0]:
                    raise ValueError(
                        f"prompt_ignore_length has {ignore.shape[0]} rows but the ids have {input_ids.shape[0]}: "
                        "give one length per row."
                    )
                ignore = ignore.repeat_interleave(input_ids.shape[0] // ignore.shape[0])
            ignore = ignore.to(input_ids.device)
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            input_ids = input_ids.masked_fill(positions[None, :] < ignore[:, None], vocab)
        # ids past the scores' vocabulary (and the ignored positions) land in one spare column, dropped at the end
        input_ids = input_ids.clamp(max=vocab)
        padded = torch.nn.functional.pad(scores, (0, 1))
        seen = torch.gather(padded, 1, input_ids)
        seen = torch.where(seen < 0, seen * self.penalty, seen / self.penalty)
        return padded.scatter(1, input_ids, seen)[..., :vocab]


class EncoderRepetitionPenaltyLogitsProcessor(LogitsProcessor):
    """Favour (``penalty`` > 1) or avoid tokens of the encoder input: scores of those tokens are multiplied by
    ``penalty`` when positive, divided when negative."""

    def __init__(self, penalty: float, encoder_input_ids: torch.Tensor) -> None:
        if not isinstance(penalty, (int, float)) or isinstance(penalty, bool) or not penalty > 0:
            raise ValueError(f"encoder_repetition_penalty should be a float > 0, found {penalty!r}.")
        self.penalty = 1 / float(penalty)
        self.encoder_input_ids = encoder_input_ids

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        ids = self.encoder_input_ids
        if scores.shape[0] > ids.shape[0]:
            ids = ids.repeat_interleave(scores.shape[0] // ids.shape[0], dim=0)
        seen = torch.gather(scores, 1, ids)
        seen = torch.where(seen < 0, seen * self.penalty, seen / self.penalty)
        return scores.scatter(1, ids, seen)


class NoRepeatNGramLogitsProcessor(LogitsProcessor):
    """Ban any token that would complete an n-gram already present in the row.

    Stateless (each call looks at the whole row), so rows may be reordered between calls, as beam search does.
    """

    def __init__(self, ngram_size: int) -> None:
        _check_positive_int(ngram_size, "no_repeat_ngram_size")
        self.ngram_size = ngram_size

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        n = self.ngram_size
        length = input_ids.shape[-1]
        if length < n:
            return scores
        # The next token completes an n-gram whose first n-1 tokens are the row's last n-1 tokens: every earlier
        # window of n tokens that starts with them bans its own last token.
        suffix = input_ids[:, length - n + 1 :]
        windows = input_ids.unfold(1, n, 1)
        hit = (windows[..., :-1] == suffix[:, None, :]).all(dim=-1)
        vocab = scores.shape[-1]
        banned = torch.zeros(scores.shape[0], vocab + 1, dtype=torch.bool, device=scores.device)
        # windows that do not match (and ids past the vocabulary) mark the spare last column
        banned.scatter_(1, torch.where(hit, windows[..., -1].clamp(max=vocab), vocab), True)
        return scores.masked_fill(banned[:, :vocab], NEG_INF)


class EncoderNoRepeatNGramLogitsProcessor(LogitsProcessor):
    """Ban tokens that would repeat an n-gram of the encoder input (summaries that do not copy the source)."""

    def __init__(self, encoder_ngram_size: int, encoder_input_ids: torch.Tensor) -> None:
        _check_positive_int(encoder_ngram_size, "encoder_no_repeat_ngram_size")
        self.ngram_size = encoder_ngram_size
        if encoder_input_ids.dim() == 1:
            encoder_input_ids = encoder_input_ids[None]
        self.batch_size = encoder_input_ids.shape[0]
        n = encoder_ngram_size
        self.generated_ngrams: list[dict[tuple[int, ...], list[int]]] = []
        for row in encoder_input_ids.tolist():
            table: dict[tuple[int, ...], list[int]] = {}
            for start in range(len(row) - n + 1):
                table.setdefault(tuple(row[start : start + n - 1]), []).append(row[start + n - 1])
            self.generated_ngrams.append(table)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        rows = scores.shape[0]
        per_input = rows // self.batch_size
        length = input_ids.shape[-1]
        out = scores.clone()
        start = length + 1 - self.ngram_size
        for row in range(rows):
            key = tuple(input_ids[row, start:length].tolist())
            banned = self.generated_ngrams[row // per_input].get(key, [])
            out[row, banned] = NEG_INF
        return out


class SequenceBiasLogitsProcessor(LogitsProcessor):
    """Add a bias to a token when the row ends with the rest of a given sequence.

    ``sequence_bias``: ``{(token, ..., token): bias}`` or ``[[[token, ...], bias], ...]``; a one-token sequence biases
    that token at every step.
    """

    def __init__(self, sequence_bias) -> None:
        self.sequence_bias = self._as_dict(sequence_bias)
        self.length_1_bias: torch.Tensor | None = None
        self.multi_token_biases: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None
        self.prepared_bias_variables = False

    @staticmethod
    def _as_dict(sequence_bias) -> dict[tuple[int, ...], float]:
        def ids_ok(ids) -> bool:
            return len(ids) > 0 and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in ids)

        if isinstance(sequence_bias, dict) and sequence_bias:
            if all(isinstance(k, tuple) and ids_ok(k) and isinstance(v, float) for k, v in sequence_bias.items()):
                return dict(sequence_bias)
        elif isinstance(sequence_bias, list) and sequence_bias:
            if all(
                isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], list) and ids_ok(pair[0])
                and isinstance(pair[1], float) for pair in sequence_bias
            ):
                return {tuple(ids): bias for ids, bias in sequence_bias}
        raise ValueError(
            "sequence_bias should map token sequences to float biases: a non-empty dict {(id, ...): bias} or a list "
            f"[[[id, ...], bias], ...] with ids >= 0 and float biases, found {sequence_bias!r}."
        )

    def _prepare(self, scores: torch.Tensor) -> None:
        vocab = scores.shape[-1]
        outside = [t for ids in self.sequence_bias for t in ids if t >= vocab]
        if outside:
            raise ValueError(
                f"The model's vocabulary has {vocab} tokens, but these biased (or banned) token ids are outside it: "
                f"{outside}. Use ids below {vocab}."
            )
        device = scores.device
        self.length_1_bias = torch.zeros(vocab, dtype=torch.float, device=device)
        singles = [(ids[0], bias) for ids, bias in self.sequence_bias.items() if len(ids) == 1]
        if singles:
            self.length_1_bias[[t for t, _ in singles]] = torch.tensor([b for _, b in singles], device=device)
        groups: dict[int, list[tuple[tuple[int, ...], float]]] = {}
        for ids, bias in self.sequence_bias.items():
            if len(ids) > 1:
                groups.setdefault(len(ids) - 1, []).append((ids, bias))
        self.multi_token_biases = [
            (
                torch.tensor([ids[:-1] for ids, _ in group], device=device),
                torch.tensor([ids[-1] for ids, _ in group], device=device),
                torch.tensor([bias for _, bias in group], dtype=torch.float, device=device),
            )
            for group in groups.values()
        ]
        self.prepared_bias_variables = True

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if not self.prepared_bias_variables:
            self._prepare(scores)
        bias = torch.zeros_like(scores)
        bias += self.length_1_bias
        for prefixes, last_tokens, biases in self.multi_token_biases:
            width = prefixes.shape[1]
            if width > input_ids.shape[1]:
                continue
            ends_with = (input_ids[:, None, -width:] == prefixes).all(dim=-1)
            bias.index_add_(1, last_tokens, torch.where(ends_with, biases, 0.0).to(bias.dtype))
        return scores + bias


class NoBadWordsLogitsProcessor(SequenceBiasLogitsProcessor):
    """Ban token sequences: the last token of a sequence is banned when the row ends with the tokens before it.

    A sequence that is just an EOS token is not banned (as in transformers).
    """

    def __init__(self, bad_words_ids: list[list[int]], eos_token_id=None) -> None:
        if (
            not isinstance(bad_words_ids, list) or not bad_words_ids
            or not all(isinstance(ids, list) for ids in bad_words_ids)
            or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for ids in bad_words_ids for t in ids)
        ):
            raise ValueError(
                "bad_words_ids should be a non-empty list of token-id lists (ints >= 0), e.g. "
                "tokenizer(['bad word'], add_special_tokens=False).input_ids, found " f"{bad_words_ids!r}."
            )
        self.bad_word_ids = bad_words_ids
        if eos_token_id is not None:
            eos = _token_tensor(eos_token_id, "eos_token_id").tolist()
            bad_words_ids = [ids for ids in bad_words_ids if all(ids != [e] for e in eos)]
        super().__init__({tuple(ids): NEG_INF for ids in bad_words_ids})


class PrefixConstrainedLogitsProcessor(LogitsProcessor):
    """Allow only the tokens ``prefix_allowed_tokens_fn(batch_id, row_ids)`` returns, per row."""

    def __init__(self, prefix_allowed_tokens_fn: Callable[[int, torch.Tensor], list[int]], num_beams: int) -> None:
        self._prefix_allowed_tokens_fn = prefix_allowed_tokens_fn
        self._num_beams = num_beams

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        mask = torch.full_like(scores, -math.inf)
        beams = self._num_beams
        batch = input_ids.shape[0] // beams
        for batch_id in range(batch):
            for beam in range(beams):
                row = batch_id * beams + beam
                allowed = self._prefix_allowed_tokens_fn(batch_id, input_ids[row])
                if len(allowed) == 0:
                    raise ValueError(
                        f"prefix_allowed_tokens_fn returned no allowed tokens for batch item {batch_id}: the "
                        "constraint cannot be met. Return at least one token id for every prefix."
                    )
                mask[row, allowed] = 0
        out = scores + mask
        # when every beam of an input has only -inf left, the constraint wins over the scores
        stuck = out.amax(dim=-1).isneginf().view(batch, -1).all(dim=-1, keepdim=True)
        return torch.where(stuck.repeat_interleave(beams, dim=0), mask, out)


class SuppressTokensLogitsProcessor(LogitsProcessor):
    """Never generate the given tokens."""

    def __init__(self, suppress_tokens, device: str = "cpu") -> None:
        self.suppress_tokens = torch.tensor(list(suppress_tokens), dtype=torch.long, device=device)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        vocab = torch.arange(scores.shape[-1], device=scores.device)
        return torch.where(torch.isin(vocab, self.suppress_tokens.to(scores.device)), NEG_INF, scores)


class SuppressTokensAtBeginLogitsProcessor(LogitsProcessor):
    """Forbid the given tokens at one position: when the ids so far are ``begin_index`` long (the first new token)."""

    def __init__(self, begin_suppress_tokens, begin_index: int, device: str = "cpu") -> None:
        self.begin_suppress_tokens = torch.tensor(list(begin_suppress_tokens), dtype=torch.long, device=device)
        self.begin_index = begin_index

    def set_begin_index(self, begin_index: int) -> None:
        self.begin_index = begin_index

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[-1] != self.begin_index:
            return scores
        vocab = torch.arange(scores.shape[-1], device=scores.device)
        return torch.where(torch.isin(vocab, self.begin_suppress_tokens.to(scores.device)), NEG_INF, scores)


class InfNanRemoveLogitsProcessor(LogitsProcessor):
    """NaN -> 0, +inf -> the dtype's max, -inf -> the dtype's min."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        info = torch.finfo(scores.dtype)
        out = torch.where(scores != scores, 0.0, scores)
        out = torch.where(scores == float("inf"), info.max, out)
        return torch.where(scores == NEG_INF, info.min, out)


class LogitNormalization(LogitsProcessor):
    """Log-softmax over the vocabulary (``renormalize_logits=True``; always the last processor)."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return scores.log_softmax(dim=-1)


# --- building the list from a GenerationConfig ---------------------------------------------------


def _same_kind(custom: Any, built: Any) -> bool:
    """transformers replaces a built processor by a user one of the same class; a transformers instance of the
    class hugkit mirrors (same name) counts as the same kind."""
    if type(custom) is type(built):
        return True
    module = type(custom).__module__ or ""
    return module.startswith("transformers.") and type(custom).__name__ == type(built).__name__


def merge_user_list(built: list, custom: Iterable | None, kind: str = "logits processor") -> list:
    """transformers' ``_merge_criteria_processor_list``: a user item of a built item's class takes its place (with
    a warning); the other user items are appended, in order."""
    custom = list(custom or [])
    if not custom:
        return built
    merged = type(built)()
    for item in built:
        for user in custom:
            if _same_kind(user, item):
                logger.warning(
                    "A %s of type %s was passed to generate() and generate() also built one from its settings; "
                    "the one passed is used.", kind, type(user).__name__,
                )
                merged.append(user)
                break
        else:
            merged.append(item)
    for user in custom:
        if not any(user is item for item in merged):
            merged.append(user)
    return merged


def _setting(config, name: str, default: Any = None) -> Any:
    """A GenerationConfig value (its default when unset); also from objects without ``get``."""
    getter = getattr(config, "get", None)
    value = getter(name) if callable(getter) else getattr(config, name, None)
    return default if value is None else value


def padding_lengths(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """Leading padding of each row (the index of its first 1), what transformers' repetition penalty skips."""
    if attention_mask is None:
        return None
    return (attention_mask != 0).int().argmax(dim=1)


def build_processors(
    config,
    prompt_length: int,
    device: torch.device | str,
    *,
    is_encoder_decoder: bool = False,
    user_processors: Iterable[Callable] | None = None,
    attention_mask: torch.Tensor | None = None,
    max_length: int | None = None,
    encoder_input_ids: torch.Tensor | None = None,
    prefix_allowed_tokens_fn: Callable[[int, torch.Tensor], list[int]] | None = None,
) -> LogitsProcessorList:
    """The processors a resolved GenerationConfig asks for, in transformers' order, with ``user_processors`` merged.

    ``prompt_length``: the length of the ids the first step sees (the prompt; the decoder prompt for an
    encoder-decoder, so min/max lengths count decoder tokens; ``is_encoder_decoder`` marks that case, where
    ``attention_mask`` is the decoder prompt's mask). ``attention_mask``: the prompt's mask, one row per
    decoded row (or per input: it is repeated), so that the repetition penalty skips left padding as transformers
    does (decoder-only only; pass None otherwise). ``max_length``: the total length limit (prompt + new tokens),
    for ``forced_eos_token_id``; by default ``prompt_length + max_new_tokens`` or ``max_length``.
    ``encoder_input_ids``: the encoder's ids, for ``encoder_repetition_penalty``/``encoder_no_repeat_ngram_size``.
    """
    processors = LogitsProcessorList()
    eos_ids = config.eos_token_ids()
    eos = torch.tensor(eos_ids, dtype=torch.long, device=device) if eos_ids else None
    num_beams = _setting(config, "num_beams", 1)
    if max_length is None:
        max_new = _setting(config, "max_new_tokens")
        max_length = prompt_length + max_new if max_new is not None else _setting(config, "max_length", 20)
    min_new_tokens = _setting(config, "min_new_tokens")
    # transformers overrides min_length with the prompt length + min_new_tokens when min_new_tokens is set
    min_length = prompt_length + min_new_tokens if min_new_tokens is not None else _setting(config, "min_length", 0)
    has_encoder_ids = (
        encoder_input_ids is not None and encoder_input_ids.dim() == 2 and not bool((encoder_input_ids < 0).any())
    )

    guidance = _setting(config, "guidance_scale")
    if guidance is not None and guidance != 1:
        raise NotImplementedError(
            f"guidance_scale={guidance!r} (classifier-free guidance) is not supported by hugkit's generate yet; "
            "leave it unset."
        )
    if _setting(config, "sequence_bias") is not None:
        processors.append(SequenceBiasLogitsProcessor(_setting(config, "sequence_bias")))
    encoder_penalty = _setting(config, "encoder_repetition_penalty")
    if encoder_penalty is not None and encoder_penalty != 1.0:
        if not has_encoder_ids:
            raise ValueError(
                "encoder_repetition_penalty needs the encoder's input ids (input_ids of an encoder-decoder model); "
                "none were given. Pass input_ids, or leave encoder_repetition_penalty unset."
            )
        processors.append(EncoderRepetitionPenaltyLogitsProcessor(float(encoder_penalty), encoder_input_ids))
    penalty = _setting(config, "repetition_penalty", 1.0)
    if penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(float(penalty), padding_lengths(attention_mask)))
    ngram = _setting(config, "no_repeat_ngram_size", 0)
    if ngram > 0:
        processors.append(NoRepeatNGramLogitsProcessor(ngram))
    encoder_ngram = _setting(config, "encoder_no_repeat_ngram_size", 0)
    if encoder_ngram > 0:
        if not has_encoder_ids:
            raise ValueError(
                "encoder_no_repeat_ngram_size needs the encoder's input ids (input_ids of an encoder-decoder model); "
                "none were given. Pass input_ids, or leave encoder_no_repeat_ngram_size unset."
            )
        processors.append(EncoderNoRepeatNGramLogitsProcessor(encoder_ngram, encoder_input_ids))
    if _setting(config, "bad_words_ids") is not None:
        processors.append(NoBadWordsLogitsProcessor(_setting(config, "bad_words_ids"), eos))
    if eos is not None and min_length > 0:
        processors.append(MinLengthLogitsProcessor(min_length, eos, device=device))
    if eos is not None and min_new_tokens is not None and min_new_tokens > 0:
        processors.append(MinNewTokensLengthLogitsProcessor(prompt_length, min_new_tokens, eos, device=device))
    if prefix_allowed_tokens_fn is not None:
        processors.append(PrefixConstrainedLogitsProcessor(
            prefix_allowed_tokens_fn, max(num_beams, _setting(config, "num_return_sequences", 1))
        ))
    forced_bos = _setting(config, "forced_bos_token_id")
    if forced_bos is not None:
        processors.append(ForcedBOSTokenLogitsProcessor(forced_bos))
    forced_eos = _setting(config, "forced_eos_token_id")
    if forced_eos is not None:
        processors.append(ForcedEOSTokenLogitsProcessor(max_length, forced_eos, device=device))
    if _setting(config, "remove_invalid_values") is True:
        processors.append(InfNanRemoveLogitsProcessor())
    decay = _setting(config, "exponential_decay_length_penalty")
    if decay is not None:
        if eos is None:
            raise ValueError(
                "exponential_decay_length_penalty raises the EOS token's score, but no eos_token_id is set. "
                "Set eos_token_id, or leave exponential_decay_length_penalty unset."
            )
        processors.append(ExponentialDecayLengthPenalty(decay, eos, prompt_length))
    if _setting(config, "suppress_tokens") is not None:
        processors.append(SuppressTokensLogitsProcessor(_setting(config, "suppress_tokens"), device=device))
    begin_suppress = _setting(config, "begin_suppress_tokens")
    if begin_suppress is not None:
        # the first generated position; one later when a forced BOS takes it (a one-token decoder prompt)
        begin_index = prompt_length if (prompt_length > 1 or forced_bos is None) else prompt_length + 1
        processors.append(SuppressTokensAtBeginLogitsProcessor(begin_suppress, begin_index, device=device))

    processors = merge_user_list(processors, user_processors)

    if _setting(config, "do_sample", False):
        # beam sampling keeps at least one token besides the EOS tokens, so a beam can always continue
        keep = (len(eos_ids) + 1 if eos is not None else 2) if num_beams > 1 else 1
        temperature = _setting(config, "temperature", 1.0)
        if temperature != 1.0:
            processors.append(TemperatureLogitsWarper(float(temperature)))
        if _setting(config, "top_h") is not None:
            processors.append(TopHLogitsWarper(_setting(config, "top_h")))
        top_k = _setting(config, "top_k", 50)
        if top_k != 0:
            processors.append(TopKLogitsWarper(top_k, min_tokens_to_keep=keep))
        top_p = _setting(config, "top_p", 1.0)
        if top_p < 1.0:
            processors.append(TopPLogitsWarper(top_p, min_tokens_to_keep=keep))
        if _setting(config, "min_p") is not None:
            processors.append(MinPLogitsWarper(_setting(config, "min_p"), min_tokens_to_keep=keep))
        typical = _setting(config, "typical_p", 1.0)
        if typical < 1.0:
            processors.append(TypicalLogitsWarper(typical, min_tokens_to_keep=keep))
        epsilon = _setting(config, "epsilon_cutoff", 0.0)
        if 0.0 < epsilon < 1.0:
            processors.append(EpsilonLogitsWarper(epsilon, min_tokens_to_keep=keep))
        eta = _setting(config, "eta_cutoff", 0.0)
        if 0.0 < eta < 1.0:
            processors.append(EtaLogitsWarper(eta, min_tokens_to_keep=keep, device=device))
    if _setting(config, "renormalize_logits") is True:
        processors.append(LogitNormalization())
    return processors
