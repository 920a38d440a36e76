"""Accuracy of the schemes on real weights (bounds measured, see the comments; each fails on a broken quantizer):
MiniLM sentence embeddings, the built-in sentiment model on its held-out split, SmolLM2's next-token distributions."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

from hugkit import AutoModel, AutoModelForCausalLM, AutoTokenizer, pipeline, quantize_
from hugkit.quantization.base import QuantizedLinear
from tests.assets import BUILTIN_SENTIMENT, MINILM, MOVIE_REVIEWS, SMOLLM2_GGUF, require

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "recipes"))

SENTENCES = [
    "The cat sits on the mat.", "A dog is playing in the garden.", "Stock markets fell sharply on Monday.",
    "I love this movie, the acting was superb!", "Quantum computers use qubits instead of bits.",
    "The recipe needs two eggs and a cup of flour.", "She forgot her umbrella and got soaked in the rain.",
    "Paris is the capital of France.",
]
# Minimum cosine (over the sentences) to the fp32 embedding. Measured: int8 0.9994, dynamic-int8 0.962, int4 (g64)
# 0.952, q8_0 0.9998, q4_0 0.961, q4_1 0.965. Round-to-nearest int4 misses the 0.98 target; GPTQ calibration
# reaches it (tests/quantization/test_gptq.py).
MINILM_MIN_COSINE = {"int8": 0.998, "dynamic-int8": 0.95, "int4": 0.94, "q8_0": 0.999, "q4_0": 0.95, "q4_1": 0.955}


def _embed(model, batch) -> torch.Tensor:
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


@pytest.fixture(scope="module")
def minilm():
    folder = require(MINILM)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = dict(tokenizer(SENTENCES, padding=True, return_tensors="pt"))
    return folder, batch, _embed(AutoModel.from_pretrained(folder), batch)


@pytest.mark.parametrize("scheme", list(MINILM_MIN_COSINE))
def test_minilm_embeddings_cosine(minilm, scheme):
    folder, batch, reference = minilm
    got = _embed(AutoModel.from_pretrained(folder, quantization=scheme), batch)
    cosine = (got * reference).sum(-1)
    assert cosine.min() >= MINILM_MIN_COSINE[scheme], f"{scheme}: min cosine {cosine.min():.4f}"


@pytest.fixture(scope="module")
def held_out():
    from sentiment_data import load_movie_review_splits

    return load_movie_review_splits(require(MOVIE_REVIEWS))["test"]


def _accuracy(classifier, rows) -> float:
    predictions = classifier([text for text, _ in rows], batch_size=32)
    return sum((p["label"] == "POSITIVE") == bool(label) for p, (_, label) in zip(predictions, rows)) / len(rows)


@pytest.fixture(scope="module")
def fp32_accuracy(held_out):
    return _accuracy(pipeline("sentiment-analysis", model=str(BUILTIN_SENTIMENT)), held_out)


# Allowed change of held-out accuracy (fp32: 0.8808). Measured: int8 within 0.5 points; dynamic-int8 -1.25 points
# (per-tensor 7-bit activations).
MAX_ACCURACY_CHANGE = {"int8": 0.005, "dynamic-int8": 0.02}


@pytest.mark.parametrize("scheme", list(MAX_ACCURACY_CHANGE))
def test_builtin_sentiment_accuracy_change(held_out, fp32_accuracy, scheme):
    """The whole held-out split (~1k texts)."""
    classifier = pipeline("sentiment-analysis", quantization=scheme)
    assert isinstance(classifier.model.classifier, QuantizedLinear)
    accuracy = _accuracy(classifier, held_out)
    assert abs(accuracy - fp32_accuracy) <= MAX_ACCURACY_CHANGE[scheme], f"{scheme}: {accuracy:.4f} vs fp32 {fp32_accuracy:.4f}"


TEXT = ("The capital of France is Paris. It is known for the Eiffel Tower, the Louvre museum and its cafes. "
        "Every year, millions of tourists visit the city to enjoy its art, food and history.")
# Mean KL(fp32 || quantized) of the next-token distributions over TEXT (43 tokens), in nats. Measured: int8 0.0048,
# int4 (g64) 0.35.
SMOLLM2_MAX_KL = {"int8": 0.01, "int4": 0.5}


def test_smollm2_requantized_kl():
    path = require(SMOLLM2_GGUF)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    ids = torch.tensor([tokenizer(TEXT)["input_ids"]])
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, gguf_dequantize=True)
    with torch.no_grad():
        reference = torch.log_softmax(model(ids).logits[0], dim=-1)
    for scheme, bound in SMOLLM2_MAX_KL.items():
        quantized = quantize_(copy.deepcopy(model) if scheme != "int4" else model, scheme)
        with torch.no_grad():
            logp = torch.log_softmax(quantized(ids).logits[0], dim=-1)
        kl = (reference.exp() * (reference - logp)).sum(-1).mean().item()
        assert kl <= bound, f"{scheme}: mean KL {kl:.4f} nats"
