"""Small helpers every diffusion part needs: seeded noise drawn exactly as diffusers draws it."""

from __future__ import annotations

import logging
from typing import Sequence

import torch

logger = logging.getLogger(__name__)

Generator = torch.Generator | Sequence[torch.Generator] | None


def randn_tensor(
    shape: Sequence[int],
    generator: Generator = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Standard normal noise of ``shape``. Same numbers as diffusers for the same generators: a CPU generator draws
    on the CPU and the result moves to ``device``; a list of generators draws one batch row from each."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    draw_on = device
    generators = list(generator) if isinstance(generator, (list, tuple)) else None
    if generators is not None and len(generators) == 1:
        generator, generators = generators[0], None
    first = generators[0] if generators else generator
    if first is not None and first.device.type != device.type:
        if first.device.type != "cpu":
            raise ValueError(f"A generator on {first.device} cannot draw noise for {device}: create it on {device} or the CPU.")
        draw_on = torch.device("cpu")
    if generators is not None:
        if len(generators) != shape[0]:
            raise ValueError(
                f"Got {len(generators)} generators for a batch of {shape[0]}: pass one generator, or one per image."
            )
        rows = [torch.randn((1, *shape[1:]), generator=g, device=draw_on, dtype=dtype) for g in generators]
        return torch.cat(rows, dim=0).to(device)
    return torch.randn(tuple(shape), generator=generator, device=draw_on, dtype=dtype).to(device)
