"""prune_heads_: every architecture against transformers with the pruned heads' weights zeroed, BERT against
transformers v4's prune_heads semantics, GQA rules, the config record and save -> reload."""

from __future__ import annotations

import copy

import pytest
import torch

from hugkit import prune_heads_
from hugkit.kv_cache import StaticCache

from .conftest import ARCHS, DECODERS, assert_close, load_hugkit, logits_of, make_inputs

# Where each transformers model keeps a layer's attention output projection (its input = heads x head_dim).
OUT_PROJ = {
    "bert": "bert.encoder.layer.{}.attention.output.dense", "roberta": "roberta.encoder.layer.{}.attention.output.dense",
    "xlm-roberta": "roberta.encoder.layer.{}.attention.output.dense",
    "distilbert": "distilbert.transformer.layer.{}.attention.out_lin",
    "deberta-v2": "deberta.encoder.layer.{}.attention.output.dense", "gpt2": "transformer.h.{}.attn.c_proj",
    **{arch: "model.layers.{}.self_attn.o_proj" for arch in ("llama", "mistral", "qwen2", "qwen3")},
}
# Layer 0 loses a whole key/value group (heads 0 and 1 share one), layer 2 one query head per group.
PRUNE = {0: [0, 1], 2: [1, 3]}


def zero_heads(reference, arch: str, heads: dict[int, list[int]]):
    """A copy of ``reference`` whose pruned heads contribute nothing: their output-projection inputs are zeroed.
    That is what removing a head means, so the pruned model must give the same logits."""
    model = copy.deepcopy(reference)
    head_dim = 16 if arch == "qwen3" else 8
    with torch.no_grad():
        for layer, pruned in heads.items():
            weight = model.get_submodule(OUT_PROJ[arch].format(layer)).weight
            for head in pruned:
                columns = slice(head * head_dim, (head + 1) * head_dim)
                if arch == "gpt2":  # Conv1D stores [in, out]
                    weight[columns, :] = 0
                else:
                    weight[:, columns] = 0
    return model


@pytest.mark.parametrize("arch", ARCHS)
def test_pruned_heads_equal_zeroed_heads_and_reload(arch, checkpoint, tmp_path):
    folder, reference = checkpoint(arch)
    model = load_hugkit(folder)
    inputs = make_inputs(arch)
    dense = logits_of(model, arch, inputs)
    assert prune_heads_(model, PRUNE) is model

    expected = logits_of(zero_heads(reference, arch, PRUNE), arch, inputs)
    got = logits_of(model, arch, inputs)
    assert (expected - dense).abs().max() > 1e-3  # the pruned heads mattered
    assert_close(got, expected, what=f"{arch} pruned logits")
    assert model.config.pruned_heads == {0: [0, 1], 2: [1, 3]}
    params_before = sum(p.numel() for p in reference.parameters())
    assert model.num_parameters() < params_before

    model.save_pretrained(tmp_path)
    reloaded = load_hugkit(tmp_path)
    assert reloaded.config.pruned_heads == {0: [0, 1], 2: [1, 3]}
    assert {k: v.shape for k, v in reloaded.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert_close(logits_of(reloaded, arch, inputs), got, atol=1e-6, what="reloaded")


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_gqa_head_counts_and_kv_cache(arch, checkpoint):
    """Layer 0 keeps one key/value head (2 query heads), layer 2 keeps both with one query head each; a static
    cache then holds a different head count per layer, and cached decoding equals the full forward."""
    folder, _ = checkpoint(arch)
    model = prune_heads_(load_hugkit(folder), PRUNE)
    counts = [(layer.self_attn.num_heads, layer.self_attn.num_kv_heads) for layer in model.model.layers]
    assert counts == [(2, 1), (4, 2), (2, 2)]
    assert model.kv_cache_shape()[1] == [1, 2, 2]
    ids = torch.randint(3, 99, (1, 7), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        full = model(input_ids=ids).logits
        cache = StaticCache.for_model(model, batch_size=1, max_cache_len=8)
        steps = [model(input_ids=ids[:, :4], past_key_values=cache).logits]
        steps += [model(input_ids=ids[:, t : t + 1], past_key_values=cache).logits for t in range(4, 7)]
    assert_close(torch.cat(steps, dim=1), full, what="cached decoding")
    generated = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert generated.shape == (1, 10)


def test_bert_matches_v4_prune_heads(checkpoint):
    """transformers v4's BertModel.prune_heads removed the heads' rows from query/key/value (weights and biases) and
    the matching input columns of attention.output.dense, lowered num_attention_heads, numbered heads as in the
    original model across repeated calls, and stored the union in config.pruned_heads. transformers 5 removed the
    method, so the reference is built here by doing exactly that slicing to the transformers model's modules."""
    folder, reference = checkpoint("bert")
    expected_model = copy.deepcopy(reference)
    for layer, heads in {1: [0, 2], 2: [3]}.items():
        attention = expected_model.bert.encoder.layer[layer].attention
        keep = torch.tensor([h for h in range(4) if h not in heads])
        rows = (keep[:, None] * 8 + torch.arange(8)).reshape(-1)
        for name in ("query", "key", "value"):
            old = getattr(attention.self, name)
            new = torch.nn.Linear(32, len(rows))
            new.weight.data, new.bias.data = old.weight.data[rows].clone(), old.bias.data[rows].clone()
            setattr(attention.self, name, new)
        dense = torch.nn.Linear(len(rows), 32)
        dense.weight.data = attention.output.dense.weight.data[:, rows].clone()
        dense.bias.data = attention.output.dense.bias.data.clone()
        attention.output.dense = dense
        attention.self.num_attention_heads = len(keep)
        attention.self.all_head_size = len(rows)

    model = load_hugkit(folder)
    prune_heads_(model, {1: [2]})
    prune_heads_(model, {1: [0, 2], 2: [3]})  # original numbering: head 2 is not pruned twice
    inputs = make_inputs("bert")
    assert_close(logits_of(model, "bert", inputs), logits_of(expected_model, "bert", inputs), what="v4 reference")
    assert model.config.pruned_heads == {1: [0, 2], 2: [3]}
    assert model.bert.encoder.layer[1].attention.self.query.weight.shape == (16, 32)
    assert model.bert.encoder.layer[1].attention.output.dense.weight.shape == (32, 16)
    assert model.bert.encoder.layer[1].attention.self.num_attention_heads == 2


def test_pruned_attentions_have_the_remaining_heads(checkpoint):
    folder, _ = checkpoint("gpt2")
    model = prune_heads_(load_hugkit(folder), {1: [0, 3]})
    out = model(**make_inputs("gpt2"), output_attentions=True)
    assert [a.shape[1] for a in out.attentions] == [4, 2, 4]


@pytest.mark.parametrize(
    "request_, message",
    [
        ({0: [4]}, r"layer 0 has no head 4; its heads are numbered 0\.\.3"),
        ({5: [0]}, r"layer 5 does not exist; the model has layers 0\.\.2"),
        ({0: [0, 1, 2, 3]}, r"would leave it no attention head"),
    ],
)
def test_bad_head_requests(checkpoint, request_, message):
    folder, _ = checkpoint("bert")
    model = load_hugkit(folder)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        prune_heads_(model, request_)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing changed


def test_pruning_the_last_heads_in_a_second_call_is_refused(checkpoint):
    folder, _ = checkpoint("distilbert")
    model = prune_heads_(load_hugkit(folder), {0: [0, 1, 2]})
    with pytest.raises(ValueError, match=r"layer 0 would leave it no attention head .*3 already pruned"):
        prune_heads_(model, {0: [3]})


@pytest.mark.parametrize("arch", [a for a in DECODERS if a != "gpt2"])
def test_gqa_incompatible_pruning_is_refused(arch, checkpoint):
    folder, _ = checkpoint(arch)
    model = load_hugkit(folder)
    with pytest.raises(ValueError, match=r"grouped-query attention: 4 query heads share 2 key/value heads"):
        prune_heads_(model, {1: [0]})  # group 0 would keep 1 query head, group 1 keeps 2
    prune_heads_(model, {1: [0, 2]})  # one per group is fine
    assert (model.model.layers[1].self_attn.num_heads, model.model.layers[1].self_attn.num_kv_heads) == (2, 2)
