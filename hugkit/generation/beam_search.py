"""Beam search (and beam sampling) over a runner, token-identical to transformers 5's vectorized ``_beam_search``.

Per input, ``num_beams`` running beams and ``num_beams`` finished hypotheses are kept in fixed-shape tensors
``(batch, beams, ...)``. Each step:

1. log-softmax of the next-token logits, then the logits processors (on the log-probs), plus each beam's running
   score;
2. the top ``K = max(2, 1 + number of EOS tokens) * num_beams`` continuations over all beams of an input (sampled
   without replacement from their softmax when ``do_sample``, then sorted), so that ``num_beams`` of them can go on
   even when the best ones all end;
3. the stopping criteria on those K candidates (EOS, max length, ...);
4. the best ``num_beams`` candidates that did not stop become the running beams; the ones among the first
   ``num_beams`` candidates that stopped compete, with the length penalty ``score / new_length ** length_penalty``,
   for the finished slots;
5. the runner's cache is reordered to the surviving beams.

The search ends when no running beam can beat the worst finished hypothesis any more (transformers' heuristic,
which depends on ``early_stopping`` and ``length_penalty``), when every input has ``num_beams`` finished
hypotheses and ``early_stopping=True``, or when every candidate hit a stopping criterion (max length).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch

from .logits import LogitsProcessorList
from .stopping import EosTokenCriteria, MaxLengthCriteria, StoppingCriteriaList

__all__ = ["BeamSearchResult", "beam_search"]

_BIG = -1.0e9  # transformers' "impossible" score


@dataclass
class BeamSearchResult:
    """What beam search returns, in transformers' layout.

    sequences        LongTensor (batch * num_return_sequences, prompt_length + new): best hypotheses first per input;
                     shorter ones padded (pad_token_id, or the first EOS when pad_token_id is 0 or unset)
    sequences_scores FloatTensor (batch * num_return_sequences,): length-penalised sum of the token log-probs
    scores           tuple, one (batch * num_beams, vocab) tensor per step: the processed log-probs (output_scores)
    logits           tuple, one (batch * num_beams, vocab) tensor per step: the raw logits (output_logits)
    beam_indices     IntTensor (batch * num_return_sequences, new): the row (input * num_beams + beam) each token
                     came from at each step, -1 past a hypothesis' end
    """

    sequences: torch.Tensor
    sequences_scores: torch.Tensor
    scores: tuple[torch.Tensor, ...] | None = None
    logits: tuple[torch.Tensor, ...] | None = None
    beam_indices: torch.Tensor | None = None


def _gather(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``tensor[b, index[b, j], ...]`` for (batch, beams, ...) tensors."""
    while index.dim() < tensor.dim():
        index = index.unsqueeze(-1)
    return torch.take_along_dim(tensor, index, dim=1)


def check_beam_settings(num_beams: int, num_return_sequences: int, early_stopping: Any) -> None:
    """The beam-search settings transformers refuses, with what to change."""
    if not isinstance(num_beams, int) or isinstance(num_beams, bool) or num_beams < 1:
        raise ValueError(f"num_beams should be an int >= 1, found {num_beams!r}.")
    if num_return_sequences > num_beams:
        raise ValueError(
            f"num_return_sequences ({num_return_sequences}) should be at most num_beams ({num_beams}): beam search "
            "returns its best finished hypotheses, and it keeps num_beams of them. Raise num_beams or lower "
            "num_return_sequences."
        )
    if early_stopping not in (True, False, "never"):
        raise ValueError(
            f"early_stopping should be True, False or 'never', found {early_stopping!r}. True stops an input once "
            "it has num_beams finished hypotheses; False (the default) stops when no running beam can beat them "
            "any more; 'never' keeps searching while a better hypothesis is possible at max length."
        )


def _apply(processors: Any, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    if processors is None:
        return scores
    if isinstance(processors, LogitsProcessorList) or callable(processors):
        return processors(input_ids, scores)
    for process in processors:
        scores = process(input_ids, scores)
    return scores


def beam_search(
    runner,
    config,
    processors: Iterable[Callable] | Callable | None,
    stopping: Callable | None = None,
    *,
    batch_size: int,
    max_new: int,
    output_scores: bool = False,
    output_logits: bool = False,
) -> BeamSearchResult:
    """Beam search over ``runner`` (built with ``expand=num_beams``: each input's rows adjacent).

    ``config``: a resolved GenerationConfig (num_beams, do_sample, length_penalty, early_stopping,
    num_return_sequences, eos_token_id, pad_token_id). ``processors``: e.g. ``build_processors(config,
    prompt_length, device, ...)``; with ``do_sample`` it should hold the sampling warpers (it does when built from
    the config). ``stopping``: a ``StoppingCriteriaList`` (or callable) over the candidates; by default max length
    (prompt + ``max_new``) and the EOS tokens. Generation never runs past ``prompt + max_new`` tokens.
    """
    num_beams = config.get("num_beams")
    num_return = config.get("num_return_sequences")
    early_stopping = config.get("early_stopping")
    length_penalty = config.get("length_penalty")
    do_sample = config.get("do_sample")
    check_beam_settings(num_beams, num_return, early_stopping)
    if not isinstance(max_new, int) or max_new < 1:
        raise ValueError(f"max_new should be the number of tokens to add, an int >= 1, found {max_new!r}.")
    prompt = runner.prompt
    rows, prompt_length = prompt.shape
    if rows != batch_size * num_beams:
        raise ValueError(
            f"The runner decodes {rows} rows, but beam search needs batch_size * num_beams = {batch_size} * "
            f"{num_beams} = {batch_size * num_beams}: build it with expand=num_beams."
        )
    device = prompt.device
    eos_ids = config.eos_token_ids()
    pad_id = config.pad_token_id
    max_length = prompt_length + max_new
    if stopping is None:
        stopping = StoppingCriteriaList([MaxLengthCriteria(max_length)])
        if eos_ids:
            stopping.append(EosTokenCriteria(eos_ids))

    B, K = batch_size, num_beams
    # candidates kept per step: enough that num_beams can continue even if the best ones all end in EOS
    keep = max(2, 1 + len(eos_ids)) * K
    among_best = torch.zeros(keep, dtype=torch.bool, device=device)
    among_best[:K] = True
    # transformers fills unused positions with pad_token_id (when nonzero), else the first EOS; -1 without EOS
    fill = (pad_id if pad_id else eos_ids[0]) if eos_ids else -1

    running = torch.full((B, K, max_length), fill, dtype=torch.long, device=device)
    running[:, :, :prompt_length] = prompt.view(B, K, prompt_length)
    finished = running.clone()
    # only the first beam of each input starts live, so the beams do not all pick the same first tokens
    running_scores = torch.zeros(B, K, dtype=torch.float, device=device)
    running_scores[:, 1:] = _BIG
    finished_scores = torch.full((B, K), _BIG, dtype=torch.float, device=device)
    is_finished = torch.zeros(B, K, dtype=torch.bool, device=device)
    can_improve = torch.ones(B, 1, dtype=torch.bool, device=device)
    running_origin = torch.full((B, K, max_new), -1, dtype=torch.int32, device=device)
    finished_origin = running_origin.clone()
    row_offset = torch.arange(B, device=device).view(-1, 1) * K

    all_scores: tuple[torch.Tensor, ...] | None = () if output_scores else None
    all_logits: tuple[torch.Tensor, ...] | None = () if output_logits else None

    length = prompt_length
    ids = prompt
    logits = runner.first_logits()
    while True:
        # 1. processed log-probs, accumulated on each beam's running score
        log_probs = torch.nn.functional.log_softmax(logits, dim=-1)
        log_probs = _apply(processors, ids, log_probs)
        if all_logits is not None:
            all_logits += (logits.clone(),)
        if all_scores is not None:
            all_scores += (log_probs.clone(),)
        vocab = log_probs.shape[-1]
        totals = (log_probs.view(B, K, vocab) + running_scores[:, :, None]).reshape(B, K * vocab)

        # 2. the top `keep` continuations over all beams of each input
        if do_sample:
            picked = torch.multinomial(torch.softmax(totals, dim=-1), num_samples=keep)
            cand_scores = torch.gather(totals, 1, picked)
            cand_scores, order = cand_scores.sort(dim=-1, descending=True)
            picked = picked.gather(-1, order)
        else:
            cand_scores, picked = torch.topk(totals, k=keep)
        source_beam = picked // vocab
        cand_seqs = _gather(running, source_beam)
        cand_seqs[:, :, length] = picked % vocab
        cand_origin = _gather(running_origin, source_beam)
        cand_origin[:, :, length - prompt_length] = source_beam + row_offset

        # 3. which candidates stop here
        stops = stopping(cand_seqs[:, :, : length + 1].reshape(B * keep, length + 1), all_scores)
        stops = stops.view(B, keep)
        if length + 1 >= max_length:  # the buffers end here whatever the criteria say
            stops = torch.ones_like(stops)

        # 4a. the best candidates that go on become the running beams
        live_scores = cand_scores + stops.to(torch.float32) * _BIG
        best_live = torch.topk(live_scores, k=K)[1]
        running = _gather(cand_seqs, best_live)
        running_scores = _gather(live_scores, best_live)
        running_origin = _gather(cand_origin, best_live)

        # 4b. candidates among the first num_beams that stopped compete for the finished slots
        just_finished = stops & among_best[None, :]
        penalised = cand_scores / ((length + 1 - prompt_length) ** length_penalty)
        inputs_full = torch.all(is_finished, dim=-1, keepdim=True) & (early_stopping is True)
        penalised += inputs_full.to(torch.float32) * _BIG
        penalised += (~can_improve).to(torch.float32) * _BIG
        penalised += (~just_finished) * _BIG
        merged_scores = torch.cat((finished_scores, penalised), dim=1)
        best = torch.topk(merged_scores, k=K)[1]
        finished = _gather(torch.cat((finished, cand_seqs), dim=1), best)
        finished_scores = _gather(merged_scores, best)
        finished_origin = _gather(torch.cat((finished_origin, cand_origin), dim=1), best)
        is_finished = _gather(torch.cat((is_finished, just_finished), dim=1), best)

        # 5. can the search still improve?
        length += 1
        if early_stopping == "never" and length_penalty > 0.0:
            best_length = max_length - prompt_length
        else:
            best_length = length - prompt_length
        best_possible = running_scores[:, :1] / (best_length ** length_penalty)
        worst_finished = torch.where(is_finished, torch.min(finished_scores, dim=1, keepdim=True)[0], _BIG)
        can_improve = can_improve & torch.any(best_possible > worst_finished, dim=-1, keepdim=True)
        go_on = torch.any(can_improve) & ~torch.all(stops)
        if early_stopping is True:
            go_on &= ~torch.all(is_finished)
        if not bool(go_on):  # the step's one host synchronisation
            break
        runner.reorder(running_origin[:, :, length - 1 - prompt_length].reshape(-1).long())
        ids = running[:, :, :length].reshape(B * K, length)
        logits = runner.step(ids[:, -1])

    sequences = finished[:, :num_return].reshape(B * num_return, max_length)
    sequences_scores = finished_scores[:, :num_return].reshape(B * num_return)
    origin = finished_origin[:, :num_return].reshape(B * num_return, max_new)
    generated = int((origin + 1).bool().sum(dim=1).max())
    return BeamSearchResult(
        sequences=sequences[:, : prompt_length + generated],
        sequences_scores=sequences_scores,
        scores=all_scores,
        logits=all_logits,
        beam_indices=origin[:, :generated],
    )
