"""hugkit vs transformers on the same random tiny checkpoints: every architecture x every task class."""

from __future__ import annotations

import logging

import pytest
import torch

import hugkit.auto as auto
from conftest import (
    ARCHS,
    AUTO_CLASS,
    TASKS,
    assert_close,
    hugkit_class,
    load_reference,
    make_inputs,
    save_reference,
)

# The outputs each task class returns, in transformers' order.
OUTPUT_FIELDS = {
    "base": ("last_hidden_state", "pooler_output"),
    "sequence-classification": ("logits",),
    "token-classification": ("logits",),
    "question-answering": ("start_logits", "end_logits"),
    "masked-lm": ("logits",),
}


def _fields(arch: str, task: str) -> tuple[str, ...]:
    if task == "base" and arch == "distilbert":
        return ("last_hidden_state",)  # no pooler
    return OUTPUT_FIELDS[task]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("arch", ARCHS)
def test_outputs_match_transformers(arch, task, tmp_path, caplog):
    save_reference(arch, task, tmp_path)
    reference = load_reference(tmp_path, task, eager=True)  # eager: transformers returns attentions only then
    with caplog.at_level(logging.WARNING, logger="hugkit"):
        model = getattr(auto, AUTO_CLASS[task]).from_pretrained(tmp_path)
    assert type(model) is hugkit_class(arch, task)
    assert not caplog.records, f"loading a matching checkpoint should be quiet: {[r.message for r in caplog.records]}"
    assert not model.training

    inputs = make_inputs(arch)
    with torch.inference_mode():
        expected = reference(**inputs, output_hidden_states=True, output_attentions=True)
        plain = model(**inputs)  # fused SDPA path
        full = model(**inputs, output_hidden_states=True, output_attentions=True)  # eager path, with probabilities
        as_tuple = model(**inputs, return_dict=False)

    fields = _fields(arch, task)
    for name in fields:
        assert_close(getattr(plain, name), getattr(expected, name), what=f"{name} (sdpa)")
        assert_close(getattr(full, name), getattr(expected, name), what=f"{name} (eager)")
    assert plain.hidden_states is None and plain.attentions is None

    num_layers = 2
    assert len(full.hidden_states) == len(expected.hidden_states) == num_layers + 1
    for i, (mine, theirs) in enumerate(zip(full.hidden_states, expected.hidden_states)):
        assert_close(mine, theirs, what=f"hidden_states[{i}]")
    assert len(full.attentions) == len(expected.attentions) == num_layers
    for i, (mine, theirs) in enumerate(zip(full.attentions, expected.attentions)):
        assert_close(mine, theirs, atol=1e-5, what=f"attentions[{i}]")

    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(fields)
    for i, name in enumerate(fields):
        assert_close(as_tuple[i], getattr(expected, name), what=f"tuple[{i}] ({name})")

    concrete = hugkit_class(arch, task).from_pretrained(tmp_path)  # the concrete class loads the same weights
    with torch.inference_mode():
        again = concrete(**inputs)
    for name in fields:
        assert torch.equal(getattr(again, name), getattr(plain, name)), name


@pytest.mark.parametrize("arch", ARCHS)
def test_concrete_class_and_tuple_with_extras(arch, tmp_path):
    """Loading through the concrete class; return_dict=False carries hidden states and attentions after the logits."""
    task = "sequence-classification"
    save_reference(arch, task, tmp_path, seed=3)
    reference = load_reference(tmp_path, task, eager=True)
    model = hugkit_class(arch, task).from_pretrained(tmp_path)
    inputs = make_inputs(arch, lengths=(4, 11), seed=5)
    with torch.inference_mode():
        expected = reference(**inputs, output_hidden_states=True, output_attentions=True, return_dict=False)
        mine = model(**inputs, output_hidden_states=True, output_attentions=True, return_dict=False)
    assert len(mine) == 3  # logits, hidden_states, attentions
    assert_close(mine[0], expected[0], what="logits")
    for a, b in zip(mine[1], expected[1]):
        assert_close(a, b, what="hidden state")
    for a, b in zip(mine[2], expected[2]):
        assert_close(a, b, atol=1e-5, what="attention")


@pytest.mark.parametrize("arch", ARCHS)
def test_config_flags_are_the_defaults(arch, tmp_path):
    """output_hidden_states / return_dict left as None follow the config, as in transformers."""
    save_reference(arch, "base", tmp_path)
    model = auto.AutoModel.from_pretrained(tmp_path, output_hidden_states=True, return_dict=False)
    inputs = make_inputs(arch)
    with torch.inference_mode():
        out = model(**inputs)
    assert isinstance(out, tuple)
    hidden_states = out[-1]
    assert len(hidden_states) == 3 and torch.equal(hidden_states[-1], out[0])


@pytest.mark.parametrize("arch", ARCHS)
def test_unpadded_batch_and_no_mask_agree(arch, tmp_path):
    """No attention_mask, an all-ones mask (the unmasked fast path) and transformers agree."""
    save_reference(arch, "base", tmp_path)
    reference = load_reference(tmp_path, "base")
    model = auto.AutoModel.from_pretrained(tmp_path)
    inputs = make_inputs(arch, lengths=(6, 6))
    with torch.inference_mode():
        expected = reference(input_ids=inputs["input_ids"]).last_hidden_state
        no_mask = model(input_ids=inputs["input_ids"]).last_hidden_state
        ones = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
    assert_close(no_mask, expected)
    assert torch.equal(no_mask, ones)


@pytest.mark.parametrize("arch", ARCHS)
def test_inputs_embeds_and_position_ids(arch, tmp_path):
    save_reference(arch, "base", tmp_path)
    reference = load_reference(tmp_path, "base")
    model = auto.AutoModel.from_pretrained(tmp_path)
    inputs = make_inputs(arch)
    embeds = reference.get_input_embeddings()(inputs["input_ids"]).detach()
    offset = 2 if arch in ("roberta", "xlm-roberta") else 0
    positions = (torch.arange(inputs["input_ids"].shape[1]) + offset + 3)[None].expand_as(inputs["input_ids"])
    with torch.inference_mode():
        for kwargs in ({"inputs_embeds": embeds}, {"input_ids": inputs["input_ids"], "position_ids": positions}):
            kwargs = {**kwargs, "attention_mask": inputs["attention_mask"]}
            assert_close(model(**kwargs).last_hidden_state, reference(**kwargs).last_hidden_state, what=str(list(kwargs)))


@pytest.mark.parametrize("arch", ARCHS)
def test_loss_matches_transformers(arch, tmp_path):
    save_reference(arch, "sequence-classification", tmp_path)
    reference = load_reference(tmp_path, "sequence-classification")
    model = auto.AutoModelForSequenceClassification.from_pretrained(tmp_path)
    inputs = make_inputs(arch)
    single = torch.tensor([0, 2, 1])
    multi = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    with torch.inference_mode():
        for labels in (single, multi):
            reference.config.problem_type = None
            model.config.problem_type = None
            expected = reference(**inputs, labels=labels).loss
            mine = model(**inputs, labels=labels).loss
            assert_close(mine, expected, atol=1e-5, what="loss")
            assert model.config.problem_type == reference.config.problem_type


# Sequence classifiers read only position 0 of the last layer, so hugkit skips padding in the linear layers
# (PackedBatch) and runs the last layer for position 0 alone. Every batch shape must still match transformers.
LAYOUTS = {
    "heavy right padding (packed)": ((12, 3, 7, 5), "right", True),
    "light right padding (not packed)": ((12, 12, 11), "right", False),
    "left padding (position 0 is padding: not packed)": ((12, 3, 7), "left", False),
    "single sequence": ((10,), "right", False),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("arch", ARCHS)
def test_first_token_heads_on_every_padding_layout(arch, layout, tmp_path, monkeypatch):
    import hugkit.layers

    lengths, side, packed = LAYOUTS[layout]
    reference = save_reference(arch, "sequence-classification", tmp_path)
    model = auto.AutoModelForSequenceClassification.from_pretrained(tmp_path)
    inputs = make_inputs(arch, lengths=lengths, seed=7)
    if side == "left":
        for i, length in enumerate(lengths):
            for name, tensor in inputs.items():
                tensor[i] = torch.roll(tensor[i], tensor.shape[1] - length)
    packs = []
    original = hugkit.layers.PackedBatch.__init__
    monkeypatch.setattr(hugkit.layers.PackedBatch, "__init__", lambda self, keep: packs.append(1) or original(self, keep))
    with torch.inference_mode():
        expected = reference(**inputs).logits
        logits = model(**inputs).logits
    assert_close(logits, expected, what=layout)
    assert bool(packs) == packed
