"""Sampling warpers: how ``do_sample=True`` reshapes the next-token distribution before the draw (temperature,
top-k, top-p, min-p, top-h, typical, epsilon and eta cutoffs), with transformers' arithmetic and argument checks.

``build_processors`` (``logits.py``) appends them, in transformers' order, after the other processors when sampling;
``hugkit.generation.logits`` re-exports every name here.
"""

from __future__ import annotations

import torch

from .logits_base import NEG_INF, LogitsProcessor, _check_positive_int, _check_unit_interval

__all__ = [
    "TemperatureLogitsWarper", "TopKLogitsWarper", "TopPLogitsWarper", "MinPLogitsWarper", "TopHLogitsWarper",
    "TypicalLogitsWarper", "EpsilonLogitsWarper", "EtaLogitsWarper",
]

class TemperatureLogitsWarper(LogitsProcessor):
    """Divide the scores by ``temperature`` (> 1 flattens the distribution, < 1 sharpens it)."""

    def __init__(self, temperature: float) -> None:
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not temperature > 0:
            hint = " For deterministic output use do_sample=False (greedy)." if temperature == 0 else ""
            raise ValueError(f"temperature should be a float > 0, found {temperature!r}.{hint}")
        self.temperature = float(temperature)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return scores / self.temperature


class TopKLogitsWarper(LogitsProcessor):
    """Keep the ``top_k`` highest scores (ties with the k-th kept too); at least ``min_tokens_to_keep``."""

    def __init__(self, top_k: int, filter_value: float = NEG_INF, min_tokens_to_keep: int = 1) -> None:
        _check_positive_int(top_k, "top_k")
        self.top_k = max(top_k, min_tokens_to_keep)
        self.filter_value = filter_value
        self.min_tokens_to_keep = min_tokens_to_keep

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        k = min(self.top_k, scores.size(-1))
        kth = torch.topk(scores, k)[0][..., -1, None]
        return scores.masked_fill(scores < kth, self.filter_value)


class TopPLogitsWarper(LogitsProcessor):
    """Keep the smallest set of most likely tokens whose probability adds up to more than ``top_p``."""

    def __init__(self, top_p: float, filter_value: float = NEG_INF, min_tokens_to_keep: int = 1) -> None:
        self.top_p = _check_unit_interval(top_p, "top_p", low_open=False, high_open=False)
        _check_positive_int(min_tokens_to_keep, "min_tokens_to_keep")
        self.filter_value = filter_value
        self.min_tokens_to_keep = min_tokens_to_keep

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        ascending, order = torch.sort(scores, descending=False)
        cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= (1 - self.top_p)
        drop[..., -self.min_tokens_to_keep :] = 0
        return scores.masked_fill(drop.scatter(1, order, drop), self.filter_value)


class MinPLogitsWarper(LogitsProcessor):
    """Drop tokens less likely than ``min_p`` times the most likely token."""

    def __init__(self, min_p: float, filter_value: float = NEG_INF, min_tokens_to_keep: int = 1) -> None:
        self.min_p = _check_unit_interval(min_p, "min_p", low_open=False, high_open=False)
        _check_positive_int(min_tokens_to_keep, "min_tokens_to_keep")
        self.filter_value = filter_value
        self.min_tokens_to_keep = min_tokens_to_keep

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(scores, dim=-1)
        drop = probs < self.min_p * probs.amax(dim=-1, keepdim=True)
        keep = torch.topk(probs, min(self.min_tokens_to_keep, probs.shape[-1]), dim=-1).indices
        drop.scatter_(-1, keep, False)
        return scores.masked_fill(drop, self.filter_value)


class TopHLogitsWarper(LogitsProcessor):
    """Top-H: among the 100 most likely tokens keep, in order, those whose cumulative entropy stays within
    ``top_h`` times the entropy of that top-100 distribution (the most likely token always)."""

    def __init__(self, top_h: float, filter_value: float = NEG_INF) -> None:
        if not isinstance(top_h, (int, float)) or not 0 < top_h <= 1:
            raise ValueError(f"top_h should be a float in (0, 1], found {top_h!r}.")
        self.top_n = 100
        self.top_h = top_h
        self.filter_value = filter_value

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        rows, vocab = scores.shape
        top_logits, top_index = torch.topk(scores, min(self.top_n, vocab), dim=-1, largest=True, sorted=True)
        dist = torch.distributions.Categorical(logits=top_logits)
        probs = dist.probs
        threshold = (dist.entropy() * self.top_h).unsqueeze(-1)
        selected = torch.cumsum(-probs * torch.log(probs), dim=-1) <= threshold
        selected[:, 0] = True
        keep = torch.zeros(rows, vocab, dtype=torch.bool, device=scores.device)
        keep.scatter_(1, top_index, selected)
        out = scores.clone()
        out[~keep] = self.filter_value
        return out


class TypicalLogitsWarper(LogitsProcessor):
    """Locally typical sampling: keep the tokens whose surprisal is closest to the entropy, up to mass ``mass``."""

    def __init__(self, mass: float = 0.9, filter_value: float = NEG_INF, min_tokens_to_keep: int = 1) -> None:
        self.mass = _check_unit_interval(mass, "typical_p")
        _check_positive_int(min_tokens_to_keep, "min_tokens_to_keep")
        self.filter_value = filter_value
        self.min_tokens_to_keep = min_tokens_to_keep

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        log_p = torch.nn.functional.log_softmax(scores, dim=-1)
        entropy = -(log_p * torch.exp(log_p)).nansum(-1, keepdim=True)
        distance = torch.abs((-log_p) - entropy)
        by_distance, order = torch.sort(distance, descending=False)
        cumulative = scores.gather(-1, order).softmax(dim=-1).cumsum(dim=-1)
        last = (cumulative < self.mass).sum(dim=1)
        last.clamp_(max=by_distance.shape[-1] - 1)
        drop = by_distance > by_distance.gather(1, last.view(-1, 1))
        drop[..., : self.min_tokens_to_keep] = 0
        return scores.masked_fill(drop.scatter(1, order, drop), self.filter_value)


class EpsilonLogitsWarper(LogitsProcessor):
    """Drop tokens with probability below ``epsilon`` (keeping the ``min_tokens_to_keep`` most likely)."""

    def __init__(self, epsilon: float, filter_value: float = NEG_INF, min_tokens_to_keep: int = 1) -> None:
        self.epsilon = _check_unit_interval(epsilon, "epsilon_cutoff")
        _check_positive_int(int(min_tokens_to_keep), "min_tokens_to_keep")
        self.filter_value = filter_value
        self.min_tokens_to_keep = int(min_tokens_to_keep)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        drop = scores.softmax(dim=-1) < self.epsilon
        kth = torch.topk(scores, min(self.min_tokens_to_keep, scores.size(-1)))[0][..., -1, None]
        return scores.masked_fill(drop & (scores < kth), self.filter_value)


class EtaLogitsWarper(LogitsProcessor):
    """Eta sampling: drop tokens with probability below ``min(eta, sqrt(eta) * exp(-entropy))``."""

    def __init__(
        self, epsilon: float, filter_value: float = NEG_INF, min_tokens_to_keep: int = 1, device: str = "cpu"
    ) -> None:
        value = _check_unit_interval(epsilon, "eta_cutoff")
        _check_positive_int(int(min_tokens_to_keep), "min_tokens_to_keep")
        self.epsilon = torch.tensor(value, device=device)
        self.filter_value = filter_value
        self.min_tokens_to_keep = int(min_tokens_to_keep)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = scores.softmax(dim=-1)
        entropy = torch.distributions.Categorical(logits=scores).entropy()
        epsilon = self.epsilon.to(scores.device)
        eta = torch.min(epsilon, torch.sqrt(epsilon) * torch.exp(-entropy))[..., None]
        kth = torch.topk(scores, min(self.min_tokens_to_keep, scores.size(-1)))[0][..., -1, None]
        return scores.masked_fill((probs < eta) & (scores < kth), self.filter_value)
