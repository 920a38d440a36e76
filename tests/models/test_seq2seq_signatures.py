"""Encoder-decoder forwards take transformers 5's arguments in transformers 5's order (positional callers get the
right tensors), and accept its ``cache=`` name for the decoder cache beside ``past_key_values``."""

from __future__ import annotations

import inspect

import pytest
import torch

import hugkit.models.bart as bart
import hugkit.models.marian as marian
import hugkit.models.t5 as t5
import hugkit.models.whisper as whisper
import transformers
from hugkit.auto import AutoModelForSeq2SeqLM
from hugkit.kv_cache import EncoderDecoderCache

CLASSES = [
    ("BartModel", bart.BartModel), ("BartForConditionalGeneration", bart.BartForConditionalGeneration),
    ("BartForSequenceClassification", bart.BartForSequenceClassification), ("T5Model", t5.T5Model),
    ("T5ForConditionalGeneration", t5.T5ForConditionalGeneration), ("MarianMTModel", marian.MarianMTModel),
    ("WhisperModel", whisper.WhisperModel), ("WhisperForConditionalGeneration", whisper.WhisperForConditionalGeneration),
]


def _parameters(cls) -> list[str]:
    return [p for p in inspect.signature(cls.forward).parameters if p not in ("self", "kwargs")]


@pytest.mark.parametrize("name, ours", CLASSES, ids=[name for name, _ in CLASSES])
def test_argument_order_is_transformers(name, ours):
    # hugkit spells the cache slot past_key_values (and accepts cache= too); transformers 5 names it cache.
    theirs = ["past_key_values" if p == "cache" else p for p in _parameters(getattr(transformers, name)) if p != "return_dict"]
    mine = _parameters(ours)
    assert mine[: len(theirs)] == theirs
    assert "cache" in mine


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    config = transformers.BartConfig(
        vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64,
    )
    torch.manual_seed(0)
    reference = transformers.BartForConditionalGeneration(config).eval()
    folder = tmp_path_factory.mktemp("bart")
    reference.save_pretrained(folder)
    return AutoModelForSeq2SeqLM.from_pretrained(folder), reference


def test_positional_call_and_cache_keyword(models):
    model, reference = models
    ids = torch.randint(3, 99, (2, 7))
    mask = torch.ones_like(ids)
    decoder = torch.randint(3, 99, (2, 4))
    embeds = model.get_input_embeddings()(ids)
    with torch.no_grad():
        # (input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs, cache, inputs_embeds)
        ours = model(None, mask, decoder, None, None, None, embeds).logits
        theirs = reference(None, mask, decoder, None, None, None, embeds, use_cache=False).logits
        assert torch.allclose(ours, theirs, atol=1e-5)
        cache = EncoderDecoderCache.for_model(model, 2, 8)
        out = model(ids, mask, decoder[:, :3], None, None, cache, cache_position=torch.arange(3))
        cache.seen_tokens = 3
        assert out.past_key_values is cache
        step = model(ids, mask, decoder[:, 3:], cache=cache, cache_position=torch.tensor([3])).logits
        full = model(ids, mask, decoder).logits
        assert torch.allclose(step[:, -1], full[:, -1], atol=1e-5)
        with pytest.raises(ValueError):
            model(ids, mask, decoder, past_key_values=cache, cache=EncoderDecoderCache())
