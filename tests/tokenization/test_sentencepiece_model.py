"""The built-in SentencePiece model reader agrees with protobuf's own parse, field by field."""

from __future__ import annotations

import pytest

from hugkit.tokenization.sentencepiece_model import (
    BPE,
    CONTROL,
    UNIGRAM,
    USER_DEFINED,
    SentencePieceParseError,
    parse_sentencepiece_model,
)

TRAINER_FIELDS = ["model_type", "vocab_size", "byte_fallback", "treat_whitespace_as_suffix", "split_digits", "unk_id",
                  "bos_id", "eos_id", "pad_id", "unk_piece", "bos_piece", "eos_piece", "pad_piece"]
NORMALIZER_FIELDS = ["name", "precompiled_charsmap", "add_dummy_prefix", "remove_extra_whitespaces",
                     "escape_whitespaces"]


def _protobuf_parse(data: bytes):
    import sentencepiece.sentencepiece_model_pb2 as model_pb2
    proto = model_pb2.ModelProto()
    proto.ParseFromString(data)
    return proto


@pytest.mark.parametrize("name", ["unigram", "t5", "bpe", "albert", "deberta"])
def test_reader_matches_protobuf(spm_models, name):
    data = spm_models[name].read_bytes()
    ours = parse_sentencepiece_model(data)
    proto = _protobuf_parse(data)
    assert [(p.piece, p.score, p.type) for p in ours.pieces] == [(p.piece, p.score, p.type) for p in proto.pieces]
    for field in TRAINER_FIELDS:
        assert getattr(ours.trainer_spec, field) == getattr(proto.trainer_spec, field), field
    for field in NORMALIZER_FIELDS:
        assert getattr(ours.normalizer_spec, field) == getattr(proto.normalizer_spec, field), field


def test_layouts_decode_as_trained(spm_models):
    t5 = parse_sentencepiece_model(spm_models["t5"].read_bytes())
    assert (t5.trainer_spec.pad_id, t5.trainer_spec.eos_id, t5.trainer_spec.unk_id, t5.trainer_spec.bos_id) == (
        0, 1, 2, -1)  # -1 is a 10-byte negative varint on the wire
    assert t5.trainer_spec.model_type == UNIGRAM and not t5.is_bpe
    bpe = parse_sentencepiece_model(spm_models["bpe"].read_bytes())
    assert bpe.is_bpe and bpe.trainer_spec.model_type == BPE and bpe.trainer_spec.byte_fallback
    assert bpe.pieces[3].piece == "<0x00>"
    unigram = parse_sentencepiece_model(spm_models["unigram"].read_bytes())
    assert [p.piece for p in unigram.pieces if p.type == USER_DEFINED] == ["<sep2>"]
    assert [p.piece for p in unigram.pieces if p.type == CONTROL] == ["<s>", "</s>"]
    assert len(unigram.normalizer_spec.precompiled_charsmap) > 1000  # nmt_nfkc rules


def test_unknown_fields_are_skipped(spm_models):
    proto = _protobuf_parse(spm_models["unigram"].read_bytes())
    proto.denormalizer_spec.name = "identity"
    proto.trainer_spec.input.append("corpus.txt")
    proto.trainer_spec.character_coverage = 0.5
    proto.pieces[5].score = -1.5
    # Fields from a future SentencePiece: a fixed64 (#99), a fixed32 (#98) and a varint (#97) at the top level.
    future = bytes([0x99, 0x06]) + b"\x00" * 8 + bytes([0x95, 0x06]) + b"\x00" * 4 + bytes([0x88, 0x06, 0x96, 0x01])
    ours = parse_sentencepiece_model(proto.SerializeToString() + future)
    assert ours.pieces[5].score == -1.5 and len(ours.pieces) == len(proto.pieces)
    assert ours.trainer_spec.unk_id == proto.trainer_spec.unk_id


@pytest.mark.parametrize("data", [b"", b"\x0a\x05ab", b"\x0b", b'{"model": "json, not protobuf"}', b"\x0a\x02\x0a\xff"])
def test_garbage_raises_a_parse_error(data):
    with pytest.raises(SentencePieceParseError):
        parse_sentencepiece_model(data)
