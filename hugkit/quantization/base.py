"""What the weight-only quantized linear layers share: bias handling, and the choice between the decode kernel
(a few rows: read the packed weights directly, hugkit/gguf/kernel.py) and the prefill path (many rows: dequantize
a slice of output rows at a time and run an fp32 BLAS matmul -- compute-bound, so BLAS wins there).

Off the CPU (CUDA) the layers dequantize to the input's dtype and call ``F.linear``: simple and correct, but
untested on real hardware here (no GPU on the development machine), and no faster than float weights.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from ..gguf.kernel import MAX_ROWS, block_mm_kernel
from .config import QuantizationConfig

_CHUNK = 1 << 22  # weights dequantized at once on the prefill path (16 MB of fp32)
NO_ZERO = torch.empty(0)  # the kernels' "symmetric scheme" marker
NO_BIAS = torch.empty(0)  # ... and "no bias"


class QuantizedLinear(nn.Module):
    """Base of Int8Linear / Int4Linear / DynamicInt8Linear: ``y = x @ W^T + b`` with W kept quantized.

    Subclasses register their buffers and implement ``_kernel_mm`` (None when the kernel cannot take the layer)
    and ``_dequantize_rows``.
    """

    is_quantized = True

    def __init__(self, in_features: int, out_features: int, bias: torch.Tensor | None,
                 config: QuantizationConfig) -> None:
        super().__init__()
        self.in_features, self.out_features, self.quantization = in_features, out_features, config
        if bias is None:
            self.register_parameter("bias", None)
        else:
            self.bias = bias if isinstance(bias, nn.Parameter) else nn.Parameter(bias, requires_grad=False)

    # --- to implement -------------------------------------------------------------------------
    def _kernel_mm(self, kernel, x: torch.Tensor) -> torch.Tensor | None:
        """``x @ W^T + bias`` for a contiguous float32 ``x`` (..., in) by the decode kernel (``_group_mm``), or None
        when it cannot take this layer."""
        raise NotImplementedError

    def _dequantize_rows(self, start: int, stop: int, kernel) -> torch.Tensor:
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------------------
    def _group_mm(self, kernel, x: torch.Tensor, q: torch.Tensor, zeros: torch.Tensor, group_size: int,
                  nibbles: bool) -> torch.Tensor:
        """``x @ W^T + bias`` by the decode kernel the scheme's ``activations`` asks for (kernel.py: group_mm_q8
        or group_mm), which adds a float32 bias itself.

        Called ~200 times per generated token by a small Llama: parameters and buffers are read from their dicts
        directly (nn.Module.__getattr__ made this wrapper cost more than the kernel itself for small layers).
        """
        bias, scales = self._parameters["bias"], self._buffers["scales"]
        mm = kernel.group_mm_q8 if self.quantization.activations == "int8" else kernel.group_mm
        if bias is None:
            return mm(x, q, scales, zeros, group_size, nibbles, NO_BIAS)
        if bias.dtype == torch.float32 and bias.is_contiguous():
            return mm(x, q, scales, zeros, group_size, nibbles, bias)
        return mm(x, q, scales, zeros, group_size, nibbles, NO_BIAS) + bias.to(torch.float32)

    def dequantize(self) -> torch.Tensor:
        """The float32 weight (out, in) these quantized values stand for."""
        kernel = block_mm_kernel() if self._on_cpu() else None
        return self._dequantize_rows(0, self.out_features, kernel)

    def _on_cpu(self) -> bool:
        return self.scales.device.type == "cpu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_features = self.in_features
        if x.shape[-1] != in_features:
            raise ValueError(f"{type(self).__name__} expects inputs with {in_features} features in the last "
                             f"dimension, got shape {tuple(x.shape)}.")
        if x.device.type != "cpu":  # CUDA and others: dequantize (row slices of a large layer) + matmul
            return self._prefill(x, None)
        rows = x.numel() // in_features
        kernel = block_mm_kernel()
        if kernel is not None and rows <= MAX_ROWS and x.dtype == torch.float32:
            y = self._kernel_mm(kernel, x.contiguous())  # (..., in) -> (..., out), bias included
            if y is not None:  # decode: read the packed weights directly
                return y
        return self._prefill(x, kernel)

    def _bias_as(self, x: torch.Tensor) -> torch.Tensor | None:
        return None if self.bias is None else self.bias.to(x.dtype)

    def _prefill(self, x: torch.Tensor, kernel) -> torch.Tensor:
        step = max(1, _CHUNK // self.in_features)
        bias = self._bias_as(x)
        if self.out_features <= step:
            return F.linear(x, self._dequantize_rows(0, self.out_features, kernel).to(x.dtype), bias)
        # A large head (e.g. 50257 x 768): a slice of rows at a time, never the whole fp32 matrix.
        out = torch.empty(*x.shape[:-1], self.out_features, dtype=x.dtype, device=x.device)
        for start in range(0, self.out_features, step):
            stop = min(start + step, self.out_features)
            weight = self._dequantize_rows(start, stop, kernel).to(x.dtype)
            out[..., start:stop] = F.linear(x, weight, None if bias is None else bias[start:stop])
        return out

    def _init_buffers(self, device: torch.device) -> None:
        """After loading (PreTrainedModel._materialize_leftovers): the kernels want float32 scales, even when the
        checkpoint was loaded with another dtype."""
        for name in ("scales", "zeros"):
            value = self._buffers.get(name)
            if value is not None and not value.is_meta and value.dtype != torch.float32:
                self._buffers[name] = value.float()

    @property
    def weight_bytes(self) -> int:
        """Bytes held by the quantized weight (values + scales + zeros), bias excluded."""
        return sum(b.numel() * b.element_size() for b in self.buffers())

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"quantization={self.quantization}")


def set_activations_(model: nn.Module, activations: str) -> nn.Module:
    """Switch every quantized linear layer of ``model`` to ``activations="int8"`` (integer dot products for decode,
    llama.cpp's way, faster) or ``"float"`` (exact float activations), in place; config.json follows on save.

    For instance a GGUF file loads with float activations (transformers' numbers) and
    ``set_activations_(model, "int8")`` trades ~0.003 nats of next-token KL for faster decode.
    """
    from .config import ACTIVATIONS

    if activations not in ACTIVATIONS:
        raise ValueError(f"activations must be one of {ACTIVATIONS}; got {activations!r}.")
    layers = [module for module in model.modules() if isinstance(module, QuantizedLinear)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no quantized linear layers: quantize it first "
                         "(quantize_(model, ...) or from_pretrained(..., quantization=...)).")
    for module in layers:
        config = module.quantization
        if "activations" in {field.name for field in dataclasses.fields(config)}:
            module.quantization = dataclasses.replace(config, activations=activations)
        elif getattr(config, "activations", activations) != activations:
            raise ValueError(f"{config} always quantizes its activations to int8; it has no {activations!r} mode.")
    if getattr(model, "config", None) is not None and getattr(model.config, "quantization_config", None):
        from .checkpoint import describe

        model.config.quantization_config = describe(model)
    return model
