"""Pegasus: hugkit vs transformers on tiny random checkpoints (pre-norm, sinusoidal positions, final LayerNorms)."""

from __future__ import annotations

import pytest
import torch

import transformers
from conftest import assert_close
from hugkit.models import pegasus
from seq2seq_parity import (
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

PAD, EOS = 0, 1  # the decoder starts from <pad>
SPEC = Spec("PegasusConfig", "PegasusModel", "PegasusForConditionalGeneration", pad=PAD, eos=EOS, decoder_start=PAD)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """lm -> (folder, transformers reference)."""
    out = {}
    for lm in (False, True):
        folder = tmp_path_factory.mktemp(f"pegasus-{'lm' if lm else 'base'}")
        out[lm] = (folder, save_checkpoint(SPEC, folder, lm))
    return out


@pytest.mark.parametrize("lm", [False, True], ids=["base", "seq2seq-lm"])
def test_outputs_match_transformers(lm, checkpoints, caplog):
    folder, reference = checkpoints[lm]
    model = load_hugkit(folder, lm, caplog)
    assert type(model).__name__ == ("PegasusForConditionalGeneration" if lm else "PegasusModel")
    inputs = encoder_inputs(SPEC)
    check_full_forward(model, reference, {**inputs, "decoder_input_ids": decoder_ids(SPEC)}, lm)
    check_every_key_used(model, folder, reference)


def test_position_tables_are_computed_not_loaded(checkpoints):
    """transformers saves the fixed tables with the weights; hugkit computes the same values and saves none."""
    from safetensors.torch import load_file

    folder, _ = checkpoints[True]
    stored = load_file(folder / "model.safetensors")
    model = load_hugkit(folder, True)
    for stack in ("encoder", "decoder"):
        key = f"model.{stack}.embed_positions.weight"
        assert key in stored and key not in model.state_dict()
        assert_close(getattr(model.model, stack).embed_positions.weight, stored[key], atol=1e-6, what=key)


def test_labels_embeds_and_cache(checkpoints):
    folder, reference = checkpoints[True]
    model = load_hugkit(folder, True)
    check_labels_and_masks(SPEC, model, reference)
    check_embeds(SPEC, model, reference)
    check_cached_decoding(SPEC, model)


def test_greedy_generation_matches_transformers(tmp_path):
    check_greedy_generation(SPEC, tmp_path, eos_bias=4.0, input_seed=4)


def test_save_pretrained_loads_in_transformers(tmp_path, checkpoints):
    folder, reference = checkpoints[True]
    pegasus.PegasusForConditionalGeneration.from_pretrained(folder).save_pretrained(tmp_path)
    reloaded = transformers.PegasusForConditionalGeneration.from_pretrained(tmp_path).eval()
    inputs = {**encoder_inputs(SPEC), "decoder_input_ids": decoder_ids(SPEC)}
    with torch.inference_mode():
        actual = reloaded(**inputs, use_cache=False).logits
        expected = reference(**inputs, use_cache=False).logits
    assert_close(actual, expected, atol=1e-5, what="logits after a hugkit save (sdpa vs eager)")


def test_config_defaults_match_transformers():
    mine, theirs = pegasus.PegasusConfig(), transformers.PegasusConfig()
    for name in ("vocab_size", "pad_token_id", "eos_token_id", "decoder_start_token_id", "forced_eos_token_id",
                 "scale_embedding", "d_model", "max_position_embeddings", "activation_function", "hidden_size",
                 "num_attention_heads", "num_hidden_layers"):
        assert getattr(mine, name) == getattr(theirs, name), name


def test_decoder_past_the_position_table_is_a_clear_error(checkpoints):
    model = load_hugkit(checkpoints[True][0], True)
    inputs = encoder_inputs(SPEC)
    with torch.inference_mode():
        out = model(**inputs, decoder_input_ids=torch.zeros(3, 60, dtype=torch.long), use_cache=True)
        with pytest.raises(ValueError, match="max_position_embeddings"):
            model(**inputs, decoder_input_ids=torch.zeros(3, 5, dtype=torch.long), past_key_values=out.past_key_values)
