"""CTranslate2's ``model.bin`` format, read without ctranslate2 (numpy over a read-only memory map).

The format is written by ``ModelSpec._serialize`` in CTranslate2's ``python/ctranslate2/specs/model_spec.py`` and
read by ``Model::load`` in ``src/models/model.cc``; all integers are little-endian:

    uint32  binary version (6 today; >= 2 carries the spec name and revision, >= 3 aliases, >= 4 dtype ids)
    string  spec name ("WhisperSpec")            string = uint16 length counting a trailing NUL, bytes, NUL
    uint32  spec revision (3 for WhisperSpec)
    uint32  variable count, then per variable:
            string name ("encoder/layer_0/self_attention/linear_0/weight"), uint8 rank, rank x uint32 dims,
            uint8 dtype id (float32, int8, int16, int32, float16, bfloat16 = 0..5), uint32 byte count, raw bytes
    uint32  alias count, then per alias: string alias, string name of the variable it stands for

Variables are sorted by name. Scalars (rank 0) are graph switches (``decoder/pre_norm``, ``decoder/activation``,
``*/num_heads`` ...); booleans are stored as int8. An alias stands for a duplicated variable (a tied weight).
Nothing in the file is executed: it is a flat list of named arrays.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_FILE = "model.bin"

# Binary versions whose layout this reader knows: 4 introduced the dtype id + byte count per variable (older files
# predate CTranslate2's Whisper support); 6 is CTranslate2's CURRENT_BINARY_VERSION.
MIN_BINARY_VERSION = 4
MAX_BINARY_VERSION = 6

# Order of CTranslate2's DataType enum (include/ctranslate2/types.h, mirrored by _dtype_to_type_id in model_spec.py).
_DTYPE_NAMES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_NUMPY_DTYPES = {
    "float32": np.dtype("<f4"), "int8": np.dtype("i1"), "int16": np.dtype("<i2"), "int32": np.dtype("<i4"),
    "float16": np.dtype("<f2"), "bfloat16": np.dtype("<u2"),  # numpy has no bfloat16: raw bits, widened on read
}


class CT2FormatError(ValueError):
    """A CTranslate2 file or folder is malformed, or describes a model a hugkit converter does not handle."""


@dataclass(frozen=True)
class CT2Variable:
    """One stored variable: where its bytes are in the file, and how to read them."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # a CTranslate2 dtype name: float32, int8, int16, int32, float16, bfloat16
    offset: int
    num_bytes: int


class _Cursor:
    """Bounds-checked little-endian reads over the file's bytes; every error names the offset and the field."""

    def __init__(self, buffer: np.ndarray, path: Path) -> None:
        self.buffer = buffer
        self.size = len(buffer)
        self.path = path
        self.offset = 0

    def _need(self, count: int, what: str) -> None:
        if self.offset + count > self.size:
            raise CT2FormatError(
                f"{self.path} is truncated: reading {what} needs {count} bytes at offset {self.offset}, but the file "
                f"has {self.size} bytes. Expected a complete CTranslate2 model.bin; copy or download it again."
            )

    def unpack(self, fmt: str, what: str) -> tuple:
        count = struct.calcsize("<" + fmt)
        self._need(count, what)
        values = struct.unpack_from("<" + fmt, self.buffer, self.offset)
        self.offset += count
        return values

    def string(self, what: str) -> str:
        (length,) = self.unpack("H", f"the length of {what}")
        self._need(length, what)
        raw = bytes(self.buffer[self.offset:self.offset + length])
        self.offset += length
        # The stored length counts a trailing NUL (C++ reads it as a C string).
        if length == 0 or raw[-1] != 0:
            raise CT2FormatError(
                f"{self.path}: {what} at offset {self.offset - length} is not NUL-terminated ({raw[:40]!r}); "
                "the file is not a CTranslate2 model.bin or is corrupted."
            )
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as error:
            raise CT2FormatError(f"{self.path}: {what} is not UTF-8 ({raw[:40]!r}): {error}") from None

    def skip(self, count: int, what: str) -> int:
        self._need(count, what)
        start = self.offset
        self.offset += count
        return start


class CT2Model:
    """A parsed ``model.bin``: the header, the variables (read lazily from a read-only memory map) and the aliases.

    ``array(name)`` returns a variable (an alias resolves to the variable it stands for) as a numpy array: a
    read-only view of the file for float32/float16/integer data, a float32 copy for bfloat16.
    """

    def __init__(
        self,
        path: Path,
        buffer: np.ndarray,
        binary_version: int,
        spec_name: str,
        spec_revision: int,
        variables: dict[str, CT2Variable],
        aliases: dict[str, str],
    ) -> None:
        self.path = path
        self._buffer = buffer
        self.binary_version = binary_version
        self.spec_name = spec_name
        self.spec_revision = spec_revision
        self.variables = variables
        self.aliases = aliases

    def __contains__(self, name: object) -> bool:
        return name in self.variables or name in self.aliases

    def resolve(self, name: str) -> str:
        """The stored variable a name refers to (itself, or the target of an alias)."""
        target = self.aliases.get(name, name)
        if target not in self.variables:
            known = ", ".join(sorted(self.variables)[:5])
            raise KeyError(f"{self.path} has no variable {name!r} (stored variables include {known}, ...)")
        return target

    def variable(self, name: str) -> CT2Variable:
        return self.variables[self.resolve(name)]

    def array(self, name: str) -> np.ndarray:
        info = self.variable(name)
        dtype = _NUMPY_DTYPES[info.dtype]
        count = int(np.prod(info.shape, dtype=np.int64))
        data = np.frombuffer(self._buffer, dtype=dtype, count=count, offset=info.offset).reshape(info.shape)
        if info.dtype == "bfloat16":
            # bfloat16 is the upper half of a float32: widen the bit pattern.
            data = (data.astype(np.uint32) << 16).view(np.float32)
        return data

    def scalar(self, name: str) -> int | float:
        value = self.array(name)
        if value.shape != ():
            raise CT2FormatError(f"{self.path}: {name} should be a scalar, found shape {value.shape}")
        return value.item()


def read_ct2_model(path: str | os.PathLike) -> CT2Model:
    """Parse a CTranslate2 ``model.bin`` (or the folder holding it). Only the header is read; the data stays mapped."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No CTranslate2 model file at {path}: expected a folder holding {MODEL_FILE}.")
    if path.stat().st_size == 0:
        raise CT2FormatError(f"{path} is empty: expected a CTranslate2 model.bin.")
    buffer = np.memmap(path, dtype=np.uint8, mode="r")
    cursor = _Cursor(buffer, path)

    (binary_version,) = cursor.unpack("I", "the binary version")
    if not MIN_BINARY_VERSION <= binary_version <= MAX_BINARY_VERSION:
        raise CT2FormatError(
            f"{path} has CTranslate2 binary version {binary_version}; this reader handles versions "
            f"{MIN_BINARY_VERSION}..{MAX_BINARY_VERSION}. Re-convert the model with a CTranslate2 release that writes "
            f"version {MAX_BINARY_VERSION}, or the file is not a CTranslate2 model.bin."
        )
    spec_name = cursor.string("the spec name")
    (spec_revision,) = cursor.unpack("I", "the spec revision")
    (count,) = cursor.unpack("I", "the variable count")

    variables: dict[str, CT2Variable] = {}
    for index in range(count):
        name = cursor.string(f"the name of variable {index}")
        (rank,) = cursor.unpack("B", f"the rank of {name}")
        shape = cursor.unpack(f"{rank}I", f"the shape of {name}") if rank else ()
        type_id, num_bytes = cursor.unpack("B", f"the dtype of {name}") + cursor.unpack("I", f"the size of {name}")
        if type_id >= len(_DTYPE_NAMES):
            raise CT2FormatError(
                f"{path}: variable {name} has dtype id {type_id}; known ids are 0..{len(_DTYPE_NAMES) - 1} "
                f"({', '.join(_DTYPE_NAMES)}). The file is newer than this reader or corrupted."
            )
        dtype = _DTYPE_NAMES[type_id]
        expected = int(np.prod(shape, dtype=np.int64)) * _NUMPY_DTYPES[dtype].itemsize
        if num_bytes != expected:
            raise CT2FormatError(
                f"{path}: variable {name} ({dtype}, shape {list(shape)}) should hold {expected} bytes, "
                f"the file says {num_bytes}. The file is corrupted."
            )
        offset = cursor.skip(num_bytes, f"the data of {name}")
        if name in variables:
            raise CT2FormatError(f"{path}: variable {name} is stored twice; the file is corrupted.")
        variables[name] = CT2Variable(name, tuple(shape), dtype, offset, num_bytes)

    aliases: dict[str, str] = {}
    (alias_count,) = cursor.unpack("I", "the alias count")
    for index in range(alias_count):
        alias = cursor.string(f"alias {index}")
        target = cursor.string(f"the target of alias {alias}")
        if target not in variables:
            raise CT2FormatError(f"{path}: alias {alias} points at {target}, which is not a stored variable.")
        aliases[alias] = target

    if cursor.offset != cursor.size:
        raise CT2FormatError(
            f"{path} has {cursor.size - cursor.offset} bytes after its last alias (offset {cursor.offset}); "
            "expected the file to end there. It is corrupted or not a CTranslate2 model.bin."
        )
    return CT2Model(path, buffer, binary_version, spec_name, spec_revision, variables, aliases)
