"""text-classification: outputs equal to transformers' pipeline on the same tiny checkpoints, and hugkit's extras."""

import pytest

from hugkit import pipeline

TEXTS = [
    "I love this movie!",
    "An utterly boring, predictable and far too long film that I would not recommend to anyone at all.",
    "ok",
    "Ça a l'air génial — 東京 🎉",
    "The second act drags.",
]


@pytest.fixture(scope="module")
def hf_pipeline():
    import transformers

    def build(folder, **kwargs):
        return transformers.pipeline("text-classification", model=str(folder), device="cpu", **kwargs)

    return build


def assert_same(ours, theirs, tol=1e-5):
    """Same nesting, same labels in the same order, scores within tol."""
    assert type(ours) is type(theirs), (ours, theirs)
    if isinstance(theirs, list):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_same(a, b, tol)
    else:
        assert ours["label"] == theirs["label"]
        assert ours["score"] == pytest.approx(theirs["score"], abs=tol)


@pytest.mark.parametrize("fixture", ["tiny_bert_classifier", "tiny_distilbert_classifier", "tiny_roberta_classifier"])
def test_outputs_match_transformers(fixture, request, hf_pipeline):
    folder = request.getfixturevalue(fixture)
    ours, theirs = pipeline("text-classification", model=str(folder)), hf_pipeline(folder)
    assert_same(ours(TEXTS[0]), theirs(TEXTS[0]))
    assert_same(ours(TEXTS), theirs(TEXTS))
    assert_same(ours(TEXTS[0], top_k=2), theirs(TEXTS[0], top_k=2))
    assert_same(ours(TEXTS, top_k=None), theirs(TEXTS, top_k=None))
    assert_same(ours(TEXTS[:2], function_to_apply="sigmoid"), theirs(TEXTS[:2], function_to_apply="sigmoid"))
    assert_same(ours(TEXTS[:2], function_to_apply="none", top_k=None), theirs(TEXTS[:2], function_to_apply="none", top_k=None))
    pair = {"text": "A man is playing a guitar.", "text_pair": "Someone makes music."}
    assert_same(ours(pair), theirs(pair))
    assert_same(ours([pair, pair]), theirs([pair, pair]))


def test_top_k_at_construction_keeps_transformers_nesting(tiny_bert_classifier, hf_pipeline):
    ours = pipeline("text-classification", model=str(tiny_bert_classifier), top_k=None)
    theirs = hf_pipeline(tiny_bert_classifier, top_k=None)
    assert_same(ours("great"), theirs("great"))
    assert_same(ours(["great", "awful"]), theirs(["great", "awful"]))


def test_batching_restores_order_and_matches_unbatched(tiny_bert_classifier):
    clf = pipeline("text-classification", model=str(tiny_bert_classifier), top_k=None)
    one_by_one = [clf(text, top_k=None) for text in TEXTS]
    for batch_size in (1, 2, 32):
        batched = clf(TEXTS, batch_size=batch_size, top_k=None)
        for a, b in zip(batched, one_by_one):
            assert [x["label"] for x in a] == [x["label"] for x in b]
            assert [x["score"] for x in a] == pytest.approx([x["score"] for x in b], abs=1e-5)


def test_any_iterable_is_processed_lazily(tiny_bert_classifier):
    clf = pipeline("sentiment-analysis", model=str(tiny_bert_classifier), batch_size=4)
    consumed = []

    def texts():
        for i in range(600):
            consumed.append(i)
            yield TEXTS[i % len(TEXTS)]

    results = clf(texts())
    assert not consumed, "nothing should run before the first result is asked for"
    first = next(results)
    expected = clf(TEXTS[0])[0]
    assert first["label"] == expected["label"] and first["score"] == pytest.approx(expected["score"], abs=1e-5)
    assert len(consumed) < 600, "results must flow before the whole iterable is read"
    rest = list(results)
    assert len(rest) == 599
    assert [r["label"] for r in rest[-5:]] == [clf(TEXTS[i % len(TEXTS)])[0]["label"] for i in range(595, 600)]


def test_long_input_is_truncated_not_crashing(tiny_bert_classifier):
    clf = pipeline("text-classification", model=str(tiny_bert_classifier))
    huge = "word " * 200_000  # 1 MB
    result = clf(huge)
    assert result[0]["label"] in {"NEGATIVE", "NEUTRAL", "POSITIVE"}
    assert result == clf(" ".join(["word"] * 500))  # the same first 126 word-pieces decide


@pytest.mark.parametrize(
    "bad, error, message",
    [
        ("", ValueError, "empty string"),
        ("   ", ValueError, "empty string"),
        (None, ValueError, "got None"),
        (42, TypeError, "Expected the input to be a string, got int"),
        ([["a", "b"]], ValueError, "pass a dict"),
        ({"txt": "a"}, ValueError, "got keys"),
        (["fine", 3.5], TypeError, "got float"),
    ],
)
def test_bad_inputs_get_clear_errors(tiny_bert_classifier, bad, error, message):
    clf = pipeline("text-classification", model=str(tiny_bert_classifier))
    with pytest.raises(error, match=message):
        clf(bad)


def test_bad_options(tiny_bert_classifier):
    clf = pipeline("text-classification", model=str(tiny_bert_classifier))
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        clf("x", top_k=0)
    with pytest.raises(ValueError, match="function_to_apply must be one of"):
        clf("x", function_to_apply="relu")
    with pytest.raises(TypeError, match="unexpected keyword arguments: \\['colour'\\]"):
        clf("x", colour="red")


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(KeyError, match="Unknown task 'sentiment'.*sentiment-analysis.*text-classification"):
        pipeline("sentiment")


def test_base_model_is_refused_for_classification(tiny_bert_base):
    with pytest.raises(ValueError, match="cannot be used for 'text-classification'.*no trained sequence-classification head"):
        pipeline("text-classification", model=str(tiny_bert_base))


def test_missing_tokenizer_file_is_named(tiny_bert_classifier, tmp_path):
    import shutil

    folder = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_bert_classifier, folder)
    for name in ("tokenizer.json", "vocab.txt"):
        (folder / name).unlink()
    with pytest.raises(Exception, match="tokenizer"):
        pipeline("text-classification", model=str(folder))


def test_model_and_tokenizer_objects(tiny_bert_classifier):
    from hugkit import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_classifier)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_classifier)
    by_objects = pipeline("text-classification", model=model, tokenizer=tokenizer)
    by_path = pipeline("text-classification", model=str(tiny_bert_classifier))
    assert by_objects(TEXTS) == by_path(TEXTS)
