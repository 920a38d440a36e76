"""Read a SentencePiece `.model` file (a serialized `ModelProto`) without protobuf or sentencepiece.

Only the fields the converters need are decoded; every other field is skipped by its wire type, so files
written by newer SentencePiece versions still load. Field numbers follow `sentencepiece_model.proto`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

# SentencePiece.Type
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
# TrainerSpec.ModelType
UNIGRAM, BPE, WORD, CHAR = 1, 2, 3, 4

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


@dataclass
class Piece:
    piece: str
    score: float = 0.0
    type: int = NORMAL


@dataclass
class TrainerSpec:
    model_type: int = UNIGRAM
    vocab_size: int = 8000
    byte_fallback: bool = False
    treat_whitespace_as_suffix: bool = False
    split_digits: bool = False
    unk_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = -1
    unk_piece: str = "<unk>"
    bos_piece: str = "<s>"
    eos_piece: str = "</s>"
    pad_piece: str = "<pad>"


@dataclass
class NormalizerSpec:
    name: str = ""
    precompiled_charsmap: bytes = b""
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    escape_whitespaces: bool = True


@dataclass
class SentencePieceModel:
    pieces: list[Piece] = field(default_factory=list)
    trainer_spec: TrainerSpec = field(default_factory=TrainerSpec)
    normalizer_spec: NormalizerSpec = field(default_factory=NormalizerSpec)

    @property
    def is_bpe(self) -> bool:
        return self.trainer_spec.model_type == BPE


class SentencePieceParseError(ValueError):
    """The bytes are not a SentencePiece model (or the file is truncated)."""


# field number -> (attribute, kind); kinds: "int32", "bool", "str", "bytes", "enum"
_TRAINER_FIELDS = {
    3: ("model_type", "enum"),
    4: ("vocab_size", "int32"),
    24: ("treat_whitespace_as_suffix", "bool"),
    25: ("split_digits", "bool"),
    35: ("byte_fallback", "bool"),
    40: ("unk_id", "int32"),
    41: ("bos_id", "int32"),
    42: ("eos_id", "int32"),
    43: ("pad_id", "int32"),
    45: ("unk_piece", "str"),
    46: ("bos_piece", "str"),
    47: ("eos_piece", "str"),
    48: ("pad_piece", "str"),
}
_NORMALIZER_FIELDS = {
    1: ("name", "str"),
    2: ("precompiled_charsmap", "bytes"),
    3: ("add_dummy_prefix", "bool"),
    4: ("remove_extra_whitespaces", "bool"),
    5: ("escape_whitespaces", "bool"),
}


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise SentencePieceParseError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise SentencePieceParseError("varint longer than 10 bytes")


def _iter_fields(data: bytes, start: int = 0, end: int | None = None):
    """Yield (field_number, wire_type, value) where value is an int or a (start, end) slice for bytes."""
    pos = start
    end = len(data) if end is None else end
    while pos < end:
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            value, pos = _read_varint(data, pos)
        elif wire_type == _LENGTH_DELIMITED:
            length, pos = _read_varint(data, pos)
            value = (pos, pos + length)
            pos += length
        elif wire_type == _FIXED32:
            value = (pos, pos + 4)
            pos += 4
        elif wire_type == _FIXED64:
            value = (pos, pos + 8)
            pos += 8
        else:  # groups (3, 4) are not used by SentencePiece
            raise SentencePieceParseError(f"unsupported wire type {wire_type} for field {number}")
        if pos > end:
            raise SentencePieceParseError("field runs past the end of its message")
        yield number, wire_type, value


def _skip_scalar(data: bytes, pos: int, wire_type: int) -> int:
    if wire_type == _VARINT:
        return _read_varint(data, pos)[1]
    if wire_type == _FIXED32:
        return pos + 4
    if wire_type == _FIXED64:
        return pos + 8
    raise SentencePieceParseError(f"unsupported wire type {wire_type}")


def _as_int32(value: int) -> int:
    # Negative int32 values are written as 64-bit two's complement varints.
    if value >= 1 << 63:
        value -= 1 << 64
    return value


def _parse_submessage(data: bytes, span: tuple[int, int], target, field_table: dict) -> None:
    for number, wire_type, value in _iter_fields(data, span[0], span[1]):
        entry = field_table.get(number)
        if entry is None:
            continue
        name, kind = entry
        if kind in ("int32", "enum") and wire_type == _VARINT:
            setattr(target, name, _as_int32(value))
        elif kind == "bool" and wire_type == _VARINT:
            setattr(target, name, bool(value))
        elif kind == "str" and wire_type == _LENGTH_DELIMITED:
            setattr(target, name, data[value[0] : value[1]].decode("utf-8"))
        elif kind == "bytes" and wire_type == _LENGTH_DELIMITED:
            setattr(target, name, bytes(data[value[0] : value[1]]))


def _parse_piece(data: bytes, span: tuple[int, int]) -> Piece:
    piece = Piece("")
    for number, wire_type, value in _iter_fields(data, span[0], span[1]):
        if number == 1 and wire_type == _LENGTH_DELIMITED:
            piece.piece = data[value[0] : value[1]].decode("utf-8")
        elif number == 2 and wire_type == _FIXED32:
            piece.score = struct.unpack_from("<f", data, value[0])[0]
        elif number == 3 and wire_type == _VARINT:
            piece.type = _as_int32(value)
    return piece


_PIECE_KEY, _SCORE_KEY, _TYPE_KEY = 0x0A, 0x15, 0x18
_unpack_float = struct.Struct("<f").unpack_from


def _parse_piece_fast(data: bytes, start: int, end: int) -> Piece | None:
    """Decode the common layout (piece, score, optional small type) inline; None means 'use the general parser'.

    Large vocabularies hold hundreds of thousands of pieces, and the generic field iterator costs several
    microseconds per field.
    """
    if end - start < 2 or data[start] != _PIECE_KEY:
        return None
    length = data[start + 1]
    if length >= 0x80:
        return None
    pos = start + 2 + length
    if pos + 5 > end or data[pos] != _SCORE_KEY:
        return None
    text = data[start + 2 : pos].decode("utf-8")
    score = _unpack_float(data, pos + 1)[0]
    pos += 5
    if pos == end:
        return Piece(text, score)
    if pos + 2 == end and data[pos] == _TYPE_KEY and data[pos + 1] < 0x80:
        return Piece(text, score, data[pos + 1])
    return None


def parse_sentencepiece_model(data: bytes) -> SentencePieceModel:
    model = SentencePieceModel()
    pieces = model.pieces
    size = len(data)
    pos = 0
    try:
        while pos < size:
            # Top-level fields are read inline: pieces are by far the most numerous.
            key = data[pos]
            if key == _PIECE_KEY and pos + 1 < size and data[pos + 1] < 0x80:
                start, end = pos + 2, pos + 2 + data[pos + 1]
            else:
                key, pos = _read_varint(data, pos)
                if key & 7 != _LENGTH_DELIMITED:
                    pos = _skip_scalar(data, pos, key & 7)
                    continue
                length, start = _read_varint(data, pos)
                end = start + length
            if end > size:
                raise SentencePieceParseError("field runs past the end of the file")
            number = key >> 3
            pos = end
            if number == 1:
                piece = _parse_piece_fast(data, start, end)
                pieces.append(piece if piece is not None else _parse_piece(data, (start, end)))
            elif number == 2:
                _parse_submessage(data, (start, end), model.trainer_spec, _TRAINER_FIELDS)
            elif number == 3:
                _parse_submessage(data, (start, end), model.normalizer_spec, _NORMALIZER_FIELDS)
    except UnicodeDecodeError as error:
        raise SentencePieceParseError(f"a string field is not UTF-8: {error}") from None
    except IndexError:
        raise SentencePieceParseError("truncated data") from None
    if not pieces:
        raise SentencePieceParseError("no pieces found")
    return model


def load_sentencepiece_model(path: str | Path) -> SentencePieceModel:
    path = Path(path)
    try:
        return parse_sentencepiece_model(path.read_bytes())
    except SentencePieceParseError as error:
        raise SentencePieceParseError(f"{path} is not a readable SentencePiece model: {error}") from None
