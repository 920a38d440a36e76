"""Encoder-decoder generate() on a tiny random BART: token-identical to transformers for greedy, seeded sampling
and beam search, with its decoder-prompt, length, forced-token and checkpoint-default rules; outputs, transition
scores, user processors and criteria, streaming; clear errors for bad input."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import hugkit
import transformers
from hugkit.generation import GenerationConfig
from hugkit.generation.outputs import GenerateBeamEncoderDecoderOutput, GenerateEncoderDecoderOutput
from hugkit.kv_cache import EncoderDecoderCache

VOCAB, BOS, PAD, EOS = 99, 0, 1, 2
LENGTHS = (9, 5, 7)


def _tiny_bart(**overrides) -> transformers.BartForConditionalGeneration:
    """Large-ish random weights (init_std 0.5) so greedy decoding does not just repeat one token; non-zero biases."""
    kwargs = dict(
        vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64,
        bos_token_id=BOS, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=EOS, init_std=0.5,
    )
    torch.manual_seed(0)
    model = transformers.BartForConditionalGeneration(transformers.BartConfig(**{**kwargs, **overrides}))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") and not param.any():
                param.normal_(0.0, 0.05)
        model.final_logits_bias.normal_(0.0, 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def bart(tmp_path_factory):
    """(hugkit model, transformers model, folder), both loaded from the same saved checkpoint."""
    folder = tmp_path_factory.mktemp("bart-generate")
    _tiny_bart().save_pretrained(folder)
    reference = transformers.BartForConditionalGeneration.from_pretrained(folder).eval()
    return hugkit.AutoModelForSeq2SeqLM.from_pretrained(folder), reference, folder


def _inputs(lengths=LENGTHS, seed: int = 1) -> dict[str, torch.Tensor]:
    """<s> tokens </s> then padding, as BART's tokenizer builds a batch."""
    generator = torch.Generator().manual_seed(seed)
    length = max(lengths)
    ids = torch.randint(3, VOCAB, (len(lengths), length), generator=generator)
    mask = (torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]).long()
    ids[:, 0] = BOS
    ids[torch.arange(len(lengths)), torch.tensor(lengths) - 1] = EOS
    return {"input_ids": ids.masked_fill(mask == 0, PAD), "attention_mask": mask}


def _both(bart, seed=None, inputs=None, **kwargs):
    model, reference, _ = bart
    inputs = _inputs() if inputs is None else inputs
    if seed is not None:
        torch.manual_seed(seed)
    expected = reference.generate(**inputs, **kwargs)
    if seed is not None:
        torch.manual_seed(seed)
    got = model.generate(**inputs, **kwargs)
    return got, expected


def test_greedy_matches_transformers(bart):
    got, expected = _both(bart, max_new_tokens=12)
    assert got.shape == (3, 13) and torch.equal(got, expected)
    assert (got[:, 0] == EOS).all()  # the decoder start token (BART's </s>) leads every sequence
    got, expected = _both(bart)  # no length set anywhere: 20 new tokens, and BART's forced EOS at the end
    assert got.shape == (3, 21) and torch.equal(got, expected)
    assert (got[:, -1] == EOS).all()
    single = {k: v[1:2, :5] for k, v in _inputs().items()}
    got, expected = _both(bart, inputs=single, max_new_tokens=12)
    assert torch.equal(got, expected)


def test_eos_stops_rows_and_pads_after_them(bart):
    free, _ = _both(bart, max_new_tokens=12, forced_eos_token_id=None)
    eos = [EOS, int(free[0, 3])]  # row 0 ends at its 3rd new token; the others go on
    got, expected = _both(bart, max_new_tokens=12, eos_token_id=eos, forced_eos_token_id=None)
    assert torch.equal(got, expected)
    assert (got[0, 4:] == PAD).all()
    every = [int(free[r, 2]) for r in range(3)]
    got, expected = _both(bart, max_new_tokens=12, eos_token_id=every, forced_eos_token_id=None)
    assert got.shape[1] <= 3 and torch.equal(got, expected)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": 0.7, "top_k": 20},
        {"top_p": 0.8, "top_k": 0},
        {"min_p": 0.1, "temperature": 1.5},
        {"num_return_sequences": 3, "top_k": 10},
    ],
)
def test_seeded_sampling_matches_transformers(bart, kwargs):
    got, expected = _both(bart, seed=11, do_sample=True, max_new_tokens=10, **kwargs)
    assert got.shape[0] == 3 * kwargs.get("num_return_sequences", 1)
    assert torch.equal(got, expected)


def test_decoder_prompts(bart):
    prompt = torch.tensor([[EOS, 17, 40], [EOS, 5, 6], [EOS, 70, 71]])
    got, expected = _both(bart, decoder_input_ids=prompt, max_new_tokens=6)
    assert got.shape == (3, 9) and torch.equal(got[:, :3], prompt) and torch.equal(got, expected)
    # without the start token it is put in front, as transformers does
    got, expected = _both(bart, decoder_input_ids=prompt[:, 1:], max_new_tokens=6)
    assert torch.equal(got[:, :3], prompt) and torch.equal(got, expected)
    # max_length counts the decoder's tokens, start token and prompt included
    got, expected = _both(bart, decoder_input_ids=prompt, max_length=7)
    assert got.shape == (3, 7) and torch.equal(got, expected)


def test_lengths_and_forced_tokens(bart):
    free, _ = _both(bart, max_new_tokens=8, forced_eos_token_id=None)
    assert not (free[:, 1:] == EOS).all()
    early = [EOS, *{int(free[r, 2]) for r in range(3)}]  # every row would end after 2 tokens...
    for kwargs in (
        {"min_length": 6, "max_new_tokens": 8}, {"min_new_tokens": 4, "max_new_tokens": 8},  # ...but minimums
        {"min_length": 9, "max_length": 9},  # forbid EOS
        {"forced_bos_token_id": 42, "max_new_tokens": 8}, {"forced_eos_token_id": 7, "max_length": 5},
        {"forced_bos_token_id": 42, "forced_eos_token_id": 7, "min_length": 4, "max_new_tokens": 8},
    ):
        got, expected = _both(bart, eos_token_id=early, **kwargs)
        assert torch.equal(got, expected), kwargs
    got, _ = _both(bart, forced_bos_token_id=42, max_new_tokens=3)
    assert (got[:, 1] == 42).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"no_repeat_ngram_size": 2},
        {"repetition_penalty": 1.5},
        {"no_repeat_ngram_size": 3, "repetition_penalty": 0.8, "min_new_tokens": 3},
        {"bad_words_ids": [[88], [66, 44]], "suppress_tokens": [34]},
    ],
)
def test_processors_match_transformers(bart, kwargs):
    got, expected = _both(bart, max_new_tokens=12, **kwargs)
    assert torch.equal(got, expected), kwargs


def test_beam_search_matches_transformers(bart):
    for kwargs in (
        {"num_beams": 3}, {"num_beams": 4, "num_return_sequences": 2, "length_penalty": 2.0},
        {"num_beams": 3, "no_repeat_ngram_size": 2, "early_stopping": True},
    ):
        got, expected = _both(bart, max_new_tokens=10, **kwargs)
        assert torch.equal(got, expected), kwargs


def test_return_dict_scores_logits_and_cache(bart):
    kwargs = dict(max_new_tokens=8, return_dict_in_generate=True, output_scores=True, output_logits=True)
    got, expected = _both(bart, **kwargs)
    assert isinstance(got, GenerateEncoderDecoderOutput) and type(expected).__name__ == type(got).__name__
    assert torch.equal(got.sequences, expected.sequences)
    assert list(got.keys()) == ["sequences", "scores", "logits", "past_key_values"]
    assert len(got.scores) == len(expected.scores) == len(got.logits) == 8
    for mine, theirs in zip(got.scores, expected.scores):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-5)
    for mine, theirs in zip(got.logits, expected.logits):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-5)
    assert isinstance(got.past_key_values, EncoderDecoderCache) and got.cache is got.past_key_values
    assert got.past_key_values.get_seq_length() == expected.cache.get_seq_length() == 8
    plain = bart[0].generate(**_inputs(), max_new_tokens=8, return_dict_in_generate=True)
    assert plain.scores is None and plain.logits is None and torch.equal(plain.sequences, got.sequences)


@pytest.mark.parametrize("kwargs", [{}, {"do_sample": True, "top_k": 5}, {"num_beams": 3, "num_return_sequences": 2}])
def test_compute_transition_scores_matches_transformers(bart, kwargs):
    model, reference, _ = bart
    settings = dict(max_new_tokens=7, return_dict_in_generate=True, output_scores=True, **kwargs)
    got, expected = _both(bart, seed=3, **settings)
    assert torch.equal(got.sequences, expected.sequences)
    beams = kwargs.get("num_beams", 1) > 1
    if beams:
        assert isinstance(got, GenerateBeamEncoderDecoderOutput)
        assert torch.equal(got.beam_indices, expected.beam_indices)
        torch.testing.assert_close(got.sequences_scores, expected.sequences_scores, rtol=0, atol=1e-5)
    for normalize in (False, True):
        mine = model.compute_transition_scores(
            got.sequences, got.scores, got.beam_indices if beams else None, normalize_logits=normalize
        )
        theirs = reference.compute_transition_scores(
            expected.sequences, expected.scores, expected.beam_indices if beams else None, normalize_logits=normalize
        )
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-5)


class _BanToken:
    """A logits processor in transformers' protocol: plain callable, (input_ids, scores) -> scores."""

    def __init__(self, token: int) -> None:
        self.token = token

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, self.token] = -float("inf")
        return scores


class _StopAfter:
    """A stopping criterion: a row is done once its last token is ``token`` or it has ``length`` ids."""

    def __init__(self, token: int, length: int) -> None:
        self.token, self.length = token, length

    def __call__(self, input_ids, scores, **kwargs):
        return (input_ids[:, -1] == self.token) | torch.tensor(input_ids.shape[1] >= self.length)


def test_user_logits_processors_and_stopping_criteria(bart):
    free, _ = _both(bart, max_new_tokens=10)
    banned = int(free[0, 1])
    got, expected = _both(bart, max_new_tokens=10, logits_processor=[_BanToken(banned)])
    assert torch.equal(got, expected) and not (got[:, 1:] == banned).any()

    class BanWithBase(hugkit.LogitsProcessor):  # hugkit's base class, as a transformers user would subclass it
        def __call__(self, input_ids, scores):
            return _BanToken(banned)(input_ids, scores)

    mine = bart[0].generate(**_inputs(), max_new_tokens=10, logits_processor=hugkit.LogitsProcessorList([BanWithBase()]))
    assert torch.equal(mine, got)

    stop_token = int(free[1, 3])
    got, expected = _both(bart, max_new_tokens=10, stopping_criteria=[_StopAfter(stop_token, 99)])
    assert torch.equal(got, expected)
    assert got.shape[1] < 11 or (got[1, 4:] == PAD).all()
    got, expected = _both(bart, max_new_tokens=10, stopping_criteria=[_StopAfter(-1, 5)])
    assert got.shape == expected.shape == (3, 5) and torch.equal(got, expected)


def test_max_time_stops_generation(bart):
    got, expected = _both(bart, max_new_tokens=30, max_time=1e-6)
    assert got.shape == expected.shape == (3, 2) and torch.equal(got, expected)
    steps = bart[0].generate_tokens(**_inputs(), max_new_tokens=30, max_time=1e-6)
    assert len(list(steps)) == 1


def test_generate_tokens_and_encoder_outputs(bart):
    model, _, _ = bart
    inputs = _inputs()
    full = model.generate(**inputs, max_new_tokens=8)
    steps = list(hugkit.generate_tokens(model, inputs["input_ids"], inputs["attention_mask"], max_new_tokens=8))
    assert torch.equal(torch.stack(steps, dim=1), full[:, 1:])
    encoded = model.get_encoder()(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    again = model.generate(encoder_outputs=encoded, attention_mask=inputs["attention_mask"], max_new_tokens=8)
    assert torch.equal(again, full)
    as_tuple = model.generate(encoder_outputs=(encoded.last_hidden_state,), attention_mask=inputs["attention_mask"],
                              max_new_tokens=8)
    assert torch.equal(as_tuple, full)


def test_checkpoint_generation_config_defaults_apply_like_transformers(bart, tmp_path):
    _, _, folder = bart
    copy = tmp_path / "ckpt"
    shutil.copytree(folder, copy)
    settings = {
        "num_beams": 3, "length_penalty": 1.5, "no_repeat_ngram_size": 2, "min_length": 5, "max_length": 12,
        "forced_bos_token_id": 0, "forced_eos_token_id": EOS, "decoder_start_token_id": EOS, "early_stopping": True,
        "bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": PAD, "transformers_version": "5.24.0",
    }
    (copy / "generation_config.json").write_text(json.dumps(settings))
    model = hugkit.AutoModelForSeq2SeqLM.from_pretrained(copy)
    reference = transformers.BartForConditionalGeneration.from_pretrained(copy).eval()
    assert model.generation_config.num_beams == 3 and model.generation_config.max_length == 12
    inputs = _inputs()
    assert torch.equal(model.generate(**inputs), reference.generate(**inputs))
    # the call's arguments win over the checkpoint's
    assert torch.equal(model.generate(**inputs, num_beams=1, max_new_tokens=4),
                       reference.generate(**inputs, num_beams=1, max_new_tokens=4))
    # a GenerationConfig passed in is layered over the checkpoint's (its unset fields come from there)
    config = GenerationConfig(num_beams=2)
    assert torch.equal(model.generate(**inputs, generation_config=config),
                       reference.generate(**inputs, generation_config=transformers.GenerationConfig(num_beams=2)))


class _WordTokenizer:
    """Enough of a tokenizer for streaming: token i decodes to ' w<i>', the special tokens to nothing."""

    special = (BOS, PAD, EOS)

    def decode(self, ids, skip_special_tokens=False, **kwargs):
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        return "".join(f" w{i}" for i in ids if not (skip_special_tokens and i in self.special))


def test_streaming_text_for_seq2seq(bart):
    model, _, _ = bart
    tokenizer = _WordTokenizer()
    one = {k: v[:1] for k, v in _inputs().items()}
    full = model.generate(**one, max_new_tokens=10)
    stream = hugkit.stream(model, tokenizer, one, max_new_tokens=10)
    chunks = list(stream)
    assert "".join(chunks) == tokenizer.decode(full[0, 1:], skip_special_tokens=True)
    assert len(chunks) > 1
    assert stream.result.completion_tokens == len(stream.result.token_ids) == full.shape[1] - 1
    assert stream.result.prompt_tokens == int(one["attention_mask"].sum())

    printed = []

    class Collect(hugkit.TextStreamer):
        def on_finalized_text(self, text, stream_end=False):
            printed.append(text)

    out = model.generate(**one, max_new_tokens=10, streamer=Collect(tokenizer, skip_special_tokens=True))
    assert torch.equal(out, full)
    assert "".join(printed) == tokenizer.decode(full[0], skip_special_tokens=True)


def test_bad_input_gets_clear_errors(bart):
    model, _, _ = bart
    inputs = _inputs()
    with pytest.raises(ValueError, match=r"min_length=30 asks for at least 30 tokens"):
        model.generate(**inputs, min_length=30, max_length=10)
    with pytest.raises(ValueError, match="num_return_sequences=2 needs do_sample=True or num_beams"):
        model.generate(**inputs, num_return_sequences=2)
    with pytest.raises(ValueError, match="should be at most num_beams"):
        model.generate(**inputs, num_beams=2, num_return_sequences=3)
    with pytest.raises(ValueError, match="needs the encoder's input"):
        model.generate(max_new_tokens=3)
    with pytest.raises(ValueError, match="needs the encoder's input"):
        model.generate(attention_mask=inputs["attention_mask"], max_new_tokens=3)
    with pytest.raises(ValueError, match="decoder start token"):
        _generate_without_start_token(model, inputs)
    with pytest.raises(ValueError, match="exceeds this model's context of 64"):
        model.generate(**inputs, max_new_tokens=80)
    with pytest.raises(NotImplementedError, match="output_attentions"):
        model.generate(**inputs, max_new_tokens=3, output_attentions=True)
    with pytest.raises(TypeError, match="encoder_outputs should be the encoder's output"):
        model.generate(encoder_outputs="nope", max_new_tokens=3)
    # a checkpoint's minimum over the call's maximum is not an error (transformers generates up to the maximum)
    assert model.generate(**inputs, max_new_tokens=3, generation_config=GenerationConfig(min_length=30)).shape == (3, 4)


def _generate_without_start_token(model, inputs):
    saved = (model.generation_config, model.config.decoder_start_token_id, model.config.bos_token_id)
    model.generation_config = GenerationConfig(eos_token_id=EOS, pad_token_id=PAD)
    model.config.decoder_start_token_id = model.config.bos_token_id = None
    try:
        model.generate(**inputs, max_new_tokens=3)
    finally:
        model.generation_config, model.config.decoder_start_token_id, model.config.bos_token_id = saved


def test_no_warnings_in_normal_use(bart, recwarn, caplog):
    model, _, _ = bart
    with caplog.at_level("WARNING", logger="hugkit"):
        model.generate(**_inputs(), max_new_tokens=4)
        model.generate(**_inputs(), max_new_tokens=4, do_sample=True, top_p=0.9)
        model.generate(**_inputs(), max_new_tokens=4, num_beams=2)
    assert not caplog.records
    assert not [w for w in recwarn.list if "hugkit" in str(w.filename)]
