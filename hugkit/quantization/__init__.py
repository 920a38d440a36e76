"""Quantization: ``quantize_(model, config)``, ``from_pretrained(..., quantization=...)``,
``pipeline(..., quantization=...)``.

- ``config.py``: the schemes (Int8WeightOnly, Int4WeightOnly, DynamicInt8, GGUFQ8_0/GGUFQ4_0/GGUFQ4_1) and
  ``resolve_quantization`` (scheme names -> configs).
- ``base.py`` (and ``set_activations_``), ``int8.py``, ``int4.py``, ``dynamic.py``: the quantized linear layers
  (GGUF blocks live in hugkit/gguf/linear.py, the decode kernels in hugkit/gguf/kernel.py).
- ``quantize.py``: ``quantize_`` (which layers, in-place replacement); ``gptq.py``: its ``calibration=`` path.
- ``checkpoint.py``: config.json's ``quantization_config``, reloading, quantize-on-load.

Embeddings stay float (only GGUF files bring quantized embeddings); every linear layer, heads included, is
quantized unless ``filter_fn`` says otherwise.
"""

from .base import set_activations_
from .config import (
    DynamicInt8, GGUFQ4_0, GGUFQ4_1, GGUFQ8_0, Int4WeightOnly, Int8WeightOnly, QuantizationConfig, SCHEMES,
    resolve_quantization,
)
from .quantize import AlreadyQuantizedError, quantize_

__all__ = [
    "QuantizationConfig", "Int8WeightOnly", "Int4WeightOnly", "DynamicInt8", "GGUFQ8_0", "GGUFQ4_0", "GGUFQ4_1",
    "SCHEMES", "resolve_quantization", "quantize_", "set_activations_", "AlreadyQuantizedError",
]
