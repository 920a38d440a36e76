"""fill-mask: outputs equal to transformers' pipeline on the same tiny masked-LM checkpoints."""

import json
import re
import shutil

import pytest

from hugkit import pipeline
from tests.assets import GPT2_FILES, MINILM, require
from tests.pipelines.conftest import TINY


def _peaked(model):
    """Random heads give near-uniform scores over the vocabulary; larger (tied) embeddings make the top
    candidates differ clearly, so the order and the scores compared below mean something."""
    import torch

    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(60)
    return model


def _build(kind, folder):
    import torch
    import transformers

    torch.manual_seed(0)
    if kind == "bert":
        model = transformers.BertForMaskedLM(transformers.BertConfig(vocab_size=30522, **TINY))
    elif kind == "distilbert":
        config = transformers.DistilBertConfig(
            vocab_size=30522, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=128
        )
        model = transformers.DistilBertForMaskedLM(config)
    else:
        config = transformers.RobertaConfig(vocab_size=50265, **{**TINY, "max_position_embeddings": 130})
        model = transformers.RobertaForMaskedLM(config)
    _peaked(model.eval()).save_pretrained(folder)
    if kind == "roberta":
        source = require(GPT2_FILES)
        shutil.copy(source / "encoder.json", folder / "vocab.json")
        shutil.copy(source / "vocab.bpe", folder / "merges.txt")
        (folder / "tokenizer_config.json").write_text(
            json.dumps({"tokenizer_class": "RobertaTokenizer", "model_max_length": 128})
        )
    else:
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
            shutil.copy(require(MINILM) / name, folder / name)
    return folder


@pytest.fixture(scope="module", params=["bert", "distilbert", "roberta"])
def pipes(request, tmp_path_factory):
    import transformers

    folder = _build(request.param, tmp_path_factory.mktemp(f"tiny-{request.param}-mlm"))
    theirs = transformers.pipeline("fill-mask", model=str(folder), device="cpu")
    return pipeline("fill-mask", model=str(folder)), theirs


def assert_same(ours, theirs, tol=1e-4):
    """Same nesting, same tokens, strings and sequences in the same order, scores within tol."""
    assert type(ours) is type(theirs), (ours, theirs)
    if isinstance(theirs, list):
        assert len(ours) == len(theirs), (ours, theirs)
        for a, b in zip(ours, theirs):
            assert_same(a, b, tol)
    else:
        assert set(ours) == set(theirs)
        assert (ours["token"], ours["token_str"], ours["sequence"]) == (theirs["token"], theirs["token_str"], theirs["sequence"])
        assert ours["score"] == pytest.approx(float(theirs["score"]), abs=tol)


def _texts(mask):
    return [
        f"Paris is the {mask} of France.",
        f"The {mask} sat on the {mask}.",
        f"I would like a cup of {mask}, please, because it has been a very long and tiring day at work.",
        f"{mask}",
    ]


def test_outputs_match_transformers(pipes):
    ours, theirs = pipes
    texts = _texts(ours.tokenizer.mask_token)
    first = ours(texts[0])
    assert first[0]["score"] > 2 * first[-1]["score"], "the fixture should give distinct top candidates"
    assert_same(first, theirs(texts[0]))
    assert_same(ours(texts[1]), theirs(texts[1]))  # two masks: one list per mask
    assert_same(ours(texts), theirs(texts))
    assert_same(ours(texts, top_k=2, batch_size=3), theirs(texts, top_k=2, batch_size=3))
    assert_same(ours(texts[:1]), theirs(texts[:1]))  # a list of one text is unwrapped
    assert_same(ours(texts[2], top_k=12), theirs(texts[2], top_k=12))


def test_targets_match_transformers(pipes, caplog):
    ours, theirs = pipes
    text = _texts(ours.tokenizer.mask_token)[0]
    vocab = ours.tokenizer.get_vocab()
    in_vocab = [t for t in ("city", "capital", "Ġcity", "Ġcapital", "town") if t in vocab]
    assert len(in_vocab) >= 2
    assert_same(ours(text, targets=in_vocab), theirs(text, targets=in_vocab))
    assert_same(ours(text, targets=in_vocab, top_k=1), theirs(text, targets=in_vocab, top_k=1))
    assert_same(ours(text, targets=in_vocab[0]), theirs(text, targets=in_vocab[0]))
    # Not in the vocabulary: transformers uses the first token of the word, and says so.
    odd = ["zzyzxville", "Capitalization"]
    with caplog.at_level("WARNING", logger="hugkit"):
        assert_same(ours(text, targets=odd), theirs(text, targets=odd))
    assert "not in the vocabulary" in caplog.text
    two_masks = _texts(ours.tokenizer.mask_token)[1]
    assert_same(ours(two_masks, targets=in_vocab), theirs(two_masks, targets=in_vocab))


def test_batching_and_lazy_iteration_keep_order(pipes):
    ours, _ = pipes
    texts = _texts(ours.tokenizer.mask_token)
    one_by_one = [ours(text) for text in texts]
    for batch_size in (1, 2, 16):
        assert_same(ours(texts, batch_size=batch_size), one_by_one, tol=1e-5)
    assert_same(list(ours(iter(texts), batch_size=2)), one_by_one, tol=1e-5)


def test_long_input_is_truncated_and_a_lost_mask_is_explained(pipes):
    ours, _ = pipes
    mask = ours.tokenizer.mask_token
    long_text = f"A {mask} here. " + "and more words " * 300
    assert ours(long_text)[0]["token_str"] == ours(f"A {mask} here. " + "and more words " * 60)[0]["token_str"]
    with pytest.raises(ValueError, match="past the model's input limit"):
        ours("and more words " * 300 + mask)


def test_bad_inputs_get_clear_errors(pipes):
    ours, _ = pipes
    mask = ours.tokenizer.mask_token
    other = "<mask>" if mask == "[MASK]" else "[MASK]"
    with pytest.raises(ValueError, match=r"No mask_token .* has no mask token"):
        ours("There is nothing to fill here.")
    with pytest.raises(ValueError, match=re.escape(f"uses {other!r}, which is another model family's mask token")):
        ours(f"Paris is the {other} of France.")
    with pytest.raises(ValueError, match="No mask_token"):
        ours([f"fine {mask}", "no mask"])
    with pytest.raises(ValueError, match="empty string"):
        ours("")
    for bad_k in (0, -1, 2.5):
        with pytest.raises(ValueError, match="top_k must be a positive integer"):
            ours(f"a {mask}", top_k=bad_k)
    with pytest.raises(TypeError, match="targets must be a string or a list of strings"):
        ours(f"a {mask}", targets=[3])
    with pytest.raises(TypeError, match="Expected the input to be a string, got int"):
        ours(5)


def test_tokenizer_without_mask_token_is_refused(tmp_path):
    import transformers

    folder = tmp_path / "gpt2-tokenizer"
    config = transformers.RobertaConfig(vocab_size=50265, **{**TINY, "max_position_embeddings": 130})
    transformers.RobertaForMaskedLM(config).save_pretrained(folder)
    shutil.copy(require(GPT2_FILES) / "encoder.json", folder / "vocab.json")
    shutil.copy(require(GPT2_FILES) / "vocab.bpe", folder / "merges.txt")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2Tokenizer"}))
    with pytest.raises(ValueError, match="defines no mask token"):
        pipeline("fill-mask", model=str(folder))


def test_classifier_checkpoint_is_refused(tiny_bert_classifier):
    with pytest.raises(ValueError, match="cannot be used for 'fill-mask'.*no trained masked-lm head"):
        pipeline("fill-mask", model=str(tiny_bert_classifier))
