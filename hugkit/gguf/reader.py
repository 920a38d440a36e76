"""Open a GGUF file (with the ``gguf`` package, imported lazily) and read its metadata as a Hugging Face config.

Facts used (llama.cpp's key names): ``general.architecture`` names the model; ``<arch>.block_count``,
``<arch>.embedding_length``, ... hold its sizes; ``tokenizer.ggml.*`` the vocabulary and special token ids;
``tokenizer.chat_template`` the chat template. A model without ``output.weight`` ties its head to the embeddings.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# GGUF architecture -> hugkit model_type. llama.cpp calls every Llama-shaped model (SmolLM2, ...) "llama".
SUPPORTED_ARCHITECTURES = {"llama": "llama", "qwen2": "qwen2", "gpt2": "gpt2"}
_CLASS_NAMES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "gpt2": "GPT2LMHeadModel"}

# <arch>.<key> -> config field (same meaning for every supported architecture).
_CONFIG_KEYS = {
    "context_length": "max_position_embeddings",
    "block_count": "num_hidden_layers",
    "feed_forward_length": "intermediate_size",
    "embedding_length": "hidden_size",
    "rope.dimension_count": "head_dim",
    "rope.freq_base": "rope_theta",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads",
    "attention.layer_norm_rms_epsilon": "rms_norm_eps",
    "vocab_size": "vocab_size",
}
# Keys whose config field differs per architecture.
_ARCHITECTURE_KEYS = {
    "gpt2": {"feed_forward_length": "n_inner", "attention.layer_norm_epsilon": "layer_norm_epsilon"},
}
_TOKEN_ID_KEYS = {"bos_token_id": "bos_token_id", "eos_token_id": "eos_token_id", "padding_token_id": "pad_token_id"}


def import_gguf():
    try:
        import gguf
    except ImportError as exc:
        raise ImportError(
            "Reading GGUF files needs the `gguf` package: pip install gguf   (or pip install 'hugkit[gguf]')"
        ) from exc
    return gguf


def gguf_path(path_or_dir: str | os.PathLike, gguf_file: str | os.PathLike | None = None, **hub_kwargs: Any) -> Path:
    """The .gguf file meant by (folder or hub id, file name), or by a direct path to the file."""
    from ..hub import CheckpointNotFoundError, resolve

    direct = Path(os.fspath(path_or_dir)).expanduser()
    if gguf_file is None:
        if direct.is_file():
            return direct
        raise CheckpointNotFoundError(
            f"{os.fspath(path_or_dir)!r} is not a GGUF file. Pass the file's path, or its folder with gguf_file='name.gguf'."
        )
    candidate = Path(os.fspath(gguf_file)).expanduser()
    if candidate.is_absolute() and candidate.is_file():
        return candidate
    if direct.is_file() and direct.suffix == ".gguf":
        direct = direct.parent
    folder = resolve(direct if direct.is_dir() else os.fspath(path_or_dir), **hub_kwargs)
    path = Path(folder) / candidate
    if not path.is_file():
        present = sorted(p.name for p in Path(folder).glob("*.gguf"))
        raise CheckpointNotFoundError(
            f"No GGUF file {os.fspath(gguf_file)!r} in {folder}. GGUF files there: {present or 'none'}."
        )
    return path


def open_gguf(path: Path):
    """A GGUFReader over the memory-mapped file. Not cached: parsed metadata of a large vocabulary costs ~150 MB,
    and the model keeps its own copy of the weights, so the reader is dropped after loading."""
    from .. import hub

    try:
        return import_gguf().GGUFReader(os.fspath(path))
    except (ValueError, OSError, IndexError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise hub.CheckpointNotFoundError(f"GGUF file not found: {path}") from exc
        raise ValueError(f"{path} is not a readable GGUF file ({type(exc).__name__}: {exc}).") from exc


def metadata(reader, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return default
    return field.contents()


def gguf_config_dict(reader, path: Path | str = "") -> dict[str, Any]:
    """config.json-style fields for the model in ``reader``; raises for architectures hugkit cannot run."""
    arch = metadata(reader, "general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ValueError(
            f"The GGUF file {path} holds a {arch!r} model, which hugkit cannot load from GGUF yet. "
            f"Supported GGUF architectures: {', '.join(sorted(SUPPORTED_ARCHITECTURES))}."
        )
    config: dict[str, Any] = {"model_type": SUPPORTED_ARCHITECTURES[arch]}
    for key, name in {**_CONFIG_KEYS, **_ARCHITECTURE_KEYS.get(arch, {})}.items():
        value = metadata(reader, f"{arch}.{key}")
        if value is not None:
            config[name] = value
    for key, name in _TOKEN_ID_KEYS.items():
        value = metadata(reader, f"tokenizer.ggml.{key}")
        if value is not None:
            config[name] = int(value)
    if "vocab_size" not in config:
        tokens = reader.fields.get("tokenizer.ggml.tokens")
        if tokens is not None:
            config["vocab_size"] = len(tokens.data)
    names = {tensor.name for tensor in reader.tensors}
    config["tie_word_embeddings"] = "output.weight" not in names
    if arch == "qwen2":
        config.pop("head_dim", None)  # derived from hidden_size / heads, as transformers does
    config["architectures"] = [_CLASS_NAMES[arch]]
    return config
