"""The score-processor protocol shared by ``logits.py`` and ``warpers.py``: ``LogitsProcessor``, ``LogitsProcessorList``
and the argument checks of the processors' constructors.

A processor is called as ``processor(input_ids, scores)``: the token ids so far ``(rows, length)`` and the float32
scores ``(rows, vocab)`` of the next token; it returns new scores. Any callable with that signature works.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable

import torch

NEG_INF = -float("inf")


class LogitsProcessor:
    """Base class of the score processors: subclass it and implement ``__call__(input_ids, scores) -> scores``."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(
            f"{type(self).__name__} is a LogitsProcessor without a __call__: implement "
            "__call__(self, input_ids, scores) returning the processed scores."
        )


_EXTRA_ARGS: dict[type, tuple[str, ...]] = {}


def _extra_parameters(processor: Callable) -> tuple[str, ...]:
    """Names ``__call__`` takes after (input_ids, scores), as transformers reads them (cached per class)."""
    kind = type(processor)
    cached = _EXTRA_ARGS.get(kind)
    if cached is not None:
        return cached
    try:
        names = tuple(inspect.signature(processor.__call__).parameters)
    except (TypeError, ValueError):  # a builtin without a signature: called with the two arguments
        names = ()
    extra = names[2:] if len(names) > 2 else ()
    if inspect.isfunction(getattr(kind, "__call__", None)):  # a class's own __call__: the same for every instance
        _EXTRA_ARGS[kind] = extra
    return extra


class LogitsProcessorList(list):
    """A list of processors; calling it applies each in order. Keyword arguments reach the processors whose
    ``__call__`` takes more than ``(input_ids, scores)`` (all of its extra parameters must be given)."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        for processor in self:
            extra = _extra_parameters(processor)
            if extra:
                missing = [name for name in extra if name not in kwargs]
                if missing:
                    raise ValueError(
                        f"{type(processor).__name__}.__call__ needs {', '.join(missing)} besides (input_ids, scores), "
                        f"but the call passed only {sorted(kwargs) or 'no keyword arguments'}. Pass them as keyword "
                        "arguments to the list's call, or give the parameters defaults."
                    )
                scores = processor(input_ids, scores, **kwargs)
            else:
                scores = processor(input_ids, scores)
        return scores


def _token_tensor(ids: int | Iterable[int] | torch.Tensor, what: str, device: Any = "cpu") -> torch.Tensor:
    if isinstance(ids, torch.Tensor):
        tensor = ids.reshape(-1) if ids.dim() == 0 else ids
    else:
        ids = [ids] if isinstance(ids, int) else list(ids)
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in ids):
            raise ValueError(f"{what} should be an int token id or a list of them, found {ids!r}.")
        tensor = torch.tensor(ids, dtype=torch.long, device=device)
    if torch.is_floating_point(tensor) or bool((tensor < 0).any()):
        raise ValueError(f"{what} should be token ids (ints >= 0), found {tensor.tolist()!r}.")
    return tensor


def _check_positive_int(value: Any, name: str, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} should be an int >= {minimum}, found {value!r}.")


def _check_unit_interval(value: Any, name: str, low_open: bool = True, high_open: bool = True) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{name} should be a float, found {value!r}.")
    value = float(value)
    low_ok = value > 0 if low_open else value >= 0
    high_ok = value < 1 if high_open else value <= 1
    if not (low_ok and high_ok):
        interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        raise ValueError(f"{name} should be a float in {interval}, found {value!r}.")
    return value
