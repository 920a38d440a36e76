"""``quantize_(model, config, filter_fn=None)``: replace a model's linear layers, in place, by quantized ones.

Quantized: every ``nn.Linear`` and GPT-2 ``Conv1D`` (whose ``[in, out]`` weight is transposed first; the
replacement computes the same ``x @ W^T + b``), heads included (``lm_head`` is most of a small LM's decode
time). Not quantized: embeddings, norms, and whatever ``filter_fn(module, name)`` rejects. A head tied to the
input embedding gets its own quantized copy; the embedding keeps its float weight.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from .config import QuantizationConfig, resolve_quantization

logger = logging.getLogger(__name__)


class AlreadyQuantizedError(ValueError):
    """quantize_ on a model whose layers are already quantized."""


def _conv1d_class() -> type | None:
    from ..models.gpt2 import Conv1D

    return Conv1D


def is_quantized_module(module: nn.Module) -> bool:
    return bool(getattr(module, "is_quantized", False))


def linear_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(name, module) of every float linear layer quantize_ can replace (nn.Linear, GPT-2 Conv1D)."""
    conv1d = _conv1d_class()
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) or (conv1d is not None and isinstance(module, conv1d)):
            yield name, module


def float_weight(module: nn.Module) -> torch.Tensor:
    """The (out, in) weight of an nn.Linear or a Conv1D."""
    return module.weight if isinstance(module, nn.Linear) else module.weight.t()


def layer_shape(module: nn.Module) -> tuple[int, int]:
    """(in_features, out_features) of an nn.Linear or a Conv1D, meta or not."""
    out_features, in_features = float_weight(module).shape
    return in_features, out_features


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


_ROWS_AT_ONCE = 4096  # quantize a big head in row slices: its float temporaries stay ~4096 x in x 4 bytes each


def quantize_layer(module: nn.Module, config: QuantizationConfig) -> nn.Module:
    """The quantized replacement of one float linear layer (its bias stays a float parameter).

    Every scheme quantizes rows independently, so a large weight is quantized a slice of rows at a time and the
    slices' buffers concatenated (measured: quantizing GPT-2's 50257-row head at once held ~600 MB of temporaries).
    """
    bias = module.bias if module.bias is not None else None
    weight = float_weight(module)
    build = config.module_class().from_float
    with torch.no_grad():
        if weight.shape[0] <= _ROWS_AT_ONCE:
            return build(weight, bias, config)
        parts = [build(weight[start : start + _ROWS_AT_ONCE], None, config)
                 for start in range(0, weight.shape[0], _ROWS_AT_ONCE)]
        layer = parts[0]
        for name in list(layer._buffers):
            layer._buffers[name] = torch.cat([part._buffers[name] for part in parts])
        layer.out_features = weight.shape[0]
        if bias is not None:
            layer.bias = bias if isinstance(bias, nn.Parameter) else nn.Parameter(bias, requires_grad=False)
        return layer


def check_layers(layers: list[tuple[str, nn.Module]], config: QuantizationConfig) -> None:
    """Fail before touching anything when a layer cannot take the scheme (no silent padding)."""
    problems = [p for name, m in layers if (p := config.check_layer(name, *layer_shape(m))) is not None]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValueError(f"Cannot quantize with {config}: {'; '.join(problems[:3])}{more}. Choose a group size that "
                         "divides these layers (e.g. Int4WeightOnly(group_size=32)), or leave them out with "
                         "filter_fn=lambda module, name: ...")


def quantize_(model: nn.Module, config: Any, filter_fn: Callable[[nn.Module, str], bool] | None = None, *,
              calibration: Iterable | None = None) -> nn.Module:
    """Quantize ``model``'s linear layers in place with ``config`` ("int8", "int4", "dynamic-int8", "q4_0",
    "q4_1", "q8_0", or a QuantizationConfig); ``filter_fn(module, name)`` returning False keeps a layer float.

    ``calibration``: model inputs (dicts of tensors run as ``model(**batch)``, or input_ids tensors run as
    ``model(input_ids)``), e.g. ``[dict(tokenizer(texts, padding=True, return_tensors="pt"))]``. With it, the int4
    and int8 weight-only schemes pick their values with GPTQ (gptq.py) to keep each layer's outputs on these inputs
    close to the float ones, instead of rounding each weight to nearest; the stored format is the same.

    Records the scheme in ``model.config.quantization_config`` so save_pretrained writes a checkpoint that
    reloads quantized. Returns the model.
    """
    config = resolve_quantization(config)
    already = [name for name, module in model.named_modules() if is_quantized_module(module)]
    if already:
        raise AlreadyQuantizedError(
            f"This model is already quantized ({already[0]} is {type(model.get_submodule(already[0])).__name__}); "
            "quantizing it again would compound the rounding error. Quantize the float model instead, e.g. "
            "from_pretrained(float_checkpoint, quantization=...).")
    layers = list(linear_layers(model))
    chosen = [(name, m) for name, m in layers if filter_fn is None or filter_fn(m, name)]
    check_layers(chosen, config)
    if calibration is None:
        replacements = ((name, quantize_layer(module, config)) for name, module in chosen)
    else:
        from .gptq import calibrated_layers

        replacements = calibrated_layers(model, chosen, config, calibration)
    for name, replacement in replacements:
        set_submodule(model, name, replacement)
    skipped = [name for name, _ in layers if name not in {n for n, _ in chosen}]
    logger.info("Quantized %d linear layers with %s (%d left float).", len(chosen), config, len(skipped))
    if hasattr(model, "register_to_config"):  # a diffusers-style component: its config is frozen
        from .checkpoint import describe

        model.register_to_config(quantization_config=describe(model))
    elif hasattr(model, "config"):
        from .checkpoint import describe

        model.config.quantization_config = describe(model)
    return model
