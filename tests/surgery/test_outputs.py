"""output_hidden_states / output_attentions for the decoders, against transformers (eager attention, which is the
only implementation that returns probabilities), and reading only k layers when num_hidden_layers=k at load."""

from __future__ import annotations

import pytest
import torch
import transformers

import hugkit
import hugkit.modeling_utils as modeling_utils

from .conftest import DECODERS, assert_close, load_hugkit, make_inputs


@pytest.mark.parametrize("arch", DECODERS)
def test_decoder_hidden_states_and_attentions_match(arch, checkpoint):
    folder, _ = checkpoint(arch)
    reference = transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    model = load_hugkit(folder)
    inputs = make_inputs(arch)
    real = inputs["attention_mask"].bool()
    positions = hugkit.kv_cache.positions_from_mask(inputs["attention_mask"])
    with torch.no_grad():
        expected = reference(**inputs, position_ids=positions, output_hidden_states=True, output_attentions=True)
        got = model(**inputs, position_ids=positions, output_hidden_states=True, output_attentions=True)
        plain = model(**inputs, position_ids=positions)
        as_tuple = model(**inputs, position_ids=positions, output_hidden_states=True, return_dict=False)
    assert plain.hidden_states is None and plain.attentions is None
    assert_close(got.logits[real], plain.logits[real], what="eager vs fused logits")
    assert len(got.hidden_states) == len(expected.hidden_states) == 4
    for i, (mine, theirs) in enumerate(zip(got.hidden_states, expected.hidden_states)):
        assert_close(mine[real], theirs[real], what=f"hidden_states[{i}]")
    assert len(got.attentions) == len(expected.attentions) == 3
    for i, (mine, theirs) in enumerate(zip(got.attentions, expected.attentions)):
        # Rows of padding queries are arbitrary in both libraries; compare the real query rows.
        assert_close(mine.transpose(1, 2)[real], theirs.transpose(1, 2)[real], atol=1e-5, what=f"attentions[{i}]")
    assert len(as_tuple) == 2 and len(as_tuple[1]) == 4  # logits, hidden states (no cache was asked for)


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama"])
def test_fewer_layers_at_load_reads_only_those_layers(arch, checkpoint, monkeypatch):
    """num_hidden_layers=k at load: only the tensors of layers 0..k-1 (and the non-layer tensors) are read into
    the model; the others are skipped by name, never materialised."""
    folder, reference = checkpoint(arch)
    assigned: list[str] = []
    original = modeling_utils._assign
    monkeypatch.setattr(modeling_utils, "_assign", lambda model, key, t: (assigned.append(key), original(model, key, t)))
    model = load_hugkit_with_layers(folder, arch, 1)
    per_layer = [k for k in assigned if ".0." in k or ".1." in k or ".2." in k]
    layer_keys = [k for k in reference.state_dict() if ".layer.0." in k or ".h.0." in k or ".layers.0." in k]
    assert per_layer and all(".0." in k for k in per_layer)
    assert len(per_layer) == len(layer_keys)
    assert model.config.num_hidden_layers == 1


def load_hugkit_with_layers(folder, arch, layers):
    auto = hugkit.AutoModelForCausalLM if arch in DECODERS else hugkit.AutoModelForMaskedLM
    return auto.from_pretrained(folder, num_hidden_layers=layers)


def test_fewer_layers_at_load_of_a_pruned_checkpoint(checkpoint, tmp_path):
    """Records for layers past num_hidden_layers are dropped from the config; the kept layers keep their shapes."""
    from hugkit import prune_ffn_, prune_heads_

    folder, _ = checkpoint("qwen2")
    model = prune_ffn_(prune_heads_(load_hugkit(folder), {0: [1, 3], 2: [0, 1]}), {0: 4, 2: 8})
    model.save_pretrained(tmp_path)
    small = load_hugkit_with_layers(tmp_path, "qwen2", 2)
    assert small.config.pruned_heads == {0: [1, 3]}
    assert small.config.intermediate_sizes == [33, 37]
    attention = small.model.layers[0].self_attn
    assert (attention.num_heads, attention.num_kv_heads, attention.q_proj.weight.shape[0]) == (2, 2, 16)
    inputs = make_inputs("qwen2")
    with torch.no_grad():
        hidden = small(**inputs, output_hidden_states=True).hidden_states
        full = model(**inputs, output_hidden_states=True).hidden_states
    assert_close(hidden[1], full[1], atol=1e-6, what="first layer output")  # same layer 0 in both
