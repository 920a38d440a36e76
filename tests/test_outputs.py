"""Model outputs: transformers' field order (index access depends on it) and ModelOutput's access rules."""

from __future__ import annotations

import dataclasses

import pytest

import hugkit.outputs as outputs
import transformers.modeling_outputs as reference

NAMES = (
    "BaseModelOutput",
    "BaseModelOutputWithPooling",
    "SequenceClassifierOutput",
    "TokenClassifierOutput",
    "MaskedLMOutput",
    "QuestionAnsweringModelOutput",
    "BaseModelOutputWithPast",
    "BaseModelOutputWithPastAndCrossAttentions",
    "CausalLMOutputWithPast",
    "Seq2SeqModelOutput",
    "Seq2SeqLMOutput",
    "Seq2SeqSequenceClassifierOutput",
)


def _field_names(cls) -> list[str]:
    return [field.name for field in dataclasses.fields(cls)]


@pytest.mark.parametrize("name", NAMES)
def test_field_order_is_transformers(name):
    # transformers 5 renamed past_key_values to cache; hugkit keeps the field and reads both names.
    theirs = ["past_key_values" if field == "cache" else field for field in _field_names(getattr(reference, name))]
    assert _field_names(getattr(outputs, name)) == theirs


def test_absent_fields_are_skipped_by_index_and_key():
    out = outputs.Seq2SeqLMOutput(logits="logits", encoder_last_hidden_state="encoded")
    assert out[0] == "logits" and out[1] == "encoded" and len(out) == 2
    assert out.to_tuple() == ("logits", "encoded")
    assert list(out) == ["logits", "encoder_last_hidden_state"]
    assert out["logits"] == "logits" and "loss" not in out
    with pytest.raises(KeyError, match="'loss' is not in this output; available: \\['logits'"):
        out["loss"]


def test_cache_alias_on_every_output_with_a_cache():
    for cls in (outputs.BaseModelOutputWithPast, outputs.CausalLMOutputWithPast, outputs.Seq2SeqModelOutput,
                outputs.Seq2SeqLMOutput, outputs.Seq2SeqSequenceClassifierOutput):
        assert cls(past_key_values="kv").cache == "kv", cls.__name__


def test_a_head_carries_its_base_models_encoder_decoder_fields():
    base = outputs.Seq2SeqModelOutput(last_hidden_state="decoded", past_key_values="kv", cross_attentions="cross",
                                      encoder_last_hidden_state="encoded")
    head = outputs.Seq2SeqLMOutput(loss="loss", logits="logits", **base.seq2seq_states())
    assert head.to_tuple() == ("loss", "logits", "kv", "cross", "encoded")
