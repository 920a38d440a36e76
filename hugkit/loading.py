"""Weight files: find them, read them zero-copy from mmap, write them back.

safetensors files are parsed here (an 8-byte header length, a JSON header, raw little-endian data) and their
tensors are views into a private read-only-in-practice mmap of the file: a float32 checkpoint loads without
copying a byte, and peak memory stays near the size of the weights. Legacy ``pytorch_model.bin`` files are
read with ``torch.load(weights_only=True)`` so no pickled code can run.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from pathlib import Path
from typing import Callable, Iterator

import torch

logger = logging.getLogger(__name__)

SAFE_WEIGHTS_NAME = "model.safetensors"
PT_WEIGHTS_NAME = "pytorch_model.bin"

_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
_DTYPE_TO_SAFETENSORS = {dtype: name for name, dtype in _SAFETENSORS_DTYPES.items()}


class CorruptCheckpointError(ValueError):
    """A weights file exists but cannot be read: truncated, corrupted, or not the format its name says."""


def with_variant(name: str, variant: str | None) -> str:
    """``model.safetensors`` -> ``model.fp16.safetensors``: the variant goes before the last suffix, as transformers
    and diffusers name them (an index becomes ``model.safetensors.index.fp16.json``)."""
    if not variant:
        return name
    stem, _, ext = name.rpartition(".")
    return f"{stem}.{variant}.{ext}"


def find_weight_files(
    folder: Path,
    *,
    variant: str | None = None,
    use_safetensors: bool | None = None,
    names: tuple[str, str] = (SAFE_WEIGHTS_NAME, PT_WEIGHTS_NAME),
) -> list[Path]:
    """The checkpoint files in ``folder``, preferring safetensors, following a shard index when there is one.
    ``names`` are the (safetensors, pickle) file names: diffusers components use ``diffusion_pytorch_model.*``."""
    safe_name, pt_name = names
    candidates = []
    if use_safetensors is not False:
        candidates += [safe_name, safe_name + ".index.json"]
    if not use_safetensors:
        candidates += [pt_name, pt_name + ".index.json"]
    for name in candidates:
        path = folder / with_variant(name, variant)
        if not path.is_file():
            continue
        if name.endswith(".index.json"):
            return _shards_from_index(path)
        return [path]
    present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    wanted = " or ".join(with_variant(n, variant) for n in candidates)
    raise FileNotFoundError(
        f"No model weights found in {folder}: expected {wanted}. Files there: {present or 'none'}. "
        "Re-download the checkpoint, or save it with save_pretrained."
    )


def _shards_from_index(index_path: Path) -> list[Path]:
    try:
        weight_map = json.loads(index_path.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CorruptCheckpointError(f"The shard index {index_path} is not valid ({exc}); it needs a 'weight_map'.") from exc
    shards = [index_path.parent / name for name in dict.fromkeys(weight_map.values())]
    missing = [s.name for s in shards if not s.is_file()]
    if missing:
        raise FileNotFoundError(f"The shard index {index_path.name} lists files missing from {index_path.parent}: {missing}.")
    return shards


def read_safetensors_header(path: Path) -> tuple[dict, int]:
    """Return (header dict, byte offset where tensor data starts), validating sizes against the file."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CorruptCheckpointError(f"{path} is too short to be a safetensors file ({size} bytes). Re-download it.")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > size - 8 or header_len > 100_000_000:
            raise CorruptCheckpointError(
                f"{path} is not a valid safetensors file (header length {header_len} exceeds the file size {size}). "
                "It is corrupted or truncated: re-download it."
            )
        try:
            header = json.loads(handle.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorruptCheckpointError(f"{path} has a corrupted safetensors header ({exc}). Re-download it.") from exc
    data_start = 8 + header_len
    data_end = max((info["data_offsets"][1] for key, info in header.items() if key != "__metadata__"), default=0)
    if data_start + data_end > size:
        raise CorruptCheckpointError(
            f"{path} is truncated: its header describes {data_start + data_end} bytes but the file has {size}. "
            "Re-download it."
        )
    return header, data_start


def iter_safetensors(
    path: Path, convert_to: torch.dtype | None = None, skip: Callable[[str], bool] | None = None
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (name, tensor) pairs whose storage is a copy-on-write mmap of the file (no read until touched).

    Floating tensors stored in another dtype than ``convert_to`` are instead read with one ``readinto`` each and
    converted: going through the mmap would keep the source pages resident beside the converted copy.
    Names for which ``skip(name)`` is true are not yielded and never read.
    """
    header, data_start = read_safetensors_header(path)
    size = path.stat().st_size
    storage = torch.UntypedStorage.from_file(os.fspath(path), shared=False, nbytes=size)
    file_bytes = torch.empty(0, dtype=torch.uint8).set_(storage)
    with open(path, "rb", buffering=0) as handle:
        for name, info in header.items():
            if name == "__metadata__" or (skip is not None and skip(name)):
                continue
            dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
            if dtype is None:
                raise CorruptCheckpointError(f"{path}: tensor {name!r} has an unsupported dtype {info['dtype']!r}.")
            begin, end = info["data_offsets"]
            shape = info["shape"]
            if end == begin:
                yield name, torch.empty(shape, dtype=dtype)
                continue
            if convert_to is not None and dtype.is_floating_point and dtype != convert_to:
                raw = torch.empty(end - begin, dtype=torch.uint8)
                handle.seek(data_start + begin)
                handle.readinto(raw.numpy())
                yield name, raw.view(dtype).reshape(shape).to(convert_to)
                continue
            raw = file_bytes[data_start + begin : data_start + end]
            if (data_start + begin) % dtype.itemsize:
                raw = raw.clone()  # views need aligned offsets; rare, only for oddly packed files
            yield name, raw.view(dtype).reshape(shape)


def iter_torch_bin(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Legacy pickle checkpoints, read with weights_only=True so nothing in the file can execute."""
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # old (non-zip) format cannot be mmapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CorruptCheckpointError(
            f"Could not read {path} safely ({type(exc).__name__}: {exc}). Only plain tensor state dicts are accepted "
            "(weights_only=True); convert the checkpoint to safetensors."
        ) from exc
    if not isinstance(state, dict):
        raise CorruptCheckpointError(f"{path} does not hold a state dict (found {type(state).__name__}).")
    yield from state.items()


def iter_checkpoint(
    files: list[Path], convert_to: torch.dtype | None = None, skip: Callable[[str], bool] | None = None
) -> Iterator[tuple[str, torch.Tensor]]:
    """All tensors of a checkpoint but those ``skip`` names; floating ones in ``convert_to`` when given
    (safetensors converts as it reads and never reads a skipped tensor)."""
    for path in files:
        if path.suffix == ".safetensors":
            yield from iter_safetensors(path, convert_to, skip)
        else:
            yield from ((name, tensor) for name, tensor in iter_torch_bin(path) if skip is None or not skip(name))


def _parse_size(size: int | str) -> int:
    if isinstance(size, int):
        return size
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
    text = size.upper().strip()
    for unit, factor in sorted(units.items(), key=lambda item: -len(item[0])):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def save_safetensors(
    state: dict[str, torch.Tensor],
    folder: Path,
    *,
    max_shard_size: int | str = "5GB",
    weights_name: str = SAFE_WEIGHTS_NAME,
    variant: str | None = None,
) -> list[Path]:
    """Write ``state`` as ``weights_name`` (model.safetensors), or shards plus an index when it exceeds
    ``max_shard_size``; a ``variant`` ("fp16") goes into every file name as transformers and diffusers write it."""
    from safetensors.torch import save_file

    limit = _parse_size(max_shard_size)
    shards: list[dict[str, torch.Tensor]] = [{}]
    shard_bytes = 0
    for name, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and shard_bytes + nbytes > limit:
            shards.append({})
            shard_bytes = 0
        shards[-1][name] = tensor.detach().contiguous()
        shard_bytes += nbytes
    metadata = {"format": "pt"}
    if len(shards) == 1:
        path = folder / with_variant(weights_name, variant)
        save_file(shards[0], os.fspath(path), metadata=metadata)
        return [path]
    stem = weights_name.removesuffix(".safetensors")
    paths, weight_map = [], {}
    for number, shard in enumerate(shards, start=1):
        path = folder / with_variant(f"{stem}-{number:05d}-of-{len(shards):05d}.safetensors", variant)
        save_file(shard, os.fspath(path), metadata=metadata)
        paths.append(path)
        weight_map.update({name: path.name for name in shard})
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / with_variant(weights_name + ".index.json", variant)).write_text(json.dumps(index, indent=2, sort_keys=True))
    return paths
