"""int8 weight-only linear layers: symmetric, one scale per output channel (``w = q * scale``, q in -127..127).

4x smaller than fp32. Decode-sized inputs run the AVX2 kernel over the int8 values (whole row = one group, so one
scale multiply per output); longer inputs dequantize per chunk and use BLAS (base.py). A layer whose in_features
is not a multiple of 32 skips the kernel (torch dequantization, correct but slower).
"""

from __future__ import annotations

import torch

from .base import NO_ZERO, QuantizedLinear
from .config import Int8WeightOnly, QuantizationConfig


def quantize_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, in) float -> (int8 values, float32 scale per row) with ``weight ~= q * scale[:, None]``."""
    weight = weight.detach().float()
    scales = channel_scales(weight)
    q = torch.round(weight / scales[:, None]).clamp_(-127, 127).to(torch.int8).contiguous()
    return q, scales


def channel_scales(weight: torch.Tensor) -> torch.Tensor:
    """One symmetric int8 scale per row: max |w| / 127 (never 0, so an all-zero row quantizes to zeros)."""
    return (weight.abs().amax(dim=1) / 127).clamp_min(torch.finfo(torch.float32).tiny)


class Int8Linear(QuantizedLinear):
    """Buffers ``qweight`` int8 (out, in) and ``scales`` float32 (out,)."""

    def __init__(self, in_features: int, out_features: int, qweight: torch.Tensor, scales: torch.Tensor,
                 bias: torch.Tensor | None = None, config: QuantizationConfig | None = None) -> None:
        super().__init__(in_features, out_features, bias, config or Int8WeightOnly())
        self.register_buffer("qweight", qweight)
        self.register_buffer("scales", scales)

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None, config: QuantizationConfig):
        out_features, in_features = weight.shape
        return cls(in_features, out_features, *quantize_per_channel(weight), bias, config)

    @classmethod
    def empty(cls, in_features: int, out_features: int, bias: torch.Tensor | None, config: QuantizationConfig):
        """The layer's structure on the meta device, for a saved checkpoint to fill."""
        meta = torch.device("meta")
        return cls(in_features, out_features, torch.empty(out_features, in_features, dtype=torch.int8, device=meta),
                   torch.empty(out_features, device=meta), bias, config)

    def _kernel_ready(self) -> bool:
        return self.in_features % 32 == 0 and self._buffers["scales"].dtype == torch.float32

    def _kernel_mm(self, kernel, x: torch.Tensor) -> torch.Tensor | None:
        if not self._kernel_ready():
            return None
        return self._group_mm(kernel, x, self._buffers["qweight"], NO_ZERO, self.in_features, False)

    def _dequantize_rows(self, start: int, stop: int, kernel) -> torch.Tensor:
        q, scales = self.qweight[start:stop], self.scales[start:stop]
        if kernel is not None and self._kernel_ready():
            return kernel.group_dequant(q, scales, NO_ZERO, self.in_features, self.in_features, False)
        return q.float() * scales.float()[:, None]
