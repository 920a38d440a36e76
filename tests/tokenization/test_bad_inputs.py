"""Bad input fails with an error that says what was expected; awkward but valid input works."""

from __future__ import annotations

import time

import pytest

from hugkit.tokenization import AutoTokenizer
from tests.tokenization.helpers import as_dict, make_folder


@pytest.fixture(scope="module")
def bert(pair_of_tokenizers):
    return pair_of_tokenizers("minilm_tokenizer_json")[1]


@pytest.mark.parametrize(
    ("text", "pair", "options", "message"),
    [
        (None, None, {}, "got None"),
        (123, None, {}, "got int 123"),
        (b"bytes", None, {}, "got bytes"),
        ({"text": "x"}, None, {}, "got dict"),
        (["fine", 7], None, {}, r"text\[1\] must be a str, got int 7"),
        ([["a", 1]], None, {}, r"text\[0\]\[1\] must be a str"),
        ([("a", "b", "c")], None, {}, r"must be a pair"),
        (["a", "b"], "not a list", {}, "text_pair must be a list"),
        ("text", 5, {}, "text_pair must be a str"),
        ("text", None, {"is_split_into_words": True}, "list of words"),
        ([["ok"], "not words"], None, {"is_split_into_words": True}, r"text\[1\] must be a list of str"),
        (["a"], None, {"unknown_option": True}, "Unexpected keyword"),
    ],
)
def test_wrong_types_raise_type_error(bert, text, pair, options, message):
    with pytest.raises(TypeError, match=message):
        bert(text, pair, **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(padding="sideways"), "padding must be"),
        (dict(truncation="middle"), "truncation must be"),
        (dict(return_tensors="tf"), "return_tensors must be"),
        (dict(padding_side="top", padding=True), "padding_side must be"),
        (dict(max_length=-3), "max_length must be"),
        (dict(padding=True, truncation=True, max_length=10, pad_to_multiple_of=4), "not a multiple"),
        (dict(truncation=True, max_length=4, stride=3, return_overflowing_tokens=True), "stride"),
    ],
)
def test_wrong_values_raise_value_error(bert, options, message):
    with pytest.raises(ValueError, match=message):
        bert(["a long enough sentence to overflow its limit", "b"], **options)


def test_engine_panic_becomes_value_error(pair_of_tokenizers):
    """A stride too large for one side of a truncated pair makes the Rust engine panic; users get a ValueError."""
    ours = pair_of_tokenizers("roberta_vocab_merges")[1]
    with pytest.raises(ValueError, match="stride"):
        ours(["x " * 200], ["p q r"], truncation=True, max_length=9, stride=2, return_overflowing_tokens=True)
    assert ours("ok")["input_ids"][0] == ours.cls_token_id  # still usable afterwards


def test_mismatched_pair_batch(bert):
    with pytest.raises(ValueError, match="text has 2 items but text_pair has 1"):
        bert(["a", "b"], ["c"])


def test_empty_inputs_are_valid(bert, pair_of_tokenizers):
    reference = pair_of_tokenizers("minilm_tokenizer_json")[0]
    assert bert("")["input_ids"] == [101, 102]
    assert as_dict(bert("", "")) == as_dict(reference("", ""))  # transformers drops an empty pair
    assert as_dict(bert("x", "")) == as_dict(reference("x", "")) == as_dict(bert("x"))
    assert as_dict(bert(["x"], [""])) == as_dict(reference(["x"], [""]))
    assert as_dict(bert(["", "x"], padding=True)) == as_dict(reference(["", "x"], padding=True))
    assert bert([])["input_ids"] == []


def test_decode_rejects_garbage(bert):
    with pytest.raises(TypeError, match="token_ids"):
        bert.decode("101 102")
    with pytest.raises(TypeError, match="non-negative ints"):
        bert.decode([101, "x"])
    with pytest.raises(TypeError, match="non-negative ints"):
        bert.decode([-5])
    with pytest.raises(TypeError, match="a token must be a str"):
        bert.convert_tokens_to_ids([3])


def test_one_megabyte_string_with_truncation(bert):
    words = "tokenizers should stay fast on very long inputs, even when a user pastes a whole book. "
    text = (words * (1_000_000 // len(words) + 1))[:1_000_000]
    started = time.perf_counter()
    output = bert(text, truncation=True, return_tensors="np")
    elapsed = time.perf_counter() - started
    assert output["input_ids"].shape == (1, 512)
    assert output["input_ids"][0, -1] == 102
    assert elapsed < 30, f"a 1 MB input took {elapsed:.1f}s"


def test_folder_without_tokenizer_files_says_what_is_missing(tmp_path):
    make_folder(tmp_path / "empty", tokenizer_config={"tokenizer_class": "BertTokenizer"})
    with pytest.raises(OSError, match=r"needs tokenizer.json or vocab.txt.*holds: tokenizer_config.json"):
        AutoTokenizer.from_pretrained(tmp_path / "empty")
    make_folder(tmp_path / "spm", tokenizer_config={"tokenizer_class": "T5Tokenizer"})
    (tmp_path / "spm" / "spiece.model").write_bytes(b"\x0a\x20not really a model")
    with pytest.raises(ValueError, match="not a readable SentencePiece model"):
        AutoTokenizer.from_pretrained(tmp_path / "spm")
    with pytest.raises(TypeError, match="must be a str or a path"):
        AutoTokenizer.from_pretrained(42)


def test_checkpoint_code_is_never_executed(format_folders, tmp_path):
    folder, _ = format_folders("minilm_vocab_txt")
    target = make_folder(tmp_path / "with_auto_map", {"vocab.txt": folder / "vocab.txt"},
                         {"tokenizer_class": "BertTokenizer", "auto_map": {"AutoTokenizer": ["evil.Tok", None]}})
    (target / "evil.py").write_text("raise SystemExit('executed checkpoint code')\n")
    tokenizer = AutoTokenizer.from_pretrained(target, trust_remote_code=True)
    assert tokenizer("hello")["input_ids"] == [101, 7592, 102]
