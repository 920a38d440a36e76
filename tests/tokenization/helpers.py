"""Shared corpus and comparison helpers for the tokenization tests (transformers is the reference)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np

CORPUS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "",
    "  Héllo\twörld  ",
    "Naïve café, déjà vu — crème brûlée!",
    "ÀÉÎÕÜ çñ ß ﬁ ① ｆｕｌｌｗｉｄｔｈ",
    "東京は日本の首都です。我喜欢学习中文。",
    "Emoji 🙂🚀 and a family 👩‍👩‍👧 here",
    "Numbers 12345 and 3.14159, dates 2024-01-31.",
    "Tabs\tand\tnewlines\n\nand   runs   of    spaces",
    "special tokens inside: [CLS] [SEP] [MASK] [PAD] <s> </s> <mask> <pad> <unk> <|endoftext|> done",
    " leading space and trailing space ",
    "It's a truth universally acknowledged, that a single man in possession of a good fortune, must be in want "
    "of a wife. However little known the feelings or views of such a man may be on his first entering a "
    "neighbourhood, this truth is so well fixed in the minds of the surrounding families. " * 3,
    "kasiri torimu nesalo vide paqu exthing",
]
PAIRS = ["A second sentence.", "short", "", "Ünïcödé pair 漢字"]


def training_corpus() -> list[str]:
    """Deterministic text for training tiny vocabularies: real sentences plus pseudo-words."""
    random.seed(1234)
    syllables = "ka ri to mu ne sa lo vi de pa qu ex th ing er an on st re".split()
    words = ["".join(random.choice(syllables) for _ in range(random.randint(1, 4))) for _ in range(300)]
    lines = [text for text in CORPUS if text.strip()]
    lines += [" ".join(random.choice(words) for _ in range(random.randint(3, 12))) for _ in range(1500)]
    return lines


def make_folder(folder: Path, files: dict[str, Path] | None = None, tokenizer_config: dict | None = None,
                extra_json: dict[str, object] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in (files or {}).items():
        shutil.copy(source, folder / name)
    if tokenizer_config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")
    for name, content in (extra_json or {}).items():
        (folder / name).write_text(json.dumps(content), encoding="utf-8")
    return folder


def plain(value):
    """Tensors/arrays -> nested lists so outputs compare with ==."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def as_dict(encoding) -> dict:
    return {key: plain(value) for key, value in dict(encoding).items()}


def assert_same_call(reference, ours, *args, **kwargs) -> dict:
    """Call both tokenizers the same way; both must raise, or return equal keys and values."""
    try:
        expected = reference(*args, **kwargs)
    except Exception as error:  # the reference refuses: so must we
        try:
            ours(*args, **kwargs)
        except (TypeError, ValueError):
            return {}
        raise AssertionError(f"transformers raised {error!r} but hugkit did not for {args!r} {kwargs!r}") from None
    actual = ours(*args, **kwargs)
    expected_dict, actual_dict = as_dict(expected), as_dict(actual)
    assert list(actual_dict) == list(expected_dict), (args, kwargs)
    for key in expected_dict:
        assert actual_dict[key] == expected_dict[key], (key, args, kwargs)
        expected_value, actual_value = dict(expected)[key], dict(actual)[key]
        if hasattr(expected_value, "dtype"):
            assert type(actual_value) is type(expected_value), key
            assert str(actual_value.dtype) == str(expected_value.dtype), key
    return actual_dict


def assert_same_metadata(reference, ours) -> None:
    assert ours.vocab_size == reference.vocab_size
    assert len(ours) == len(reference)
    assert ours.get_vocab() == reference.get_vocab()
    assert ours.special_tokens_map == reference.special_tokens_map
    assert ours.all_special_tokens == reference.all_special_tokens
    assert ours.all_special_ids == reference.all_special_ids
    assert list(ours.model_input_names) == list(reference.model_input_names)
    assert ours.padding_side == reference.padding_side
    assert ours.truncation_side == reference.truncation_side
    assert ours.model_max_length == reference.model_max_length
    for pair in (False, True):
        assert ours.num_special_tokens_to_add(pair) == reference.num_special_tokens_to_add(pair)
    for name in ("bos", "eos", "unk", "sep", "pad", "cls", "mask"):
        assert getattr(ours, f"{name}_token") == getattr(reference, f"{name}_token"), name
        assert getattr(ours, f"{name}_token_id") == getattr(reference, f"{name}_token_id"), name
    added_ours = {index: (t.content, t.special, t.lstrip, t.rstrip, t.normalized)
                  for index, t in ours.added_tokens_decoder.items()}
    added_reference = {index: (t.content, t.special, t.lstrip, t.rstrip, t.normalized)
                       for index, t in reference.added_tokens_decoder.items()}
    assert added_ours == added_reference


def arrays_equal(first, second) -> bool:
    return np.array_equal(np.asarray(plain(first)), np.asarray(plain(second)))
