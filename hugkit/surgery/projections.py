"""Keep a subset of a projection's output or input features, in place (works on the meta device too).

A projection is an ``nn.Linear`` (weight ``[out, in]``) or, with ``transposed``, GPT-2's Conv1D (weight ``[in, out]``).
Anything else (an int8/int4 module, say) is refused: surgery reshapes float weights, so it comes before quantization.
"""

from __future__ import annotations

import torch
from torch import nn


def _check_float(module: nn.Module, path: str) -> None:
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or not weight.is_floating_point() or weight.dim() != 2:
        raise TypeError(
            f"Cannot reshape {path} ({type(module).__name__}): surgery works on float Linear weights. "
            "Apply drop_layers_/prune_heads_/prune_ffn_ before quantizing the model."
        )


def _replace(module: nn.Module, name: str, tensor: torch.Tensor) -> None:
    old = getattr(module, name)
    module._parameters[name] = nn.Parameter(tensor.contiguous(), requires_grad=old.requires_grad)


def keep_outputs(module: nn.Module, index: torch.Tensor, *, transposed: bool = False, path: str = "") -> None:
    """Keep output features ``index`` (rows of a Linear weight, and the bias)."""
    _check_float(module, path)
    index = index.to(module.weight.device)
    _replace(module, "weight", module.weight.index_select(1 if transposed else 0, index))
    if getattr(module, "bias", None) is not None:
        _replace(module, "bias", module.bias.index_select(0, index))
    if isinstance(module, nn.Linear):
        module.out_features = len(index)


def keep_inputs(module: nn.Module, index: torch.Tensor, *, transposed: bool = False, path: str = "") -> None:
    """Keep input features ``index`` (columns of a Linear weight; the bias is per output, so it stays)."""
    _check_float(module, path)
    index = index.to(module.weight.device)
    _replace(module, "weight", module.weight.index_select(0 if transposed else 1, index))
    if isinstance(module, nn.Linear):
        module.in_features = len(index)


def out_features(module: nn.Module, *, transposed: bool = False) -> int:
    return module.weight.shape[1 if transposed else 0]


def in_features(module: nn.Module, *, transposed: bool = False) -> int:
    return module.weight.shape[0 if transposed else 1]


def head_rows(heads: list[int], head_dim: int, offset: int = 0) -> torch.Tensor:
    """The feature indices of ``heads`` (positions in the current layout) in a heads x head_dim projection."""
    if not heads:
        return torch.empty(0, dtype=torch.long)
    starts = torch.tensor(heads, dtype=torch.long) * head_dim + offset
    return (starts[:, None] + torch.arange(head_dim)).reshape(-1)
