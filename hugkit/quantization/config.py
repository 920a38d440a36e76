"""Quantization schemes as small config objects, and the one function that turns what a user passed
(``"int8"``, ``"int4"``, ``"dynamic-int8"``, ``"q4_0"``/``"q4_1"``/``"q8_0"``, a config object, or a saved
``quantization_config`` dict) into one of them.

A config knows its scheme name, its parameters, and the module class that holds weights quantized that way;
it serialises to the ``quantization_config`` entry of config.json (``quant_method: "hugkit"``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

QUANT_METHOD = "hugkit"


@dataclass(frozen=True)
class QuantizationConfig:
    """Base of every scheme. ``to_dict()`` is what config.json stores; ``from_dict`` reads it back."""

    scheme: ClassVar[str] = ""

    def module_class(self) -> type:
        raise NotImplementedError

    def check_layer(self, name: str, in_features: int, out_features: int) -> str | None:
        """Why this layer cannot take the scheme (None when it can)."""
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": self.scheme, **{f.name: getattr(self, f.name) for f in fields(self)}}

    def __str__(self) -> str:
        params = ", ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))
        return f"{self.scheme}({params})" if params else self.scheme


ACTIVATIONS = ("int8", "float")


def _check_activations(config: QuantizationConfig) -> None:
    if config.activations not in ACTIVATIONS:
        raise ValueError(f"{type(config).__name__} activations must be one of {ACTIVATIONS} (\"int8\": integer dot "
                         f"products for decode, \"float\": exact float activations); got {config.activations!r}.")


@dataclass(frozen=True)
class Int8WeightOnly(QuantizationConfig):
    """int8 weights, symmetric, one fp32 scale per output channel.

    ``activations`` picks the decode kernel (inputs of at most 16 rows; longer inputs always multiply float
    activations by dequantized weights): ``"int8"`` (default, llama.cpp's scheme) quantizes the input per 32 values
    to int8 and uses integer dot products, 1.2-2.6x faster per layer; ``"float"`` keeps float activations, so
    decode computes exactly the dequantized weights' matmul. Measured cost of ``"int8"`` on SmolLM2-135M (mean
    next-token KL to fp32 over 43 tokens): int8 weights 0.0048 -> 0.0063 nats, int4 g64 0.352 -> 0.359.
    """

    scheme: ClassVar[str] = "int8"
    activations: str = "int8"

    def __post_init__(self) -> None:
        _check_activations(self)

    def module_class(self) -> type:
        from .int8 import Int8Linear

        return Int8Linear


@dataclass(frozen=True)
class Int4WeightOnly(QuantizationConfig):
    """int4 weights, asymmetric (scale and zero per group of ``group_size`` inputs), two per byte;
    ``activations`` as for Int8WeightOnly.

    ``group_size`` must be a multiple of 32 (the kernel's run length) and divide each layer's ``in_features``;
    a layer it does not divide is an error (no silent padding): pick another group size or leave the layer out
    with ``filter_fn``.
    """

    scheme: ClassVar[str] = "int4"
    group_size: int = 64
    activations: str = "int8"

    def __post_init__(self) -> None:
        if not isinstance(self.group_size, int) or self.group_size <= 0 or self.group_size % 32:
            raise ValueError(f"Int4WeightOnly group_size must be a positive multiple of 32 (e.g. 32, 64, 128); "
                             f"got {self.group_size!r}.")
        _check_activations(self)

    def module_class(self) -> type:
        from .int4 import Int4Linear

        return Int4Linear

    def check_layer(self, name: str, in_features: int, out_features: int) -> str | None:
        if in_features % self.group_size:
            return f"{name} has in_features={in_features}, not a multiple of group_size={self.group_size}"
        return None


@dataclass(frozen=True)
class DynamicInt8(QuantizationConfig):
    """int8 weights (as Int8WeightOnly) and int8 activations quantized per call: integer matmuls for batches
    (fbgemm, per-tensor activations) and for decode (Int8WeightOnly's int8 kernel, per 32 values)."""

    scheme: ClassVar[str] = "dynamic-int8"
    activations: ClassVar[str] = "int8"

    def module_class(self) -> type:
        from .dynamic import DynamicInt8Linear

        return DynamicInt8Linear


@dataclass(frozen=True)
class _GGUFBlocks(QuantizationConfig):
    """llama.cpp blocks of 32 weights (hugkit/gguf/linear.py), the same modules a GGUF file loads into.

    ``activations`` defaults to ``"float"`` here, so a GGUF file computes what transformers computes from it (it
    dequantizes to float); ``"int8"`` is llama.cpp's own (faster) way; ``set_activations_(model, "int8")`` switches
    a loaded model.
    """

    kind: ClassVar[str] = ""
    activations: str = "float"

    def __post_init__(self) -> None:
        _check_activations(self)

    def module_class(self) -> type:
        from ..gguf.linear import GGUFLinear

        return GGUFLinear

    def check_layer(self, name: str, in_features: int, out_features: int) -> str | None:
        if in_features % 32:
            return f"{name} has in_features={in_features}, not a multiple of the GGUF block size 32"
        return None


@dataclass(frozen=True)
class GGUFQ8_0(_GGUFBlocks):
    scheme: ClassVar[str] = "q8_0"
    kind: ClassVar[str] = "Q8_0"


@dataclass(frozen=True)
class GGUFQ4_0(_GGUFBlocks):
    scheme: ClassVar[str] = "q4_0"
    kind: ClassVar[str] = "Q4_0"


@dataclass(frozen=True)
class GGUFQ4_1(_GGUFBlocks):
    scheme: ClassVar[str] = "q4_1"
    kind: ClassVar[str] = "Q4_1"


SCHEMES: dict[str, type[QuantizationConfig]] = {
    cls.scheme: cls for cls in (Int8WeightOnly, Int4WeightOnly, DynamicInt8, GGUFQ8_0, GGUFQ4_0, GGUFQ4_1)
}
_ALIASES = {"int8-weight-only": "int8", "int4-weight-only": "int4", "dynamic_int8": "dynamic-int8",
            "int8-dynamic": "dynamic-int8"}


def resolve_quantization(spec: Any) -> QuantizationConfig:
    """A QuantizationConfig from a scheme name, a config object, or a ``quantization_config`` dict."""
    if isinstance(spec, QuantizationConfig):
        return spec
    if isinstance(spec, str):
        name = spec.strip().lower()
        name = _ALIASES.get(name, name)
        if name in SCHEMES:
            return SCHEMES[name]()
        raise ValueError(f"Unknown quantization scheme {spec!r}. Known schemes: {', '.join(SCHEMES)} "
                         "(or pass a config object such as hugkit.Int4WeightOnly(group_size=128)).")
    if isinstance(spec, dict):
        method = spec.get("quant_method", QUANT_METHOD)
        if method != QUANT_METHOD:
            raise ValueError(f"quantization_config with quant_method={method!r} is not hugkit's format "
                             f"(quant_method={QUANT_METHOD!r}); hugkit cannot load {method} checkpoints.")
        scheme = spec.get("scheme")
        if scheme not in SCHEMES:
            raise ValueError(f"quantization_config names scheme {scheme!r}; known schemes: {', '.join(SCHEMES)}.")
        cls = SCHEMES[scheme]
        return cls(**{f.name: spec[f.name] for f in fields(cls) if f.name in spec})
    raise TypeError(f"quantization= expects a scheme name ({', '.join(SCHEMES)}) or a QuantizationConfig; "
                    f"got {type(spec).__name__}: {spec!r}.")
