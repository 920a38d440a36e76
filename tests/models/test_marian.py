"""Marian: hugkit vs transformers on tiny random checkpoints (shared and separate decoder vocabularies)."""

from __future__ import annotations

import pytest
import torch

import transformers
from conftest import assert_close
from hugkit.models import marian
from seq2seq_parity import (
    VOCAB,
    Spec,
    check_cached_decoding,
    check_embeds,
    check_every_key_used,
    check_full_forward,
    check_greedy_generation,
    check_labels_and_masks,
    decoder_ids,
    encoder_inputs,
    load_hugkit,
    save_checkpoint,
)

PAD, EOS = VOCAB - 1, 0  # opus-mt: </s> is 0, <pad> is the last id and starts the decoder
SHARED = Spec("MarianConfig", "MarianModel", "MarianMTModel", pad=PAD, eos=EOS, decoder_start=PAD)
# A separate target vocabulary of 77 ids, whose last id is the pad token.
SEPARATE = Spec(
    "MarianConfig", "MarianModel", "MarianMTModel", pad=76, eos=EOS, decoder_start=76,
    config_kwargs={"share_encoder_decoder_embeddings": False, "decoder_vocab_size": 77},
)
VARIANTS = {"shared": SHARED, "separate": SEPARATE}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """(variant, lm) -> (folder, transformers reference)."""
    out = {}
    for variant, spec in VARIANTS.items():
        for lm in (False, True):
            folder = tmp_path_factory.mktemp(f"marian-{variant}-{'lm' if lm else 'base'}")
            out[variant, lm] = (folder, save_checkpoint(spec, folder, lm))
    return out


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("lm", [False, True], ids=["base", "seq2seq-lm"])
def test_outputs_match_transformers(variant, lm, checkpoints, caplog):
    folder, reference = checkpoints[variant, lm]
    model = load_hugkit(folder, lm, caplog)
    assert type(model).__name__ == ("MarianMTModel" if lm else "MarianModel")
    spec = VARIANTS[variant]
    inputs = encoder_inputs(spec)
    check_full_forward(model, reference, {**inputs, "decoder_input_ids": decoder_ids(spec)}, lm)
    check_every_key_used(model, folder, reference)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_labels_embeds_and_cache(variant, checkpoints):
    folder, reference = checkpoints[variant, True]
    model = load_hugkit(folder, True)
    spec = VARIANTS[variant]
    check_labels_and_masks(spec, model, reference)
    check_embeds(spec, model, reference)
    check_cached_decoding(spec, model)


@pytest.mark.parametrize("variant, eos_bias, input_seed", [("shared", 3.0, 4), ("separate", 5.0, 6)])
def test_greedy_generation_matches_transformers(variant, eos_bias, input_seed, tmp_path):
    check_greedy_generation(VARIANTS[variant], tmp_path, eos_bias, input_seed)


def test_separate_decoder_vocabulary(checkpoints):
    folder, _ = checkpoints["separate", True]
    model = load_hugkit(folder, True)
    assert not hasattr(model.model, "shared")
    assert model.model.encoder.embed_tokens.weight.shape == (VOCAB, 32)
    assert model.model.decoder.embed_tokens.weight.shape == (77, 32)
    assert model.lm_head.weight is model.model.decoder.embed_tokens.weight
    assert model.final_logits_bias.shape == (1, 77)
    shared = load_hugkit(checkpoints["shared", True][0], True)
    assert shared.model.encoder.embed_tokens.weight is shared.model.shared.weight
    assert shared.model.decoder.embed_tokens.weight is shared.model.shared.weight
    assert shared.lm_head.weight is shared.model.shared.weight


def test_sinusoidal_table_matches_transformers():
    for positions, dim in ((64, 32), (10, 7)):  # an odd width gives the sines the extra column
        reference = transformers.models.marian.modeling_marian.MarianSinusoidalPositionalEmbedding(positions, dim)
        assert_close(marian.sinusoidal_positions(positions, dim), reference.create_weight(), atol=1e-6, what=f"{dim}")


def test_checkpoint_with_stored_position_tables_loads(tmp_path, checkpoints):
    """Checkpoints converted by older transformers carry embed_positions.weight; the keys are used by nothing."""
    from safetensors.torch import save_file

    _, reference = checkpoints["shared", True]
    state = {k: v.clone().contiguous() for k, v in reference.state_dict().items()}
    assert "model.encoder.embed_positions.weight" in state  # transformers holds it as a frozen parameter
    save_file(state, tmp_path / "model.safetensors")
    reference.config.save_pretrained(tmp_path)
    model = marian.MarianMTModel.from_pretrained(tmp_path)
    assert "model.encoder.embed_positions.weight" not in model.state_dict()  # computed, never saved
    inputs = encoder_inputs(SHARED)
    decoder = torch.full((3, 2), PAD)
    with torch.inference_mode():
        expected = reference(**inputs, decoder_input_ids=decoder, use_cache=False).logits
        assert_close(model(**inputs, decoder_input_ids=decoder).logits, expected, what="logits")


def test_save_pretrained_loads_in_transformers(tmp_path, checkpoints):
    folder, reference = checkpoints["separate", True]
    marian.MarianMTModel.from_pretrained(folder).save_pretrained(tmp_path)
    reloaded = transformers.MarianMTModel.from_pretrained(tmp_path).eval()
    inputs = encoder_inputs(SEPARATE)
    decoder = torch.full((3, 2), SEPARATE.pad)
    with torch.inference_mode():
        actual = reloaded(**inputs, decoder_input_ids=decoder, use_cache=False).logits
        expected = reference(**inputs, decoder_input_ids=decoder, use_cache=False).logits
    assert_close(actual, expected, atol=1e-5, what="logits after a hugkit save (sdpa vs eager)")


def test_config_defaults_match_transformers():
    mine, theirs = marian.MarianConfig(), transformers.MarianConfig()
    for name in ("vocab_size", "decoder_vocab_size", "pad_token_id", "eos_token_id", "decoder_start_token_id",
                 "forced_eos_token_id", "share_encoder_decoder_embeddings", "scale_embedding", "d_model",
                 "max_position_embeddings", "activation_function", "hidden_size", "num_attention_heads"):
        assert getattr(mine, name) == getattr(theirs, name), name


def test_missing_decoder_inputs_is_a_clear_error(checkpoints):
    model = load_hugkit(checkpoints["shared", False][0], False)
    with pytest.raises(ValueError, match="decoder_input_ids"):
        model(**encoder_inputs(SHARED))
    with pytest.raises(TypeError, match="EncoderDecoderCache"):
        model(**encoder_inputs(SHARED), decoder_input_ids=torch.full((3, 1), PAD), past_key_values=object())
