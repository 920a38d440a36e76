"""BERT-style `vocab.txt` (one WordPiece token per line) -> tokenizers pipeline, as transformers' BertTokenizer builds it."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import WordPiece

from . import Conversion


def read_wordpiece_vocab(path: Path) -> dict[str, int]:
    # Text mode folds \r\n; a repeated token keeps its last line number, like transformers' load_vocab.
    vocab: dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            vocab[line.rstrip("\n")] = index
    return vocab


def wordpiece_options(settings: dict) -> dict:
    return {
        "do_lower_case": bool(settings.get("do_lower_case", True)),
        "strip_accents": settings.get("strip_accents"),
        "tokenize_chinese_chars": bool(settings.get("tokenize_chinese_chars", True)),
        "unk_token": str(settings.get("unk_token") or "[UNK]"),
    }


def convert_wordpiece(vocab_path: Path, options: dict) -> Conversion:
    tokenizer = Tokenizer(WordPiece(read_wordpiece_vocab(vocab_path), unk_token=options["unk_token"]))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=options["tokenize_chinese_chars"],
        strip_accents=options["strip_accents"],
        lowercase=options["do_lower_case"],
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return Conversion(tokenizer)
