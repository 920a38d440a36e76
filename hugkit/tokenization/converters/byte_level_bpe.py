"""GPT-2 / RoBERTa `vocab.json` + `merges.txt` -> byte-level BPE pipeline, as transformers builds it."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, pre_tokenizers
from tokenizers.models import BPE

from . import Conversion


def byte_level_bpe_options(settings: dict) -> dict:
    return {"add_prefix_space": bool(settings.get("add_prefix_space", False))}


def convert_byte_level_bpe(vocab_path: Path, merges_path: Path, options: dict) -> Conversion:
    # The engine's own reader: same handling of the "#version" header and malformed lines as tokenizers.
    vocab, merges = BPE.read_file(str(vocab_path), str(merges_path))
    tokenizer = Tokenizer(
        BPE(vocab, merges, dropout=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False)
    )
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=options["add_prefix_space"])
    tokenizer.decoder = decoders.ByteLevel()
    return Conversion(tokenizer)
