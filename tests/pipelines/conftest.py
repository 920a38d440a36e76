"""Tiny random classifiers saved by transformers, with real tokenizer files, for pipeline parity tests."""

import shutil

import pytest

from tests.assets import GPT2_FILES, MINILM, require

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, max_position_embeddings=128)
LABELS = {0: "NEGATIVE", 1: "NEUTRAL", 2: "POSITIVE"}


def _save(model, tokenizer_source, folder, files):
    model.save_pretrained(folder)
    for name in files:
        shutil.copy(tokenizer_source / name, folder / name)
    return folder


def _bert_like(kind, folder, head):
    import torch
    import transformers

    torch.manual_seed(0)
    if kind == "bert":
        config = transformers.BertConfig(vocab_size=30522, id2label=LABELS, **TINY)
    else:
        config = transformers.DistilBertConfig(
            vocab_size=30522, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=128, id2label=LABELS
        )
    model = getattr(transformers, head)(config).eval()
    files = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]
    return _save(model, require(MINILM), folder, files)


@pytest.fixture(scope="session")
def tiny_bert_classifier(tmp_path_factory):
    return _bert_like("bert", tmp_path_factory.mktemp("tiny-bert-cls"), "BertForSequenceClassification")


@pytest.fixture(scope="session")
def tiny_distilbert_classifier(tmp_path_factory):
    return _bert_like("distilbert", tmp_path_factory.mktemp("tiny-distilbert-cls"), "DistilBertForSequenceClassification")


@pytest.fixture(scope="session")
def tiny_bert_base(tmp_path_factory):
    return _bert_like("bert", tmp_path_factory.mktemp("tiny-bert-base"), "BertModel")


@pytest.fixture(scope="session")
def tiny_roberta_classifier(tmp_path_factory):
    import json

    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.RobertaConfig(vocab_size=50265, id2label=LABELS, **{**TINY, "max_position_embeddings": 130})
    folder = tmp_path_factory.mktemp("tiny-roberta-cls")
    transformers.RobertaForSequenceClassification(config).eval().save_pretrained(folder)
    source = require(GPT2_FILES)
    shutil.copy(source / "encoder.json", folder / "vocab.json")
    shutil.copy(source / "vocab.bpe", folder / "merges.txt")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "RobertaTokenizer", "model_max_length": 128}))
    return folder
