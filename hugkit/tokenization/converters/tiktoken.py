"""tiktoken rank files -> a byte-level BPE `tokenizers.Tokenizer` that encodes exactly as tiktoken does.

Sources: a ``.tiktoken`` file (one ``<base64 token> <rank>`` per line, OpenAI's format) or the npm ``tiktoken``
package's encoder JSON (``pat_str``, ``special_tokens``, ``bpe_ranks`` = ``! <offset> <b64> <b64> ...``: ranks
count up from each offset). A ``.tiktoken`` file carries no split pattern or special tokens: they come from the
known encodings (by file name) or from ``pattern=`` / ``special_tokens=``.

tiktoken merges the adjacent pair whose concatenation has the lowest rank and takes a whole piece that is itself
a token as is. The same BPE in `tokenizers` terms: one merge ``(left, right)`` for every split of every token into
two tokens, ordered by the rank of the result, and ``ignore_merges=True``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, pre_tokenizers
from tokenizers.models import BPE

from . import Conversion
from ..byte_level import bytes_to_unicode

_R50K = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_CL100K = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
_O200K = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""", r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""", r"""\s*[\r\n]+""", r"""\s+(?!\S)""", r"""\s+""",
])
# Known encodings (tiktoken's own definitions) for .tiktoken files, which carry neither pattern nor specials.
KNOWN_ENCODINGS = {
    "gpt2": (_R50K, {"<|endoftext|>": 50256}),
    "r50k_base": (_R50K, {"<|endoftext|>": 50256}),
    "p50k_base": (_R50K, {"<|endoftext|>": 50256}),
    "cl100k_base": (_CL100K, {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                              "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}),
    "o200k_base": (_O200K, {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}),
}


def read_ranks(path: Path) -> tuple[dict[bytes, int], str | None, dict[str, int]]:
    """(ranks, split pattern or None, special tokens) from a .tiktoken file or an npm encoder JSON."""
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        data = json.loads(text)
        ranks: dict[bytes, int] = {}
        rank = 0
        words = data["bpe_ranks"].split()
        index = 0
        while index < len(words):
            if words[index] == "!":
                rank = int(words[index + 1])
                index += 2
                continue
            ranks[base64.b64decode(words[index])] = rank
            rank += 1
            index += 1
        return ranks, data.get("pat_str"), dict(data.get("special_tokens") or {})
    ranks = {}
    for line in text.splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    known = KNOWN_ENCODINGS.get(Path(path).name.split(".")[0])
    return ranks, known[0] if known else None, dict(known[1]) if known else {}


def tiktoken_options(path: Path, pattern: str | None = None, special_tokens: dict | None = None) -> dict:
    return {"pattern": pattern, "special_tokens": special_tokens}


def convert_tiktoken(path: Path, options: dict) -> Conversion:
    ranks, pattern, specials = read_ranks(path)
    pattern = options.get("pattern") or pattern
    if options.get("special_tokens") is not None:
        specials = dict(options["special_tokens"])
    if pattern is None:
        raise ValueError(
            f"{path} has no split pattern and its name is not a known encoding ({', '.join(KNOWN_ENCODINGS)}); "
            "pass pattern= (tiktoken's pat_str)."
        )
    spell = bytes_to_unicode()

    def spelled(token: bytes) -> str:
        return "".join(spell[byte] for byte in token)

    vocab = {spelled(token): rank for token, rank in ranks.items()}
    merges = []
    for token, rank in ranks.items():
        if len(token) < 2:
            continue
        splits = [(token[:i], token[i:]) for i in range(1, len(token)) if token[:i] in ranks and token[i:] in ranks]
        splits.sort(key=lambda pair: (ranks[pair[0]], ranks[pair[1]]))
        merges.extend((rank, spelled(left), spelled(right)) for left, right in splits)
    merges.sort(key=lambda item: item[0])
    # Special tokens sit in the vocabulary at their own ids (cl100k's ids have gaps, added tokens would not).
    vocab.update(specials)
    tokenizer = Tokenizer(BPE(vocab, [(left, right) for _, left, right in merges], fuse_unk=False, ignore_merges=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in specials])
    eot = "<|endoftext|>" if "<|endoftext|>" in specials else None
    derived = {"special_tokens": {"bos_token": eot, "eos_token": eot, "unk_token": eot}} if eot else {}
    return Conversion(tokenizer, derived)
