"""BatchFeature: what image and audio processors return, as transformers' processors return it."""

from __future__ import annotations

from typing import Any

import torch


class BatchFeature(dict):
    """A processor's output (``{"pixel_values": ...}``, ``{"input_features": ..., "attention_mask": ...}``), readable
    as ``out.pixel_values`` too. ``.to(device)`` moves the tensors; ``.to(dtype)`` casts the floating ones only
    (integer masks stay integer, as in transformers)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"This batch has no {name!r}; it holds {sorted(self)}.") from None

    def to(self, *args: Any, **kwargs: Any) -> "BatchFeature":
        dtype = kwargs.pop("dtype", None)
        device_args = []
        for arg in args:
            if isinstance(arg, torch.dtype):
                dtype = arg
            else:
                device_args.append(arg)
        moved = {}
        for key, value in self.items():
            if isinstance(value, torch.Tensor):
                if device_args or kwargs:
                    value = value.to(*device_args, **kwargs)
                if dtype is not None and value.is_floating_point():
                    value = value.to(dtype)
            moved[key] = value
        return BatchFeature(moved)
