"""The ``activations`` choice of the weight-only schemes: "int8" (integer dot products for decode-sized inputs, the
default of hugkit's int8/int4) and "float" (the default of GGUF blocks, transformers' numbers); switching a model
with set_activations_, and the choice surviving save_pretrained / from_pretrained."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

from hugkit import AutoModelForCausalLM, Int4WeightOnly, Int8WeightOnly, set_activations_
from hugkit.quantization import GGUFQ4_1, resolve_quantization
from hugkit.quantization.base import QuantizedLinear
from tests.gguf.test_tiny_gguf import write_llama_gguf

ONE_TOKEN = torch.tensor([[5]])  # one row: the decode kernel


def _layers(model):
    return [m for m in model.modules() if isinstance(m, QuantizedLinear)]


def _logits(model, ids=ONE_TOKEN):
    with torch.no_grad():
        return model(ids).logits


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("llama")
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=100, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2)).save_pretrained(folder)
    return folder


def test_defaults_and_names():
    assert Int8WeightOnly().activations == "int8" and Int4WeightOnly().activations == "int8"
    assert GGUFQ4_1().activations == "float"
    assert resolve_quantization({"quant_method": "hugkit", "scheme": "int4", "group_size": 32}).activations == "int8"
    with pytest.raises(ValueError, match=r"activations must be one of \('int8', 'float'\).*got 'fp16'"):
        Int4WeightOnly(64, activations="fp16")


def test_switch_changes_decode_only_and_round_trips(llama_folder, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(llama_folder, quantization="int4")
    ids = torch.tensor([list(range(1, 21))])  # 20 rows: the prefill path, float activations either way
    prefill, decode = _logits(model, ids), _logits(model)
    set_activations_(model, "float")
    assert all(layer.quantization.activations == "float" for layer in _layers(model))
    assert torch.equal(_logits(model, ids), prefill)
    exact = _logits(model)
    assert not torch.equal(exact, decode) and torch.allclose(exact, decode, atol=0.02 * exact.abs().max().item())

    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())["quantization_config"]
    assert saved["scheme"] == "int4" and saved["activations"] == "float"
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert torch.equal(_logits(reloaded), exact)
    # the same storage with the other kernel, asked for at load time: no re-quantization error
    fast = AutoModelForCausalLM.from_pretrained(tmp_path, quantization=Int4WeightOnly(64, activations="int8"))
    assert torch.equal(_logits(fast), decode)


def test_gguf_file_loads_float_and_switches_tied_head_too(tmp_path):
    path = write_llama_gguf(tmp_path / "tiny.gguf", output=None)  # head tied to the Q8_0 embedding
    model = AutoModelForCausalLM.from_pretrained(path)
    assert all(layer.quantization.activations == "float" for layer in _layers(model))
    exact = _logits(model)
    set_activations_(model, "int8")
    assert model.lm_head.quantization.activations == "int8"
    fast = _logits(model)
    assert not torch.equal(fast, exact) and torch.allclose(fast, exact, atol=0.02 * exact.abs().max().item())
    model.save_pretrained(tmp_path / "saved")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "saved")
    assert reloaded.lm_head.qweight is reloaded.model.embed_tokens.qweight
    assert all(layer.quantization.activations == "int8" for layer in _layers(reloaded))
    assert torch.equal(_logits(reloaded), fast)


def test_bad_input(llama_folder):
    with pytest.raises(ValueError, match="has no quantized linear layers: quantize it first"):
        set_activations_(AutoModelForCausalLM.from_pretrained(llama_folder), "int8")
    model = AutoModelForCausalLM.from_pretrained(llama_folder, quantization="dynamic-int8")
    with pytest.raises(ValueError, match="always quantizes its activations to int8"):
        set_activations_(model, "float")
    with pytest.raises(ValueError, match="activations must be one of"):
        set_activations_(model, "bf16")
