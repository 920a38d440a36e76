"""Score processing for one decoding step, in transformers' order and with its exact arithmetic.

Each processor takes the token ids so far ``(batch, length)`` (prompt padding included, as transformers sees
them) and the float32 scores ``(batch, vocab)`` of the next token, and returns new scores. ``build_processors``
picks them from a resolved GenerationConfig: penalties and length rules always, the sampling warpers
(temperature, top-k, top-p, min-p) only when sampling.
"""

from __future__ import annotations

from typing import Callable

import torch

Processor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def repetition_penalty(penalty: float) -> Processor:
    """Divide positive scores (multiply negative ones) of every token already in the sequence by ``penalty``."""

    def apply(input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        seen = torch.gather(scores, 1, input_ids)
        seen = torch.where(seen < 0, seen * penalty, seen / penalty)
        return scores.scatter(1, input_ids, seen)

    return apply


class NoRepeatNGram:
    """Ban any token that would complete an n-gram already present in the sequence.

    The n-gram table of each row grows by one entry per step instead of being rebuilt from the whole sequence.
    """

    def __init__(self, ngram_size: int) -> None:
        self.n = ngram_size
        self.tables: list[dict[tuple[int, ...], list[int]]] | None = None
        self.rows: list[list[int]] = []

    def _add(self, row: int, tokens: list[int], end: int) -> None:
        # the n-gram ending at index `end` (inclusive)
        ngram = tuple(tokens[end - self.n + 1 : end + 1])
        self.tables[row].setdefault(ngram[:-1], []).append(ngram[-1])

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        length = input_ids.shape[-1]
        if self.tables is None:  # first step: index the prompt
            self.rows = input_ids.tolist()
            self.tables = [{} for _ in self.rows]
            for row, tokens in enumerate(self.rows):
                for end in range(self.n - 1, length):
                    self._add(row, tokens, end)
        else:  # later steps: one new token per row
            for row, token in enumerate(input_ids[:, -1].tolist()):
                tokens = self.rows[row]
                tokens.append(token)
                if len(tokens) >= self.n:
                    self._add(row, tokens, len(tokens) - 1)
        if length + 1 < self.n:
            return scores
        scores = scores.clone()
        for row, tokens in enumerate(self.rows):
            banned = self.tables[row].get(tuple(tokens[length + 1 - self.n :]), [])
            if banned:
                scores[row, banned] = -float("inf")
        return scores


def suppress_eos_until(min_total_length: int, eos: torch.Tensor) -> Processor:
    """Forbid EOS while the sequence (prompt included) is shorter than ``min_total_length``."""

    def apply(input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[-1] < min_total_length:
            scores = scores.index_fill(1, eos, -float("inf"))
        return scores

    return apply


def temperature(value: float) -> Processor:
    return lambda input_ids, scores: scores / value


def top_k(k: int) -> Processor:
    def apply(input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        kth = torch.topk(scores, min(k, scores.shape[-1]))[0][..., -1, None]
        return scores.masked_fill(scores < kth, -float("inf"))

    return apply


def top_p(p: float, min_tokens_to_keep: int = 1) -> Processor:
    """Keep the smallest set of most likely tokens whose probability adds up to more than ``p``."""

    def apply(input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        sorted_logits, sorted_indices = torch.sort(scores, descending=False)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cumulative <= (1 - p)
        remove[..., -min_tokens_to_keep:] = False
        remove = remove.scatter(1, sorted_indices, remove)
        return scores.masked_fill(remove, -float("inf"))

    return apply


def min_p(p: float, min_tokens_to_keep: int = 1) -> Processor:
    """Drop tokens less likely than ``p`` times the most likely token."""

    def apply(input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(scores, dim=-1)
        remove = probs < p * probs.amax(dim=-1, keepdim=True)
        keep = torch.topk(probs, min(min_tokens_to_keep, probs.shape[-1]), dim=-1).indices
        remove.scatter_(-1, keep, False)
        return scores.masked_fill(remove, -float("inf"))

    return apply


def build_processors(config, prompt_length: int, device: torch.device) -> list[Processor]:
    """The processors a resolved GenerationConfig asks for, in transformers' order."""
    processors: list[Processor] = []
    eos = torch.tensor(config.eos_token_ids(), dtype=torch.long, device=device)
    if config.get("repetition_penalty") != 1.0:
        processors.append(repetition_penalty(float(config.get("repetition_penalty"))))
    if config.get("no_repeat_ngram_size") > 0:
        processors.append(NoRepeatNGram(config.get("no_repeat_ngram_size")))
    if len(eos) and config.get("min_length") > 0:
        processors.append(suppress_eos_until(config.get("min_length"), eos))
    if len(eos) and (config.get("min_new_tokens") or 0) > 0:
        processors.append(suppress_eos_until(prompt_length + config.get("min_new_tokens"), eos))
    if config.get("do_sample"):
        if config.get("temperature") != 1.0:
            processors.append(temperature(float(config.get("temperature"))))
        if config.get("top_k") != 0:
            processors.append(top_k(config.get("top_k")))
        if config.get("top_p") < 1.0:
            processors.append(top_p(float(config.get("top_p"))))
        if config.get("min_p") is not None:
            processors.append(min_p(float(config.get("min_p"))))
    return processors
