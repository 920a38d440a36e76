"""Fixtures: an isolated conversion cache, tiny trained vocabularies, and one folder per tokenizer format.

Every format folder is loaded by transformers' AutoTokenizer (the reference) and by hugkit from the same files.
SentencePiece models are trained here with the sentencepiece trainer; WordPiece and byte-level BPE vocabularies
with the tokenizers trainers; real vocabularies come from the fetched assets.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.assets import ASSETS, GPT2_FILES, MINILM, require
from tests.tokenization.helpers import make_folder, training_corpus

LLAMA3 = ASSETS / "llama3" / "package" / "models"


@pytest.fixture(scope="package", autouse=True)
def isolated_conversion_cache(tmp_path_factory):
    """Converted tokenizers are cached under HUGKIT_CACHE; tests never touch the user's cache."""
    root = tmp_path_factory.mktemp("hugkit-cache")
    previous = os.environ.get("HUGKIT_CACHE")
    os.environ["HUGKIT_CACHE"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("HUGKIT_CACHE", None)
    else:
        os.environ["HUGKIT_CACHE"] = previous


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(training_corpus()), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def spm_models(tmp_path_factory, corpus_file) -> dict[str, Path]:
    """Tiny SentencePiece models with the id layouts real checkpoints use."""
    import sentencepiece
    folder = tmp_path_factory.mktemp("spm")
    common = dict(input=str(corpus_file), minloglevel=2, num_threads=1)
    layouts = {
        # fairseq-style (XLM-R, CamemBERT): <unk>=0 <s>=1 </s>=2; one user-defined piece
        "unigram": dict(model_type="unigram", vocab_size=220, user_defined_symbols=["<sep2>"]),
        # T5: <pad>=0 </s>=1 <unk>=2, no bos
        "t5": dict(model_type="unigram", vocab_size=200, pad_id=0, eos_id=1, unk_id=2, bos_id=-1),
        # Llama: byte-fallback BPE, <unk>=0 <s>=1 </s>=2
        "bpe": dict(model_type="bpe", vocab_size=420, byte_fallback=True),
        # ALBERT: <pad>=0 <unk>=1 [CLS]=2 [SEP]=3, [MASK] as a control symbol
        "albert": dict(model_type="unigram", vocab_size=200, pad_id=0, unk_id=1, bos_id=2, eos_id=3,
                       bos_piece="[CLS]", eos_piece="[SEP]", control_symbols=["[MASK]"]),
        # DeBERTa-v3: [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3
        "deberta": dict(model_type="unigram", vocab_size=200, pad_id=0, bos_id=1, eos_id=2, unk_id=3,
                        pad_piece="[PAD]", bos_piece="[CLS]", eos_piece="[SEP]", unk_piece="[UNK]"),
    }
    paths = {}
    for name, options in layouts.items():
        prefix = folder / name
        sentencepiece.SentencePieceTrainer.train(model_prefix=str(prefix), **common, **options)
        paths[name] = prefix.with_suffix(".model")
    return paths


@pytest.fixture(scope="session")
def wordpiece_cased_vocab(tmp_path_factory) -> Path:
    from tokenizers import BertWordPieceTokenizer

    tokenizer = BertWordPieceTokenizer(lowercase=False, strip_accents=False)
    tokenizer.train_from_iterator(training_corpus(), vocab_size=600, min_frequency=1, show_progress=False)
    folder = tmp_path_factory.mktemp("wordpiece")
    tokenizer.save_model(str(folder))
    return folder / "vocab.txt"


@pytest.fixture(scope="session")
def byte_level_files(tmp_path_factory) -> tuple[Path, Path]:
    """A RoBERTa-style vocabulary: <s> <pad> </s> <unk> <mask> first, then byte-level BPE."""
    from tokenizers import ByteLevelBPETokenizer

    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(training_corpus(), vocab_size=500, min_frequency=1, show_progress=False,
                                  special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    folder = tmp_path_factory.mktemp("bytelevel")
    vocab, merges = tokenizer.save_model(str(folder))
    return Path(vocab), Path(merges)


# name -> how to build the folder; each case also says which transformers class must load it.
def _build_case(name: str, root: Path, spm_models, wordpiece_cased_vocab, byte_level_files) -> tuple[Path, str]:
    folder = root / name
    if name == "minilm_tokenizer_json":
        return require(MINILM), "BertTokenizer"
    if name == "llama3_tokenizer_json":
        return require(LLAMA3), "TokenizersBackend"
    if name == "minilm_vocab_txt":
        require(MINILM)
        return make_folder(folder, {name: MINILM / name for name in
                                    ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json")}), "BertTokenizer"
    if name == "bert_cased_vocab_txt":
        return make_folder(folder, {"vocab.txt": wordpiece_cased_vocab},
                           {"tokenizer_class": "BertTokenizer", "do_lower_case": False}), "BertTokenizer"
    if name == "distilbert_vocab_txt":
        require(MINILM)
        return make_folder(folder, {"vocab.txt": MINILM / "vocab.txt"},
                           {"tokenizer_class": "DistilBertTokenizer", "model_max_length": 64}), "DistilBertTokenizer"
    if name == "gpt2_vocab_merges":
        require(GPT2_FILES)
        return make_folder(folder, {"vocab.json": GPT2_FILES / "encoder.json", "merges.txt": GPT2_FILES / "vocab.bpe"},
                           {"tokenizer_class": "GPT2Tokenizer", "model_max_length": 1024}), "GPT2Tokenizer"
    vocab, merges = byte_level_files
    if name == "roberta_vocab_merges":
        return make_folder(folder, {"vocab.json": vocab, "merges.txt": merges},
                           {"tokenizer_class": "RobertaTokenizer", "model_max_length": 512}), "RobertaTokenizer"
    if name == "roberta_prefix_space":
        return make_folder(folder, {"vocab.json": vocab, "merges.txt": merges},
                           {"tokenizer_class": "RobertaTokenizer", "add_prefix_space": True,
                            "trim_offsets": False}), "RobertaTokenizer"
    if name == "xlm_roberta_unigram":
        return make_folder(folder, {"sentencepiece.bpe.model": spm_models["unigram"]},
                           {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512}), "XLMRobertaTokenizer"
    if name == "camembert_unigram":
        return make_folder(folder, {"sentencepiece.bpe.model": spm_models["unigram"]},
                           {"tokenizer_class": "CamembertTokenizer"}), "CamembertTokenizer"
    if name == "t5_unigram":
        return make_folder(folder, {"spiece.model": spm_models["t5"]},
                           {"tokenizer_class": "T5Tokenizer", "extra_ids": 10}), "T5Tokenizer"
    if name == "llama_bpe_byte_fallback":
        return make_folder(folder, {"tokenizer.model": spm_models["bpe"]},
                           {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False,
                            "pad_token": "<unk>"}), "LlamaTokenizer"
    if name == "llama_bpe_legacy_no_bos":
        return make_folder(folder, {"tokenizer.model": spm_models["bpe"]},
                           {"tokenizer_class": "LlamaTokenizer", "legacy": True, "add_eos_token": True}), "LlamaTokenizer"
    if name == "albert_unigram":
        return make_folder(folder, {"spiece.model": spm_models["albert"]},
                           {"tokenizer_class": "AlbertTokenizer"}), "AlbertTokenizer"
    if name == "deberta_v2_unigram":
        return make_folder(folder, {"spm.model": spm_models["deberta"]},
                           {"tokenizer_class": "DebertaV2Tokenizer", "do_lower_case": False}), "DebertaV2Tokenizer"
    if name == "generic_unigram":
        return make_folder(folder, {"tokenizer.model": spm_models["unigram"]},
                           {"tokenizer_class": "PreTrainedTokenizerFast"}), "TokenizersBackend"
    if name == "generic_bpe":
        return make_folder(folder, {"tokenizer.model": spm_models["bpe"]},
                           {"tokenizer_class": "PreTrainedTokenizerFast"}), "TokenizersBackend"
    raise KeyError(name)


FORMAT_CASES = [
    "minilm_tokenizer_json",
    "llama3_tokenizer_json",
    "minilm_vocab_txt",
    "bert_cased_vocab_txt",
    "distilbert_vocab_txt",
    "gpt2_vocab_merges",
    "roberta_vocab_merges",
    "roberta_prefix_space",
    "xlm_roberta_unigram",
    "camembert_unigram",
    "t5_unigram",
    "llama_bpe_byte_fallback",
    "llama_bpe_legacy_no_bos",
    "albert_unigram",
    "deberta_v2_unigram",
    "generic_unigram",
    "generic_bpe",
]

# Vocabulary sizes the reference must report: guards against a reference that silently built an empty vocab.
EXPECTED_REFERENCE_VOCAB = {
    "xlm_roberta_unigram": 220 + 2,  # fairseq layout: <pad> inserted at 1, <mask> appended
    "camembert_unigram": 220 + 5,
    "t5_unigram": 200 + 10,
    "llama_bpe_byte_fallback": 420,
    "llama_bpe_legacy_no_bos": 420,
    "albert_unigram": 200,
    "deberta_v2_unigram": 200,
    "generic_unigram": 220,
    "generic_bpe": 420,
    "gpt2_vocab_merges": 50257,
    "minilm_vocab_txt": 30522,
}


@pytest.fixture(scope="session")
def format_folders(tmp_path_factory, spm_models, wordpiece_cased_vocab, byte_level_files):
    root = tmp_path_factory.mktemp("formats")
    cache: dict[str, tuple[Path, str]] = {}

    def get(name: str) -> tuple[Path, str]:
        if name not in cache:
            cache[name] = _build_case(name, root, spm_models, wordpiece_cased_vocab, byte_level_files)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def reference_loader():
    """transformers' AutoTokenizer, loaded once per folder (imported lazily: it is slow to import)."""
    import transformers
    loaded = {}

    def load(folder: Path, **kwargs):
        key = (str(folder), json.dumps(kwargs, sort_keys=True))
        if key not in loaded:
            loaded[key] = transformers.AutoTokenizer.from_pretrained(str(folder), **kwargs)
        return loaded[key]

    return load


@pytest.fixture(scope="session")
def hugkit_loader():
    from hugkit.tokenization import AutoTokenizer

    loaded = {}

    def load(folder: Path, **kwargs):
        key = (str(folder), json.dumps(kwargs, sort_keys=True))
        if key not in loaded:
            loaded[key] = AutoTokenizer.from_pretrained(str(folder), **kwargs)
        return loaded[key]

    return load


@pytest.fixture(scope="session")
def pair_of_tokenizers(format_folders, reference_loader, hugkit_loader):
    """(reference, hugkit, folder) for a format case name."""

    def get(name: str):
        folder, expected_class = format_folders(name)
        reference = reference_loader(folder)
        assert type(reference).__name__ == expected_class, (name, type(reference).__name__)
        if name in EXPECTED_REFERENCE_VOCAB:
            assert reference.vocab_size == EXPECTED_REFERENCE_VOCAB[name], (name, reference.vocab_size)
        return reference, hugkit_loader(folder), folder

    return get
