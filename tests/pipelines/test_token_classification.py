"""token-classification / ner: outputs equal to transformers' pipeline on the same tiny checkpoints."""

import json
import shutil

import pytest

from hugkit import pipeline
from tests.assets import GPT2_FILES, MINILM, require
from tests.pipelines.conftest import TINY

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "MISC"]
TEXTS = [
    "My name is Wolfgang and I live in Berlin.",
    "Hugging Face Inc. is a company based in New York City; its headquarters are in DUMBO.",
    "Ça a l'air génial à Zürich 🎉 unbelievably",
    "x",
]
LONG = " ".join(TEXTS[:3] * 3)
STRATEGIES = ["none", "simple", "first", "average", "max"]


def _build(kind, folder, max_length):
    import torch
    import transformers

    torch.manual_seed(0)
    labels = dict(id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)})
    if kind == "bert":
        model = transformers.BertForTokenClassification(transformers.BertConfig(vocab_size=30522, **TINY, **labels))
    else:
        config = transformers.RobertaConfig(vocab_size=50265, **{**TINY, "max_position_embeddings": 130}, **labels)
        model = transformers.RobertaForTokenClassification(config)
    with torch.no_grad():  # confident, varied labels, so grouping and label order are really exercised
        model.classifier.weight.mul_(80)
    model.eval().save_pretrained(folder)
    if kind == "bert":
        for name in ("tokenizer.json", "special_tokens_map.json", "vocab.txt"):
            shutil.copy(require(MINILM) / name, folder / name)
        config = json.loads((require(MINILM) / "tokenizer_config.json").read_text())
        (folder / "tokenizer_config.json").write_text(json.dumps({**config, "model_max_length": max_length}))
    else:
        shutil.copy(require(GPT2_FILES) / "encoder.json", folder / "vocab.json")
        shutil.copy(require(GPT2_FILES) / "vocab.bpe", folder / "merges.txt")
        (folder / "tokenizer_config.json").write_text(
            json.dumps({"tokenizer_class": "RobertaTokenizer", "model_max_length": max_length})
        )
    return folder


@pytest.fixture(scope="module", params=["bert", "roberta"])
def pipes(request, tmp_path_factory):
    """(hugkit, transformers) pipelines on one checkpoint whose tokenizer limit (24 tokens) is shorter than LONG."""
    import transformers

    folder = _build(request.param, tmp_path_factory.mktemp(f"tiny-{request.param}-ner"), max_length=24)
    theirs = transformers.pipeline("token-classification", model=str(folder), device="cpu")
    return pipeline("ner", model=str(folder)), theirs


def assert_same(ours, theirs, tol=1e-4):
    """Same nesting, same keys, labels, words and offsets in the same order; scores within tol."""
    assert type(ours) is type(theirs), (ours, theirs)
    if isinstance(theirs, list):
        assert len(ours) == len(theirs), (ours, theirs)
        for a, b in zip(ours, theirs):
            assert_same(a, b, tol)
    else:
        assert set(ours) == set(theirs), (ours, theirs)
        for key in theirs:
            if key == "score":
                assert ours[key] == pytest.approx(float(theirs[key]), abs=tol)
            else:
                assert ours[key] == theirs[key], (key, ours, theirs)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_outputs_match_transformers(pipes, strategy):
    ours, theirs = pipes
    expected = theirs(TEXTS, aggregation_strategy=strategy, ignore_labels=[])
    assert_same(ours(TEXTS, aggregation_strategy=strategy, ignore_labels=[]), expected)
    assert len({e.get("entity", e.get("entity_group")) for e in expected[1]}) >= 3, "labels should vary"
    assert_same(ours(TEXTS[0], aggregation_strategy=strategy), theirs(TEXTS[0], aggregation_strategy=strategy))
    assert_same(ours(TEXTS[1], aggregation_strategy=strategy, ignore_labels=["O", "MISC", "I-PER"]),
                theirs(TEXTS[1], aggregation_strategy=strategy, ignore_labels=["O", "MISC", "I-PER"]))


@pytest.mark.parametrize("strategy", STRATEGIES[1:])
@pytest.mark.parametrize("stride", [0, 5])
def test_stride_reads_long_texts_in_windows_like_transformers(pipes, strategy, stride):
    ours, theirs = pipes
    ours_long = ours(LONG, stride=stride, aggregation_strategy=strategy, ignore_labels=[])
    assert_same(ours_long, theirs(LONG, stride=stride, aggregation_strategy=strategy, ignore_labels=[]))
    assert ours_long[-1]["end"] > len(LONG) // 2, "the windows must reach the end of the text"
    assert_same(ours([LONG, TEXTS[0]], stride=stride, aggregation_strategy=strategy),
                theirs([LONG, TEXTS[0]], stride=stride, aggregation_strategy=strategy))


def test_without_stride_long_texts_are_truncated_like_transformers(pipes):
    ours, theirs = pipes
    assert_same(ours(LONG, ignore_labels=[]), theirs(LONG, ignore_labels=[]))


@pytest.mark.parametrize("strategy", ["none", "first"])
def test_pre_split_words_match_transformers(pipes, strategy):
    ours, theirs = pipes
    words = ["Wolfgang", "lives", "in", "Berlin", "unbelievably"]
    assert_same(ours(words, is_split_into_words=True, aggregation_strategy=strategy, ignore_labels=[]),
                theirs(words, is_split_into_words=True, aggregation_strategy=strategy, ignore_labels=[]))
    batch = [words, ["New", "York"]]
    assert_same(ours(batch, is_split_into_words=True, aggregation_strategy=strategy, delimiter="  "),
                theirs(batch, is_split_into_words=True, aggregation_strategy=strategy, delimiter="  "))


def test_offsets_point_into_the_text(pipes):
    ours, _ = pipes
    for entity in ours(TEXTS[1], aggregation_strategy="first", ignore_labels=[]):
        covered = TEXTS[1][entity["start"] : entity["end"]]
        assert entity["word"].replace(" ", "").lower() in covered.replace(" ", "").lower() or "[UNK]" in entity["word"]


def test_batching_and_lazy_iteration_keep_order(pipes):
    ours, _ = pipes
    one_by_one = [ours(text, aggregation_strategy="simple") for text in TEXTS]
    for batch_size in (1, 3, 16):
        assert_same(ours(TEXTS, batch_size=batch_size, aggregation_strategy="simple"), one_by_one, tol=1e-5)
    assert_same(list(ours(iter(TEXTS), aggregation_strategy="simple")), one_by_one, tol=1e-5)


def test_bad_inputs_and_options_get_clear_errors(pipes):
    ours, _ = pipes
    with pytest.raises(ValueError, match="empty string"):
        ours("")
    with pytest.raises(ValueError, match="aggregation_strategy must be one of"):
        ours("x", aggregation_strategy="longest")
    with pytest.raises(ValueError, match='needs aggregation_strategy "simple".*got aggregation_strategy="none"'):
        ours("x", stride=2, aggregation_strategy="none")
    with pytest.raises(ValueError, match=r"stride \(30\) must be smaller than the 2\d text tokens"):
        ours("x", stride=30, aggregation_strategy="simple")
    with pytest.raises(ValueError, match="stride must be a non-negative integer"):
        ours("x", stride=-1, aggregation_strategy="simple")
    with pytest.raises(ValueError, match="pass is_split_into_words=True"):
        ours([["a", "b"]])
    with pytest.raises(ValueError, match="must be a list of words, got the string"):
        ours([["a"], "b c"], is_split_into_words=True)
    with pytest.raises(TypeError, match="ignore_labels must be a list"):
        ours("x", ignore_labels="O")
    with pytest.raises(TypeError, match="got int"):
        ours(3)


def test_base_model_is_refused(tiny_bert_base):
    with pytest.raises(ValueError, match="cannot be used for 'token-classification'.*no trained token-classification head"):
        pipeline("ner", model=str(tiny_bert_base))
