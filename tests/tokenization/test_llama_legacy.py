"""Llama/Mistral-style SentencePiece-BPE tokenizers give transformers 5's ids on the inputs where styles differ.

The tokenizer.json files are made the way checkpoints got them: a tiny byte-fallback BPE SentencePiece model
(trained here) converted by transformers' own LlamaConverter, in both of its styles (``legacy=True``: Prepend +
Replace normalizers and no pre-tokenizer; ``legacy=False``: a Metaspace pre-tokenizer), with ``add_prefix_space``
true, false or unset. transformers 5 reads only the vocabulary, merges, added tokens and post-processor of a
LlamaTokenizer's tokenizer.json and rebuilds the rest from tokenizer_config.json's ``legacy`` and
``add_prefix_space`` (a Metaspace pre-tokenizer, no normalizer), so where the file's own pipeline would give other
ids (text starting with spaces, text after special tokens), the reference and hugkit follow the class, not the file.
A checkpoint whose config.json names a Mistral model type, or whose tokenizer.json is byte-level, is read as the
file says, as transformers does.
"""

from __future__ import annotations

import json
import random
import shutil
import warnings
from pathlib import Path

import pytest
from tokenizers import AddedToken, Tokenizer, processors

from hugkit.tokenization import AutoTokenizer
from tests.tokenization.helpers import assert_same_call, assert_same_metadata, make_folder

SENTENCES = [
    "Hello world, this is a test of the tokenizer.",
    "Bonjour le monde, ceci est un essai du découpage.",
    "The quick brown fox jumps over the lazy dog again and again.",
    "Le renard brun saute par-dessus le chien paresseux.",
]
# Where the SentencePiece-BPE styles part ways: leading spaces, runs of spaces, special and added tokens followed
# by text (with and without a space), newlines, text that already holds the "▁" marker, bytes the model lacks.
TRICKY = [
    "Hello",
    " Hello",
    "  Hello",
    "   Hello  world   ",
    "Hello  world",
    "a   b    c",
    "",
    " ",
    "  ",
    "<s>Hello",
    "<s> Hello",
    "<s>  Hello",
    "</s> hi",
    "hi</s>",
    "a</s>b",
    "</s></s> x",
    " <s>  x </s>",
    "Hi <unk>there",
    "<|user|>hi",
    "<|user|> hi",
    "x <|user|>  y",
    "[INST] ok [/INST] sure",
    "[INST]ok[/INST]",
    "\nHello",
    "line one\nline two\n\n",
    "\ttab",
    "▁Hello ▁ world",
    "café déjà 漢字 🙂",
    SENTENCES[0] + "\n" + SENTENCES[1],
]
STYLES = [(legacy, prefix) for legacy in (True, False) for prefix in (True, False, None)]


def _style_id(style) -> str:
    legacy, prefix = style
    return f"legacy={legacy}-add_prefix_space={prefix}"


@pytest.fixture(scope="session")
def llama_spm(tmp_path_factory) -> Path:
    import sentencepiece

    rng = random.Random(3)
    words = " ".join(SENTENCES).split()
    lines = SENTENCES * 50 + [" ".join(rng.choice(words) for _ in range(rng.randint(2, 10))) for _ in range(400)]
    folder = tmp_path_factory.mktemp("llama-spm")
    (folder / "corpus.txt").write_text("\n".join(lines), encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(
        input=str(folder / "corpus.txt"), model_prefix=str(folder / "llama"), model_type="bpe", vocab_size=380,
        byte_fallback=True, minloglevel=2, num_threads=1, hard_vocab_limit=False)
    return folder / "llama.model"


def _llama_converter():
    """transformers 5's LlamaConverter, with the SentencePiece extractor call its BPE path expects (5.24's
    `SpmConverter.tokenizer` passes scores where the extractor now takes a model class)."""
    from tokenizers.models import BPE
    from transformers.convert_slow_tokenizer import LlamaConverter, SentencePieceExtractor

    class Extractor(SentencePieceExtractor):
        def extract(self, vocab_scores=None):
            extracted = super().extract(BPE)
            return extracted["vocab"], extracted["merges"]

    return type("LlamaConverterForTests", (LlamaConverter,), {"SpmExtractor": Extractor})


def _converted(model: Path, legacy: bool, add_prefix_space: bool | None) -> Tokenizer:
    from types import SimpleNamespace

    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(model))
    settings = {"legacy": legacy} if add_prefix_space is None else {"legacy": legacy,
                                                                     "add_prefix_space": add_prefix_space}
    original = SimpleNamespace(vocab_file=str(model), convert_ids_to_tokens=processor.id_to_piece, **settings)
    tokenizer = _llama_converter()(original).converted()
    # LlamaTokenizerFast's own template: <s> A (pairs <s> A <s> B).
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    tokenizer.add_tokens([AddedToken("<|user|>", normalized=False, special=False),
                          AddedToken("[INST]", normalized=False, special=True),
                          AddedToken("[/INST]", normalized=False, special=True)])
    return tokenizer


def _config(legacy, add_prefix_space) -> dict:
    config = {"tokenizer_class": "LlamaTokenizerFast", "legacy": legacy, "bos_token": "<s>", "eos_token": "</s>",
              "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False}
    if add_prefix_space is not None:
        config["add_prefix_space"] = add_prefix_space
    return config


@pytest.fixture(scope="session")
def llama_folder(tmp_path_factory, llama_spm):
    root = tmp_path_factory.mktemp("llama-styles")
    built: dict = {}

    def get(legacy, add_prefix_space, variant="tokenizer.json") -> Path:
        key = (legacy, add_prefix_space, variant)
        if key in built:
            return built[key]
        folder = root / f"{variant}-{legacy}-{add_prefix_space}"
        if variant in ("tokenizer.model", "mistral tokenizer.model"):
            make_folder(folder, {"tokenizer.model": llama_spm}, _config(legacy, add_prefix_space))
            if variant.startswith("mistral"):
                (folder / "config.json").write_text(json.dumps({"model_type": "mistral"}), encoding="utf-8")
        elif variant == "saved":  # written by transformers 5 itself (config with added_tokens_decoder)
            import transformers

            shutil.rmtree(folder, ignore_errors=True)
            transformers.AutoTokenizer.from_pretrained(str(get(legacy, add_prefix_space))).save_pretrained(
                str(folder))
        else:
            make_folder(folder, tokenizer_config=_config(legacy, add_prefix_space))
            _converted(llama_spm, legacy, add_prefix_space).save(str(folder / "tokenizer.json"))
            if variant == "mistral":
                (folder / "config.json").write_text(json.dumps({"model_type": "mistral"}), encoding="utf-8")
        built[key] = folder
        return folder

    return get


def _pair(folder: Path, **kwargs):
    import transformers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = transformers.AutoTokenizer.from_pretrained(str(folder), **kwargs)
    return reference, AutoTokenizer.from_pretrained(folder, **kwargs)


@pytest.mark.parametrize("variant", ["tokenizer.json", "saved", "tokenizer.model"])
@pytest.mark.parametrize("style", STYLES, ids=_style_id)
def test_tricky_strings_match(style, variant, llama_folder):
    reference, ours = _pair(llama_folder(*style, variant))
    assert type(reference).__name__ == "LlamaTokenizer" and ours.tokenizer_class == "LlamaTokenizer"
    assert_same_metadata(reference, ours)
    for text in TRICKY:
        assert_same_call(reference, ours, text, return_offsets_mapping=True, return_special_tokens_mask=True)
        assert_same_call(reference, ours, text, "  and a pair")
        assert ours.tokenize(text) == reference.tokenize(text), text
        ids = reference(text)["input_ids"]
        for skip in (False, True):
            assert ours.decode(ids, skip_special_tokens=skip) == reference.decode(ids, skip_special_tokens=skip)


@pytest.mark.parametrize("style", STYLES, ids=_style_id)
def test_batches_and_explicit_flags_match(style, llama_folder):
    folder = llama_folder(*style)
    reference, ours = _pair(folder, pad_token="<unk>")
    assert ours.padding_side == reference.padding_side == "left"
    assert_same_call(reference, ours, TRICKY, padding=True, return_tensors="pt")
    assert_same_call(reference, ours, TRICKY, padding="max_length", truncation=True, max_length=8)
    assert ours.batch_decode(reference(TRICKY)["input_ids"]) == reference.batch_decode(reference(TRICKY)["input_ids"])
    # add_bos_token / add_eos_token passed to from_pretrained rebuild the template (the config's are ignored with
    # a tokenizer.json, in both).
    reference, ours = _pair(folder, add_eos_token=True, add_bos_token=False)
    for text in TRICKY[:6]:
        assert_same_call(reference, ours, text)


@pytest.mark.parametrize("legacy", [True, False])
def test_transformers_not_the_file_decides_the_prefix(legacy, llama_folder):
    """The legacy file's Prepend normalizer adds a "▁" before text that starts with a space; transformers 5
    (and hugkit) use Metaspace, which does not. The non-legacy file agrees with its class."""
    folder = llama_folder(legacy, True)
    reference, ours = _pair(folder)
    as_written = Tokenizer.from_file(str(folder / "tokenizer.json"))
    # (<unk> is no added token of the converted file; the tokenizers register it, so leave it out here.)
    plain = [text for text in TRICKY if "<unk>" not in text]
    differs = [text for text in plain if as_written.encode(text).ids != reference(text)["input_ids"]]
    assert bool(differs) == legacy, differs
    for text in differs:
        assert ours(text)["input_ids"] == reference(text)["input_ids"]
    assert "".join(ours.tokenize("  Hello")) == "▁▁Hello"  # the two spaces, no extra prefix
    written = "".join(as_written.encode("  Hello", add_special_tokens=False).tokens)
    assert written == ("▁▁▁Hello" if legacy else "▁▁Hello")


@pytest.mark.parametrize("legacy", [True, False])
def test_mistral_model_type_reads_the_file_as_it_is(legacy, llama_folder):
    """config.json's "mistral" model type is registered to TokenizersBackend in transformers 5: the file decides
    (a tokenizer.json's own pipeline; a tokenizer.model's own normalizer spec)."""
    folder = llama_folder(legacy, True, "mistral")
    reference, ours = _pair(folder)
    assert type(reference).__name__ == ours.tokenizer_class == "TokenizersBackend"
    as_written = Tokenizer.from_file(str(folder / "tokenizer.json"))
    for text in TRICKY:
        assert_same_call(reference, ours, text)
        if "<unk>" not in text:  # not an added token of the converted file
            assert ours(text)["input_ids"] == as_written.encode(text).ids, text
    reference, ours = _pair(llama_folder(legacy, True, "mistral tokenizer.model"))
    assert type(reference).__name__ == ours.tokenizer_class == "TokenizersBackend"
    for text in TRICKY:
        assert_same_call(reference, ours, text)
        assert ours.decode(ours.encode(text)) == reference.decode(reference.encode(text))


def test_byte_level_file_named_llama_is_read_as_it_is(tmp_path):
    """A Llama 3 style (byte-level) tokenizer.json whose config says LlamaTokenizer: transformers 5 loads it with
    TokenizersBackend, since LlamaTokenizer hard-codes SentencePiece's Metaspace."""
    from tokenizers import ByteLevelBPETokenizer

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(SENTENCES * 20, vocab_size=300, min_frequency=1, show_progress=False,
                                special_tokens=["<s>", "</s>"])
    folder = make_folder(tmp_path / "byte-level", tokenizer_config={"tokenizer_class": "LlamaTokenizer",
                                                                    "bos_token": "<s>", "eos_token": "</s>"})
    trainer.save(str(folder / "tokenizer.json"))
    reference, ours = _pair(folder)
    assert type(reference).__name__ == ours.tokenizer_class == "TokenizersBackend"
    for text in TRICKY:
        assert_same_call(reference, ours, text)


def test_rebuilt_engine_is_cached(llama_folder, isolated_conversion_cache):
    folder = llama_folder(True, None)
    AutoTokenizer.from_pretrained(folder)
    before = sorted(path.name for path in Path(isolated_conversion_cache, "tokenizers").iterdir())
    again = AutoTokenizer.from_pretrained(folder)
    assert sorted(path.name for path in Path(isolated_conversion_cache, "tokenizers").iterdir()) == before
    assert again("  Hello")["input_ids"] == _pair(folder)[0]("  Hello")["input_ids"]
