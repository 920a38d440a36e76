"""Build a hugkit causal LM from a GGUF file: config from the metadata, tensors renamed to HF names, Q/K rows
un-permuted, Q4_0/Q4_1/Q8_0 weights kept in their blocks (see linear.py), every tensor accounted for.

GPT-2's projections are ``Conv1D`` (weight stored ``[in, out]``) in transformers' checkpoints; a GGUF stores them as
ordinary ``[out, in]`` matrices (quantized along ``in``), so float tensors are transposed into the Conv1D and
quantized ones replace it with a :class:`GGUFLinear` (same ``x @ W.T + b``).

llama.cpp's converter permutes the rows of Llama's q/k projections (per head: interleaved halves, for its RoPE);
hugkit applies RoPE as transformers does, so the permutation is undone here: within each head, row ``2 j + i`` of
the file becomes row ``i * head_dim / 2 + j`` (transformers' ``_reverse_permute_weights``). Rows are independent in
every block format, so quantized tensors are permuted as raw rows, before unpacking.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import HUB_KWARGS
from .linear import BLOCK_BYTES, GGUFEmbedding, GGUFLinear, block_storage, unpack_blocks
from .reader import gguf_config_dict, gguf_path, import_gguf, open_gguf

logger = logging.getLogger(__name__)

_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_GPT2_GLOBAL_NAMES = {
    "token_embd.weight": "transformer.wte.weight",
    "position_embd.weight": "transformer.wpe.weight",
    "output_norm.weight": "transformer.ln_f.weight",
    "output_norm.bias": "transformer.ln_f.bias",
    "output.weight": "lm_head.weight",
}
_GPT2_LAYER_NAMES = {
    "attn_norm": "ln_1",
    "attn_qkv": "attn.c_attn",
    "attn_output": "attn.c_proj",
    "ffn_norm": "ln_2",
    "ffn_up": "mlp.c_fc",
    "ffn_down": "mlp.c_proj",
}
_LAYER_TENSOR = re.compile(r"^blk\.(\d+)\.(\w+)\.(weight|bias)$")
FLOAT_TYPES = ("F32", "F16", "BF16")
INTEGER_TYPES = ("I8", "I16", "I32", "I64", "F64")


def hf_name(name: str, arch: str = "llama") -> str | None:
    """The transformers parameter name of GGUF tensor ``name`` (None for a tensor hugkit does not know)."""
    global_names, layer_names, blocks = (
        (_GPT2_GLOBAL_NAMES, _GPT2_LAYER_NAMES, "transformer.h") if arch == "gpt2"
        else (_GLOBAL_NAMES, _LAYER_NAMES, "model.layers")
    )
    if name in global_names:
        return global_names[name]
    match = _LAYER_TENSOR.match(name)
    if match and match.group(2) in layer_names:
        return f"{blocks}.{match.group(1)}.{layer_names[match.group(2)]}.{match.group(3)}"
    return None


def unpermute_rows(n_rows: int, n_head: int) -> torch.Tensor:
    """Index that undoes llama.cpp's q/k row permutation: new = old[index]."""
    half = n_rows // n_head // 2
    return torch.arange(n_rows).reshape(n_head, half, 2).transpose(1, 2).reshape(-1)


def load_config(path: Path, config_class_for=None, **overrides: Any):
    from ..auto import config_class_for as lookup

    reader = open_gguf(path)
    config_dict = gguf_config_dict(reader, path)
    config_dict.update(overrides)
    return (config_class_for or lookup)(config_dict["model_type"]).from_dict(config_dict)


def load_gguf_model(
    cls,
    path_or_dir: str | os.PathLike,
    gguf_file: str | os.PathLike | None,
    *,
    config=None,
    dtype: Any = None,
    device: Any = None,
    gguf_dequantize: bool = False,
    hub_kwargs: dict | None = None,
    **config_overrides: Any,
):
    """``cls.from_pretrained(path_or_dir, gguf_file=...)``: see the module docstring.

    ``gguf_dequantize=True`` inflates Q4_0/Q4_1/Q8_0 blocks to fp32 ``nn.Linear`` weights (the fastest decode on a CPU
    without a fast int4 kernel, at 4 bytes per weight).
    """
    from ..modeling_utils import _no_weight_init, _owner, resolve_device, to_torch_dtype

    gguf = import_gguf()
    path = gguf_path(path_or_dir, gguf_file, **(hub_kwargs or {}))
    reader = open_gguf(path)
    if config is None:
        config = load_config(path, **config_overrides)
    else:
        config.update(config_overrides)
    config._name_or_path = os.fspath(path_or_dir)
    dtype = None if dtype in (None, "auto") else to_torch_dtype(dtype)
    target_device = resolve_device(device)

    with torch.device("meta"), _no_weight_init():
        model = cls(config)
    expected = dict(model.named_parameters(remove_duplicate=False))
    arch = gguf_config_dict(reader, path)["model_type"]
    # Keep the tensor views, drop the parsed metadata (a large vocabulary's strings cost ~150 MB of Python objects).
    tensors = list(reader.tensors)
    del reader
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    filled: set[str] = set()
    unknown: list[str] = []
    embedding_module = None

    for tensor in tensors:
        name = hf_name(tensor.name, arch)
        if name is None or name not in expected:
            unknown.append(f"{tensor.name} ({name or 'no HF name'})")
            continue
        kind = tensor.tensor_type.name
        raw = tensor.data
        out_features = int(tensor.shape[-1]) if len(tensor.shape) > 1 else int(tensor.shape[0])
        in_features = int(tensor.shape[0]) if len(tensor.shape) > 1 else 1
        if arch == "llama" and (".q_proj." in name or ".k_proj." in name):
            n_head = heads if ".q_proj." in name else kv_heads
            raw = np.asarray(raw)[unpermute_rows(out_features, n_head).numpy()]
        owner, attr = _owner(model, name)
        target_shape = tuple(expected[name].shape)
        transposed = type(owner).__name__ == "Conv1D" and attr == "weight"  # GPT-2: [in, out] in the model
        if transposed:
            target_shape = target_shape[::-1]
        if kind in BLOCK_BYTES and not gguf_dequantize and attr == "weight" and (
            transposed or isinstance(owner, (nn.Linear, nn.Embedding))
        ):
            if (out_features, in_features) != target_shape:
                raise ValueError(f"GGUF tensor {tensor.name} has shape {(out_features, in_features)}, model expects {target_shape}.")
            q, scales, zeros = block_storage(*unpack_blocks(raw, kind, out_features, in_features), kind)
            parent, child = _owner(model, name.rsplit(".", 1)[0])
            if isinstance(owner, nn.Embedding):
                module = GGUFEmbedding(out_features, in_features, kind, q, scales, zeros)
                embedding_module = module
            else:
                module = GGUFLinear(in_features, out_features, kind, q, scales, zeros)
                bias = getattr(owner, "bias", None)
                if bias is not None and not bias.is_meta:  # the file gave the bias before the weight
                    module.bias = bias
            setattr(parent, child, module)
            filled.add(name)
            continue
        supported = ", ".join((*FLOAT_TYPES, *BLOCK_BYTES))
        if kind in FLOAT_TYPES:
            values = torch.from_numpy(np.array(raw)).to(torch.float32)
        else:
            unreadable = ValueError(
                f"GGUF tensor {tensor.name} has type {kind}, which hugkit cannot use as a model weight. Supported: "
                f"{supported} natively, and the other llama.cpp quantized types (Q4_K, Q6_K, ...) dequantized to float32."
            )
            if kind in INTEGER_TYPES:
                raise unreadable
            try:
                values = torch.from_numpy(np.asarray(gguf.quants.dequantize(np.asarray(raw), tensor.tensor_type), dtype=np.float32))
            except NotImplementedError as exc:
                raise unreadable from exc
            if kind not in BLOCK_BYTES:
                logger.info("GGUF tensor %s is %s, which hugkit does not run natively (it does %s): dequantized to "
                            "float32.", tensor.name, kind, supported)
        values = values.reshape(target_shape)
        if transposed:
            values = values.t().contiguous()
        owner._parameters[attr] = nn.Parameter(values.to(dtype or torch.float32), requires_grad=False)
        filled.add(name)

    if unknown:
        raise ValueError(f"The GGUF file {path} has tensors hugkit's {type(model).__name__} does not use: "
                         f"{', '.join(unknown[:8])}{' ...' if len(unknown) > 8 else ''}.")
    tied = bool(getattr(config, "tie_word_embeddings", False)) and "lm_head.weight" not in filled
    if tied:
        if embedding_module is not None:
            model.lm_head = GGUFLinear(embedding_module.embedding_dim, embedding_module.num_embeddings,
                                       embedding_module.kind, embedding_module.qweight, embedding_module.scales,
                                       embedding_module.zeros)
        else:
            model.tie_weights()
        filled.add("lm_head.weight")
    missing = [name for name in expected if name not in filled]
    if missing:
        raise ValueError(f"The GGUF file {path} lacks tensors {type(model).__name__} needs: {', '.join(missing[:8])}.")
    model._materialize_leftovers(torch.device("cpu"))
    if target_device.type != "cpu":
        model.to(target_device)
    model.eval()
    return model


def locate_gguf(path_or_dir: str | os.PathLike, gguf_file: str | os.PathLike | None, hub_kwargs: dict) -> Path:
    """The GGUF file meant by ``(folder or repo id, gguf_file=name)`` or by a direct path to the file."""
    direct = Path(os.fspath(path_or_dir)).expanduser()
    if gguf_file is None or direct.is_file():
        if not direct.is_file():
            from ..hub import CheckpointNotFoundError

            raise CheckpointNotFoundError(f"GGUF file not found: {direct}")
        path_or_dir, gguf_file = direct.parent, gguf_file or direct.name
    return gguf_path(path_or_dir, gguf_file, **hub_kwargs)


def auto_from_gguf(auto_cls, path_or_dir: str | os.PathLike, *args: Any, **kwargs: Any):
    """``AutoModelFor*.from_pretrained(folder, gguf_file=name)`` or ``(path/to/file.gguf)``: the class comes from the
    GGUF's architecture; the model class's own from_pretrained (with its generation config handling) loads it."""
    path = locate_gguf(path_or_dir, kwargs.pop("gguf_file", None), {k: kwargs[k] for k in HUB_KWARGS if k in kwargs})
    config = kwargs.pop("config", None)
    if config is None:
        from ..auto import _LOADING_KWARGS

        overrides = {k: kwargs.pop(k) for k in list(kwargs) if k not in _LOADING_KWARGS and k not in HUB_KWARGS
                     and k != "gguf_dequantize"}
        config = load_config(path, **overrides)
    model_class = auto_cls.model_class_for(config)
    return model_class.from_pretrained(path.parent, *args, gguf_file=path.name, config=config, **kwargs)
