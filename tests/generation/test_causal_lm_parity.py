"""Causal LM architectures: same logits as transformers on padded batches; cached decoding equals a full forward."""

import pytest
import torch

import hugkit
from hugkit.kv_cache import StaticCache, positions_from_mask

from .conftest import KINDS


def _load(tiny_causal_lm, kind):
    folder, reference = tiny_causal_lm(kind)
    return hugkit.AutoModelForCausalLM.from_pretrained(folder), reference


@pytest.mark.parametrize("kind", KINDS)
def test_logits_match_transformers_on_left_padded_batch(tiny_causal_lm, prompts, kind):
    model, reference = _load(tiny_causal_lm, kind)
    ids, mask = prompts
    positions = positions_from_mask(mask)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        got = model(input_ids=ids, attention_mask=mask).logits  # positions come from the mask by default
    real = mask.bool()
    assert expected[real].abs().max() > 0.5  # the weights are not so small that any model would pass
    assert (got[real] - expected[real]).abs().max() <= 1e-4


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_unpadded_logits_and_loss(tiny_causal_lm, kind):
    model, reference = _load(tiny_causal_lm, kind)
    ids = torch.randint(0, 99, (2, 9), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = reference(input_ids=ids, labels=ids)
        got = model(input_ids=ids, labels=ids)
    assert (got.logits - expected.logits).abs().max() <= 1e-4
    assert abs(got.loss.item() - expected.loss.item()) <= 1e-4


def test_every_checkpoint_tensor_is_used(tiny_causal_lm):
    from safetensors.torch import load_file

    for kind in KINDS:
        folder, _ = tiny_causal_lm(kind)
        model = hugkit.AutoModelForCausalLM.from_pretrained(folder)
        stored = set(load_file(folder / "model.safetensors"))
        assert stored <= set(model.state_dict()), kind


@pytest.mark.parametrize("kind", KINDS)
def test_static_cache_decoding_equals_full_forward(tiny_causal_lm, prompts, kind):
    model, _ = _load(tiny_causal_lm, kind)
    ids, mask = prompts
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask).logits
        cache = StaticCache.for_model(model, batch_size=3, max_cache_len=16)
        start = 5
        steps = [model(input_ids=ids[:, :start], attention_mask=mask[:, :start], past_key_values=cache).logits]
        for t in range(start, ids.shape[1]):
            out = model(input_ids=ids[:, t : t + 1], attention_mask=mask[:, : t + 1], past_key_values=cache)
            steps.append(out.logits)
    cached = torch.cat(steps, dim=1)
    real = mask.bool()
    assert (cached[real] - full[real]).abs().max() <= 1e-4
    assert cache.get_seq_length() == ids.shape[1]


@pytest.mark.parametrize("kind", ["gpt2", "mistral"])
def test_dynamic_cache_round_trip(tiny_causal_lm, prompts, kind):
    model, _ = _load(tiny_causal_lm, kind)
    ids, mask = prompts
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask).logits
        first = model(input_ids=ids[:, :8], attention_mask=mask[:, :8], use_cache=True)
        rest = model(input_ids=ids[:, 8:], attention_mask=mask, past_key_values=first.past_key_values)
    assert first.past_key_values.get_seq_length() == 10
    assert (rest.logits - full[:, 8:]).abs().max() <= 1e-4


def test_static_cache_overflow_is_a_clear_error(tiny_causal_lm):
    model, _ = _load(tiny_causal_lm, "llama")
    cache = StaticCache.for_model(model, batch_size=1, max_cache_len=4)
    with pytest.raises(ValueError, match="static KV cache holds 4 tokens"):
        model(input_ids=torch.ones(1, 5, dtype=torch.long), past_key_values=cache)


def test_dynamic_rope_matches_transformers_past_the_trained_length():
    import transformers

    from .conftest import LLAMA_TINY

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        **{**LLAMA_TINY, "max_position_embeddings": 8}, rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}
    )
    reference = transformers.LlamaForCausalLM(config).eval()
    model = hugkit.LlamaForCausalLM(hugkit.LlamaConfig(**config.to_dict()))
    model.load_state_dict(reference.state_dict(), strict=False)
    model.tie_weights()
    ids = torch.randint(2, 98, (1, 14), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(input_ids=ids).logits
        got = model(input_ids=ids).logits
    assert (got - expected).abs().max() <= 1e-4


def test_num_hidden_layers_override_drops_layers(tiny_causal_lm):
    folder, _ = tiny_causal_lm("qwen3")
    model = hugkit.AutoModelForCausalLM.from_pretrained(folder, num_hidden_layers=1)
    assert len(model.model.layers) == 1
    assert model(input_ids=torch.ones(1, 3, dtype=torch.long)).logits.shape == (1, 3, 99)
