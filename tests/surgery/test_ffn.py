"""prune_ffn_: equals the dense transformers model with the removed neurons zeroed; magnitude criterion; config
widths (uniform -> the architecture's own field, loadable by transformers; uneven -> intermediate_sizes)."""

from __future__ import annotations

import copy

import pytest
import torch
import transformers

from hugkit import prune_ffn_

from .conftest import assert_close, load_hugkit, logits_of, make_inputs

# transformers paths: (input projections whose rows are neurons, output projection whose columns are neurons).
FFN = {
    "bert": (["bert.encoder.layer.{}.intermediate.dense"], "bert.encoder.layer.{}.output.dense"),
    "distilbert": (["distilbert.transformer.layer.{}.ffn.lin1"], "distilbert.transformer.layer.{}.ffn.lin2"),
    "deberta-v2": (["deberta.encoder.layer.{}.intermediate.dense"], "deberta.encoder.layer.{}.output.dense"),
    "gpt2": (["transformer.h.{}.mlp.c_fc"], "transformer.h.{}.mlp.c_proj"),
    "llama": (["model.layers.{}.mlp.gate_proj", "model.layers.{}.mlp.up_proj"], "model.layers.{}.mlp.down_proj"),
    "qwen3": (["model.layers.{}.mlp.gate_proj", "model.layers.{}.mlp.up_proj"], "model.layers.{}.mlp.down_proj"),
}
FIELD = {"bert": "intermediate_size", "deberta-v2": "intermediate_size", "distilbert": "hidden_dim", "gpt2": "n_inner", "llama": "intermediate_size",
         "qwen3": "intermediate_size"}


def weakest(reference, arch: str, layer: int, count: int) -> list[int]:
    """The documented criterion, computed independently: product of the L2 norms of each neuron's input rows and
    output column; the ``count`` lowest go."""
    inputs, output = FFN[arch]
    transposed = arch == "gpt2"  # Conv1D weights are [in, out]
    score = torch.ones(37)
    for path in inputs:
        weight = reference.get_submodule(path.format(layer)).weight.detach()
        score = score * (weight.T if transposed else weight).norm(dim=1)
    weight = reference.get_submodule(output.format(layer)).weight.detach()
    score = score * (weight.T if transposed else weight).norm(dim=0)
    return score.argsort()[:count].tolist()


def zero_neurons(reference, arch: str, removed: dict[int, list[int]]):
    model = copy.deepcopy(reference)
    with torch.no_grad():
        for layer, neurons in removed.items():
            weight = model.get_submodule(FFN[arch][1].format(layer)).weight
            if arch == "gpt2":
                weight[neurons, :] = 0
            else:
                weight[:, neurons] = 0
    return model


@pytest.mark.parametrize(
    "arch, amount, widths",
    [
        ("bert", 0.25, [28, 28, 28]),
        ("distilbert", {1: 10}, [37, 27, 37]),
        ("deberta-v2", {0: 0.5, 2: 3}, [19, 37, 34]),
        ("gpt2", 7, [30, 30, 30]),
        ("llama", {0: 5, 2: 0.5}, [32, 37, 19]),  # round(18.5) = 18 removed, as torch.nn.utils.prune rounds
        ("qwen3", 0.1, [33, 33, 33]),
    ],
)
def test_pruned_ffn_equals_zeroed_neurons_and_reloads(arch, amount, widths, checkpoint, tmp_path):
    folder, reference = checkpoint(arch)
    model = load_hugkit(folder)
    inputs = make_inputs(arch)
    assert prune_ffn_(model, amount) is model
    removed = {layer: weakest(reference, arch, layer, 37 - width) for layer, width in enumerate(widths) if width < 37}
    expected = logits_of(zero_neurons(reference, arch, removed), arch, inputs)
    assert_close(logits_of(model, arch, inputs), expected, what=f"{arch} pruned FFN")
    # A different choice of neurons would not match: the criterion is what selects them.
    other = {layer: list(range(len(neurons))) for layer, neurons in removed.items()}
    assert (logits_of(zero_neurons(reference, arch, other), arch, inputs) - expected).abs().max() > 1e-4

    config = model.config
    if len(set(widths)) == 1:
        assert getattr(config, FIELD[arch]) == widths[0] and not hasattr(config, "intermediate_sizes")
    else:
        assert config.intermediate_sizes == widths and getattr(config, FIELD[arch]) == 37
    model.save_pretrained(tmp_path)
    reloaded = load_hugkit(tmp_path)
    assert_close(logits_of(reloaded, arch, inputs), logits_of(model, arch, inputs), atol=1e-6, what="reloaded")
    if len(set(widths)) == 1:  # a uniform width is the architecture's own field: transformers loads it too
        auto = transformers.AutoModelForCausalLM if arch in ("gpt2", "llama", "qwen3") else transformers.AutoModelForMaskedLM
        theirs = auto.from_pretrained(tmp_path).eval()
        assert_close(logits_of(theirs, arch, inputs), logits_of(model, arch, inputs), what="transformers reload")


@pytest.mark.parametrize(
    "amount, error, message",
    [
        (1.0, ValueError, r"a fraction must be in \[0, 1\), found 1\.0"),
        (37, ValueError, r"layer 0 has 37 FFN neurons, so between 0 and 36 can be removed; asked to remove 37"),
        ({3: 1}, ValueError, r"layer 3 does not exist; the model has layers 0\.\.2"),
        ("half", TypeError, r"should be a fraction or a count"),
        (-1, ValueError, r"between 0 and 36"),
    ],
)
def test_bad_ffn_requests(amount, error, message, checkpoint):
    folder, _ = checkpoint("bert")
    model = load_hugkit(folder)
    with pytest.raises(error, match=message):
        prune_ffn_(model, amount)
    assert model.bert.encoder.layer[0].intermediate.dense.weight.shape == (37, 32)
