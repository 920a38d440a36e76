"""generate(): token-identical to transformers for greedy decoding and the deterministic processors;
sampling reproducible under a seed; GenerationConfig semantics; clear errors for bad input."""

import json

import pytest
import torch

import hugkit
from hugkit.generation import GenerationConfig

from .conftest import EOS, KINDS


def _load(tiny_causal_lm, kind):
    folder, reference = tiny_causal_lm(kind)
    return hugkit.AutoModelForCausalLM.from_pretrained(folder), reference


def _both(model, reference, ids, mask, **kwargs):
    kwargs.setdefault("pad_token_id", 0)
    kwargs.setdefault("eos_token_id", EOS)
    expected = reference.generate(ids, attention_mask=mask, **kwargs)
    got = model.generate(ids, attention_mask=mask, **kwargs)
    return got, expected


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_matches_transformers(tiny_causal_lm, prompts, kind):
    model, reference = _load(tiny_causal_lm, kind)
    ids, mask = prompts
    got, expected = _both(model, reference, ids[:1], mask[:1], max_new_tokens=12, do_sample=False)
    assert torch.equal(got, expected)
    got, expected = _both(model, reference, ids, mask, max_new_tokens=12, do_sample=False)
    assert got.shape == (3, 22)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("kind", ["gpt2", "qwen2"])
def test_greedy_stops_at_eos_and_pads_after_it(tiny_causal_lm, prompts, kind):
    model, reference = _load(tiny_causal_lm, kind)
    ids, mask = prompts
    free = reference.generate(ids, attention_mask=mask, max_new_tokens=12, do_sample=False, pad_token_id=0, eos_token_id=EOS)
    # Row 0's 3rd new token becomes an EOS (one of a list): row 0 stops there, the others go on.
    eos = int(free[0, 12])
    got, expected = _both(model, reference, ids, mask, max_new_tokens=12, do_sample=False, eos_token_id=[EOS, eos])
    assert torch.equal(got, expected)
    assert (got[0, 13:] == 0).all()
    # All rows finished early: the output is shorter than max_new_tokens.
    eos_all = [int(free[r, 10]) for r in range(3)]
    got, expected = _both(model, reference, ids, mask, max_new_tokens=12, do_sample=False, eos_token_id=eos_all)
    assert torch.equal(got, expected)
    assert got.shape[1] == 11


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_repetition_penalty_and_no_repeat_ngram_match_transformers(tiny_causal_lm, prompts, kind):
    model, reference = _load(tiny_causal_lm, kind)
    ids, mask = prompts
    for kwargs in ({"repetition_penalty": 1.3}, {"repetition_penalty": 0.7}, {"no_repeat_ngram_size": 2},
                   {"no_repeat_ngram_size": 3, "repetition_penalty": 1.2}):
        got, expected = _both(model, reference, ids, mask, max_new_tokens=12, do_sample=False, **kwargs)
        assert torch.equal(got, expected), kwargs


def test_min_new_tokens_and_max_length_match_transformers(tiny_causal_lm, prompts):
    model, reference = _load(tiny_causal_lm, "llama")
    ids, mask = prompts
    free = reference.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=EOS)
    eos = [int(t) for t in free[:, 11]]  # would end every row after 2 tokens...
    got, expected = _both(model, reference, ids, mask, max_new_tokens=6, min_new_tokens=4, do_sample=False, eos_token_id=eos)
    assert torch.equal(got, expected)  # ...but min_new_tokens forbids EOS for 4 steps
    got, expected = _both(model, reference, ids, mask, max_length=15, do_sample=False)
    assert got.shape == (3, 15) and torch.equal(got, expected)
    got, expected = _both(model, reference, ids, mask, max_new_tokens=8, min_length=14, do_sample=False, eos_token_id=eos)
    assert torch.equal(got, expected)


def test_sampling_matches_transformers_under_the_same_seed(tiny_causal_lm, prompts):
    model, reference = _load(tiny_causal_lm, "gpt2")
    ids, mask = prompts
    for kwargs in ({"temperature": 0.7, "top_k": 20}, {"top_p": 0.8, "top_k": 0}, {"min_p": 0.1, "temperature": 1.5}):
        torch.manual_seed(11)
        expected = reference.generate(ids, attention_mask=mask, do_sample=True, max_new_tokens=10, pad_token_id=0, eos_token_id=EOS, **kwargs)
        torch.manual_seed(11)
        got = model.generate(ids, attention_mask=mask, do_sample=True, max_new_tokens=10, pad_token_id=0, eos_token_id=EOS, **kwargs)
        assert torch.equal(got, expected), kwargs


def test_sampling_is_reproducible_and_top_k_1_is_greedy(tiny_causal_lm, prompts):
    model, _ = _load(tiny_causal_lm, "qwen3")
    ids, mask = prompts
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        runs.append(model.generate(ids, attention_mask=mask, do_sample=True, max_new_tokens=10, top_p=0.9))
    assert torch.equal(runs[0], runs[1])
    greedy = model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=10)
    assert torch.equal(model.generate(ids, attention_mask=mask, do_sample=True, top_k=1, max_new_tokens=10), greedy)


def test_num_return_sequences(tiny_causal_lm, prompts):
    model, reference = _load(tiny_causal_lm, "mistral")
    ids, mask = prompts
    torch.manual_seed(5)
    out = model.generate(ids, attention_mask=mask, do_sample=True, num_return_sequences=2, max_new_tokens=5)
    assert out.shape == (6, 15)
    assert torch.equal(out[0, :10], ids[0]) and torch.equal(out[1, :10], ids[0]) and torch.equal(out[2, :10], ids[1])
    torch.manual_seed(5)
    expected = reference.generate(ids, attention_mask=mask, do_sample=True, num_return_sequences=2, max_new_tokens=5,
                                  pad_token_id=0, eos_token_id=EOS)
    assert torch.equal(out, expected)


def test_generate_tokens_yields_step_by_step(tiny_causal_lm, prompts):
    model, _ = _load(tiny_causal_lm, "llama")
    ids, mask = prompts
    full = model.generate(ids, attention_mask=mask, max_new_tokens=8)
    steps = list(hugkit.generate_tokens(model, ids, mask, max_new_tokens=8))
    assert len(steps) == 8 and all(s.shape == (3,) for s in steps)
    assert torch.equal(torch.stack(steps, dim=1), full[:, 10:])
    stream = model.generate_tokens(ids, mask, max_new_tokens=8)
    first = next(stream)
    stream.close()  # stopping early is fine
    assert torch.equal(first, full[:, 10])
    assert torch.is_grad_enabled()  # the loop does not leak no_grad into the caller


def test_generation_config_json_is_read_and_kwargs_override_it(tiny_causal_lm, prompts, tmp_path):
    import shutil

    folder, _ = tiny_causal_lm("gpt2")
    copy = tmp_path / "ckpt"
    shutil.copytree(folder, copy)
    (copy / "generation_config.json").write_text(json.dumps({"max_new_tokens": 3, "eos_token_id": EOS, "pad_token_id": 0, "transformers_version": "5.24.0"}))
    model = hugkit.AutoModelForCausalLM.from_pretrained(copy)
    assert model.generation_config.max_new_tokens == 3
    ids, mask = prompts
    assert model.generate(ids, attention_mask=mask).shape == (3, 13)
    assert model.generate(ids, attention_mask=mask, max_new_tokens=5).shape == (3, 15)
    config = GenerationConfig(max_new_tokens=4, do_sample=False)
    assert model.generate(ids, attention_mask=mask, generation_config=config).shape == (3, 14)
    model.save_pretrained(tmp_path / "saved")
    assert GenerationConfig.from_pretrained(tmp_path / "saved").max_new_tokens == 3


def test_generation_config_round_trip_and_transformers_reads_it(tmp_path):
    import transformers

    config = GenerationConfig(do_sample=True, temperature=0.6, top_p=0.9, eos_token_id=[1, 2], max_new_tokens=7)
    config.save_pretrained(tmp_path)
    assert GenerationConfig.from_pretrained(tmp_path) == config
    theirs = transformers.GenerationConfig.from_pretrained(tmp_path)
    assert (theirs.temperature, theirs.top_p, theirs.eos_token_id, theirs.max_new_tokens) == (0.6, 0.9, [1, 2], 7)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_new_tokens": 0}, "max_new_tokens should be a positive int"),
        ({"max_new_tokens": -3}, "max_new_tokens should be a positive int"),
        ({"top_p": 1.5}, "top_p should be"),
        ({"do_sample": True, "temperature": 0.0}, "temperature should be > 0 when sampling"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"num_return_sequences": 2}, "num_return_sequences=2 needs do_sample=True"),
    ],
)
def test_bad_generation_settings(tiny_causal_lm, prompts, kwargs, match):
    model, _ = _load(tiny_causal_lm, "gpt2")
    ids, mask = prompts
    with pytest.raises(ValueError, match=match):
        model.generate(ids, attention_mask=mask, **kwargs)


def test_bad_prompts_and_unknown_kwargs(tiny_causal_lm, prompts):
    model, _ = _load(tiny_causal_lm, "gpt2")
    ids, mask = prompts
    with pytest.raises(TypeError, match="max_tokens, temprature"):
        model.generate(ids, attention_mask=mask, temprature=0.5, max_tokens=3)
    with pytest.raises(ValueError, match="prompt is empty"):
        model.generate(torch.zeros(1, 0, dtype=torch.long), max_new_tokens=3)
    with pytest.raises(ValueError, match="context is 64 tokens"):
        model.generate(torch.ones(1, 65, dtype=torch.long), max_new_tokens=3)
    with pytest.raises(ValueError, match="exceeds this model's context of 64"):
        model.generate(torch.ones(1, 60, dtype=torch.long), max_new_tokens=10)
    with pytest.raises(ValueError, match="max_length is 20"):
        model.generate(torch.ones(1, 25, dtype=torch.long), max_length=20)
    with pytest.raises(ValueError, match="pad on the left"):
        model.generate(ids, attention_mask=mask.flip(1), max_new_tokens=3)
    with pytest.raises(NotImplementedError, match="output_hidden_states"):
        model.generate(ids, attention_mask=mask, output_hidden_states=True, max_new_tokens=3)
    model.generate(ids, attention_mask=mask, logits_processor=None, max_new_tokens=1)  # None is harmless
    with pytest.raises(NotImplementedError, match="assistant_model"):
        model.generate(ids, attention_mask=mask, assistant_model=model, max_new_tokens=3)
    with pytest.raises(ValueError, match="beam search knows its best sequences only at the end"):
        model.generate_tokens(ids, mask, num_beams=2, max_new_tokens=3)
    with pytest.raises(ValueError, match="streamer cannot be used with beam search"):
        model.generate(ids, attention_mask=mask, num_beams=2, max_new_tokens=3, streamer=object())
    with pytest.raises(ValueError, match="decoder-only"):
        model.generate(ids, attention_mask=mask, decoder_input_ids=ids, max_new_tokens=3)


def test_default_length_is_twenty_new_tokens_within_the_context_like_transformers(tiny_causal_lm):
    model, reference = _load(tiny_causal_lm, "gpt2")  # context 64 (learned positions)
    for length in (25, 60):  # 20 new tokens; then capped at the context: 4
        ids = torch.arange(2, 2 + length)[None] % 90 + 2
        expected = reference.generate(ids, do_sample=False, pad_token_id=0, eos_token_id=EOS)
        got = model.generate(ids)
        assert got.shape == expected.shape == (1, min(length + 20, 64)) and torch.equal(got, expected)


def test_no_warnings_in_normal_use(tiny_causal_lm, prompts, recwarn, caplog):
    model, _ = _load(tiny_causal_lm, "llama3-rope")
    ids, mask = prompts
    with caplog.at_level("WARNING", logger="hugkit"):
        model.generate(ids, attention_mask=mask, max_new_tokens=4)
        model.generate(ids, attention_mask=mask, max_new_tokens=4, do_sample=True, top_p=0.9)
    assert not caplog.records
    assert not [w for w in recwarn.list if "hugkit" in str(w.filename)]


def test_attention_mask_is_inferred_from_pad_tokens_like_transformers(tiny_causal_lm, prompts):
    model, reference = _load(tiny_causal_lm, "llama")
    ids, _ = prompts  # padding positions hold token 0 == pad_token_id
    expected = reference.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=EOS)
    got = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=EOS)
    assert torch.equal(got, expected)
