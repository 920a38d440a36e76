"""mBART: hugkit vs transformers on tiny random checkpoints (pre-norm, embedding and final LayerNorms, mBART's
shift-right, forced language code in generation)."""

from __future__ import annotations

import pytest
import torch

import transformers
from conftest import assert_close
from hugkit.models import mbart
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
from transformers.models.mbart.modeling_mbart import shift_tokens_right as reference_shift

BOS, PAD, EOS = 0, 1, 2
LANG = VOCAB - 3  # a "language code": mbart-50 targets start with it, forced as the first generated token
SPEC = Spec("MBartConfig", "MBartModel", "MBartForConditionalGeneration", pad=PAD, eos=EOS, decoder_start=EOS,
            config_kwargs={"bos_token_id": BOS})


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """lm -> (folder, transformers reference)."""
    out = {}
    for lm in (False, True):
        folder = tmp_path_factory.mktemp(f"mbart-{'lm' if lm else 'base'}")
        out[lm] = (folder, save_checkpoint(SPEC, folder, lm))
    return out


@pytest.mark.parametrize("lm", [False, True], ids=["base", "seq2seq-lm"])
def test_outputs_match_transformers(lm, checkpoints, caplog):
    folder, reference = checkpoints[lm]
    model = load_hugkit(folder, lm, caplog)
    assert type(model).__name__ == ("MBartForConditionalGeneration" if lm else "MBartModel")
    inputs = encoder_inputs(SPEC)
    check_full_forward(model, reference, {**inputs, "decoder_input_ids": decoder_ids(SPEC)}, lm)
    check_every_key_used(model, folder, reference)


@pytest.mark.parametrize("lm", [False, True], ids=["base", "seq2seq-lm"])
def test_decoder_inputs_default_to_shifted_input_ids(lm, checkpoints):
    folder, reference = checkpoints[lm]
    model = load_hugkit(folder, lm)
    inputs = encoder_inputs(SPEC)
    name = "logits" if lm else "last_hidden_state"
    with torch.inference_mode():
        expected = getattr(reference(**inputs, use_cache=False), name)
        actual = getattr(model(**inputs), name)
    real = inputs["attention_mask"].bool()  # the shifted inputs keep the source padding: padded queries differ
    assert_close(actual[real], expected[real], what=name)


def test_labels_embeds_and_cache(checkpoints):
    folder, reference = checkpoints[True]
    model = load_hugkit(folder, True)
    check_labels_and_masks(SPEC, model, reference)
    check_embeds(SPEC, model, reference)
    check_cached_decoding(SPEC, model)


def test_greedy_generation_matches_transformers(tmp_path):
    check_greedy_generation(SPEC, tmp_path, eos_bias=5.0, input_seed=6)


def test_forced_language_code_in_generation(tmp_path):
    """mbart-50 translation: the decoder starts at </s> and the target language code is forced first."""
    tokens = check_greedy_generation(SPEC, tmp_path, eos_bias=5.0, input_seed=8, forced_bos_token_id=LANG)
    assert tokens[:, 1].tolist() == [LANG] * len(tokens)


def test_forced_bos_token_id_from_the_generation_config(tmp_path):
    """A fine-tune whose generation_config.json names the language code: both libraries force it."""
    tokens = check_greedy_generation(
        SPEC, tmp_path, eos_bias=5.0, input_seed=8, saved_generation={"forced_bos_token_id": LANG}
    )
    assert tokens[:, 1].tolist() == [LANG] * len(tokens)


def test_shift_tokens_right_matches_transformers():
    labels = torch.tensor([
        [LANG, 5, 6, 7, EOS, PAD, PAD],
        [LANG, 8, 9, EOS, -100, -100, -100],
        [LANG, 10, 11, 12, 13, 14, EOS],
    ])
    expected = reference_shift(labels.clone(), PAD)
    actual = mbart.shift_tokens_right(labels, PAD)
    assert actual.tolist() == expected.tolist()
    assert actual[:, 0].tolist() == [EOS, EOS, EOS]  # the last real token wraps to the front
    assert actual[:, 1].tolist() == [LANG] * 3
    single = labels[1:2]  # one row: transformers squeezes the start tokens to a scalar; the result is the same
    assert mbart.shift_tokens_right(single, PAD).tolist() == reference_shift(single.clone(), PAD).tolist()
    assert labels[1, -1] == -100  # the input is not modified in place
    with pytest.raises(ValueError, match=r"Rows \[1\] are all padding"):
        mbart.shift_tokens_right(torch.tensor([[5, EOS], [PAD, -100]]), PAD)
    with pytest.raises(ValueError, match="pad_token_id"):
        mbart.shift_tokens_right(labels, None)


def test_config_defaults_match_transformers():
    mine, theirs = mbart.MBartConfig(), transformers.MBartConfig()
    for name in ("vocab_size", "pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id",
                 "forced_eos_token_id", "scale_embedding", "d_model", "max_position_embeddings",
                 "activation_function", "hidden_size", "num_attention_heads", "num_hidden_layers"):
        assert getattr(mine, name) == getattr(theirs, name), name


def test_save_pretrained_loads_in_transformers(tmp_path, checkpoints):
    folder, reference = checkpoints[True]
    mbart.MBartForConditionalGeneration.from_pretrained(folder).save_pretrained(tmp_path)
    reloaded = transformers.MBartForConditionalGeneration.from_pretrained(tmp_path).eval()
    inputs = {**encoder_inputs(SPEC), "decoder_input_ids": decoder_ids(SPEC)}
    with torch.inference_mode():
        actual = reloaded(**inputs, use_cache=False).logits
        expected = reference(**inputs, use_cache=False).logits
    assert_close(actual, expected, atol=1e-5, what="logits after a hugkit save (sdpa vs eager)")


def test_missing_inputs_are_clear_errors(checkpoints):
    model = load_hugkit(checkpoints[False][0], False)
    with pytest.raises(ValueError, match="decoder_input_ids"):
        model(inputs_embeds=torch.zeros(1, 3, 32))
    with pytest.raises(ValueError, match="encoder_hidden_states"):
        model.get_decoder()(input_ids=torch.tensor([[EOS]]))
