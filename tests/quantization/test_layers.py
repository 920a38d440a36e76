"""Quantized linear layers against their own dequantized weights (kernel, prefill and fallback paths), the
quantizers' error bounds, and hugkit's GGUF quantizer against gguf's own."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch
from torch import nn

import hugkit.quantization.base as base_module
from hugkit.gguf.linear import GGUFLinear, quantize_blocks, unpack_blocks
from hugkit.quantization import DynamicInt8, GGUFQ4_1, Int4WeightOnly, Int8WeightOnly
from hugkit.quantization.int4 import pack_nibbles, unpack_nibbles
from hugkit.quantization.quantize import quantize_layer

ROWS = (1, 5, 40)  # decode kernel (<= 16 rows) and the dequantize + BLAS path


def _float_linear(in_features=256, out_features=96, seed=0):
    torch.manual_seed(seed)
    layer = nn.Linear(in_features, out_features)
    with torch.no_grad():
        layer.weight.normal_(0, 0.05)
        layer.bias.normal_(0, 0.1)
    return layer


def _int8_activations(x: torch.Tensor) -> torch.Tensor:
    """x as the int8-activation kernel sees it: each run of 32 values rounded to int8 steps of max|x| / 127."""
    runs = x.reshape(x.shape[0], -1, 32)
    amax = runs.abs().amax(-1, keepdim=True)
    inverse = torch.where(amax > 0, 127 / amax, torch.zeros_like(amax))
    return (torch.round(runs * inverse) * (amax / 127)).reshape(x.shape)


CONFIGS = [Int8WeightOnly(), Int4WeightOnly(32), Int4WeightOnly(64), Int4WeightOnly(128), GGUFQ4_1(),
           Int8WeightOnly(activations="float"), Int4WeightOnly(64, activations="float"), GGUFQ4_1(activations="int8")]


@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.parametrize("rows", ROWS)
def test_forward_equals_dequantized_matmul(config, rows):
    """Float activations: exactly the dequantized weights' matmul. int8 activations (decode-sized inputs only):
    the same matmul of the int8-rounded input -- and within int8 rounding of the exact result."""
    layer = _float_linear()
    quantized = quantize_layer(layer, config)
    x = torch.randn(rows, 256)
    weight = quantized.dequantize()
    exact = x @ weight.T + layer.bias
    got = quantized(x)
    assert got.shape == (rows, 96)
    int8_kernel = config.activations == "int8" and rows <= base_module.MAX_ROWS
    want = _int8_activations(x) @ weight.T + layer.bias if int8_kernel else exact
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    relative = ((got - exact).norm() / exact.norm()).item()
    assert relative < (1e-2 if int8_kernel else 1e-5), relative


@pytest.mark.parametrize("config", [Int4WeightOnly(64), Int4WeightOnly(32), Int8WeightOnly(), GGUFQ4_1("int8")],
                         ids=str)
@pytest.mark.parametrize("rows", [1, 3])
def test_int8_activation_kernel_odd_group_counts(config, rows):
    """320 inputs: 5 groups of 64 (the two-group unrolled batch-1 loop's remainder), 10 runs of 32."""
    layer = _float_linear(in_features=320, out_features=40)
    quantized = quantize_layer(layer, config)
    x = torch.randn(rows, 320)
    want = _int8_activations(x) @ quantized.dequantize().T + layer.bias
    torch.testing.assert_close(quantized(x), want, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def portable_kernels():
    """The kernels built without AVX2 (what other CPUs run): compiled once per machine, ~1 minute."""
    from hugkit.gguf.kernel import compile_kernels

    return compile_kernels(vectorized=False)


@pytest.mark.parametrize("config", [Int4WeightOnly(64), Int4WeightOnly(32), Int8WeightOnly(), GGUFQ4_1(),
                                    Int4WeightOnly(64, activations="float")], ids=str)
@pytest.mark.parametrize("rows", [1, 3])
def test_portable_kernels_match_vectorized(portable_kernels, config, rows, monkeypatch):
    quantized = quantize_layer(_float_linear(in_features=320, out_features=40), config)
    x = torch.randn(rows, 320)
    vectorized = quantized(x)
    monkeypatch.setattr(base_module, "block_mm_kernel", lambda: portable_kernels)
    torch.testing.assert_close(quantized(x), vectorized, atol=1e-4, rtol=1e-4)


def test_int8_activation_kernel_handles_outliers_and_zero_runs():
    """A run of zeros (scale 0) and a run with one huge value: the rounding stays per run of 32."""
    quantized = quantize_layer(_float_linear(), Int4WeightOnly(64))
    x = torch.randn(2, 256)
    x[0, :32] = 0
    x[1, 40] = 1e4
    torch.testing.assert_close(quantized(x), _int8_activations(x) @ quantized.dequantize().T + quantized.bias,
                               atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("config", [Int8WeightOnly(), Int4WeightOnly(64), Int4WeightOnly(64, activations="float")],
                         ids=str)
def test_fallback_without_kernel_matches(config, monkeypatch):
    """Without the compiled kernel: float activations, so the kernel's result within its activation rounding."""
    quantized = quantize_layer(_float_linear(), config)
    x = torch.randn(3, 256)
    with_kernel = quantized(x)
    monkeypatch.setattr(base_module, "block_mm_kernel", lambda: None)
    tolerance = 1e-4 if config.activations == "float" else 2e-2
    torch.testing.assert_close(quantized(x), with_kernel, atol=tolerance, rtol=tolerance)
    torch.testing.assert_close(quantized.dequantize(), quantized._dequantize_rows(0, 96, None), atol=0, rtol=0)


def test_int8_error_bound():
    layer = _float_linear()
    quantized = quantize_layer(layer, Int8WeightOnly())
    assert quantized.qweight.dtype == torch.int8 and quantized.scales.shape == (96,)
    error = (quantized.dequantize() - layer.weight).abs()
    assert (error <= quantized.scales[:, None] / 2 + 1e-7).all()
    assert quantized.qweight.abs().amax(dim=1).eq(127).all()  # each row uses the full range


def test_int4_packing_and_error_bound():
    layer = _float_linear()
    quantized = quantize_layer(layer, Int4WeightOnly(64))
    assert quantized.qweight.dtype == torch.uint8 and quantized.qweight.shape == (96, 128)  # two per byte
    groups = layer.weight.detach().view(96, 4, 64)
    error = (quantized.dequantize().view(96, 4, 64) - groups).square().sum(-1)
    # the clip search never does worse than plain [min, max] round-to-nearest, group by group
    low, high = groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True)
    step = (high - low) / 15
    plain = (torch.round((groups - low) / step).clamp(0, 15) * step + low - groups).square().sum(-1)
    assert (error <= plain * (1 + 1e-5) + 1e-12).all() and (error < plain).any()
    values = torch.randint(0, 16, (7, 64), dtype=torch.uint8)
    packed = pack_nibbles(values)
    assert packed[0, 0] == values[0, 0] | (values[0, 16] << 4)  # GGUF order: weight j and j + 16 share a byte
    assert torch.equal(unpack_nibbles(packed), values)


def test_dynamic_int8_runs_integer_matmul_for_batches():
    layer = _float_linear()
    quantized = quantize_layer(layer, DynamicInt8())
    x = torch.randn(64, 256)
    weight_only = x @ quantized.dequantize().T + layer.bias
    got = quantized(x)
    assert not torch.equal(got, weight_only)  # activations were quantized too (fbgemm path)
    reference = layer(x).detach()
    assert (got - reference).abs().max() <= 0.02 * reference.abs().max()
    decode = _int8_activations(x[:2]) @ quantized.dequantize().T + layer.bias  # decode: the int8-activation kernel
    torch.testing.assert_close(quantized(x[:2]), decode, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ["Q8_0", "Q4_0", "Q4_1"])
def test_gguf_quantizer_matches_gguf(kind):
    weight = torch.randn(48, 128) * 0.1
    weight[3, :32] = 0.0  # an all-zero block: d = 0
    ours = quantize_blocks(weight, kind)
    raw = gguf.quants.quantize(weight.numpy(), gguf.GGMLQuantizationType[kind])
    theirs = unpack_blocks(raw, kind, 48, 128)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    layer = GGUFLinear.from_float(weight, None, type("C", (), {"kind": kind})())
    expected = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType[kind]).reshape(48, 128)
    assert np.array_equal(layer.dequantize().numpy(), expected)


@pytest.mark.parametrize("scheme", ["int8", "int4", "dynamic-int8", "q8_0", "q4_0", "q4_1"])
def test_big_layers_quantize_in_row_slices_identically(scheme, monkeypatch):
    import hugkit.quantization.quantize as quantize_module
    from hugkit.quantization import resolve_quantization

    layer, config = _float_linear(out_features=100), resolve_quantization(scheme)
    whole = quantize_layer(layer, config)
    monkeypatch.setattr(quantize_module, "_ROWS_AT_ONCE", 32)  # 100 rows -> 4 slices
    sliced = quantize_layer(layer, config)
    assert sliced.out_features == 100 and sliced.bias is not None
    for name, buffer in whole.named_buffers():
        assert torch.equal(buffer, dict(sliced.named_buffers())[name])
