"""Quantized models end to end: tiny random transformers checkpoints loaded with ``quantization=``, compared with
transformers' fp32 outputs; quantize-on-load equals quantize_ after loading; save_pretrained reloads to the same
structure and logits; GGUF-loaded models save and reload; bad input gets clear errors."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from torch import nn

import hugkit
from hugkit import AutoModelForCausalLM, AutoModelForSequenceClassification, quantize_
from hugkit.gguf.linear import GGUFEmbedding, GGUFLinear
from hugkit.quantization import AlreadyQuantizedError, Int4WeightOnly
from hugkit.quantization.base import QuantizedLinear
from tests.gguf.test_tiny_gguf import write_llama_gguf

SCHEMES = ("int8", "int4", "dynamic-int8", "q8_0", "q4_0", "q4_1")
# max |logits - fp32 reference| / max |reference| on these tiny random models; worst measured over the five
# architectures: int8 0.011, dynamic-int8 0.032, q8_0 0.013, int4 0.17, q4_0 0.14, q4_1 0.14 (a broken quantizer: ~1)
BOUNDS = {"int8": 0.025, "dynamic-int8": 0.06, "q8_0": 0.025, "int4": 0.25, "q4_0": 0.22, "q4_1": 0.22}
IDS = torch.tensor([[1, 5, 9, 33, 2, 7, 11, 64, 3, 8, 21, 40, 17, 6, 30, 12, 50, 4, 9, 10]])  # 20 rows: prefill path


def _reference_models():
    common = dict(vocab_size=100)
    return {
        "gpt2": (AutoModelForCausalLM, transformers.GPT2LMHeadModel(
            transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=32, **common))),
        "llama": (AutoModelForCausalLM, transformers.LlamaForCausalLM(transformers.LlamaConfig(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            tie_word_embeddings=True, **common))),
        "qwen2": (AutoModelForCausalLM, transformers.Qwen2ForCausalLM(transformers.Qwen2Config(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            **common))),
        "bert": (AutoModelForSequenceClassification, transformers.BertForSequenceClassification(transformers.BertConfig(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_labels=3, **common))),
        "distilbert": (AutoModelForSequenceClassification, transformers.DistilBertForSequenceClassification(
            transformers.DistilBertConfig(dim=64, hidden_dim=128, n_layers=2, n_heads=4, num_labels=3, **common))),
    }


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """{arch: (auto class, folder, fp32 reference logits for IDS)}."""
    root = tmp_path_factory.mktemp("quantization")
    out = {}
    torch.manual_seed(0)
    for arch, (auto, model) in _reference_models().items():
        model.eval().save_pretrained(root / arch)
        with torch.no_grad():
            out[arch] = (auto, root / arch, model(IDS).logits)
    return out


def _logits(model, ids=IDS):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("arch", ["gpt2", "llama", "qwen2", "bert", "distilbert"])
def test_quantized_model_close_to_fp32_and_reloads(checkpoints, arch, scheme, tmp_path):
    auto, folder, reference = checkpoints[arch]
    model = auto.from_pretrained(folder, quantization=scheme)
    linear = [m for m in model.modules() if isinstance(m, (nn.Linear, QuantizedLinear, GGUFLinear))]
    assert linear and not any(isinstance(m, nn.Linear) for m in linear)  # every linear layer, heads included
    assert not any(isinstance(m, GGUFEmbedding) for m in model.modules())  # embeddings stay float
    got = _logits(model)
    error = (got - reference).abs().max() / reference.abs().max()
    assert error <= BOUNDS[scheme], f"{arch} {scheme}: relative error {error:.4f}"
    if arch in ("gpt2", "llama"):  # decode-sized input: the kernel path
        one = _logits(model, IDS[:, :1])
        assert (one - reference[:, :1]).abs().max() / reference[:, :1].abs().max() <= BOUNDS[scheme]

    # quantize-on-load is exactly quantize_ after a float load
    after = quantize_(auto.from_pretrained(folder), scheme)
    assert torch.equal(_logits(after), got)

    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())["quantization_config"]
    assert saved["quant_method"] == "hugkit" and saved["scheme"] == scheme and saved["modules_to_not_convert"] == []
    reloaded = auto.from_pretrained(tmp_path)
    assert [type(m) for m in reloaded.modules()] == [type(m) for m in model.modules()]
    assert torch.equal(_logits(reloaded), got)


def test_filter_fn_keeps_layers_float_and_is_recorded(checkpoints, tmp_path):
    auto, folder, reference = checkpoints["gpt2"]
    model = quantize_(auto.from_pretrained(folder), Int4WeightOnly(group_size=32),
                      filter_fn=lambda module, name: "lm_head" not in name)
    assert isinstance(model.lm_head, nn.Linear) and model.lm_head.weight is model.transformer.wte.weight
    assert isinstance(model.transformer.h[0].attn.c_attn, QuantizedLinear)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())["quantization_config"]
    assert saved["modules_to_not_convert"] == ["lm_head"] and saved["group_size"] == 32
    reloaded = auto.from_pretrained(tmp_path)
    assert isinstance(reloaded.lm_head, nn.Linear) and reloaded.transformer.h[1].mlp.c_fc.group_size == 32
    assert torch.equal(_logits(reloaded), _logits(model))


def test_int4_is_smaller_on_disk(checkpoints, tmp_path):
    auto, folder, _ = checkpoints["llama"]
    sizes = {}
    for scheme in ("int8", "int4"):
        auto.from_pretrained(folder, quantization=scheme).save_pretrained(tmp_path / scheme)
        sizes[scheme] = (tmp_path / scheme / "model.safetensors").stat().st_size
    fp32 = (folder / "model.safetensors").stat().st_size
    assert sizes["int4"] < sizes["int8"] < fp32


@pytest.mark.parametrize("output", ["Q4_1", None])  # a separate head, or one tied to the Q8_0 embedding
def test_gguf_model_saves_and_reloads(tmp_path, output):
    path = write_llama_gguf(tmp_path / "tiny.gguf", output=output)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert isinstance(model.model.embed_tokens, GGUFEmbedding) and isinstance(model.lm_head, GGUFLinear)
    model.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())["quantization_config"]
    assert saved["module_schemes"]["model.embed_tokens"]["scheme"] == "q8_0"
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "saved")
    assert [type(m) for m in reloaded.modules()] == [type(m) for m in model.modules()]
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    assert torch.equal(_logits(reloaded, ids), _logits(model, ids))
    if output is None:
        assert saved["module_schemes"]["lm_head"] == {"tied_to": "model.embed_tokens"}
        assert reloaded.lm_head.qweight is reloaded.model.embed_tokens.qweight


def test_quantize_gguf_blocks_from_float(checkpoints, tmp_path):
    auto, folder, _ = checkpoints["llama"]
    model = quantize_(auto.from_pretrained(folder), hugkit.GGUFQ4_1())
    assert isinstance(model.model.layers[0].mlp.up_proj, GGUFLinear) and model.lm_head.kind == "Q4_1"


def test_gguf_file_with_quantization_requantizes(tmp_path):
    path = write_llama_gguf(tmp_path / "tiny.gguf")
    model = AutoModelForCausalLM.from_pretrained(path, quantization="int8")
    assert isinstance(model.model.layers[0].self_attn.q_proj, QuantizedLinear)
    assert isinstance(model.model.embed_tokens, nn.Embedding)  # dequantized, float


def test_bad_input(checkpoints, tmp_path):
    auto, folder, _ = checkpoints["llama"]
    with pytest.raises(ValueError, match=r"Unknown quantization scheme 'int3'.*int8, int4, dynamic-int8, q8_0"):
        auto.from_pretrained(folder, quantization="int3")
    with pytest.raises(ValueError, match="group_size must be a positive multiple of 32"):
        Int4WeightOnly(group_size=48)
    with pytest.raises(ValueError, match=r"in_features=64, not a multiple of group_size=128.*filter_fn"):
        auto.from_pretrained(folder, quantization=Int4WeightOnly(group_size=128))
    with pytest.raises(TypeError, match="quantization= expects a scheme name"):
        auto.from_pretrained(folder, quantization=8)
    model = auto.from_pretrained(folder, quantization="int8")
    with pytest.raises(AlreadyQuantizedError, match="already quantized"):
        quantize_(model, "int4")
    model.save_pretrained(tmp_path)
    with pytest.raises(AlreadyQuantizedError, match=r"already quantized \(int8\).*Drop quantization="):
        auto.from_pretrained(tmp_path, quantization="int4")
    assert isinstance(auto.from_pretrained(tmp_path, quantization="int8").lm_head, QuantizedLinear)  # same: fine
    config = json.loads((tmp_path / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="quant_method='gptq' is not hugkit's format"):
        auto.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="expects inputs with 64 features"):
        model.lm_head(torch.randn(2, 65))
    with pytest.raises(ValueError, match="call hugkit.quantize_"):
        hugkit.pipeline("text-generation", model=model, tokenizer=object(), quantization="int8")


def test_gguf_q4_blocks_saved_as_nibbles_and_old_format_refused(checkpoints, tmp_path):
    auto, folder, _ = checkpoints["llama"]
    model = quantize_(auto.from_pretrained(folder), hugkit.GGUFQ4_1())
    assert model.lm_head.qweight.dtype == torch.uint8 and model.lm_head.qweight.shape == (100, 32)  # 2 per byte
    model.save_pretrained(tmp_path)
    config_path = tmp_path / "config.json"
    config = json.loads(config_path.read_text())
    assert config["quantization_config"]["format"] == 2
    del config["quantization_config"]["format"]  # as an earlier hugkit wrote it (blocks unpacked)
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="stored GGUF Q4_0/Q4_1 blocks unpacked.*save it again"):
        auto.from_pretrained(tmp_path)
