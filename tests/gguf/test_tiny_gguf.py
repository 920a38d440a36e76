"""Tiny GGUF files written in the test: each block format exactly, the q/k un-permutation against transformers'
GGUF loading, and bad inputs."""

import logging

import numpy as np
import pytest
import torch

import gguf
from gguf import GGMLQuantizationType as T  # noqa: E402

from hugkit import AutoModelForCausalLM  # noqa: E402
from hugkit.gguf.linear import GGUFEmbedding, GGUFLinear, dequantize_blocks  # noqa: E402
from hugkit.hub import CheckpointNotFoundError  # noqa: E402

from .reference import transformers_gguf_model  # noqa: E402

HIDDEN, FFN, HEADS, KV_HEADS, VOCAB, LAYERS = 64, 96, 4, 2, 128, 2


def _quantized(rng, shape, kind):
    values = (rng.standard_normal(shape) * 0.1).astype(np.float32)
    if kind == "F32":
        return values, None
    if kind == "F16":
        return values.astype(np.float16), None
    return gguf.quants.quantize(values, T[kind]), T[kind]


def write_llama_gguf(path, arch="llama", layer_types=("Q4_0", "Q4_1"), extra=None, embed="Q8_0", output="Q4_1",
                     vocab_size=VOCAB, metadata=None):
    """A tiny Llama-shaped GGUF; ``metadata(writer)`` may add more keys (a tokenizer)."""
    rng = np.random.default_rng(0)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(LAYERS)
    writer.add_context_length(256)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_vocab_size(vocab_size)
    if metadata is not None:
        metadata(writer)

    def add(name, shape, kind):
        data, raw = _quantized(rng, shape, kind)
        writer.add_tensor(name, data, raw_dtype=raw)

    add("token_embd.weight", (vocab_size, HIDDEN), embed)
    add("output_norm.weight", (HIDDEN,), "F32")
    if output:
        add("output.weight", (vocab_size, HIDDEN), output)
    kv = HIDDEN // HEADS * KV_HEADS
    for layer, kind in enumerate(layer_types):
        add(f"blk.{layer}.attn_norm.weight", (HIDDEN,), "F32")
        add(f"blk.{layer}.ffn_norm.weight", (HIDDEN,), "F32")
        add(f"blk.{layer}.attn_q.weight", (HIDDEN, HIDDEN), kind)
        add(f"blk.{layer}.attn_k.weight", (kv, HIDDEN), kind)
        add(f"blk.{layer}.attn_v.weight", (kv, HIDDEN), kind)
        add(f"blk.{layer}.attn_output.weight", (HIDDEN, HIDDEN), kind)
        add(f"blk.{layer}.ffn_gate.weight", (FFN, HIDDEN), kind)
        add(f"blk.{layer}.ffn_up.weight", (FFN, HIDDEN), "F16" if layer == 0 else kind)
        add(f"blk.{layer}.ffn_down.weight", (HIDDEN, FFN), "Q5_0" if layer == 1 else kind)
    for name, (data, raw) in (extra or {}).items():
        writer.add_tensor(name, data, raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize("kind", ["Q4_0", "Q4_1", "Q8_0"])
def test_block_formats_exact(kind):
    rng = np.random.default_rng(1)
    values = (rng.standard_normal((48, 96)) * 0.3).astype(np.float32)
    raw = gguf.quants.quantize(values, T[kind])
    reference = torch.from_numpy(gguf.quants.dequantize(raw, T[kind]).astype(np.float32))
    assert torch.equal(dequantize_blocks(raw, kind, 48, 96), reference)  # bit-identical weights
    linear = GGUFLinear.from_raw(raw, kind, 48, 96)
    if kind == "Q8_0":
        assert linear.qweight.dtype == torch.int8 and linear.weight_bytes < values.nbytes / 3 + 1
    else:  # two 4-bit values per byte (+ a float32 scale and zero per 32): 0.75 bytes per weight
        assert linear.qweight.shape == (48, 48) and linear.weight_bytes == 48 * 96 * 3 // 4
    x = torch.randn(20, 96)
    torch.testing.assert_close(linear(x), x @ reference.T, rtol=0, atol=1e-5)  # prefill: dequantize + matmul
    for rows in (1, 3, 9):  # decode sizes: the int8 block kernel (kernel.py) when it compiled, else the same fallback
        x = torch.randn(1, rows, 96)
        torch.testing.assert_close(linear(x), x @ reference.T, rtol=0, atol=1e-5)
    embedding = GGUFEmbedding(48, 96, kind, linear.qweight, linear.scales, linear.zeros)
    ids = torch.tensor([[3, 0, 47]])
    assert torch.equal(embedding(ids), reference[ids])


def test_tiny_llama_matches_transformers(tmp_path, caplog):
    import transformers  # noqa: F401  (a test dependency: fail, never skip)
    path = write_llama_gguf(tmp_path / "tiny.gguf")
    with caplog.at_level(logging.INFO, logger="hugkit.gguf.loader"):
        model = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="tiny.gguf")
    assert "Q5_0" in caplog.text  # dequantized with a log line
    assert isinstance(model.model.layers[0].self_attn.q_proj, GGUFLinear)
    assert isinstance(model.model.embed_tokens, GGUFEmbedding)
    assert isinstance(model.lm_head, GGUFLinear) and model.lm_head.kind == "Q4_1"
    assert model.config.tie_word_embeddings is False and model.config.num_key_value_heads == KV_HEADS
    reference = transformers_gguf_model(path)
    for field in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                  "vocab_size", "rms_norm_eps", "max_position_embeddings", "tie_word_embeddings"):
        assert getattr(model.config, field) == getattr(reference.config, field), field
    ids = torch.tensor([[5, 17, 99, 3, 64, 127, 0, 42]])
    with torch.no_grad():
        expected = reference(ids).logits
        got = model(ids).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # A direct path to the file and the dequantized (fp32 nn.Linear) variant give the same logits.
    direct = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny.gguf", gguf_dequantize=True)
    assert isinstance(direct.model.layers[0].self_attn.q_proj, torch.nn.Linear)
    with torch.no_grad():
        torch.testing.assert_close(direct(ids).logits, got, rtol=0, atol=1e-5)


def test_qwen2_biases_on_quantized_projections(tmp_path):
    """Qwen2's q/k/v have biases while their weights stay in Q4 blocks: the bias must reach the GGUFLinear."""
    rng = np.random.default_rng(5)
    kv = HIDDEN // HEADS * KV_HEADS
    biases = {f"blk.{layer}.attn_{name}.bias": ((rng.standard_normal(size) * 0.5).astype(np.float32), None)
              for layer in range(LAYERS) for name, size in (("q", HIDDEN), ("k", kv), ("v", kv))}
    path = write_llama_gguf(tmp_path / "qwen2.gguf", arch="qwen2", extra=biases)
    model = AutoModelForCausalLM.from_pretrained(path)
    q_proj = model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj, GGUFLinear) and q_proj.bias is not None
    ids = torch.tensor([[5, 17, 99, 3, 64, 127, 0, 42]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, transformers_gguf_model(path)(ids).logits, rtol=0, atol=1e-5)


def test_tied_float_embeddings(tmp_path):
    write_llama_gguf(tmp_path / "tied.gguf", embed="F32", output=None)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "tied.gguf")
    assert model.config.tie_word_embeddings is True
    assert model.lm_head.weight is model.model.embed_tokens.weight


def test_unsupported_architecture(tmp_path):
    write_llama_gguf(tmp_path / "phi.gguf", arch="phi2")
    with pytest.raises(ValueError, match=r"'phi2'.*Supported GGUF architectures: gpt2, llama, qwen2"):
        AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="phi.gguf")


def test_unsupported_tensor_type(tmp_path):
    bad = {"blk.0.attn_q.weight": (np.zeros((HIDDEN, HIDDEN), dtype=np.int32), None)}
    path = write_llama_gguf(tmp_path / "int.gguf")
    # Rewrite it with an integer tensor where a weight belongs.
    writer = gguf.GGUFWriter(str(tmp_path / "int2.gguf"), "llama")
    reader = gguf.GGUFReader(str(path))
    for key in ("block_count", "context_length", "embedding_length", "feed_forward_length", "attention.head_count",
                "attention.head_count_kv", "vocab_size"):
        writer.add_uint32(f"llama.{key}", int(reader.fields[f"llama.{key}"].contents()))
    for tensor in reader.tensors:
        data = bad[tensor.name][0] if tensor.name in bad else np.array(tensor.data)
        raw = None if tensor.name in bad or tensor.tensor_type.name in ("F32", "F16") else tensor.tensor_type
        writer.add_tensor(tensor.name, data, raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ValueError, match=r"blk\.0\.attn_q\.weight has type I32.*Supported: F32, F16, BF16, Q4_0, Q4_1, Q8_0"):
        AutoModelForCausalLM.from_pretrained(tmp_path / "int2.gguf")


def test_missing_gguf_file(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="No GGUF file 'nope.gguf'"):
        AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="nope.gguf")
    with pytest.raises(CheckpointNotFoundError):
        AutoModelForCausalLM.from_pretrained(tmp_path / "absent.gguf")


def test_kernel_fallback_and_chunked_head(monkeypatch):
    import hugkit.quantization.base as routing  # GGUFLinear runs QuantizedLinear's kernel-or-slices routing

    monkeypatch.setattr(routing, "block_mm_kernel", lambda: None)
    monkeypatch.setattr(routing, "_CHUNK", 64 * 32)  # force the row-chunked path of a large head
    rng = np.random.default_rng(2)
    values = (rng.standard_normal((200, 64)) * 0.3).astype(np.float32)
    raw = gguf.quants.quantize(values, T.Q8_0)
    reference = torch.from_numpy(gguf.quants.dequantize(raw, T.Q8_0).astype(np.float32))
    linear = GGUFLinear.from_raw(raw, "Q8_0", 200, 64)
    x = torch.randn(2, 64)
    torch.testing.assert_close(linear(x), x @ reference.T, rtol=0, atol=1e-5)


def test_gguf_package_missing(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "gguf", None)
    with pytest.raises(ImportError, match="pip install gguf"):
        AutoModelForCausalLM.from_pretrained(write_llama_gguf(tmp_path / "m.gguf"))


def test_unsupported_tokenizer_type():
    from hugkit.tokenization.converters.gguf import convert_gguf

    with pytest.raises(ValueError, match=r"'t5' tokenizer .*Supported: 'gpt2' .* and 'llama'"):
        convert_gguf({"model": "t5", "tokens": ["<unk>"], "token_type": [2]})
