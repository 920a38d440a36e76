"""Real vocabularies from the fetched assets, loaded from every file layout they can come in."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hugkit.tokenization import AutoTokenizer, BatchEncoding, BertTokenizerFast, GPT2TokenizerFast, PreTrainedTokenizerFast
from tests.assets import GPT2_FILES, MINILM, require
from tests.tokenization.helpers import CORPUS, PAIRS, as_dict, make_folder


def test_gpt2_files_without_any_config(tmp_path):
    require(GPT2_FILES)
    folder = make_folder(tmp_path / "gpt2", {"vocab.json": GPT2_FILES / "encoder.json",
                                             "merges.txt": GPT2_FILES / "vocab.bpe"})
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer("hello world")["input_ids"] == [31373, 995]
    assert tokenizer.encode(" hello world") == [23748, 995]
    assert tokenizer.decode([31373, 995]) == "hello world"
    assert tokenizer.tokenizer_class == "GPT2Tokenizer" and "token_type_ids" not in tokenizer("x")
    assert tokenizer.eos_token == tokenizer.bos_token == "<|endoftext|>" and tokenizer.eos_token_id == 50256


def test_minilm_vocab_txt_alone_matches_its_tokenizer_json(tmp_path, pair_of_tokenizers):
    require(MINILM)
    folder = make_folder(tmp_path / "vocab_only", {"vocab.txt": MINILM / "vocab.txt"})
    from_vocab = AutoTokenizer.from_pretrained(folder)
    from_json = pair_of_tokenizers("minilm_tokenizer_json")[1]
    assert from_vocab.tokenizer_class == "BertTokenizer"
    for text in CORPUS:
        expected = as_dict(from_json(text, PAIRS[0], return_offsets_mapping=True))
        assert as_dict(from_vocab(text, PAIRS[0], return_offsets_mapping=True)) == expected
    assert from_vocab.model_max_length == int(1e30)  # no config: no limit, like transformers


def test_minilm_known_ids(pair_of_tokenizers):
    _, ours, _ = pair_of_tokenizers("minilm_tokenizer_json")
    encoded = ours(["A man is eating food.", "A man is eating a piece of bread."], padding=True, return_tensors="pt")
    assert isinstance(encoded, BatchEncoding) and isinstance(encoded, dict)
    assert encoded.input_ids[0].tolist() == [101, 1037, 2158, 2003, 5983, 2833, 1012, 102, 0, 0, 0]
    assert encoded.attention_mask[0].tolist() == [1] * 8 + [0] * 3
    assert ours.tokenize("Tokenization!") == ["token", "##ization", "!"]


def test_llama3_tokenizer_json(pair_of_tokenizers):
    reference, ours, _ = pair_of_tokenizers("llama3_tokenizer_json")
    assert ours("Hello world")["input_ids"] == [9906, 1917]
    assert ours.bos_token == "<|begin_of_text|>" and len(ours) == 128256
    ids = ours.encode("Hello , world .")
    # The config asks for clean-up, but (like transformers 5) it is not applied to BPE output.
    assert ours.clean_up_tokenization_spaces and ours.decode(ids) == reference.decode(ids) == "Hello , world ."


def test_aliases_and_direct_construction(tmp_path):
    require(MINILM)
    assert BertTokenizerFast is GPT2TokenizerFast is PreTrainedTokenizerFast
    tokenizer = BertTokenizerFast.from_pretrained(MINILM)
    assert tokenizer("hello")["input_ids"] == [101, 7592, 102]
    direct = PreTrainedTokenizerFast(tokenizer_file=MINILM / "tokenizer.json", pad_token="[PAD]",
                                     model_max_length=128)
    assert direct(["a", "b c"], padding=True)["input_ids"] == [[101, 1037, 102, 0], [101, 1038, 1039, 102]]
    assert "token_type_ids" not in direct("x")  # the base class takes input_ids and attention_mask
    with pytest.raises(TypeError, match="tokenizer_object"):
        PreTrainedTokenizerFast()
    alone = AutoTokenizer.from_pretrained(MINILM / "tokenizer.json")
    assert alone("hello")["input_ids"] == [101, 7592, 102]


def test_importing_tokenization_stays_light():
    code = (
        "import sys, hugkit.tokenization as t; "
        "heavy = [m for m in ('torch', 'transformers', 'sentencepiece', 'google.protobuf') if m in sys.modules]; "
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_no_warnings_in_normal_use(pair_of_tokenizers, recwarn):
    _, ours, _ = pair_of_tokenizers("minilm_tokenizer_json")
    ours(["a", "b c"], padding=True, truncation=True, max_length=8, return_tensors="pt")
    ours.decode([101, 7592, 102], skip_special_tokens=True)
    assert [str(warning.message) for warning in recwarn] == []
