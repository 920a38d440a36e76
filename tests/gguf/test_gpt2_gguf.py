"""GPT-2 from GGUF: fused qkv with biases, learned positions, LayerNorm with bias, Conv1D layout in the model, blocks
kept quantized -- the same logits as transformers' GGUF loading (which dequantizes everything)."""

import numpy as np
import pytest
import torch

import gguf

from hugkit import AutoConfig, AutoModelForCausalLM
from hugkit.gguf.linear import GGUFEmbedding, GGUFLinear

from .reference import transformers_gguf_model
from .test_tiny_gguf import _quantized

# GPT-2's own proportions (ffn = 4 x hidden, 1024 positions): transformers' GGUF config mapping reads neither size
# from the file (it writes them to fields GPT2Config ignores), hugkit reads both, so only these sizes can be compared.
HIDDEN, FFN, HEADS, VOCAB, LAYERS, CONTEXT = 64, 256, 4, 96, 2, 1024


def write_gpt2_gguf(path, layer_kinds=("Q4_0", "Q8_0"), embed="Q8_0", output="Q4_1", bias_first=False):
    rng = np.random.default_rng(3)
    writer = gguf.GGUFWriter(str(path), "gpt2")
    writer.add_block_count(LAYERS)
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_layer_norm_eps(1e-5)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"t{index}" for index in range(VOCAB)])

    def add(name, shape, kind):
        data, raw = _quantized(rng, shape, kind)
        writer.add_tensor(name, data, raw_dtype=raw)

    def add_norm(name):
        writer.add_tensor(f"{name}.weight", (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32))
        writer.add_tensor(f"{name}.bias", (0.1 * rng.standard_normal(HIDDEN)).astype(np.float32))

    add("token_embd.weight", (VOCAB, HIDDEN), embed)
    add("position_embd.weight", (CONTEXT, HIDDEN), "F32")
    add_norm("output_norm")
    if output:
        add("output.weight", (VOCAB, HIDDEN), output)
    for layer, kind in enumerate(layer_kinds):
        add_norm(f"blk.{layer}.attn_norm")
        add_norm(f"blk.{layer}.ffn_norm")
        for short, (rows, cols), tensor_kind in (("attn_qkv", (3 * HIDDEN, HIDDEN), kind),
                                                 ("attn_output", (HIDDEN, HIDDEN), "F32"),
                                                 ("ffn_up", (FFN, HIDDEN), kind),
                                                 ("ffn_down", (HIDDEN, FFN), "F16")):
            bias = f"blk.{layer}.{short}.bias", (rows,), "F32"
            if bias_first:
                add(*bias)
            add(f"blk.{layer}.{short}.weight", (rows, cols), tensor_kind)
            if not bias_first:
                add(*bias)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize("bias_first", [False, True], ids=["weight-then-bias", "bias-then-weight"])
def test_gpt2_matches_transformers(tmp_path, bias_first):
    path = write_gpt2_gguf(tmp_path / "gpt2.gguf", bias_first=bias_first)
    model = AutoModelForCausalLM.from_pretrained(path)
    block = model.transformer.h[0]
    assert isinstance(block.attn.c_attn, GGUFLinear) and block.attn.c_attn.bias is not None
    assert type(block.attn.c_proj).__name__ == "Conv1D"  # float tensor: transposed into the Conv1D
    assert isinstance(model.transformer.wte, GGUFEmbedding) and isinstance(model.lm_head, GGUFLinear)
    reference = transformers_gguf_model(path)
    for field in ("n_embd", "n_layer", "n_head", "n_positions", "vocab_size", "layer_norm_epsilon"):
        assert getattr(model.config, field) == getattr(reference.config, field), field
    assert model.config.n_inner == FFN and reference.config.n_inner is None  # None means 4 x n_embd = FFN
    ids = torch.tensor([[5, 17, 90, 3, 64, 11, 0, 42], [7, 7, 1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits, rtol=0, atol=2e-5)
        dequantized = AutoModelForCausalLM.from_pretrained(path, gguf_dequantize=True)
        torch.testing.assert_close(dequantized(ids).logits, reference(ids).logits, rtol=0, atol=2e-5)
    generated = model.generate(ids[:1, :4], max_new_tokens=6, do_sample=False)
    expected = reference.generate(ids[:1, :4], max_new_tokens=6, do_sample=False)
    assert generated.tolist() == expected.tolist()


def test_gpt2_tied_head_and_config(tmp_path):
    path = write_gpt2_gguf(tmp_path / "tied.gguf", output=None)
    config = AutoConfig.from_pretrained(path)
    assert config.model_type == "gpt2" and config.tie_word_embeddings is True and config.n_inner == FFN
    assert AutoConfig.from_pretrained(tmp_path, gguf_file="tied.gguf") == config
    model = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="tied.gguf")
    assert model.lm_head.qweight is model.transformer.wte.qweight  # one copy of the blocks
