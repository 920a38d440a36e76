"""The built-in sentiment model: works offline, matches transformers on the same files, and is accurate."""

import sys
import warnings
from pathlib import Path

import pytest

from hugkit import pipeline
from tests.assets import BUILTIN_SENTIMENT, MOVIE_REVIEWS, require

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "recipes"))


@pytest.fixture(scope="module")
def classifier():
    assert (BUILTIN_SENTIMENT / "model.safetensors").is_file(), "the built-in model is missing: rebuild it with recipes/train_sentiment.py"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warnings in normal use
        return pipeline("sentiment-analysis")


def test_default_is_builtin_and_confident(classifier):
    assert Path(classifier.model.config._name_or_path) == BUILTIN_SENTIMENT
    (result,) = classifier("I love using Hugging Face!")
    assert result["label"] == "POSITIVE" and result["score"] > 0.9
    (result,) = classifier("This movie was terrible and boring.")
    assert result["label"] == "NEGATIVE" and result["score"] > 0.9


def test_same_scores_as_transformers(classifier):
    import transformers

    # transformers 5 defaults to dtype="auto" (fp16 here); hugkit runs fp32 on CPU unless asked: compare like for like.
    theirs = transformers.pipeline("sentiment-analysis", model=str(BUILTIN_SENTIMENT), device="cpu", dtype="float32")
    texts = ["A quiet triumph.", "Forgettable.", "I wanted to like it, but the script is a mess.", "Ça alors 🎬"]
    for ours_result, their_result in zip(classifier(texts), theirs(texts)):
        assert ours_result["label"] == their_result["label"]
        assert ours_result["score"] == pytest.approx(their_result["score"], abs=1e-4)


def test_held_out_accuracy(classifier):
    from sentiment_data import load_movie_review_splits

    test = load_movie_review_splits(require(MOVIE_REVIEWS))["test"]
    predictions = classifier([text for text, _ in test], batch_size=64)
    correct = sum((p["label"] == "POSITIVE") == bool(label) for p, (_, label) in zip(predictions, test))
    assert correct / len(test) >= 0.85, f"held-out accuracy {correct / len(test):.3f}"
