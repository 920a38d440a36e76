"""Labels -> loss on every head, against transformers (hugkit.task_heads holds the loss rules once).

The parity tests compare logits; these compare what a training loop would see: each head's loss for each
problem type, the positions it ignores (-100, spans past the sequence), and the loss leading the output tuple.
"""

from __future__ import annotations

import pytest
import torch

import hugkit.auto as auto
import transformers
from conftest import ARCHS, AUTO_CLASS, VOCAB, assert_close, make_inputs, save_reference

ENCODERS = (*ARCHS, "deberta-v2")
PAD, EOS = 1, 2  # BART's special ids in these tests


def _build(arch: str, task: str, directory, **overrides):
    """Save a tiny random transformers model for ``arch``/``task``; return it and hugkit's load of it."""
    if arch in ARCHS:
        reference = save_reference(arch, task, directory, **overrides)
    else:
        torch.manual_seed(0)
        if arch == "deberta-v2":  # the v3 layout: relative attention with shared keys and log buckets
            config = transformers.DebertaV2Config(
                vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                max_position_embeddings=64, relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=16,
                share_att_key=True, norm_rel_ebd="layer_norm", type_vocab_size=0, position_biased_input=False,
                num_labels=2 if task == "question-answering" else 3,
            )
            class_name = "DebertaV2" + {
                "sequence-classification": "ForSequenceClassification",
                "token-classification": "ForTokenClassification",
                "question-answering": "ForQuestionAnswering",
                "masked-lm": "ForMaskedLM",
            }[task]
        else:
            config = transformers.BartConfig(
                vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64,
                bos_token_id=0, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=EOS, num_labels=3,
            )
            class_name = "BartForSequenceClassification"
        for key, value in overrides.items():
            setattr(config, key, value)
        reference = getattr(transformers, class_name)(config).eval()
        reference.save_pretrained(directory)
    model = getattr(auto, AUTO_CLASS[task]).from_pretrained(directory)
    return reference, model


def _inputs(arch: str) -> dict[str, torch.Tensor]:
    if arch == "deberta-v2":
        return make_inputs("distilbert")  # plain ids and mask, pad id 0
    inputs = make_inputs("roberta" if arch == "bart" else arch)
    if arch == "bart":  # BART pools the last </s>: one per row, as its tokenizer writes them
        lengths = inputs["attention_mask"].sum(dim=1)
        inputs["input_ids"][torch.arange(len(lengths)), lengths - 1] = EOS
    return inputs


def _losses(reference, model, inputs, **labels) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.inference_mode():
        expected = reference(**inputs, **labels).loss
        mine = model(**inputs, **labels)
        as_tuple = model(**inputs, **labels, return_dict=False)
    assert torch.equal(as_tuple[0], mine.loss)  # the loss leads the tuple, as in transformers
    return mine.loss, expected


@pytest.mark.parametrize("task", ["token-classification", "masked-lm"])
@pytest.mark.parametrize("arch", ENCODERS)
def test_per_token_losses_ignore_minus_100(arch, task, tmp_path):
    reference, model = _build(arch, task, tmp_path)
    inputs = _inputs(arch)
    classes = VOCAB if task == "masked-lm" else 3
    labels = torch.randint(0, classes, inputs["input_ids"].shape, generator=torch.Generator().manual_seed(4))
    labels = labels.masked_fill(inputs["attention_mask"] == 0, -100)
    if task == "masked-lm":
        labels[:, ::2] = -100  # only the masked positions are labelled
    mine, expected = _losses(reference, model, inputs, labels=labels)
    assert_close(mine, expected, atol=1e-5, what=f"{arch} {task} loss")


@pytest.mark.parametrize("arch", ENCODERS)
def test_span_loss_clamps_and_needs_both_positions(arch, tmp_path):
    reference, model = _build(arch, "question-answering", tmp_path)
    inputs = _inputs(arch)
    start = torch.tensor([1, 3, 40])  # 40 is past the sequence: clamped to it and ignored
    end = torch.tensor([[2], [4], [6]])  # (batch, 1) positions are accepted too
    mine, expected = _losses(reference, model, inputs, start_positions=start, end_positions=end)
    assert_close(mine, expected, atol=1e-5, what=f"{arch} span loss")
    with torch.inference_mode():
        assert model(**inputs, start_positions=start).loss is None
        assert reference(**inputs, start_positions=start).loss is None


SEQUENCE_LABELS = {  # problem_type -> (num_labels, labels for a batch of 3)
    "regression": (3, torch.tensor([[0.5, -1.0, 2.0], [0.0, 1.0, 0.25], [1.5, 0.5, -0.5]])),
    "single_label_classification": (3, torch.tensor([2, 0, 1])),
    "multi_label_classification": (3, torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])),
    None: (1, torch.tensor([0.5, -1.0, 2.0])),  # one label and no problem_type: regression is inferred
}


@pytest.mark.parametrize("problem_type", list(SEQUENCE_LABELS), ids=str)
@pytest.mark.parametrize("arch", (*ENCODERS, "bart"))
def test_sequence_loss_for_each_problem_type(arch, problem_type, tmp_path):
    num_labels, labels = SEQUENCE_LABELS[problem_type]
    reference, model = _build(arch, "sequence-classification", tmp_path, num_labels=num_labels)
    reference.config.problem_type = model.config.problem_type = problem_type
    mine, expected = _losses(reference, model, _inputs(arch), labels=labels)
    assert_close(mine, expected, atol=1e-5, what=f"{arch} {problem_type} loss")
    assert model.config.problem_type == reference.config.problem_type


def test_deberta_loss_rules_without_problem_type(tmp_path):
    """DeBERTa's own rules when problem_type is unset: negative labels are ignored, 2-D labels are soft targets,
    and problem_type is not inferred."""
    reference, model = _build("deberta-v2", "sequence-classification", tmp_path)
    inputs = _inputs("deberta-v2")
    soft = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    for labels in (torch.tensor([2, -1, 0]), soft):
        mine, expected = _losses(reference, model, inputs, labels=labels)
        assert_close(mine, expected, atol=1e-5, what=f"labels {labels.tolist()}")
        assert model.config.problem_type is None
    mine, expected = _losses(reference, model, inputs, labels=torch.tensor([-1, -1, -1]))
    assert mine.item() == expected.item() == 0.0  # nothing labelled
