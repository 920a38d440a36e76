"""save_pretrained output loads in transformers and hugkit; converted tokenizers are cached and not rebuilt."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from hugkit.tokenization import AutoTokenizer
from hugkit.tokenization.converters import byte_level_bpe, sentencepiece, wordpiece
from tests.tokenization.helpers import CORPUS, PAIRS, as_dict

SAVE_CASES = [
    "minilm_tokenizer_json",
    "minilm_vocab_txt",
    "bert_cased_vocab_txt",
    "distilbert_vocab_txt",
    "gpt2_vocab_merges",
    "roberta_prefix_space",
    "xlm_roberta_unigram",
    "camembert_unigram",
    "t5_unigram",
    "llama_bpe_byte_fallback",
    "albert_unigram",
    "deberta_v2_unigram",
    "generic_bpe",
]


@pytest.mark.parametrize("case", SAVE_CASES)
def test_save_pretrained_reloads_in_transformers_and_hugkit(case, format_folders, reference_loader, tmp_path):
    import transformers

    folder, _ = format_folders(case)
    reference = reference_loader(folder, model_max_length=333)
    ours = AutoTokenizer.from_pretrained(folder, model_max_length=333)
    for tokenizer in (reference, ours):
        tokenizer.add_tokens(["brandnewtoken"])
    saved = ours.save_pretrained(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    assert {str(tmp_path / name) for name in ("special_tokens_map.json", "tokenizer.json", "tokenizer_config.json")} \
        == set(saved)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["model_max_length"] == 333
    assert config["tokenizer_class"] == type(reference).__name__.replace("TokenizersBackend", "PreTrainedTokenizerFast")

    reloaded_reference = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    reloaded_ours = AutoTokenizer.from_pretrained(tmp_path)
    texts = CORPUS + ["a brandnewtoken in text"]
    for reloaded in (reloaded_reference, reloaded_ours):
        assert len(reloaded) == len(reference)
        assert reloaded.all_special_tokens == reference.all_special_tokens
        assert list(reloaded.model_input_names) == list(reference.model_input_names)
        assert reloaded.padding_side == reference.padding_side
        for text in texts:
            expected = as_dict(reference(text, PAIRS[0], return_special_tokens_mask=True, return_token_type_ids=True))
            assert as_dict(reloaded(text, PAIRS[0], return_special_tokens_mask=True,
                                    return_token_type_ids=True)) == expected, (type(reloaded), text)
            ids = expected["input_ids"]
            assert reloaded.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True)


def test_saved_tokenizer_json_has_no_frozen_truncation(pair_of_tokenizers, tmp_path):
    _, ours, _ = pair_of_tokenizers("minilm_tokenizer_json")
    ours("some text", truncation=True, max_length=5)
    ours.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "tokenizer.json").read_text())
    assert saved["truncation"] is None and saved["padding"] is None
    assert len(ours("a b c d e f g h")["input_ids"]) == 10  # the engine state came back for the next call


@pytest.fixture()
def fresh_cache(tmp_path, monkeypatch):
    cache_root = tmp_path / "cache"
    monkeypatch.setenv("HUGKIT_CACHE", str(cache_root))
    return cache_root / "tokenizers"


def _counting(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def _refuse(monkeypatch, module, name):
    def refuse(*args, **kwargs):
        raise AssertionError(f"{name} ran although the conversion was cached")

    monkeypatch.setattr(module, name, refuse)


@pytest.mark.parametrize(
    ("case", "module", "function"),
    [
        ("minilm_vocab_txt", wordpiece, "convert_wordpiece"),
        ("roberta_vocab_merges", byte_level_bpe, "convert_byte_level_bpe"),
        ("xlm_roberta_unigram", sentencepiece, "convert_sentencepiece"),
        ("llama_bpe_byte_fallback", sentencepiece, "convert_sentencepiece"),
    ],
)
def test_conversion_runs_once_then_comes_from_the_cache(case, module, function, format_folders, fresh_cache,
                                                        monkeypatch):
    folder, _ = format_folders(case)
    calls = _counting(monkeypatch, module, function)
    first = AutoTokenizer.from_pretrained(folder)
    assert len(calls) == 1
    entries = sorted(path.name for path in fresh_cache.iterdir())
    assert len(entries) == 2 and entries[0].endswith(".json") and any(e.endswith(".meta.json") for e in entries)
    assert not [path for path in fresh_cache.iterdir() if path.name.startswith(".")]  # no temp files left

    _refuse(monkeypatch, module, function)
    if module is sentencepiece:
        _refuse(monkeypatch, sentencepiece, "load_sentencepiece_model")
    started = time.perf_counter()
    second = AutoTokenizer.from_pretrained(folder)
    cached_seconds = time.perf_counter() - started
    assert cached_seconds < 5.0
    for text in CORPUS:
        assert as_dict(second(text, PAIRS[1], return_offsets_mapping=True)) == as_dict(
            first(text, PAIRS[1], return_offsets_mapping=True))
    assert second.all_special_tokens == first.all_special_tokens and len(second) == len(first)


def test_cache_key_follows_options_and_file_contents(format_folders, fresh_cache, monkeypatch, tmp_path):
    folder, _ = format_folders("minilm_vocab_txt")
    calls = _counting(monkeypatch, wordpiece, "convert_wordpiece")
    uncased = AutoTokenizer.from_pretrained(folder)
    cased = AutoTokenizer.from_pretrained(folder, do_lower_case=False)
    assert len(calls) == 2
    assert uncased("Hello")["input_ids"] == [101, 7592, 102]
    assert cased("Hello")["input_ids"] == [101, 100, 102]  # the uncased vocab has no "Hello"
    AutoTokenizer.from_pretrained(folder, do_lower_case=False)
    assert len(calls) == 2

    edited = shutil.copytree(folder, tmp_path / "edited")
    vocab = (edited / "vocab.txt").read_text(encoding="utf-8").splitlines()
    vocab[7592] = "hullo"
    (edited / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    changed = AutoTokenizer.from_pretrained(edited)
    assert len(calls) == 3
    assert changed("hullo")["input_ids"] == [101, 7592, 102]
    assert 7592 not in changed("hello")["input_ids"]


def test_a_damaged_cache_entry_is_rebuilt(format_folders, fresh_cache, monkeypatch):
    folder, _ = format_folders("t5_unigram")
    calls = _counting(monkeypatch, sentencepiece, "convert_sentencepiece")
    expected = AutoTokenizer.from_pretrained(folder)("Hello world")["input_ids"]
    for path in fresh_cache.iterdir():
        if not path.name.endswith(".meta.json"):
            path.write_text("{ not json", encoding="utf-8")
    assert AutoTokenizer.from_pretrained(folder)("Hello world")["input_ids"] == expected
    assert len(calls) == 2
    assert AutoTokenizer.from_pretrained(folder)("Hello world")["input_ids"] == expected
    assert len(calls) == 2
