"""Dynamic int8 linear layers: int8 weights (symmetric, per output channel, as Int8Linear) and int8 activations
quantized per call, so a batch's matmuls run in integers. For CPU encoders at batch sizes like 32.

Options measured here (2 vCPU Zen 3, AVX2, no VNNI; 1 thread; 864 rows = batch 32 x 27 tokens; microseconds):

| (out, in)   | fp32 F.linear | quantized.linear_dynamic fbgemm | ... x86 engine | ... onednn | torch._int_mm (+ quantize x) |
| (768, 768)  |     12,811    |              6,903              |     7,863      |   7,916    |          389,025             |
| (3072, 768) |     49,996    |             31,291              |    36,020      |  28,727    |        2,541,690             |
| (768, 3072) |     79,023    |             37,139              |    56,438      |  29,957    |        2,350,011             |

So: ``torch.ops.quantized.linear_dynamic`` with fbgemm-prepacked weights (1.6-2.1x fp32; onednn is within noise,
x86 slower). ``torch._int_mm`` has no fast CPU path here (30-60x slower than fp32), and torchao's CPU int8
dynamic scheme is built on it, so torchao does not earn a dependency. Activations are quantized per tensor (the
op's only choice; per-token is not available) with torch's ``reduce_range`` (7 bits), so AVX2's 16-bit pair sums
cannot saturate. Measured: full 8 bits raised all-MiniLM-L6-v2's min embedding cosine to fp32 from 0.962 to 0.990
but wrecked SmolLM2 (mean next-token KL 14 nats: saturation). Per-tensor activations suit encoders; decoders'
activation outliers do not survive them (SmolLM2 KL 1.4 nats even with 7 bits): use int8/int4 weight-only there.

Decode-sized inputs (at most kernel.MAX_ROWS rows) run Int8WeightOnly's int8-activation kernel on the same
weights (faster there, and more exact: activations rounded per 32 values, not per tensor). The fbgemm-packed copy
of the weight (another byte per weight) is built on the first batched call. Off the CPU, or where torch lacks the
quantized engine, the layer behaves as Int8Linear. torch marks its quantized tensor types deprecated (a warning on creation); hugkit silences
that warning at the one place it builds one and falls back to Int8Linear's path if they are removed.
"""

from __future__ import annotations

import logging
import warnings

import torch

from ..gguf.kernel import MAX_ROWS
from .config import DynamicInt8, QuantizationConfig
from .int8 import Int8Linear

logger = logging.getLogger(__name__)


def _engine() -> str | None:
    engines = torch.backends.quantized.supported_engines
    return next((name for name in ("fbgemm", "onednn") if name in engines), None)


class DynamicInt8Linear(Int8Linear):
    """Int8Linear's buffers (``qweight``, ``scales``); batched CPU calls quantize the input and run fbgemm."""

    def __init__(self, in_features: int, out_features: int, qweight: torch.Tensor, scales: torch.Tensor,
                 bias: torch.Tensor | None = None, config: QuantizationConfig | None = None) -> None:
        super().__init__(in_features, out_features, qweight, scales, bias, config or DynamicInt8())
        self._packed = None
        self._packed_from: tuple = ()

    def _packed_weight(self):
        """fbgemm's packed copy of (qweight, scales, bias), rebuilt if any of them changed; None if unavailable."""
        key = (self.qweight.data_ptr(), self.scales.data_ptr(), None if self.bias is None else self.bias.data_ptr())
        if self._packed is not None and self._packed_from == key:
            return self._packed
        engine = _engine()
        if engine is None:
            return None
        previous = torch.backends.quantized.engine
        try:
            torch.backends.quantized.engine = engine
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*quantized tensor creation.*deprecated", category=UserWarning)
                warnings.filterwarnings("ignore", message=".*are deprecated and will be removed", category=UserWarning)
                qweight = torch._make_per_channel_quantized_tensor(
                    self.qweight, self.scales.double(), torch.zeros(self.out_features, dtype=torch.long), 0)
                bias = None if self.bias is None else self.bias.detach().float()
                self._packed = torch.ops.quantized.linear_prepack(qweight, bias)
        except (RuntimeError, AttributeError) as error:  # an engine without this op: the weight-only path is correct
            logger.info("Dynamic int8 matmul unavailable (%s); using int8 weight-only matmuls.", error)
            return None
        finally:
            torch.backends.quantized.engine = previous
        self._packed_from = key
        return self._packed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // max(1, x.shape[-1])
        if x.device.type == "cpu" and x.dtype == torch.float32 and rows > MAX_ROWS and x.shape[-1] == self.in_features:
            packed = self._packed_weight()
            if packed is not None:
                y = torch.ops.quantized.linear_dynamic(x.reshape(rows, self.in_features), packed, True)
                return y.view(*x.shape[:-1], self.out_features)
        return super().forward(x)
