"""Checkpoint round trips between hugkit and transformers, cross-task loading, tied weights and dtypes."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors import safe_open

import hugkit.auto as auto
from conftest import (
    ARCHS,
    AUTO_CLASS,
    assert_close,
    build_reference,
    hugkit_class,
    make_inputs,
    save_reference,
    transformers,
)

MLM_DECODER = {  # (decoder module path, its bias source) in each MLM head
    "bert": ("cls.predictions.decoder", "cls.predictions.bias"),
    "roberta": ("lm_head.decoder", "lm_head.bias"),
    "xlm-roberta": ("lm_head.decoder", "lm_head.bias"),
    "distilbert": ("vocab_projector", None),
}


def _saved_keys(directory) -> set[str]:
    with safe_open(directory / "model.safetensors", "pt") as handle:
        return set(handle.keys())


@pytest.mark.parametrize("task", ["base", "sequence-classification", "masked-lm"])
@pytest.mark.parametrize("arch", ARCHS)
def test_hugkit_save_loads_in_transformers(arch, task, tmp_path):
    source, saved = tmp_path / "source", tmp_path / "saved"
    save_reference(arch, task, source)
    model = getattr(auto, AUTO_CLASS[task]).from_pretrained(source)
    model.save_pretrained(saved)

    auto_class = getattr(transformers, AUTO_CLASS[task])
    reference, info = auto_class.from_pretrained(saved, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert json.loads((saved / "config.json").read_text())["architectures"] == [type(model).__name__]
    assert _saved_keys(saved) == _saved_keys(source)  # tied copies stored once, under the same names

    inputs = make_inputs(arch)
    with torch.inference_mode():
        expected, mine = reference.eval()(**inputs), model(**inputs)
    assert_close(mine[0], expected[0], what=f"first output after a hugkit save ({task})")
    # And back into hugkit, bit for bit.
    again = getattr(auto, AUTO_CLASS[task]).from_pretrained(saved)
    with torch.inference_mode():
        assert torch.equal(again(**inputs)[0], mine[0])


@pytest.mark.parametrize("task", ["sequence-classification", "token-classification", "question-answering", "masked-lm"])
@pytest.mark.parametrize("arch", ARCHS)
def test_base_checkpoint_into_head_model(arch, task, tmp_path, caplog):
    """A head missing from the checkpoint is newly initialised with a warning; the encoder is the checkpoint's."""
    base = save_reference(arch, "base", tmp_path, num_labels=2 if task == "question-answering" else 3)
    with caplog.at_level(logging.WARNING, logger="hugkit"):
        model = getattr(auto, AUTO_CLASS[task]).from_pretrained(tmp_path)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "newly initialised" in warnings[0], warnings
    head_param = {"sequence-classification": "classifier", "token-classification": "classifier",
                  "question-answering": "qa_outputs", "masked-lm": "lm_head" if "roberta" in arch else "cls"}
    if arch == "distilbert":
        head_param["masked-lm"] = "vocab_transform"
    assert head_param[task] in warnings[0]
    assert model._newly_initialized_keys and all(not k.startswith(model.base_model_prefix + ".")
                                                 for k in model._newly_initialized_keys)

    inputs = make_inputs(arch)
    with torch.inference_mode():
        expected = base(**inputs, output_hidden_states=True).last_hidden_state
        out = model(**inputs, output_hidden_states=True)
    assert_close(out.hidden_states[-1], expected, what="encoder output under a fresh head")
    assert all(torch.isfinite(t).all() for t in out.values() if isinstance(t, torch.Tensor))


@pytest.mark.parametrize("task", ["sequence-classification", "token-classification", "masked-lm"])
@pytest.mark.parametrize("arch", ARCHS)
def test_head_checkpoint_into_base_model(arch, task, tmp_path, caplog):
    reference = save_reference(arch, task, tmp_path)
    with caplog.at_level(logging.WARNING, logger="hugkit"):
        model = auto.AutoModel.from_pretrained(tmp_path)
    assert type(model) is hugkit_class(arch, "base")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    has_pooler = arch != "distilbert"
    pooler_in_checkpoint = has_pooler and arch == "bert" and task == "sequence-classification"
    if has_pooler and not pooler_in_checkpoint:
        # transformers does the same: the base model's pooler is new, everything else comes from the checkpoint.
        assert len(warnings) == 1 and "pooler.dense.weight" in warnings[0], warnings
    else:
        assert not warnings, warnings

    inputs = make_inputs(arch)
    with torch.inference_mode():
        expected = reference.base_model(**inputs).last_hidden_state
        assert_close(model(**inputs).last_hidden_state, expected, what="base model from a head checkpoint")


@pytest.mark.parametrize("arch", ARCHS)
def test_mlm_weights_are_tied(arch, tmp_path):
    save_reference(arch, "masked-lm", tmp_path)
    model = auto.AutoModelForMaskedLM.from_pretrained(tmp_path)
    decoder_path, bias_path = MLM_DECODER[arch]
    decoder = model.get_submodule(decoder_path)
    assert decoder is model.get_output_embeddings()
    assert decoder.weight is model.get_input_embeddings().weight
    if bias_path is not None:
        assert decoder.bias is model.get_parameter(bias_path)
    # A model built from a config is tied too.
    fresh = hugkit_class(arch, "masked-lm")(model.config)
    assert fresh.get_output_embeddings().weight is fresh.get_input_embeddings().weight

    model.save_pretrained(tmp_path / "saved")
    keys = _saved_keys(tmp_path / "saved")
    assert f"{decoder_path}.weight" not in keys


@pytest.mark.parametrize("arch", ARCHS)
def test_untied_mlm_loads_its_own_decoder(arch, tmp_path):
    reference = save_reference(arch, "masked-lm", tmp_path, tie_word_embeddings=False)
    model = auto.AutoModelForMaskedLM.from_pretrained(tmp_path)
    assert model.get_output_embeddings().weight is not model.get_input_embeddings().weight
    inputs = make_inputs(arch)
    with torch.inference_mode():
        assert_close(model(**inputs).logits, reference(**inputs).logits, what="untied MLM logits")


@pytest.mark.parametrize("arch", ARCHS)
def test_float16_loading(arch, tmp_path):
    reference = save_reference(arch, "sequence-classification", tmp_path)
    inputs = make_inputs(arch)
    with torch.inference_mode():
        expected = reference(**inputs).logits
    for dtype in (torch.float16, "float16"):
        model = auto.AutoModelForSequenceClassification.from_pretrained(tmp_path, dtype=dtype)
        assert {p.dtype for p in model.parameters()} == {torch.float16}
        with torch.inference_mode():
            logits = model(**inputs).logits
        assert logits.dtype == torch.float16
        assert_close(logits, expected, atol=2e-2, what="fp16 logits")


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_auto_dtype_follows_the_checkpoint(arch, tmp_path):
    build_reference(arch, "base").half().save_pretrained(tmp_path)
    assert auto.AutoModel.from_pretrained(tmp_path, dtype="auto").dtype == torch.float16
    assert auto.AutoModel.from_pretrained(tmp_path, torch_dtype="auto").dtype == torch.float16
    assert auto.AutoModel.from_pretrained(tmp_path).dtype == torch.float32  # fp32 unless asked
    padded = make_inputs(arch)
    with torch.inference_mode():
        out = auto.AutoModel.from_pretrained(tmp_path, dtype="auto")(**padded).last_hidden_state
    assert torch.isfinite(out).all()


def test_distilbert_sinusoidal_positions(tmp_path):
    reference = save_reference("distilbert", "base", tmp_path, sinusoidal_pos_embds=True)
    model = auto.AutoModel.from_pretrained(tmp_path)
    inputs = make_inputs("distilbert")
    with torch.inference_mode():
        assert_close(model(**inputs).last_hidden_state, reference(**inputs).last_hidden_state)
    # Built from a config, the table is computed exactly as transformers computes it.
    fresh = hugkit_class("distilbert", "base")(model.config)
    fresh_reference = transformers.DistilBertModel(reference.config)
    assert_close(
        fresh.embeddings.position_embeddings.weight,
        fresh_reference.embeddings.position_embeddings.weight,
        atol=1e-6,
        what="sinusoidal table",
    )
    assert not fresh.embeddings.position_embeddings.weight.requires_grad
