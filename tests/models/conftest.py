"""Shared fixtures for model tests: tiny random transformers checkpoints and padded input batches.

transformers is the numerical reference (test-only). Every checkpoint is built from a fixed seed and saved to a
temp dir, then loaded by hugkit through the same path as a real checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import transformers

ARCHS = ("bert", "distilbert", "roberta", "xlm-roberta")
TASKS = ("base", "sequence-classification", "token-classification", "question-answering", "masked-lm")

# transformers class name = prefix + suffix (the same names hugkit uses).
CLASS_PREFIX = {"bert": "Bert", "distilbert": "DistilBert", "roberta": "Roberta", "xlm-roberta": "XLMRoberta"}
CLASS_SUFFIX = {
    "base": "Model",
    "sequence-classification": "ForSequenceClassification",
    "token-classification": "ForTokenClassification",
    "question-answering": "ForQuestionAnswering",
    "masked-lm": "ForMaskedLM",
}
HUGKIT_MODULE = {"bert": "bert", "distilbert": "distilbert", "roberta": "roberta", "xlm-roberta": "xlm_roberta"}
AUTO_CLASS = {
    "base": "AutoModel",
    "sequence-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "question-answering": "AutoModelForQuestionAnswering",
    "masked-lm": "AutoModelForMaskedLM",
}

VOCAB = 99
MAX_POSITIONS = 64
LENGTHS = (9, 5, 7)  # a padded batch: every row a different length


def class_name(arch: str, task: str) -> str:
    return CLASS_PREFIX[arch] + CLASS_SUFFIX[task]


def tiny_config(arch: str, task: str = "base", **overrides):
    """A 2-layer, hidden-32 config for ``arch`` (QA heads need exactly 2 labels; everything else gets 3)."""
    num_labels = 2 if task == "question-answering" else 3
    if arch == "distilbert":
        kwargs = dict(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=37,
                      max_position_embeddings=MAX_POSITIONS, num_labels=num_labels)
        return transformers.DistilBertConfig(**{**kwargs, **overrides})
    kwargs = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                  max_position_embeddings=MAX_POSITIONS, num_labels=num_labels)
    if arch == "bert":
        return transformers.BertConfig(**{**kwargs, "type_vocab_size": 2, **overrides})
    config_class = transformers.RobertaConfig if arch == "roberta" else transformers.XLMRobertaConfig
    # RoBERTa positions start after pad_token_id, so the table must be longer than the longest input.
    return config_class(**{**kwargs, "type_vocab_size": 1, **overrides})


def build_reference(arch: str, task: str, seed: int = 0, **overrides):
    """A random transformers model (fp32, eval) for ``arch``/``task``, initialised from ``seed``."""
    torch.manual_seed(seed)
    model_class = getattr(transformers, class_name(arch, task))
    model = model_class(tiny_config(arch, task, **overrides))
    # Random-but-not-trivial head biases: transformers initialises them to zero, which would hide a lost bias.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") and not param.any():
                param.normal_(0.0, 0.05)
    return model.eval()


def save_reference(arch: str, task: str, directory: Path, seed: int = 0, **overrides):
    model = build_reference(arch, task, seed, **overrides)
    model.save_pretrained(directory)
    return model


def load_reference(directory: Path, task: str, *, eager: bool = False):
    auto = getattr(transformers, AUTO_CLASS[task])
    kwargs = {"attn_implementation": "eager"} if eager else {}
    return auto.from_pretrained(directory, **kwargs).eval()


def hugkit_class(arch: str, task: str):
    import importlib

    return getattr(importlib.import_module(f"hugkit.models.{HUGKIT_MODULE[arch]}"), class_name(arch, task))


def make_inputs(arch: str, lengths=LENGTHS, seed: int = 1) -> dict[str, torch.Tensor]:
    """A padded batch with an attention mask (and token types for BERT), using the arch's special-token ids."""
    generator = torch.Generator().manual_seed(seed)
    length = max(lengths)
    pad = 1 if arch in ("roberta", "xlm-roberta") else 0
    ids = torch.randint(3, VOCAB, (len(lengths), length), generator=generator)
    mask = (torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]).long()
    ids = ids.masked_fill(mask == 0, pad)
    inputs = {"input_ids": ids, "attention_mask": mask}
    if arch == "bert":
        types = torch.zeros_like(ids)
        types[0, 5:] = 1  # a sentence pair in the first row
        inputs["token_type_ids"] = types * mask
    return inputs


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-4, what: str = "") -> None:
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    diff = (actual.float() - expected.float()).abs().max().item()
    assert diff <= atol, f"{what}: max |diff| {diff:.3g} > {atol}"


def assets_dir() -> Path:
    return Path(os.environ.get("HUGKIT_ASSETS", Path(__file__).resolve().parents[2] / ".assets"))


@pytest.fixture(autouse=True)
def _quiet_single_threaded():
    """Tiny models gain nothing from threads, and on a shared 2-core machine a second OpenMP thread that has to
    wait for a busy core makes every op slow. transformers' load reports and progress bars are silenced."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    yield
    torch.set_num_threads(threads)
