"""tiktoken encodings (npm JSON ranks and .tiktoken files) id-exact against the tiktoken library."""

import base64
import json

import pytest

from hugkit import AutoTokenizer

from ..assets import ASSETS, require
from .test_smollm2 import CORPUS

ENCODERS = ASSETS / "tiktoken" / "package" / "encoders"


def _reference(path):
    import tiktoken
    from hugkit.tokenization.converters.tiktoken import read_ranks

    ranks, pattern, specials = read_ranks(path)
    return tiktoken.Encoding(path.stem, pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)


@pytest.mark.parametrize("name", ["gpt2", "cl100k_base", "o200k_base"])
def test_npm_ranks_match_tiktoken(name):
    path = require(ENCODERS / f"{name}.json")
    tokenizer = AutoTokenizer.from_pretrained(path)
    reference = _reference(path)
    for text in CORPUS + ["hello world " * 20, "1234567890" * 3]:
        ids = tokenizer(text)["input_ids"]
        assert ids == reference.encode(text, allowed_special="all"), text
        assert tokenizer.decode(ids) == text


def test_known_ids():
    cl100k = AutoTokenizer.from_pretrained(require(ENCODERS / "cl100k_base.json"))
    assert cl100k("hello world")["input_ids"] == [15339, 1917]
    assert cl100k("<|endofprompt|>")["input_ids"] == [100276]  # a special id past a gap
    gpt2 = AutoTokenizer.from_pretrained(require(ENCODERS / "gpt2.json"))
    assert gpt2("hello world")["input_ids"] == [31373, 995]
    assert gpt2.eos_token == "<|endoftext|>"


def test_tiktoken_file(tmp_path):
    source = require(ENCODERS / "cl100k_base.json")
    data = json.loads(source.read_text())
    words, lines, rank = data["bpe_ranks"].split(), [], 0
    index = 0
    while index < len(words):
        if words[index] == "!":
            rank, index = int(words[index + 1]), index + 2
            continue
        lines.append(f"{words[index]} {rank}")
        rank, index = rank + 1, index + 1
    path = tmp_path / "cl100k_base.tiktoken"
    path.write_text("\n".join(lines) + "\n")
    assert base64.b64decode(lines[0].split()[0]) == b"!"
    tokenizer = AutoTokenizer.from_pretrained(path)
    reference = _reference(source)
    for text in CORPUS:
        assert tokenizer(text)["input_ids"] == reference.encode(text, allowed_special="all"), text


def test_unknown_tiktoken_file_needs_pattern(tmp_path):
    path = tmp_path / "mystery.tiktoken"
    path.write_text("IQ== 0\nIg== 1\n")
    with pytest.raises(ValueError, match="pattern="):
        AutoTokenizer.from_pretrained(path)
