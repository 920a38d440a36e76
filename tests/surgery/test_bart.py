"""Surgery on BART, an encoder-decoder with two stacks of layers and two attention modules per decoder block:
each operation on each stack against transformers (pruned heads = zeroed out_proj inputs, dropped layers = a BART
built with the kept layers, pruned FFN = zeroed neurons, resize = transformers' resize), the per-stack config records,
save -> reload, and bad requests."""

from __future__ import annotations

import copy
import json
import re

import pytest
import torch
import transformers

import hugkit
from hugkit import drop_layers_, prune_ffn_, prune_heads_

from .conftest import assert_close

VOCAB, BOS, PAD, EOS = 99, 0, 1, 2
# The stacks differ in every count, so a field read from the wrong stack shows: encoder 2 layers x 4 heads (head_dim 8),
# FFN 37; decoder 3 layers x 8 heads (head_dim 4), FFN 41.
SHAPE = {"encoder": dict(layers=2, heads=4, head_dim=8, ffn=37), "decoder": dict(layers=3, heads=8, head_dim=4, ffn=41)}
TASKS = {  # task -> (transformers class, hugkit auto class)
    "base": ("BartModel", "AutoModel"),
    "classification": ("BartForSequenceClassification", "AutoModelForSequenceClassification"),
    "lm": ("BartForConditionalGeneration", "AutoModelForSeq2SeqLM"),
}
LAYER_KEY = re.compile(r"((?:^|\.)(encoder|decoder)\.layers\.)(\d+)\.")


def bart_config(**overrides) -> transformers.BartConfig:
    return transformers.BartConfig(**{**dict(
        vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=3, encoder_attention_heads=4,
        decoder_attention_heads=8, encoder_ffn_dim=37, decoder_ffn_dim=41, max_position_embeddings=64, init_std=0.2,
        bos_token_id=BOS, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=EOS, num_labels=3,
    ), **overrides})


def build_reference(task: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    model = getattr(transformers, TASKS[task][0])(bart_config(**overrides))
    with torch.no_grad():  # non-zero biases, so a bias sliced wrongly shows
        for name, param in model.named_parameters():
            if name.endswith("bias") and not param.any():
                param.normal_(0.0, 0.05)
        if task == "lm":
            model.final_logits_bias.normal_(0.0, 0.05)
    return model.eval()


def load(task: str, folder, **kwargs):
    return getattr(hugkit, TASKS[task][1]).from_pretrained(folder, **kwargs)


def make_inputs() -> dict[str, torch.Tensor]:
    """<s> tokens </s> then padding (rows of length 8 and 5), as BART's tokenizer builds a batch."""
    ids = torch.randint(3, VOCAB, (2, 8), generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3])
    ids[:, 0] = BOS
    ids[0, 7], ids[1, 4] = EOS, EOS
    return {"input_ids": ids.masked_fill(mask == 0, PAD), "attention_mask": mask}


def outputs_of(model, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Class logits, or the vocabulary logits / last hidden state at real positions."""
    with torch.no_grad():
        out = model(**inputs)
    values = out.logits if hasattr(out, "logits") and out.logits is not None else out.last_hidden_state
    return values if values.dim() == 2 else values[inputs["attention_mask"].bool()]


def base_of(model):
    return getattr(model, "model", model)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """task -> (folder, transformers model), each built once."""
    built = {}

    def get(task: str):
        if task not in built:
            model = build_reference(task)
            folder = tmp_path_factory.mktemp(f"surgery-bart-{task}")
            model.save_pretrained(folder)
            built[task] = (folder, model)
        return built[task]

    return get


# --- prune_heads_ ---------------------------------------------------------------------------------

# (stack, attention, {layer: heads}): every attention module of both stacks loses heads.
HEAD_PRUNING = [
    ("encoder", "self_attn", {0: [1, 2], 1: [3]}),
    ("decoder", "self_attn", {1: [0, 5, 7]}),
    ("decoder", "encoder_attn", {0: [2], 2: [0, 1, 2, 3]}),
]
HEAD_RECORD = {"encoder.self_attn": {0: [1, 2], 1: [3]}, "decoder.self_attn": {1: [0, 5, 7]},
               "decoder.encoder_attn": {0: [2], 2: [0, 1, 2, 3]}}


def zero_heads(reference, pruning):
    """``reference`` with the pruned heads' out_proj input columns zeroed: what removing them means."""
    model = copy.deepcopy(reference)
    with torch.no_grad():
        for stack, attention, heads in pruning:
            head_dim = SHAPE[stack]["head_dim"]
            for layer, pruned in heads.items():
                weight = base_of(model).get_submodule(f"{stack}.layers.{layer}.{attention}.out_proj").weight
                for head in pruned:
                    weight[:, head * head_dim : (head + 1) * head_dim] = 0
    return model


@pytest.mark.parametrize("task", list(TASKS))
def test_pruned_heads_equal_zeroed_heads_and_reload(task, checkpoint, tmp_path):
    folder, reference = checkpoint(task)
    model = load(task, folder)
    inputs = make_inputs()
    dense = outputs_of(model, inputs)
    for stack, attention, heads in HEAD_PRUNING:
        assert prune_heads_(model, heads, stack=stack, attention=attention) is model

    expected = outputs_of(zero_heads(reference, HEAD_PRUNING), inputs)
    assert (expected - dense).abs().max() > 1e-3  # the pruned heads mattered
    got = outputs_of(model, inputs)
    assert_close(got, expected, what=f"{task} pruned heads")
    assert model.config.pruned_heads == HEAD_RECORD
    # The original head counts stay in the config: head numbers refer to them, and rebuilding needs them.
    assert (model.config.encoder_attention_heads, model.config.decoder_attention_heads) == (4, 8)

    base = base_of(model)
    attention = base.encoder.layers[0].self_attn
    assert attention.num_heads == 2
    assert (attention.q_proj.weight.shape, attention.out_proj.weight.shape) == ((16, 32), (32, 16))
    assert base.decoder.layers[1].self_attn.num_heads == 5 and base.decoder.layers[1].encoder_attn.num_heads == 8
    cross = base.decoder.layers[2].encoder_attn
    assert (cross.num_heads, cross.k_proj.weight.shape, cross.v_proj.bias.shape) == (4, (16, 32), (16,))
    assert base.decoder.layers[2].self_attn.num_heads == 8

    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())["pruned_heads"]
    assert saved["decoder.encoder_attn"] == {"0": [2], "2": [0, 1, 2, 3]}
    reloaded = load(task, tmp_path)
    assert reloaded.config.pruned_heads == HEAD_RECORD
    assert {k: v.shape for k, v in reloaded.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert_close(outputs_of(reloaded, inputs), got, atol=1e-6, what="reloaded")


def test_heads_are_numbered_as_in_the_original_model_per_attention(checkpoint):
    folder, reference = checkpoint("lm")
    model = load("lm", folder)
    prune_heads_(model, {1: [6]}, stack="decoder")  # attention defaults to self_attn
    prune_heads_(model, {1: [6, 7]}, stack="decoder", attention="self_attn")  # 6 is not pruned twice
    prune_heads_(model, {1: [6]}, stack="decoder", attention="encoder_attn")  # the cross-attention is separate
    assert model.config.pruned_heads == {"decoder.self_attn": {1: [6, 7]}, "decoder.encoder_attn": {1: [6]}}
    layer = model.model.decoder.layers[1]
    assert (layer.self_attn.num_heads, layer.encoder_attn.num_heads) == (6, 7)
    expected = zero_heads(reference, [("decoder", "self_attn", {1: [6, 7]}), ("decoder", "encoder_attn", {1: [6]})])
    inputs = make_inputs()
    assert_close(outputs_of(model, inputs), outputs_of(expected, inputs), what="repeated pruning")


def test_pruned_attentions_have_the_remaining_heads(checkpoint):
    folder, _ = checkpoint("base")
    model = load("base", folder)
    prune_heads_(model, {1: [0]}, stack="encoder")
    prune_heads_(model, {0: [1, 2, 3]}, stack="decoder", attention="encoder_attn")
    out = model(**make_inputs(), output_attentions=True)
    assert [a.shape[1] for a in out.encoder_attentions] == [4, 3]
    assert [a.shape[1] for a in out.decoder_attentions] == [8, 8, 8]
    assert [a.shape[1] for a in out.cross_attentions] == [5, 8, 8]


# --- drop_layers_ ---------------------------------------------------------------------------------


def kept_layers_reference(task: str, reference, kept: dict[str, list[int]]):
    """A transformers BART whose stacks hold only the layers ``kept[stack]`` of ``reference`` (weights copied)."""
    counts = {f"{stack}_layers": len(layers) for stack, layers in kept.items()}
    small = build_reference(task, **counts)
    state = {}
    for key, value in reference.state_dict().items():
        match = LAYER_KEY.search(key)
        if match is None:
            state[key] = value
            continue
        stack, layer = match.group(2), int(match.group(3))
        layers = kept.get(stack, range(SHAPE[stack]["layers"]))
        if layer in layers:
            state[LAYER_KEY.sub(lambda m: f"{m.group(1)}{list(layers).index(layer)}.", key, count=1)] = value
    small.load_state_dict(state)
    return small.eval()


@pytest.mark.parametrize(
    "task, how, kept",
    [
        ("lm", [dict(stack="encoder", keep=[1])], {"encoder": [1]}),
        ("lm", [dict(stack="decoder", drop=[1])], {"decoder": [0, 2]}),
        ("base", [dict(stack="decoder", keep=[2]), dict(stack="encoder", drop=[0])], {"encoder": [1], "decoder": [2]}),
        ("classification", [dict(stack="decoder", keep=range(1, 3))], {"decoder": [1, 2]}),
    ],
)
def test_dropped_layers_equal_reference_with_kept_layers(task, how, kept, checkpoint, tmp_path):
    folder, reference = checkpoint(task)
    model = load(task, folder)
    for kwargs in how:
        assert drop_layers_(model, **kwargs) is model
    expected = kept_layers_reference(task, reference, kept)
    inputs = make_inputs()
    got = outputs_of(model, inputs)
    assert_close(got, outputs_of(expected, inputs), what=f"{task} kept {kept}")
    layers = {stack: len(kept.get(stack, range(SHAPE[stack]["layers"]))) for stack in SHAPE}
    config = model.config
    assert (config.encoder_layers, config.decoder_layers) == (layers["encoder"], layers["decoder"])
    assert config.num_hidden_layers == config.encoder_layers
    base = base_of(model)
    assert (len(base.encoder.layers), len(base.decoder.layers)) == (layers["encoder"], layers["decoder"])

    model.save_pretrained(tmp_path)
    reloaded = load(task, tmp_path)
    assert (reloaded.config.encoder_layers, reloaded.config.decoder_layers) == (layers["encoder"], layers["decoder"])
    assert_close(outputs_of(reloaded, inputs), got, atol=1e-6, what="reloaded")
    theirs = getattr(transformers, TASKS[task][0]).from_pretrained(tmp_path).eval()  # plain BART to transformers
    assert_close(outputs_of(theirs, inputs), got, what="transformers reload")


def test_records_follow_the_renumbered_layers_of_one_stack(checkpoint, tmp_path):
    """Decoder layer 2's pruned heads and FFN width move to layer 1 when decoder layer 0 is dropped; the encoder's
    records stay where they were; reload agrees."""
    folder, _ = checkpoint("lm")
    model = load("lm", folder)
    prune_heads_(model, {1: [0]}, stack="encoder")
    prune_heads_(model, {2: [1, 3]}, stack="decoder", attention="encoder_attn")
    prune_ffn_(model, {1: 5, 2: 10}, stack="decoder")
    assert model.config.intermediate_sizes == {"decoder": [41, 36, 31]}
    drop_layers_(model, drop=[0], stack="decoder")
    assert model.config.pruned_heads == {"encoder.self_attn": {1: [0]}, "decoder.encoder_attn": {1: [1, 3]}}
    assert model.config.intermediate_sizes == {"decoder": [36, 31]}
    assert model.config.decoder_layers == 2 and model.config.encoder_layers == 2
    inputs = make_inputs()
    model.save_pretrained(tmp_path)
    reloaded = load("lm", tmp_path)
    assert reloaded.config.pruned_heads == model.config.pruned_heads
    assert reloaded.config.intermediate_sizes == {"decoder": [36, 31]}
    assert_close(outputs_of(reloaded, inputs), outputs_of(model, inputs), atol=1e-6, what="reloaded")

    # Reading one encoder layer at load (num_hidden_layers is encoder_layers): its records go, the decoder's stay.
    small = load("lm", tmp_path, num_hidden_layers=1)
    assert small.config.pruned_heads == {"decoder.encoder_attn": {1: [1, 3]}}
    assert len(small.model.encoder.layers) == 1 and small.model.decoder.layers[1].fc1.weight.shape == (31, 32)


# --- prune_ffn_ -----------------------------------------------------------------------------------


def weakest(reference, stack: str, layer: int, count: int) -> list[int]:
    """The documented criterion, computed independently: |fc1 row| x |fc2 column|, the ``count`` lowest go."""
    block = base_of(reference).get_submodule(f"{stack}.layers.{layer}")
    score = block.fc1.weight.detach().norm(dim=1) * block.fc2.weight.detach().norm(dim=0)
    return score.argsort()[:count].tolist()


def zero_neurons(reference, removed: dict[str, dict[int, list[int]]]):
    model = copy.deepcopy(reference)
    with torch.no_grad():
        for stack, layers in removed.items():
            for layer, neurons in layers.items():
                base_of(model).get_submodule(f"{stack}.layers.{layer}.fc2").weight[:, neurons] = 0
    return model


@pytest.mark.parametrize("task", ["lm", "classification"])
def test_pruned_ffn_equals_zeroed_neurons_and_reloads(task, checkpoint, tmp_path):
    folder, reference = checkpoint(task)
    model = load(task, folder)
    inputs = make_inputs()
    assert prune_ffn_(model, 0.25, stack="encoder") is model  # uniform: round(9.25) = 9 of 37 go in every layer
    prune_ffn_(model, {0: 0.5, 2: 3}, stack="decoder")  # uneven: round(20.5) = 20 and 3 go
    widths = {"encoder": [28, 28], "decoder": [21, 41, 38]}
    removed = {
        stack: {layer: weakest(reference, stack, layer, SHAPE[stack]["ffn"] - width)
                for layer, width in enumerate(stack_widths) if width < SHAPE[stack]["ffn"]}
        for stack, stack_widths in widths.items()
    }
    expected = outputs_of(zero_neurons(reference, removed), inputs)
    got = outputs_of(model, inputs)
    assert_close(got, expected, what=f"{task} pruned FFN")
    other = {stack: {layer: list(range(len(n))) for layer, n in layers.items()} for stack, layers in removed.items()}
    assert (outputs_of(zero_neurons(reference, other), inputs) - expected).abs().max() > 1e-4  # the criterion matters

    config = model.config
    assert config.encoder_ffn_dim == 28  # a uniform stack writes its own field
    assert config.decoder_ffn_dim == 41 and config.intermediate_sizes == {"decoder": [21, 41, 38]}
    assert [layer.fc1.out_features for layer in base_of(model).decoder.layers] == [21, 41, 38]
    model.save_pretrained(tmp_path)
    reloaded = load(task, tmp_path)
    assert reloaded.config.intermediate_sizes == {"decoder": [21, 41, 38]}
    assert_close(outputs_of(reloaded, inputs), got, atol=1e-6, what="reloaded")

    prune_ffn_(model, {0: 0, 1: 20, 2: 17}, stack="decoder")  # now uniform again: the per-stack record goes
    assert config.decoder_ffn_dim == 21 and not hasattr(config, "intermediate_sizes")
    model.save_pretrained(tmp_path / "uniform")
    theirs = getattr(transformers, TASKS[task][0]).from_pretrained(tmp_path / "uniform").eval()
    assert_close(outputs_of(theirs, inputs), outputs_of(model, inputs), what="transformers reload")


# --- resize_token_embeddings ----------------------------------------------------------------------


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("size", [120, 90])
def test_resize_matches_transformers(task, size, checkpoint, tmp_path):
    folder, _ = checkpoint(task)
    model = load(task, folder)
    reference = getattr(transformers, TASKS[task][0]).from_pretrained(folder).eval()
    old_rows = model.get_input_embeddings().weight.detach().clone()
    torch.manual_seed(0)
    reference.resize_token_embeddings(size)
    embeddings = model.resize_token_embeddings(size)

    base = base_of(model)
    assert embeddings is base.shared and embeddings.weight.shape == (size, 32)
    kept = min(size, VOCAB)
    assert torch.equal(embeddings.weight[:kept], old_rows[:kept])
    assert_close(embeddings.weight, reference.get_input_embeddings().weight, what="embedding rows")
    for stack in (base.encoder, base.decoder):  # both stacks still read the shared rows
        assert stack.embed_tokens.weight is embeddings.weight and stack.embed_tokens.num_embeddings == size
    assert model.config.vocab_size == size
    if task == "lm":
        assert model.lm_head.weight is embeddings.weight and model.lm_head.out_features == size
        assert model.final_logits_bias.shape == reference.final_logits_bias.shape == (1, size)
        assert torch.equal(model.final_logits_bias, reference.final_logits_bias)  # old entries, then zeros
        assert not model.final_logits_bias[0, kept:].any()

    inputs = make_inputs()
    inputs["input_ids"][0, 3] = kept - 1  # the last token that survives a shrink
    if size > VOCAB:
        inputs["input_ids"][0, 2] = size - 1  # a new token
    expected, got = outputs_of(reference, inputs), outputs_of(model, inputs)
    if task == "lm":
        assert got.shape[-1] == size
        assert_close(got[..., :VOCAB], expected[..., :VOCAB], atol=1e-3, what="logits of the old tokens")
        assert_close(got, expected, atol=1e-3, what="all logits")
    else:  # v5 samples new rows from N(mean, 1e-9 * covariance), hugkit takes the mean: ~1e-5 per weight
        assert_close(got, expected, atol=1e-3, what="outputs")

    model.save_pretrained(tmp_path)
    reloaded = load(task, tmp_path)
    assert reloaded.config.vocab_size == size
    assert_close(outputs_of(reloaded, inputs), got, atol=1e-6, what="reloaded")


def test_resize_without_new_tokens_keeps_old_logits_exactly(checkpoint):
    folder, reference = checkpoint("lm")
    model = load("lm", folder)
    model.resize_token_embeddings(VOCAB + 5)
    inputs = make_inputs()
    got = outputs_of(model, inputs)
    assert_close(got[:, :VOCAB], outputs_of(reference, inputs), what="old-token logits")


# --- bad requests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation, args, kwargs, message",
    [
        (drop_layers_, (), {"keep": [0]}, r"drop_layers_: BartForConditionalGeneration has 2 stacks of layers "
                                          r"\(encoder, decoder\).*stack='encoder' or stack='decoder'"),
        (prune_heads_, ({0: [1]},), {}, r"prune_heads_: .* has 2 stacks .*stack='encoder' or stack='decoder'"),
        (prune_ffn_, (0.5,), {}, r"prune_ffn_: .* has 2 stacks .*stack='encoder' or stack='decoder'"),
        (prune_ffn_, (0.5,), {"stack": "decoders"},
         r"has no stack 'decoders'; pass stack='encoder' or stack='decoder'"),
        (drop_layers_, (), {"keep": [0], "stack": None}, r"say which one with stack="),
        (prune_heads_, ({0: [4]},), {"stack": "encoder"}, r"layer 0 has no head 4; its heads are numbered 0\.\.3"),
        (prune_heads_, ({0: [8]},), {"stack": "decoder", "attention": "encoder_attn"},
         r"layer 0 has no head 8; its heads are numbered 0\.\.7"),
        (prune_heads_, ({2: [0]},), {"stack": "encoder"}, r"layer 2 does not exist; the encoder has layers 0\.\.1"),
        (prune_heads_, ({0: [0]},), {"stack": "encoder", "attention": "encoder_attn"},
         r"encoder blocks have no attention 'encoder_attn'; their attention modules are 'self_attn'"),
        (prune_heads_, ({0: [0]},), {"stack": "decoder", "attention": "cross_attn"},
         r"decoder blocks have no attention 'cross_attn'; their attention modules are 'self_attn', 'encoder_attn'"),
        (prune_heads_, ({0: list(range(8))},), {"stack": "decoder", "attention": "encoder_attn"},
         r"would leave it no attention head"),
        (drop_layers_, (), {"keep": [3], "stack": "decoder"},
         r"layer 3 in keep= does not exist; the decoder has layers 0\.\.2"),
        (drop_layers_, (), {"drop": [0, 1], "stack": "encoder"}, r"would remove all 2 layers of the encoder"),
        (prune_ffn_, ({3: 1},), {"stack": "decoder"}, r"layer 3 does not exist; the decoder has layers 0\.\.2"),
        (prune_ffn_, (41,), {"stack": "decoder"}, r"layer 0 has 41 FFN neurons, so between 0 and 40"),
    ],
)
def test_bad_requests(operation, args, kwargs, message, checkpoint):
    folder, _ = checkpoint("lm")
    model = load("lm", folder)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config_before = model.config.to_dict()
    with pytest.raises(ValueError, match=message):
        operation(model, *args, **kwargs)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in before.items()}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing changed
    assert model.config.to_dict() == config_before


def test_single_stack_models_take_no_stack(tmp_path):
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=37)
    transformers.BertModel(config).save_pretrained(tmp_path)
    model = hugkit.AutoModel.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"BertModel has a single stack of layers, so it takes no stack= argument; "
                                         r"found stack='encoder'"):
        drop_layers_(model, keep=[0], stack="encoder")
    with pytest.raises(ValueError, match=r"the model's blocks have no attention 'encoder_attn'; "
                                         r"their attention modules are 'self'"):
        prune_heads_(model, {0: [1]}, attention="encoder_attn")


def test_a_malformed_record_in_the_config_is_refused(checkpoint, tmp_path):
    folder, reference = checkpoint("base")
    config = json.loads((folder / "config.json").read_text())
    reference.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "pruned_heads": {"0": [1]}}))
    with pytest.raises(ValueError, match=r"config.pruned_heads of a bart model maps 'stack.attention' to "
                                         r"\{layer: \[heads\]\}, with keys among 'encoder.self_attn'"):
        load("base", tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "intermediate_sizes": [37, 30]}))
    with pytest.raises(ValueError, match=r"config.intermediate_sizes of a bart model maps a stack"):
        load("base", tmp_path)
