"""Quantized checkpoints: what config.json says about them, rebuilding their structure on load, and quantizing a
float checkpoint layer by layer as it loads.

config.json's ``quantization_config`` (written by save_pretrained, derived from the modules themselves):

    {"quant_method": "hugkit", "scheme": "int4", "group_size": 64,      # the scheme of most layers
     "modules_to_not_convert": ["lm_head"],                             # linear layers left float
     "module_schemes": {"model.embed_tokens": {"scheme": "q8_0", "layer": "embedding"},   # exceptions
                        "lm_head": {"tied_to": "model.embed_tokens"}}}

On load every linear layer not listed in ``modules_to_not_convert`` is rebuilt (on the meta device) with the main
scheme, or its ``module_schemes`` entry, and the checkpoint fills its buffers with the usual strict key accounting:
nothing is inferred from file names. A GGUF-loaded model mixes block kinds (most Q4_1, a Q8_0 embedding with a tied
head): the exceptions record that.

Quantize-on-load (``from_pretrained(float_checkpoint, quantization=...)``): each linear layer is quantized as soon
as its weight arrives, and the float weight is dropped. Weights arrive as zero-copy views of the mmapped
safetensors file, whose pages stay counted in the process's RSS while the file stays mapped (the embeddings and
norms keep it mapped); so after quantizing a weight its whole pages are released with ``madvise(MADV_DONTNEED)``
(the mapping is private and never written, so a later read would only re-read the file). Peak memory is then about
the quantized model plus one float layer.
"""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import mmap
import sys
from collections import Counter
from typing import Any

import torch
from torch import nn

from .config import QUANT_METHOD, QuantizationConfig, resolve_quantization
from .quantize import (
    AlreadyQuantizedError, check_layers, is_quantized_module, layer_shape, linear_layers, quantize_layer,
    set_submodule,
)

logger = logging.getLogger(__name__)


# 2: GGUF Q4_0/Q4_1 blocks stored as packed nibbles (format 1, before 2026-11-28, stored them as int8 values)
FORMAT = 2


# --- saving ------------------------------------------------------------------------------------------
def _tied_heads(model: nn.Module) -> dict[str, str]:
    """GGUF heads sharing an embedding's blocks: {head name: embedding name}."""
    from ..gguf.linear import GGUFEmbedding, GGUFLinear

    embeddings = {m.qweight.data_ptr(): name for name, m in model.named_modules() if isinstance(m, GGUFEmbedding)}
    tied = {}
    for name, module in model.named_modules():
        if isinstance(module, GGUFLinear):
            if module.tie_source is not None:
                tied[name] = next(n for n, m in model.named_modules() if m is module.tie_source)
            elif not module.qweight.is_meta and module.qweight.data_ptr() in embeddings:
                tied[name] = embeddings[module.qweight.data_ptr()]
    return tied


def describe(model: nn.Module) -> dict[str, Any] | None:
    """The ``quantization_config`` that lets from_pretrained rebuild ``model``'s quantized layers (None when it
    has none)."""
    from ..gguf.linear import GGUFEmbedding

    tied = _tied_heads(model)
    layers, embeddings = {}, {}
    for name, module in model.named_modules():
        if name in tied or not is_quantized_module(module):
            continue
        (embeddings if isinstance(module, GGUFEmbedding) else layers)[name] = module.quantization
    if not layers and not embeddings:
        return None
    counts = Counter(json.dumps(config.to_dict(), sort_keys=True) for config in layers.values())
    main = resolve_quantization(json.loads(counts.most_common(1)[0][0])) if counts else next(iter(embeddings.values()))
    exceptions: dict[str, Any] = {name: config.to_dict() for name, config in layers.items() if config != main}
    exceptions.update({name: {**config.to_dict(), "layer": "embedding"} for name, config in embeddings.items()})
    exceptions.update({name: {"tied_to": source} for name, source in tied.items()})
    return {"quant_method": QUANT_METHOD, **main.to_dict(),
            "modules_to_not_convert": [name for name, _ in linear_layers(model)],
            "module_schemes": exceptions, "format": FORMAT}


def state_for_saving(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Record the quantization in ``model.config`` and store a tied head's shared blocks once."""
    model.config.quantization_config = describe(model)
    for head in _tied_heads(model):
        for buffer in ("qweight", "scales", "zeros"):
            state.pop(f"{head}.{buffer}", None)
    return state


# --- loading a quantized checkpoint ---------------------------------------------------------------
def build_quantized_structure(model: nn.Module, saved: dict[str, Any]) -> None:
    """Replace (meta-device) layers by empty quantized ones, as ``saved`` (config.json's entry) describes."""
    from ..gguf.linear import GGUFEmbedding, GGUFLinear

    main = resolve_quantization(saved)
    keep_float = set(saved.get("modules_to_not_convert") or [])
    exceptions: dict[str, dict] = saved.get("module_schemes") or {}
    schemes = {saved.get("scheme"), *(spec.get("scheme") for spec in exceptions.values())}
    if saved.get("format", 1) < 2 and schemes & {"q4_0", "q4_1"}:
        raise ValueError("This checkpoint was saved by an earlier hugkit that stored GGUF Q4_0/Q4_1 blocks unpacked "
                         "(quantization_config without \"format\": 2); this version keeps them as packed nibbles. "
                         "Load the GGUF file (or the float checkpoint with quantization=) and save it again.")
    for name, module in list(linear_layers(model)):
        spec = exceptions.get(name)
        if name in keep_float or (spec and "tied_to" in spec):
            continue
        config = resolve_quantization(spec) if spec else main
        in_features, out_features = layer_shape(module)
        set_submodule(model, name, config.module_class().empty(in_features, out_features, module.bias, config))
    for name, spec in exceptions.items():
        if spec.get("layer") == "embedding":
            table = _submodule(model, name, "embedding")
            config = resolve_quantization(spec)
            set_submodule(model, name, GGUFEmbedding.empty(table.num_embeddings, table.embedding_dim, config.kind))
    activations = getattr(main, "activations", "float")  # a tied head computes as the other layers do
    for name, spec in exceptions.items():
        if "tied_to" in spec:
            _submodule(model, name, "tied head")
            source = _submodule(model, spec["tied_to"], "tie source")
            set_submodule(model, name, GGUFLinear.tied_to(source, activations))


def _storage(config: QuantizationConfig) -> dict[str, Any]:
    """What a scheme stores (its dict without the ``activations`` run-time choice)."""
    return {key: value for key, value in config.to_dict().items() if key != "activations"}


def _submodule(model: nn.Module, name: str, what: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise ValueError(f"config.json's quantization_config names {what} {name!r}, which {type(model).__name__} "
                         "does not have: the config does not match this model class.") from None


# --- quantize on load ---------------------------------------------------------------------------------
class QuantizeOnLoad:
    """Called by PreTrainedModel.load_checkpoint with each checkpoint key it assigned; quantizes a linear layer
    as soon as its weight is in, then ``finish()`` handles layers filled otherwise (tied heads)."""

    def __init__(self, model: nn.Module, config: QuantizationConfig) -> None:
        self.model, self.config = model, config
        self.pending = dict(linear_layers(model))
        check_layers(list(self.pending.items()), config)

    def __call__(self, key: str) -> None:
        name, _, attr = key.rpartition(".")
        module = self.pending.get(name)
        if module is None or attr != "weight":
            return
        weight = module.weight
        set_submodule(self.model, name, quantize_layer(module, self.config))
        del self.pending[name]
        release_file_pages(weight)
        return_freed_heap()

    def finish(self) -> None:
        for name, module in self.pending.items():
            if module.weight.is_meta:  # should not happen: load_checkpoint reports missing weights first
                raise RuntimeError(f"Internal error: {name}.weight was never loaded.")
            set_submodule(self.model, name, quantize_layer(module, self.config))
            return_freed_heap()
        self.pending.clear()
        self.model.config.quantization_config = describe(self.model)


def prepare_for_loading(model: nn.Module, quantization: Any) -> QuantizeOnLoad | None:
    """from_pretrained's hook, between building the model on meta and filling it: the structure of a saved
    quantized checkpoint, or a QuantizeOnLoad for a float checkpoint loaded with ``quantization=``."""
    saved = getattr(model.config, "quantization_config", None)
    if saved:
        requested = resolve_quantization(quantization) if quantization is not None else None
        if requested is not None and _storage(requested) != _storage(resolve_quantization(saved)):
            raise AlreadyQuantizedError(
                f"This checkpoint is already quantized ({saved.get('scheme')}); it cannot be re-quantized to "
                f"{requested} on load. Drop quantization= to load it as saved, or load the float checkpoint.")
        build_quantized_structure(model, saved)
        if requested is not None and hasattr(requested, "activations"):  # same storage, another decode kernel
            from .base import set_activations_

            set_activations_(model, requested.activations)
        return None
    if quantization is None:
        return None
    return QuantizeOnLoad(model, resolve_quantization(quantization))


# --- releasing the pages of a dropped mmapped weight ------------------------------------------------------
_MADV_DONTNEED = 4


def _private_file_mapping(address: int) -> tuple[int, int] | None:
    """(start, end) of the private mapping of a .safetensors file holding ``address``, from /proc/self/maps."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                start, end = (int(part, 16) for part in fields[0].split("-"))
                if start <= address < end:
                    path = fields[5].strip() if len(fields) > 5 else ""
                    return (start, end) if fields[1].endswith("p") and path.endswith(".safetensors") else None
    except (OSError, ValueError, IndexError):
        return None
    return None


def release_file_pages(tensor: torch.Tensor) -> None:
    """Drop the resident pages of a weight that is a view of a privately mmapped safetensors file (Linux);
    a no-op for any other tensor (anonymous memory would lose its contents)."""
    if not sys.platform.startswith("linux") or tensor.device.type != "cpu" or tensor.numel() == 0:
        return
    begin = tensor.data_ptr()
    end = begin + tensor.numel() * tensor.element_size()
    mapping = _private_file_mapping(begin)
    if mapping is None or end > mapping[1]:
        return
    page = mmap.PAGESIZE
    first, last = -(-begin // page) * page, (end // page) * page  # whole pages inside this tensor only
    libc = _libc()
    if last > first and libc is not None:
        libc.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), _MADV_DONTNEED)


def return_freed_heap() -> None:
    """Give the heap memory freed by a layer's quantization temporaries back to the OS (glibc ``malloc_trim``).

    Measured (GPT-2-124M fp32 -> int8, fresh processes): without it, glibc kept the large head's freed temporaries
    in its heap in some runs (peak RSS 362 vs 801 MiB from run to run, 753 MiB still held after loading); with it,
    333-376 MiB peak and 277 MiB after loading, every run. A no-op off glibc.
    """
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


@functools.lru_cache(maxsize=None)
def _libc() -> ctypes.CDLL | None:
    """The C library of this (Linux) process, loaded once for madvise and malloc_trim; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
