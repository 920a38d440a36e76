"""Stopping criteria: which rows are done after a step, with transformers' classes and call protocol.

A criterion is called as ``criterion(input_ids, scores, **kwargs)`` with the ids so far ``(rows, length)`` (the new
token included) and the scores of the steps so far (a tuple, or None when they are not kept); it returns a bool
tensor ``(rows,)``. ``StoppingCriteriaList`` ORs its members. Subclasses of ``StoppingCriteria`` written for
transformers, transformers' own criteria and plain callables with that signature all work.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable

import torch

from .logits import merge_user_list

logger = logging.getLogger(__name__)

__all__ = [
    "StoppingCriteria", "StoppingCriteriaList", "MaxLengthCriteria", "MaxTimeCriteria", "EosTokenCriteria",
    "StopStringCriteria", "build_stopping_criteria",
]


class StoppingCriteria:
    """Base class: implement ``__call__(input_ids, scores, **kwargs)`` returning a bool tensor, one per row."""

    def __call__(self, input_ids: torch.Tensor, scores: tuple[torch.Tensor, ...] | None, **kwargs: Any) -> torch.Tensor:
        raise NotImplementedError(
            f"{type(self).__name__} is a StoppingCriteria without a __call__: implement "
            "__call__(self, input_ids, scores, **kwargs) returning a bool tensor of shape (rows,)."
        )


class StoppingCriteriaList(list):
    """A list of criteria; calling it returns, per row, whether any of them says the row is done."""

    def __call__(self, input_ids: torch.Tensor, scores: tuple[torch.Tensor, ...] | None, **kwargs: Any) -> torch.Tensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for criterion in self:
            verdict = criterion(input_ids, scores, **kwargs)
            if not isinstance(verdict, torch.Tensor):
                verdict = torch.as_tensor(verdict, dtype=torch.bool, device=input_ids.device)
            done = done | verdict
        return done

    @property
    def max_length(self) -> int | None:
        for criterion in self:
            if isinstance(criterion, MaxLengthCriteria):
                return criterion.max_length
        return None


class MaxLengthCriteria(StoppingCriteria):
    """Done once the ids are ``max_length`` long (prompt included; the decoder's ids for an encoder-decoder)."""

    def __init__(self, max_length: int, max_position_embeddings: int | None = None) -> None:
        self.max_length = max_length
        self.max_position_embeddings = max_position_embeddings
        self._warned = False

    def __call__(self, input_ids: torch.Tensor, scores=None, **kwargs: Any) -> torch.Tensor:
        length = input_ids.shape[1]
        done = length >= self.max_length
        context = self.max_position_embeddings
        if context is not None and not done and length > context and not self._warned:
            self._warned = True
            logger.warning(
                "Generation has passed this model's context of %d tokens (max_position_embeddings); quality "
                "usually degrades beyond it.", context,
            )
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class MaxTimeCriteria(StoppingCriteria):
    """Done (every row) once ``max_time`` seconds have passed since ``initial_timestamp`` (default: creation)."""

    def __init__(self, max_time: float, initial_timestamp: float | None = None) -> None:
        if not isinstance(max_time, (int, float)) or isinstance(max_time, bool) or max_time <= 0:
            raise ValueError(f"max_time should be a number of seconds > 0, found {max_time!r}.")
        self.max_time = max_time
        self.initial_timestamp = time.time() if initial_timestamp is None else initial_timestamp

    def __call__(self, input_ids: torch.Tensor, scores=None, **kwargs: Any) -> torch.Tensor:
        done = time.time() - self.initial_timestamp > self.max_time
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class EosTokenCriteria(StoppingCriteria):
    """Done when the row's last token (of the last ``new_token_length``) is one of ``eos_token_id``."""

    def __init__(self, eos_token_id: int | list[int] | torch.Tensor) -> None:
        if not isinstance(eos_token_id, torch.Tensor):
            eos_token_id = torch.tensor([eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id))
        self.eos_token_id = eos_token_id.reshape(-1)

    def __call__(self, input_ids: torch.Tensor, scores=None, new_token_length: int = 1, **kwargs: Any) -> torch.Tensor:
        self.eos_token_id = self.eos_token_id.to(input_ids.device)
        return torch.isin(input_ids[:, -new_token_length:], self.eos_token_id).any(dim=-1)


class StopStringCriteria(StoppingCriteria):
    """Done when the row's text ends in one of ``stop_strings`` (transformers' matching rule; see
    ``stop_strings.StopStringChecker``)."""

    def __init__(self, tokenizer: Any, stop_strings: str | list[str]) -> None:
        from .stop_strings import StopStringChecker

        self.checker = StopStringChecker(stop_strings, tokenizer)
        self.stop_strings = self.checker.stop_strings

    def __call__(self, input_ids: torch.Tensor, scores=None, **kwargs: Any) -> torch.Tensor:
        return torch.tensor(self.checker(input_ids), dtype=torch.bool, device=input_ids.device)


def build_stopping_criteria(
    config,
    user_criteria: Iterable[Callable] | None = None,
    *,
    max_length: int,
    start_time: float | None = None,
    tokenizer: Any = None,
    max_position_embeddings: int | None = None,
) -> StoppingCriteriaList:
    """transformers' ``_get_stopping_criteria``: max length, max time, stop strings, EOS, then ``user_criteria``
    merged (one of a built criterion's class replaces it; others are appended).

    ``max_length``: the total length limit (prompt + new tokens; decoder tokens for an encoder-decoder).
    ``start_time``: when generation started (``time.time()``), for ``max_time``; default now.
    """
    criteria = StoppingCriteriaList()
    criteria.append(MaxLengthCriteria(max_length, max_position_embeddings))
    max_time = getattr(config, "max_time", None)
    if max_time is not None:
        criteria.append(MaxTimeCriteria(max_time, start_time))
    stop_strings = getattr(config, "stop_strings", None)
    if stop_strings is not None:
        if tokenizer is None:
            raise ValueError(
                "stop_strings needs the model's tokenizer to read the generated text: pass it as "
                "generate(..., stop_strings=[...], tokenizer=tokenizer)."
            )
        criteria.append(StopStringCriteria(tokenizer, stop_strings))
    eos = config.eos_token_ids()
    if eos:
        criteria.append(EosTokenCriteria(eos))
    return merge_user_list(criteria, user_criteria, kind="stopping criteria")
