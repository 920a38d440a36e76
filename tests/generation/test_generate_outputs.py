"""Decoder-only generate() beyond the sequences: return_dict_in_generate outputs (scores, logits, cache, beam
fields), compute_transition_scores, user logits processors / stopping criteria, max_time and set_seed, against
transformers on the tiny random causal LMs."""

import pytest
import torch

import hugkit
import transformers
from hugkit.generation.outputs import GenerateBeamDecoderOnlyOutput, GenerateDecoderOnlyOutput

from .conftest import EOS


def _load(tiny_causal_lm, kind):
    folder, reference = tiny_causal_lm(kind)
    return hugkit.AutoModelForCausalLM.from_pretrained(folder), reference


def _both(model, reference, ids, mask, seed=None, **kwargs):
    kwargs.setdefault("pad_token_id", 0)
    kwargs.setdefault("eos_token_id", EOS)
    if seed is not None:
        torch.manual_seed(seed)
    expected = reference.generate(ids, attention_mask=mask, **kwargs)
    if seed is not None:
        torch.manual_seed(seed)
    got = model.generate(ids, attention_mask=mask, **kwargs)
    return got, expected


def _close(mine, theirs, what):
    assert len(mine) == len(theirs), what
    for i, (a, b) in enumerate(zip(mine, theirs)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5, msg=lambda m: f"{what}[{i}]: {m}")


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_return_dict_with_scores_and_logits(tiny_causal_lm, prompts, kind):
    model, reference = _load(tiny_causal_lm, kind)
    ids, mask = prompts
    settings = dict(max_new_tokens=6, return_dict_in_generate=True, output_scores=True, output_logits=True,
                    repetition_penalty=1.3, do_sample=True, top_k=10)
    got, expected = _both(model, reference, ids, mask, seed=7, **settings)
    assert isinstance(got, GenerateDecoderOnlyOutput)
    assert type(got).__name__ == type(expected).__name__
    assert torch.equal(got.sequences, expected.sequences)
    _close(got.scores, expected.scores, "scores")  # processed: penalty, top-k (-inf outside)
    _close(got.logits, expected.logits, "logits")  # raw
    assert got.past_key_values is got.cache and got.past_key_values.get_seq_length() == 15
    assert got[0] is got.sequences and list(got.keys()) == ["sequences", "scores", "logits", "past_key_values"]


@pytest.mark.parametrize("kind", ["gpt2", "qwen2"])
def test_beam_search_matches_transformers(tiny_causal_lm, prompts, kind):
    model, reference = _load(tiny_causal_lm, kind)
    ids, mask = prompts
    for kwargs in ({"num_beams": 3}, {"num_beams": 4, "num_return_sequences": 2, "length_penalty": 0.5}):
        got, expected = _both(model, reference, ids, mask, max_new_tokens=8, **kwargs)
        assert torch.equal(got, expected), kwargs
    settings = dict(max_new_tokens=8, num_beams=3, return_dict_in_generate=True, output_scores=True)
    got, expected = _both(model, reference, ids, mask, **settings)
    assert isinstance(got, GenerateBeamDecoderOnlyOutput)
    assert torch.equal(got.sequences, expected.sequences)
    assert torch.equal(got.beam_indices, expected.beam_indices)
    torch.testing.assert_close(got.sequences_scores, expected.sequences_scores, rtol=0, atol=1e-5)
    _close(got.scores, expected.scores, "beam scores")


@pytest.mark.parametrize(
    "kwargs", [{}, {"do_sample": True, "temperature": 0.7}, {"num_beams": 3, "num_return_sequences": 2}]
)
def test_compute_transition_scores_matches_transformers(tiny_causal_lm, prompts, kwargs):
    model, reference = _load(tiny_causal_lm, "llama")
    ids, mask = prompts
    got, expected = _both(model, reference, ids, mask, seed=5, max_new_tokens=6, return_dict_in_generate=True,
                          output_scores=True, **kwargs)
    assert torch.equal(got.sequences, expected.sequences)
    beams = getattr(got, "beam_indices", None)
    for normalize in (False, True):
        mine = model.compute_transition_scores(got.sequences, got.scores, beams, normalize_logits=normalize)
        theirs = reference.compute_transition_scores(
            expected.sequences, expected.scores, getattr(expected, "beam_indices", None), normalize_logits=normalize
        )
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-5)
    assert mine.shape == (got.sequences.shape[0], 6)


class _Penalise(hugkit.LogitsProcessor):
    """Push every odd token down by 3 (transformers' protocol: (input_ids, scores) -> scores)."""

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, 1::2] -= 3.0
        return scores


class _TheirPenalise(transformers.LogitsProcessor):
    def __call__(self, input_ids, scores):
        return _Penalise()(input_ids, scores)


class _StopOnToken(hugkit.StoppingCriteria):
    def __init__(self, token):
        self.token = token

    def __call__(self, input_ids, scores, **kwargs):
        return input_ids[:, -1] == self.token


class _TheirStopOnToken(transformers.StoppingCriteria):
    def __init__(self, token):
        self.token = token

    def __call__(self, input_ids, scores, **kwargs):
        return input_ids[:, -1] == self.token


def test_user_logits_processor_and_stopping_criteria(tiny_causal_lm, prompts):
    model, reference = _load(tiny_causal_lm, "gpt2")
    ids, mask = prompts
    kwargs = dict(max_new_tokens=10, do_sample=False, pad_token_id=0, eos_token_id=EOS)
    expected = reference.generate(ids, attention_mask=mask, logits_processor=transformers.LogitsProcessorList([_TheirPenalise()]), **kwargs)
    got = model.generate(ids, attention_mask=mask, logits_processor=hugkit.LogitsProcessorList([_Penalise()]), **kwargs)
    assert torch.equal(got, expected)
    assert not torch.equal(got, model.generate(ids, attention_mask=mask, **kwargs))
    # sampling: the caller's processor comes before the warpers, as in transformers
    torch.manual_seed(2)
    expected = reference.generate(ids, attention_mask=mask, logits_processor=[_TheirPenalise()], **{**kwargs, "do_sample": True, "top_k": 5})
    torch.manual_seed(2)
    got = model.generate(ids, attention_mask=mask, logits_processor=[_Penalise()], **{**kwargs, "do_sample": True, "top_k": 5})
    assert torch.equal(got, expected)

    stop = int(got[1, 12])
    expected = reference.generate(ids, attention_mask=mask, stopping_criteria=transformers.StoppingCriteriaList([_TheirStopOnToken(stop)]), **kwargs)
    got = model.generate(ids, attention_mask=mask, stopping_criteria=hugkit.StoppingCriteriaList([_StopOnToken(stop)]), **kwargs)
    assert torch.equal(got, expected)
    stream = model.generate_tokens(ids, mask, stopping_criteria=[_StopOnToken(stop)], **kwargs)
    tokens = list(stream)
    assert torch.equal(torch.stack(tokens, 1), got[:, 10:])


def test_max_time(tiny_causal_lm, prompts):
    model, reference = _load(tiny_causal_lm, "llama")
    ids, mask = prompts
    got, expected = _both(model, reference, ids, mask, max_new_tokens=40, max_time=1e-6)
    assert got.shape == expected.shape == (3, 11) and torch.equal(got, expected)
    assert model.generate(ids, attention_mask=mask, max_new_tokens=5, max_time=60.0).shape == (3, 15)
    with pytest.raises(ValueError, match="max_time should be a number of seconds > 0"):
        model.generate(ids, attention_mask=mask, max_time=-1)


def test_set_seed_matches_transformers(tiny_causal_lm, prompts):
    import random

    import numpy as np

    model, reference = _load(tiny_causal_lm, "gpt2")
    ids, mask = prompts
    kwargs = dict(do_sample=True, max_new_tokens=8, pad_token_id=0, eos_token_id=EOS)
    transformers.set_seed(42)
    expected = reference.generate(ids, attention_mask=mask, **kwargs)
    draws = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    hugkit.set_seed(42)
    got = model.generate(ids, attention_mask=mask, **kwargs)
    assert torch.equal(got, expected)
    hugkit.set_seed(42)
    reference.generate(ids, attention_mask=mask, **kwargs)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == draws
    with pytest.raises(TypeError, match="int seed"):
        hugkit.set_seed("42")
