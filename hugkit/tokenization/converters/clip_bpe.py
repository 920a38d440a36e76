"""CLIP's `vocab.json` + `merges.txt` (or the vocabulary of a tokenizer.json) -> the pipeline transformers'
CLIPTokenizer builds.

Byte-level BPE like GPT-2, with CLIP's own choices: text is NFC-normalised, runs of whitespace collapse to one
space and everything is lowercased; words come from CLIP's split pattern (whitespace dropped); the last piece of
every word carries the `</w>` suffix, which decoding turns back into a space.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE

from . import Conversion

# OpenAI's word pattern (simple_tokenizer.py): the two specials, English contractions, letter runs, single digits,
# runs of anything else that is not whitespace.
CLIP_SPLIT_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
END_OF_WORD = "</w>"


def clip_bpe_options(settings: dict) -> dict:
    return {"unk_token": str(settings.get("unk_token") or "<|endoftext|>")}


def clip_decoder() -> decoders.Decoder:
    """Bytes back to text, `</w>` to a space, and no whitespace left at either end (transformers strips the text).
    A regex, not decoders.Strip: Strip panics on an empty text (tokenizers 0.23)."""
    return decoders.Sequence([
        decoders.ByteLevel(),
        decoders.Replace(END_OF_WORD, " "),
        decoders.Replace(Regex(r"^\s+|\s+$"), ""),
    ])


def read_vocab_and_merges(sources: list[Path]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """From [vocab.json, merges.txt], or from the model section of [tokenizer.json]."""
    if len(sources) == 2:
        # The engine's own reader: same handling of the "#version" header and malformed lines as tokenizers.
        try:
            return BPE.read_file(str(sources[0]), str(sources[1]))
        except Exception as error:  # the engine raises a bare Exception
            raise ValueError(f"Cannot read the CLIP vocabulary {sources[0]} with merges {sources[1]}: {error}. "
                             "merges.txt holds one 'left right' pair per line.") from None
    (path,) = sources
    with open(path, encoding="utf-8") as handle:
        model = json.load(handle).get("model") or {}
    if model.get("type") not in (None, "BPE") or not isinstance(model.get("vocab"), dict):
        raise ValueError(f"{path} does not hold a BPE vocabulary (model type {model.get('type')!r}), "
                         "so it cannot be a CLIPTokenizer; pass the folder's vocab.json and merges.txt instead.")
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model.get("merges") or []]
    return model["vocab"], merges


def convert_clip_bpe(sources: list[Path], options: dict) -> Conversion:
    vocab, merges = read_vocab_and_merges(sources)
    tokenizer = Tokenizer(
        BPE(vocab, merges, dropout=None, continuing_subword_prefix="", end_of_word_suffix=END_OF_WORD,
            fuse_unk=False, unk_token=options["unk_token"])
    )
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CLIP_SPLIT_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tokenizer.decoder = clip_decoder()
    return Conversion(tokenizer)
