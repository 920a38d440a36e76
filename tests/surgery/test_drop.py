"""drop_layers_: equals a transformers model built with the kept layers only; the config and every per-layer record
follow; save -> reload; bad requests."""

from __future__ import annotations

import re

import pytest
import torch

from hugkit import drop_layers_, prune_ffn_, prune_heads_
from hugkit.kv_cache import StaticCache

from .conftest import assert_close, build_reference, load_hugkit, logits_of, make_inputs

LAYER_KEY = re.compile(r"((?:^|\.)(?:layer|layers|h)\.)(\d+)\.")
LAYER_FIELD = {"gpt2": "n_layer", "distilbert": "n_layers"}


def kept_layers_reference(arch: str, reference, kept: list[int], **overrides):
    """A transformers model with len(kept) layers holding the weights of layers ``kept`` of ``reference``."""
    small = build_reference(arch, **{LAYER_FIELD.get(arch, "num_hidden_layers"): len(kept)}, **overrides)
    renumber = {old: new for new, old in enumerate(kept)}
    state = {}
    for key, value in reference.state_dict().items():
        match = LAYER_KEY.search(key)
        if match is None:
            state[key] = value
        elif int(match.group(2)) in renumber:
            state[LAYER_KEY.sub(lambda m: f"{m.group(1)}{renumber[int(m.group(2))]}.", key, count=1)] = value
    small.load_state_dict(state)
    return small.eval()


@pytest.mark.parametrize(
    "arch, how, kept, overrides",
    [
        ("bert", {"keep": [0, 2]}, [0, 2], {}),
        ("distilbert", {"drop": [1]}, [0, 2], {}),
        ("deberta-v2", {"keep": [1]}, [1], {}),
        ("gpt2", {"keep": range(1, 3)}, [1, 2], {}),
        ("llama", {"drop": [0]}, [1, 2], {}),
        # Layers 1 and 2 slide; a 2-layer model with max_window_layers=1 would derive [full, sliding].
        ("qwen2", {"drop": [0]}, [1, 2], {"layer_types": ["sliding_attention", "sliding_attention"]}),
    ],
)
def test_dropped_layers_equal_reference_with_kept_layers(arch, how, kept, overrides, checkpoint, tmp_path):
    folder, reference = checkpoint(arch)
    model = load_hugkit(folder)
    assert drop_layers_(model, **how) is model
    expected = kept_layers_reference(arch, reference, kept, **overrides)
    inputs = make_inputs(arch)
    assert_close(logits_of(model, arch, inputs), logits_of(expected, arch, inputs), what=f"{arch} kept {kept}")
    assert model.config.num_hidden_layers == len(kept)
    if arch == "qwen2":
        assert model.config.layer_types == ["sliding_attention", "sliding_attention"]

    model.save_pretrained(tmp_path)
    reloaded = load_hugkit(tmp_path)
    assert reloaded.config.num_hidden_layers == len(kept)
    assert_close(logits_of(reloaded, arch, inputs), logits_of(model, arch, inputs), atol=1e-6, what="reloaded")


def test_dropped_decoder_renumbers_cache_slots(checkpoint):
    folder, _ = checkpoint("llama")
    model = drop_layers_(load_hugkit(folder), keep=[2])
    assert model.model.layers[0].self_attn.layer_idx == 0
    ids = torch.randint(3, 99, (1, 6), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(input_ids=ids).logits
        cache = StaticCache.for_model(model, batch_size=1, max_cache_len=6)
        steps = [model(input_ids=ids[:, :3], past_key_values=cache).logits]
        steps += [model(input_ids=ids[:, t : t + 1], past_key_values=cache).logits for t in range(3, 6)]
    assert len(cache) == 1
    assert_close(torch.cat(steps, dim=1), full, what="cached decoding")


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_records_follow_the_renumbered_layers(arch, checkpoint, tmp_path):
    """Heads pruned in layer 2 and an uneven FFN width move to layer 1 when layer 0 is dropped; reload agrees."""
    folder, _ = checkpoint(arch)
    model = load_hugkit(folder)
    prune_heads_(model, {2: [0, 2]})
    prune_ffn_(model, {1: 5, 2: 10})
    assert model.config.intermediate_sizes == [37, 32, 27]
    drop_layers_(model, drop=[0])
    assert model.config.pruned_heads == {1: [0, 2]}
    assert model.config.intermediate_sizes == [32, 27]
    inputs = make_inputs(arch)
    model.save_pretrained(tmp_path)
    reloaded = load_hugkit(tmp_path)
    assert reloaded.config.pruned_heads == {1: [0, 2]}
    assert_close(logits_of(reloaded, arch, inputs), logits_of(model, arch, inputs), atol=1e-6, what="reloaded")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"drop": [0, 1, 2]}, ValueError, r"would remove all 3 layers"),
        ({"keep": []}, ValueError, r"would remove all 3 layers"),
        ({"keep": [0, 3]}, ValueError, r"layer 3 in keep= does not exist; the model has layers 0\.\.2"),
        ({"keep": [-1]}, ValueError, r"layer -1 in keep= does not exist"),
        ({"keep": [1, 1]}, ValueError, r"lists a layer twice"),
        ({"keep": 2}, TypeError, r"takes a list or range"),
        ({"keep": [0], "drop": [1]}, TypeError, r"exactly one of keep= or drop="),
        ({}, TypeError, r"exactly one of keep= or drop="),
    ],
)
def test_bad_drop_requests(kwargs, error, message, checkpoint):
    folder, _ = checkpoint("distilbert")
    model = load_hugkit(folder)
    with pytest.raises(error, match=message):
        drop_layers_(model, **kwargs)
    assert len(model.distilbert.transformer.layer) == 3 and model.config.num_hidden_layers == 3


def test_layer_dependent_gpt2_scaling_allows_only_a_prefix(tmp_path):
    reference = build_reference("gpt2", scale_attn_by_inverse_layer_idx=True)
    reference.save_pretrained(tmp_path)
    model = load_hugkit(tmp_path)
    with pytest.raises(NotImplementedError, match=r"only a prefix of the layers can be kept"):
        drop_layers_(model, keep=[1, 2])
    drop_layers_(model, keep=[0, 1])
    expected = kept_layers_reference("gpt2", reference, [0, 1], scale_attn_by_inverse_layer_idx=True)
    inputs = make_inputs("gpt2")
    assert_close(logits_of(model, "gpt2", inputs), logits_of(expected, "gpt2", inputs), what="prefix")
