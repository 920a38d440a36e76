"""VitsTokenizer (VITS / MMS-TTS character vocabularies): exact ids against transformers' VitsTokenizer."""

from __future__ import annotations

import json
import sys

import pytest

import transformers
from hugkit import AutoTokenizer, VitsTokenizer

# An MMS-TTS-like vocabulary: "k" is id 0, so it is both the blank and (in MMS configs) the pad token.
MMS_VOCAB = {c: i for i, c in enumerate("kabcdefghijlmnopqrstuvwxyz '-_0123456789")}
# Another: a multi-character entry, an upper-case entry, accented and Romanian letters.
RICH_VOCAB = {"_": 0, "a": 1, "b": 2, "c": 3, "ch": 4, "A": 5, "é": 6, "ţ": 7, " ": 8, "r": 9, "h": 10, "u": 11, "n": 12}

TEXTS = [
    "Hello world",
    "KICK the bucket!",
    "  spaced   out  ",
    "",
    "<unk> and <pad>",
    "naïve café",
    "Ain't it 42?",
    "a-b_c k",
    "ţara țară",
    "CHurch Anchor",
    "kkk",
]

CONFIGS = {
    "mms": (MMS_VOCAB, {"pad_token": "k", "unk_token": "<unk>", "add_blank": True, "normalize": True, "phonemize": False,
                        "is_uroman": False, "language": "eng"}),
    "no-blank": (MMS_VOCAB, {"add_blank": False, "normalize": True, "phonemize": False}),
    "not-normalized": (MMS_VOCAB, {"pad_token": "k", "add_blank": True, "normalize": False, "phonemize": False}),
    "rich": (RICH_VOCAB, {"add_blank": True, "normalize": True, "phonemize": False}),
    "romanian": (RICH_VOCAB, {"add_blank": True, "normalize": True, "phonemize": False, "language": "ron"}),
}


def _folder(tmp_path, name: str):
    vocab, settings = CONFIGS[name]
    folder = tmp_path / name
    folder.mkdir()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({**settings, "tokenizer_class": "VitsTokenizer"}))
    return folder


@pytest.fixture(params=list(CONFIGS))
def pair(request, tmp_path):
    folder = _folder(tmp_path, request.param)
    return transformers.VitsTokenizer.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def test_auto_tokenizer_picks_vits(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(_folder(tmp_path, "mms"))
    assert isinstance(tokenizer, VitsTokenizer)
    # Without tokenizer_class, config.json's model_type decides.
    folder = _folder(tmp_path, "rich")
    (folder / "tokenizer_config.json").write_text(json.dumps({"phonemize": False}))
    (folder / "config.json").write_text(json.dumps({"model_type": "vits"}))
    assert isinstance(AutoTokenizer.from_pretrained(folder), VitsTokenizer)


def test_ids_and_tokens_match_transformers(pair):
    theirs, ours = pair
    assert ours.pad_token_id == theirs.pad_token_id and ours.unk_token_id == theirs.unk_token_id
    assert len(ours) == len(theirs) and ours.vocab_size == theirs.vocab_size
    assert ours.get_vocab() == theirs.get_vocab()
    for text in TEXTS:
        assert ours.tokenize(text) == theirs.tokenize(text), text
        assert ours(text)["input_ids"] == theirs(text)["input_ids"], text
        assert ours(text)["attention_mask"] == theirs(text)["attention_mask"], text
        assert ours(text, normalize=False)["input_ids"] == theirs(text, normalize=False)["input_ids"], text
        ids = theirs(text)["input_ids"]
        assert ours.decode(ids) == theirs.decode(ids), text
        assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(ids, skip_special_tokens=True), text


def test_batches_and_tensors_match_transformers(pair):
    theirs, ours = pair
    batch = [t for t in TEXTS if t]
    expected = theirs(batch, padding=True, return_tensors="pt")
    got = ours(batch, padding=True, return_tensors="pt")
    assert set(got) == {"input_ids", "attention_mask"}
    for key in expected:
        assert got[key].dtype == expected[key].dtype and got[key].tolist() == expected[key].tolist()
    single_theirs, single_ours = theirs("Hello", return_tensors="pt"), ours("Hello", return_tensors="pt")
    assert single_ours["input_ids"].shape == single_theirs["input_ids"].shape
    assert single_ours["input_ids"].tolist() == single_theirs["input_ids"].tolist()
    assert ours(batch)["input_ids"] == theirs(batch)["input_ids"]
    cut = dict(truncation=True, max_length=5)
    assert ours(batch, **cut)["input_ids"] == theirs(batch, **cut)["input_ids"]
    assert ours.batch_decode(expected["input_ids"]) == theirs.batch_decode(expected["input_ids"])


def test_saved_by_transformers_and_by_hugkit(tmp_path):
    theirs = transformers.VitsTokenizer.from_pretrained(_folder(tmp_path, "rich"))
    theirs.save_pretrained(tmp_path / "saved-by-transformers")  # added_tokens_decoder and added_tokens.json
    ours = AutoTokenizer.from_pretrained(tmp_path / "saved-by-transformers")
    ours.save_pretrained(tmp_path / "saved-by-hugkit")
    again = transformers.VitsTokenizer.from_pretrained(tmp_path / "saved-by-hugkit")
    mine_again = VitsTokenizer.from_pretrained(tmp_path / "saved-by-hugkit")
    for text in TEXTS:
        expected = theirs(text)["input_ids"]
        assert ours(text)["input_ids"] == expected
        assert again(text)["input_ids"] == expected
        assert mine_again(text)["input_ids"] == expected
    assert mine_again.pad_token_id == theirs.pad_token_id


def test_legacy_special_tokens_map(tmp_path):
    folder = tmp_path / "legacy"
    folder.mkdir()
    (folder / "vocab.json").write_text(json.dumps(MMS_VOCAB))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "VitsTokenizer", "phonemize": False}))
    (folder / "special_tokens_map.json").write_text(json.dumps({"pad_token": "k", "unk_token": "<unk>"}))
    theirs, ours = transformers.VitsTokenizer.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    assert ours.pad_token == theirs.pad_token == "k"
    for text in TEXTS:
        assert ours(text)["input_ids"] == theirs(text)["input_ids"], text


def test_non_roman_text_for_a_uroman_tokenizer_is_an_error(tmp_path, monkeypatch):
    folder = _folder(tmp_path, "mms")
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**settings, "is_uroman": True}))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    monkeypatch.setitem(sys.modules, "uroman", None)  # not installed
    assert tokenizer("plain ascii")["input_ids"] == transformers.VitsTokenizer.from_pretrained(folder)("plain ascii")["input_ids"]
    with pytest.raises(ImportError, match="uroman") as info:
        tokenizer("привет")
    assert "pip install uroman" in str(info.value) and "romanize the text yourself" in str(info.value)


def test_phonemizing_tokenizer_names_the_missing_package(tmp_path, monkeypatch):
    folder = _folder(tmp_path, "mms")
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**settings, "phonemize": True}))
    monkeypatch.setitem(sys.modules, "phonemizer", None)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with pytest.raises(ImportError, match="phonemizer") as info:
        tokenizer("hello")
    assert "espeak" in str(info.value) and "phonemize=False" in str(info.value)


def test_bad_inputs(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(_folder(tmp_path, "mms"))
    with pytest.raises(TypeError, match="str"):
        tokenizer(42)
    with pytest.raises(TypeError, match="str"):
        tokenizer(["fine", None])
    with pytest.raises(TypeError, match="unexpected keyword"):
        tokenizer("hello", paddin=True)
    with pytest.raises(ValueError, match="sequences of different lengths|padding"):
        tokenizer(["a", "abc"], return_tensors="pt")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "VitsTokenizer"}))
    with pytest.raises(OSError, match="vocab.json"):
        AutoTokenizer.from_pretrained(empty)
