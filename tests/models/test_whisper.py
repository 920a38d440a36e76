"""Whisper (hugkit.models.whisper) against transformers on a tiny random checkpoint: the full forward (logits,
encoder and decoder states, attentions), padded decoder prompts, the loss, strict loading, the auto classes,
saving, and cached decoding (static and dynamic) against the full forward."""

from __future__ import annotations

import re

import pytest
import torch
from safetensors.torch import load_file, save_file

import transformers
from hugkit import AutoConfig, AutoModel, AutoModelForSpeechSeq2Seq
from hugkit.kv_cache import DynamicCache, EncoderDecoderCache
from hugkit.models.whisper import WhisperConfig, WhisperForConditionalGeneration, WhisperModel, sinusoids
from tests.generation.whisper_tiny import EOS, LANG_TO_ID, NO_TIMESTAMPS, SOT, TASK_TO_ID, assert_same, build_reference
from tests.generation.whisper_tiny import features, save_tiny, tiny_config

DECODER_IDS = torch.tensor([
    [SOT, LANG_TO_ID["<|en|>"], TASK_TO_ID["transcribe"], NO_TIMESTAMPS, 5, 9, 77, 30],
    [SOT, LANG_TO_ID["<|de|>"], TASK_TO_ID["transcribe"], NO_TIMESTAMPS, 44, 3, 12, 100],
    [SOT, LANG_TO_ID["<|fr|>"], TASK_TO_ID["translate"], NO_TIMESTAMPS, 8, 8, EOS, EOS],
])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("whisper-tiny"))


@pytest.fixture(scope="module")
def pair(folder):
    """(hugkit model, transformers model) from the same folder."""
    reference = transformers.WhisperForConditionalGeneration.from_pretrained(folder).eval()
    return WhisperForConditionalGeneration.from_pretrained(folder), reference


def test_forward_matches_transformers(pair):
    ours, reference = pair
    x = features(3)
    with torch.no_grad():
        expected = reference(x, decoder_input_ids=DECODER_IDS, output_hidden_states=True)
        out = ours(x, decoder_input_ids=DECODER_IDS, output_hidden_states=True)
    assert out.logits.shape == (3, DECODER_IDS.shape[1], 120)
    assert_same(out.logits, expected.logits, "logits", atol=1e-4)
    assert_same(out.encoder_last_hidden_state, expected.encoder_last_hidden_state, "encoder", atol=1e-4)
    assert len(out.encoder_hidden_states) == len(out.decoder_hidden_states) == 3  # embeddings + 2 layers
    assert_same(out.encoder_hidden_states, expected.encoder_hidden_states, "encoder_hidden_states", atol=1e-4)
    assert_same(out.decoder_hidden_states, expected.decoder_hidden_states, "decoder_hidden_states", atol=1e-4)
    # the last hidden state is the normed output, as in transformers
    assert torch.equal(out.encoder_hidden_states[-1], out.encoder_last_hidden_state)
    assert out.logits.abs().max() > 1.0 and (out.logits[0] - out.logits[1]).abs().max() > 0.1  # not degenerate


def test_attentions_match_transformers(folder):
    reference = transformers.WhisperForConditionalGeneration.from_pretrained(folder, attn_implementation="eager").eval()
    ours = WhisperForConditionalGeneration.from_pretrained(folder)
    x = features(2, seed=4)
    with torch.no_grad():
        expected = reference(x, decoder_input_ids=DECODER_IDS[:2], output_attentions=True)
        out = ours(x, decoder_input_ids=DECODER_IDS[:2], output_attentions=True)
    for name in ("encoder_attentions", "decoder_attentions", "cross_attentions"):
        assert len(getattr(out, name)) == 2
        assert_same(getattr(out, name), getattr(expected, name), name, atol=1e-5)
    assert out.cross_attentions[0].shape == (2, 4, DECODER_IDS.shape[1], 30)
    assert_same(out.logits, expected.logits, "logits", atol=1e-4)


def test_left_padded_decoder_prompt(pair):
    """A decoder mask with left padding and positions counted from each row's first token (what generate uses
    for previous text of different lengths): the real positions' logits match transformers'."""
    ours, reference = pair
    ids = DECODER_IDS.clone()
    mask = torch.ones_like(ids)
    ids[0, :2], mask[0, :2] = EOS, 0
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    x = features(3, seed=2)
    kwargs = dict(decoder_input_ids=ids, decoder_attention_mask=mask, decoder_position_ids=positions)
    with torch.no_grad():
        expected = reference(x, **kwargs).logits
        out = ours(x, **kwargs).logits
    assert_same(out[0, 2:], expected[0, 2:], "padded row", atol=1e-4)
    assert_same(out[1:], expected[1:], "other rows", atol=1e-4)


def test_loss_matches_transformers(pair):
    ours, reference = pair
    labels = DECODER_IDS[:, 1:].clone()
    labels[2, -2:] = -100
    x = features(3, seed=3)
    with torch.no_grad():
        expected = reference(x, labels=labels)
        out = ours(x, labels=labels)
    assert_same(out.loss, expected.loss, "loss", atol=1e-5)
    assert_same(out.logits, expected.logits, "logits", atol=1e-4)
    with pytest.raises(ValueError, match="max_target_positions"):
        ours(x, labels=torch.zeros(3, 49, dtype=torch.long))


def test_base_model_and_auto_classes(folder):
    reference = transformers.WhisperModel.from_pretrained(folder).eval()
    config = AutoConfig.from_pretrained(folder)
    assert isinstance(config, WhisperConfig) and config.hidden_size == 32 and config.num_hidden_layers == 2
    base = AutoModel.from_pretrained(folder)
    assert isinstance(base, WhisperModel)
    head = AutoModelForSpeechSeq2Seq.from_pretrained(folder)
    assert type(head) is WhisperForConditionalGeneration
    x = features(3, seed=5)
    with torch.no_grad():
        expected = reference(x, decoder_input_ids=DECODER_IDS)
        out = base(x, decoder_input_ids=DECODER_IDS)
    assert_same(out.last_hidden_state, expected.last_hidden_state, "last_hidden_state", atol=1e-4)
    assert_same(out.encoder_last_hidden_state, expected.encoder_last_hidden_state, "encoder", atol=1e-4)
    # the encoder contract the generation runners rely on
    encoded = head.get_encoder()(input_features=x, output_hidden_states=False, output_attentions=False)
    assert_same(encoded.last_hidden_state, expected.encoder_last_hidden_state, "get_encoder()", atol=1e-4)
    assert head.kv_cache_shape() == (2, 4, 8)
    assert head.generation_config.to_dict()["lang_to_id"] == LANG_TO_ID  # generation_config.json read


def test_strict_loading(folder, tmp_path):
    model = WhisperForConditionalGeneration.from_pretrained(folder)
    assert model.proj_out.weight is model.model.decoder.embed_tokens.weight  # tied
    state = load_file(folder / "model.safetensors")
    for name in ("config.json", "generation_config.json"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    missing = dict(state)
    del missing["model.decoder.layers.1.encoder_attn.v_proj.bias"]
    save_file(missing, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match=re.escape("missing keys (not in the checkpoint): "
                                                   "model.decoder.layers.1.encoder_attn.v_proj.bias")):
        WhisperForConditionalGeneration.from_pretrained(tmp_path)
    extra = dict(state)
    extra["model.decoder.layers.0.self_attn.k_proj.bias"] = torch.zeros(32)  # Whisper's k_proj has no bias
    save_file(extra, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="unexpected keys in the checkpoint: model.decoder.layers.0.self_attn.k_proj.bias"):
        WhisperForConditionalGeneration.from_pretrained(tmp_path)


def test_save_pretrained_loads_in_transformers(pair, tmp_path):
    ours, _ = pair
    ours.save_pretrained(tmp_path)
    reloaded, info = transformers.WhisperForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
    x = features(3, seed=6)
    with torch.no_grad():
        assert_same(ours(x, decoder_input_ids=DECODER_IDS).logits,
                    reloaded.eval()(x, decoder_input_ids=DECODER_IDS).logits, "logits", atol=1e-4)


def test_model_from_config_has_sinusoidal_positions():
    config = tiny_config()
    ours = WhisperForConditionalGeneration(WhisperConfig(**config.to_dict()))
    reference = transformers.WhisperForConditionalGeneration(config)
    expected = reference.model.encoder.embed_positions.weight
    assert_same(ours.model.encoder.embed_positions.weight, expected, "embed_positions", atol=1e-6)
    assert_same(sinusoids(30, 32), expected, "sinusoids", atol=1e-6)
    assert not ours.model.encoder.embed_positions.weight.requires_grad


@pytest.mark.parametrize("kind", ["static", "dynamic"])
def test_cached_decoding_matches_full_forward(pair, kind):
    ours, _ = pair
    x = features(3, seed=7)
    with torch.no_grad():
        full = ours(x, decoder_input_ids=DECODER_IDS, use_cache=False).logits
        encoded = ours.get_encoder()(x)
        if kind == "static":
            cache = EncoderDecoderCache.for_model(ours, 3, 16)
        else:
            cache = EncoderDecoderCache(DynamicCache())
        prefix = 4
        first = ours(encoder_outputs=encoded, decoder_input_ids=DECODER_IDS[:, :prefix], past_key_values=cache,
                     use_cache=True)
        assert first.past_key_values is cache
        steps = [first.logits]
        for position in range(prefix, DECODER_IDS.shape[1]):
            out = ours(encoder_outputs=encoded, decoder_input_ids=DECODER_IDS[:, position : position + 1],
                       past_key_values=cache, use_cache=True)
            steps.append(out.logits)
    assert cache.get_seq_length() == DECODER_IDS.shape[1]
    assert len(cache.cross_keys) == 2  # cross-attention keys computed once per layer
    assert_same(torch.cat(steps, dim=1), full, f"{kind} cache", atol=1e-4)


def test_use_cache_starts_a_dynamic_cache(pair):
    ours, reference = pair
    x = features(3, seed=8)
    with torch.no_grad():
        out = ours(x, decoder_input_ids=DECODER_IDS[:, :5])
        assert isinstance(out.past_key_values, EncoderDecoderCache)  # config.use_cache, as in transformers
        step = ours(encoder_outputs=(out.encoder_last_hidden_state,), decoder_input_ids=DECODER_IDS[:, 5:6],
                    past_key_values=out.past_key_values, logits_to_keep=1)
        expected = reference(x, decoder_input_ids=DECODER_IDS[:, :6]).logits[:, -1:]
    assert_same(step.logits, expected, "next step", atol=1e-4)
    assert ours(x, decoder_input_ids=DECODER_IDS, use_cache=False).past_key_values is None


def test_bad_inputs_have_clear_errors(pair):
    ours, _ = pair
    with pytest.raises(ValueError, match=re.escape("expects input_features of shape (batch, 80, 60)")):
        ours(features(1, frames=50), decoder_input_ids=DECODER_IDS[:1])
    with pytest.raises(TypeError, match="float tensor of log-mel features"):
        ours(torch.zeros(1, 80, 60, dtype=torch.long), decoder_input_ids=DECODER_IDS[:1])
    with pytest.raises(ValueError, match="decoder_input_ids should be integer token ids"):
        ours(features(1), decoder_input_ids=DECODER_IDS[:1].float())
    with pytest.raises(ValueError, match="exactly one of decoder_input_ids or decoder_inputs_embeds"):
        ours(features(1))
    with pytest.raises(ValueError, match="input_features .* or encoder_outputs"):
        ours(decoder_input_ids=DECODER_IDS[:1])
    with pytest.raises(ValueError, match="max_target_positions"):
        ours(features(1), decoder_input_ids=torch.zeros(1, 49, dtype=torch.long))


def test_reference_builder_is_not_degenerate():
    """The tiny checkpoint's decoding depends on the audio (else the parity tests would prove little)."""
    model = build_reference()
    with torch.no_grad():
        a = model(features(1, seed=1), decoder_input_ids=DECODER_IDS[:1]).logits
        b = model(features(1, seed=2), decoder_input_ids=DECODER_IDS[:1]).logits
    assert (a - b).abs().max() > 0.5
