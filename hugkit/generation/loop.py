"""The token loop: ``generate_tokens`` yields each step's new tokens; ``generate`` and streaming fold over it.

The model work is two plain functions over a preallocated ``StaticCache``:

- ``prefill(model, input_ids, position_ids, cache, keep)`` runs the prompt and returns the last position's logits;
- ``decode_step(model, tokens, position_ids, cache_position, cache, keep)`` runs one token per row.

Every tensor ``decode_step`` sees has the same shape at every step, so ``torch.compile(decode_step)`` (pass
``compile=True`` to ``generate_tokens``) compiles once per batch size and cache length.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

import torch

from ..kv_cache import StaticCache, positions_from_mask
from .config import TRANSFORMERS_ONLY, GenerationConfig
from .logits import build_processors

logger = logging.getLogger(__name__)


def prefill(model, input_ids, position_ids, cache, keep) -> torch.Tensor:
    """Feed the prompt into ``cache`` (slots 0..L-1); return float32 logits ``(batch, vocab)`` of the last position."""
    cache_position = torch.arange(input_ids.shape[1], device=input_ids.device)
    out = model(
        input_ids=input_ids, attention_mask=keep, position_ids=position_ids, past_key_values=cache,
        cache_position=cache_position, logits_to_keep=1,
    )
    return out.logits[:, -1].float()


def decode_step(model, tokens, position_ids, cache_position, cache, keep) -> torch.Tensor:
    """Feed one token per row ``(batch, 1)`` at slot ``cache_position`` ``(1,)``; return float32 logits ``(batch, vocab)``."""
    out = model(
        input_ids=tokens, attention_mask=keep, position_ids=position_ids, past_key_values=cache,
        cache_position=cache_position, logits_to_keep=1,
    )
    return out.logits[:, -1].float()


_compiled_steps: dict[int, Callable] = {}


def _compiled_decode_step() -> Callable:
    step = _compiled_steps.get(0)
    if step is None:
        step = _compiled_steps[0] = torch.compile(decode_step, dynamic=False)
    return step


def resolve_config(model, generation_config: GenerationConfig | None, kwargs: dict[str, Any]) -> GenerationConfig:
    """The model's (or given) generation config with the keyword arguments on top; unknown names raise TypeError."""
    base = generation_config if generation_config is not None else getattr(model, "generation_config", None)
    config = base.copy() if base is not None else GenerationConfig.from_model_config(model.config)
    unknown = config.update(**kwargs)
    for key in unknown:
        config._extra.pop(key, None)
    not_yet = sorted(k for k, v in unknown.items() if k in TRANSFORMERS_ONLY and v is not None)
    unknown = sorted(k for k in unknown if k not in TRANSFORMERS_ONLY)
    if not_yet:
        raise NotImplementedError(
            f"hugkit's generate does not support {', '.join(not_yet)} yet (transformers does). "
            "Supported: greedy and sampling settings of GenerationConfig, input_ids, attention_mask, streamer."
        )
    if unknown:
        raise TypeError(
            f"generate() got unexpected keyword argument(s): {', '.join(unknown)}. "
            "Pass GenerationConfig fields (max_new_tokens, do_sample, temperature, top_k, top_p, ...), "
            "input_ids, attention_mask or generation_config."
        )
    config.validate()
    config.check_supported()
    return config


def _check_prompt(input_ids: Any, attention_mask: Any, config: GenerationConfig) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(
            f"input_ids should be a torch.LongTensor of token ids, found {type(input_ids).__name__}. "
            "Call the tokenizer with return_tensors='pt'."
        )
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
    if input_ids.dim() != 2 or input_ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"input_ids should be integer token ids of shape (batch, length), found {input_ids.dtype} "
            f"of shape {tuple(input_ids.shape)}."
        )
    if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
        raise ValueError(
            f"The prompt is empty (input_ids shape {tuple(input_ids.shape)}). Generation needs at least one token "
            "per sequence: start from the BOS token (tokenizer.bos_token_id) if there is no text."
        )
    input_ids = input_ids.long()
    if attention_mask is None:
        # transformers' rule: padding is recognisable when pad_token_id occurs and is not also an EOS token.
        pad, eos_ids = config.pad_token_id, config.eos_token_ids()
        if pad is not None and pad not in eos_ids and bool((input_ids == pad).any()):
            attention_mask = (input_ids != pad).long()
        else:
            attention_mask = torch.ones_like(input_ids)
    if tuple(attention_mask.shape) != tuple(input_ids.shape):
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} does not match input_ids shape {tuple(input_ids.shape)}."
        )
    attention_mask = attention_mask.to(device=input_ids.device, dtype=torch.long)
    if not bool(attention_mask[:, -1].all()):
        raise ValueError(
            "The prompts are right-padded (attention_mask ends in 0), but a decoder-only model continues the last "
            "position: pad on the left. Set tokenizer.padding_side = 'left' before tokenizing the batch."
        )
    return input_ids, attention_mask


def generate_tokens(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    generation_config: GenerationConfig | None = None,
    *,
    compile: bool = False,
    tokenizer: Any = None,
    **kwargs: Any,
) -> Iterator[torch.Tensor]:
    """Yield the next token of every row, ``(batch * num_return_sequences,)`` LongTensor, one step at a time.

    Rows that have produced an EOS token (or ended in one of ``stop_strings``) yield ``pad_token_id`` from then on;
    the generator stops when every row has finished or the length limit is reached. Breaking out of the loop drops
    the cache with the generator. Keyword arguments are GenerationConfig fields, layered over ``generation_config``
    (or the model's); ``tokenizer`` is needed for ``stop_strings``.

    When it is exhausted, the generator returns (``StopIteration.value``) a dict with per-row ``finish_reasons``
    ("stop": an EOS token, "stop_string", "length") and ``new_tokens`` (tokens generated up to and including the
    one that finished the row).
    """
    config = resolve_config(model, generation_config, kwargs)
    input_ids, attention_mask = _check_prompt(input_ids, attention_mask, config)
    return _token_loop(model, input_ids, attention_mask, config, compile, tokenizer)


def plan_lengths(model, config: GenerationConfig, prompt_length: int) -> int:
    """How many new tokens at most; raises ValueError for a prompt that leaves no room."""
    context = getattr(model.config, "max_position_embeddings", None)
    if context is not None and prompt_length > context:
        raise ValueError(
            f"The prompt has {prompt_length} tokens, but this model's context is {context} tokens "
            "(max_position_embeddings). Shorten the prompt, e.g. tokenizer(..., truncation=True, "
            f"max_length={context}) (keeps the start) or keep only its last tokens."
        )
    if config.max_new_tokens is not None:
        max_new = config.max_new_tokens
    else:
        max_length = config.get("max_length")
        if prompt_length >= max_length:
            raise ValueError(
                f"The prompt has {prompt_length} tokens, but max_length is {max_length}, which leaves no room to "
                "generate. Set max_new_tokens (tokens to add) instead of max_length."
            )
        max_new = max_length - prompt_length
    if context is not None and prompt_length + max_new > context:
        if getattr(model, "has_learned_positions", False):
            raise ValueError(
                f"The prompt ({prompt_length} tokens) plus max_new_tokens ({max_new}) exceeds this model's context "
                f"of {context} tokens (learned position embeddings cannot go further). Lower max_new_tokens to at "
                f"most {context - prompt_length}."
            )
        logger.warning(
            "Generating up to %d tokens, past this model's context of %d (max_position_embeddings): "
            "quality usually degrades beyond it.", prompt_length + max_new, context,
        )
    return max_new


def _token_loop(
    model, input_ids, attention_mask, config: GenerationConfig, compile: bool, tokenizer: Any = None
) -> Iterator[torch.Tensor]:
    """Check lengths and set everything up now (errors surface at the call), then return the step generator."""
    sampling = config.get("do_sample")
    copies = config.get("num_return_sequences")
    if copies > 1:
        if not sampling:
            raise ValueError(
                f"num_return_sequences={copies} needs do_sample=True: greedy decoding would return the same "
                "sequence every time (beam search is not supported yet)."
            )
        input_ids = input_ids.repeat_interleave(copies, dim=0)
        attention_mask = attention_mask.repeat_interleave(copies, dim=0)
    max_new = plan_lengths(model, config, input_ids.shape[1])
    stop_check = None
    if config.stop_strings is not None:
        from .stop_strings import StopStringChecker

        stop_check = StopStringChecker(config.stop_strings, tokenizer)
    return _steps(model, input_ids, attention_mask, config, max_new, compile, stop_check)


def _steps(model, input_ids, attention_mask, config: GenerationConfig, max_new: int, compile: bool, stop_check=None):
    batch, prompt_length = input_ids.shape
    sampling = config.get("do_sample")
    eos_ids = config.eos_token_ids()
    pad_id = config.pad_token_id if config.pad_token_id is not None else (eos_ids[0] if eos_ids else None)
    device = input_ids.device
    eos = torch.tensor(eos_ids, dtype=torch.long, device=device)
    processors = build_processors(config, prompt_length, device)

    total = prompt_length + max_new
    cache = StaticCache.for_model(model, batch, total)
    keep = torch.zeros(batch, total, dtype=torch.long, device=device)
    keep[:, :prompt_length] = attention_mask
    sequence = torch.zeros(batch, total, dtype=torch.long, device=device)
    sequence[:, :prompt_length] = input_ids
    unfinished = torch.ones(batch, dtype=torch.bool, device=device)
    reason = torch.zeros(batch, dtype=torch.int8, device=device)  # 0 running, 1 EOS, 2 stop string
    produced = torch.zeros(batch, dtype=torch.long, device=device)
    positions = positions_from_mask(attention_mask)
    next_position = positions[:, -1:] + 1
    step_fn = _compiled_decode_step() if compile else decode_step

    # no_grad only around model calls: the caller's code between yields runs in its own grad mode.
    with torch.no_grad():
        logits = prefill(model, input_ids, positions, cache, keep)
    cache.seen_tokens = prompt_length
    for step in range(max_new):
        length = prompt_length + step
        scores = logits
        for process in processors:
            scores = process(sequence[:, :length], scores)
        if sampling:
            tokens = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        else:
            tokens = torch.argmax(scores, dim=-1)
        if pad_id is not None:
            tokens = torch.where(unfinished, tokens, pad_id)
        sequence[:, length] = tokens
        produced += unfinished
        yield tokens
        if len(eos):
            hit = unfinished & torch.isin(tokens, eos)
            reason.masked_fill_(hit, 1)
            unfinished &= ~hit
        if stop_check is not None:
            rows = unfinished.nonzero().flatten().tolist()
            if rows:
                hit = torch.tensor(stop_check(sequence[:, : length + 1], rows), device=device)
                reason.masked_fill_(hit, 2)
                unfinished &= ~hit
        if (len(eos) or stop_check is not None) and not bool(unfinished.any()):
            return _summary(reason, produced)
        if step + 1 == max_new:
            return _summary(reason, produced)
        keep[:, length] = 1
        cache_position = torch.tensor([length], device=device)
        with torch.no_grad():
            logits = step_fn(model, tokens[:, None], next_position, cache_position, cache, keep)
        cache.seen_tokens = length + 1
        next_position = next_position + 1
    return _summary(reason, produced)


def _summary(reason: torch.Tensor, produced: torch.Tensor) -> dict[str, list]:
    names = ("length", "stop", "stop_string")
    return {"finish_reasons": [names[int(r)] for r in reason.tolist()], "new_tokens": produced.tolist()}


def generate(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    generation_config: GenerationConfig | None = None,
    *,
    streamer: Any = None,
    compile: bool = False,
    tokenizer: Any = None,
    **kwargs: Any,
) -> torch.Tensor:
    """Prompt plus new tokens as one LongTensor ``(batch * num_return_sequences, length)``, like transformers.

    Rows that finished early are padded with ``pad_token_id`` after their EOS token.
    """
    config = resolve_config(model, generation_config, kwargs)
    input_ids, attention_mask = _check_prompt(input_ids, attention_mask, config)
    copies = config.get("num_return_sequences")
    prompt = input_ids.repeat_interleave(copies, dim=0) if copies > 1 else input_ids
    if streamer is not None:
        streamer.put(prompt.cpu())
    new_tokens = []
    for tokens in _token_loop(model, input_ids, attention_mask, config, compile, tokenizer):
        new_tokens.append(tokens)
        if streamer is not None:
            streamer.put(tokens.cpu())
    if streamer is not None:
        streamer.end()
    if not new_tokens:
        return prompt
    return torch.cat([prompt, torch.stack(new_tokens, dim=1)], dim=1)
