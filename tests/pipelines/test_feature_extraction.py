"""feature-extraction equals transformers' pipeline; sentence-embeddings equal sentence-transformers' recipe."""

import pytest
import torch

from hugkit import pipeline
from tests.assets import MINILM, require

TEXTS = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.", "ok"]


def test_token_states_match_transformers(tiny_bert_classifier):
    import transformers

    ours = pipeline("feature-extraction", model=str(tiny_bert_classifier))
    theirs = transformers.pipeline("feature-extraction", model=str(tiny_bert_classifier), device="cpu")
    for text in TEXTS:
        a, b = torch.tensor(ours(text)), torch.tensor(theirs(text))
        assert a.shape == b.shape and a.shape[0] == 1
        assert torch.allclose(a, b, atol=1e-4)
    batched = ours(TEXTS, batch_size=4)
    for text, states in zip(TEXTS, batched):
        assert torch.allclose(torch.tensor(states), torch.tensor(theirs(text)), atol=1e-4)
    tensor = ours(TEXTS[0], return_tensors=True)
    assert isinstance(tensor, torch.Tensor) and tensor.shape == torch.tensor(theirs(TEXTS[0])).shape


@pytest.fixture(scope="module")
def minilm_embedder():
    return pipeline("sentence-embeddings", model=str(require(MINILM)))


def test_minilm_sentence_embeddings_match_reference(minilm_embedder):
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(MINILM)
    model = transformers.AutoModel.from_pretrained(MINILM).eval()
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=-1)
    ours = torch.tensor(minilm_embedder(TEXTS))
    assert ours.shape == (4, 384)
    assert torch.allclose(ours, expected, atol=1e-5)


def test_minilm_similarity_reference_value(minilm_embedder):
    a, b = minilm_embedder(TEXTS[:2], return_tensors=True)
    assert float(a @ b) == pytest.approx(0.755, abs=0.005)
    assert float(a.norm()) == pytest.approx(1.0, abs=1e-5)


def test_pooling_options(minilm_embedder):
    cls = minilm_embedder("hello world", pooling="cls", normalize=False, return_tensors=True)
    states = pipeline("feature-extraction", model=str(MINILM))("hello world", return_tensors=True)
    assert torch.allclose(cls, states[0, 0], atol=1e-5)
    with pytest.raises(ValueError, match="pooling must be"):
        minilm_embedder("x", pooling="median")
