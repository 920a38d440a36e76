"""The native decode step against the Python modules: greedy tokens identical over 64 steps (batched, left padded,
sliding windows, every quantization scheme), float-weight logits within 1e-4, the runner interface (reorder,
overflow), and the fallback when the step cannot be built."""

import logging
import subprocess
import sys

import numpy as np
import pytest
import torch

import hugkit
from hugkit import native
from hugkit.generation.native_runner import NativeDecoderRunner, unsupported_reason
from hugkit.generation.runners import DecoderOnlyRunner

from .conftest import KINDS, greedy

STEPS = 64


@pytest.fixture(scope="module", autouse=True)
def built():
    """The native step builds here (CI has a compiler): a missing build is a failure, not a skip."""
    native.reset()
    module = native.load()
    assert module is not None, native.unavailable_reason()
    return module


def _both(model, ids, mask, steps=STEPS, exact=True, parallel_weights=None, **kwargs):
    python = DecoderOnlyRunner(model, ids, mask, steps, **kwargs)
    compiled = NativeDecoderRunner(model, ids, mask, steps, exact=exact, **kwargs)
    assert compiled.native, unsupported_reason(model, compiled.rows)
    if parallel_weights is not None:  # split every matmul group (and attention) over the threads, whatever its size
        compiled._step.parallel_weights = parallel_weights
        compiled._step.attention_split_work = parallel_weights
    return greedy(python, steps), greedy(compiled, steps)


@pytest.mark.parametrize("kind", KINDS)
def test_float_weights_logits_bit_identical(tiny_llm, batch, kind):
    """The default (exact) step runs the modules' own torch ops for norms, SiLU and attention: the same bits."""
    model = hugkit.AutoModelForCausalLM.from_pretrained(tiny_llm(kind))
    ids, mask = batch
    (tokens, logits), (native_tokens, native_logits) = _both(model, ids, mask)
    assert logits.abs().max() > 1.0  # the weights are not so small that any step would pass
    assert torch.equal(tokens, native_tokens)
    assert torch.equal(logits, native_logits)


@pytest.mark.parametrize("kind", KINDS)
def test_fast_step_float_weights_tokens_and_logits(tiny_llm, batch, kind):
    """exact=False (the step's own norm/attention loops): same greedy tokens, logits within 1e-4."""
    model = hugkit.AutoModelForCausalLM.from_pretrained(tiny_llm(kind))
    ids, mask = batch
    (tokens, logits), (native_tokens, native_logits) = _both(model, ids, mask, exact=False)
    assert torch.equal(tokens, native_tokens)
    assert (logits - native_logits).abs().max() <= 1e-4


SCHEMES = [(scheme, activations) for scheme in ("int8", "int4", "q4_0", "q4_1", "q8_0")
           for activations in ("float", "int8")] + [("dynamic-int8", "int8")]  # dynamic: int8 activations only


@pytest.mark.parametrize(("scheme", "activations"), SCHEMES)
def test_quantized_tokens_identical(tiny_llm, batch, scheme, activations):
    from hugkit.quantization import quantize_, set_activations_

    model = hugkit.AutoModelForCausalLM.from_pretrained(tiny_llm("qwen2"))
    quantize_(model, hugkit.Int4WeightOnly(group_size=32) if scheme == "int4" else scheme)
    if scheme != "dynamic-int8":
        set_activations_(model, activations)
    ids, mask = batch
    (tokens, logits), (native_tokens, native_logits) = _both(model, ids, mask)
    assert torch.equal(tokens, native_tokens)
    assert torch.equal(logits, native_logits)


@pytest.mark.parametrize("activations", ["float", "int8"])
def test_two_threads_split_matmuls_bit_identical(tiny_llm, batch, activations):
    """At two threads every matmul group is split between them, and attention by kv head: still the same bits."""
    from hugkit.quantization import quantize_, set_activations_

    model = hugkit.AutoModelForCausalLM.from_pretrained(tiny_llm("llama3-rope"))
    quantize_(model, "q4_1")
    set_activations_(model, activations)
    ids, mask = batch
    torch.set_num_threads(2)
    try:
        (tokens, logits), (native_tokens, native_logits) = _both(model, ids, mask, parallel_weights=0)
    finally:
        torch.set_num_threads(1)
    assert torch.equal(tokens, native_tokens)
    assert torch.equal(logits, native_logits)


def test_two_threads_fast_step(tiny_llm, batch):
    """exact=False at two threads: matmul groups and the step's own attention split between them."""
    from hugkit.quantization import quantize_

    model = hugkit.AutoModelForCausalLM.from_pretrained(tiny_llm("qwen2"))
    quantize_(model, "q4_1")  # float activations: the fast step's last-bit differences cannot flip a rounding
    ids, mask = batch
    torch.set_num_threads(2)
    try:
        (tokens, logits), (native_tokens, native_logits) = _both(model, ids, mask, exact=False, parallel_weights=0)
    finally:
        torch.set_num_threads(1)
    assert torch.equal(tokens, native_tokens)
    assert (logits - native_logits).abs().max() <= 1e-4


@pytest.mark.parametrize(("embed", "output"), [("Q8_0", "Q4_1"), ("Q4_0", None), ("Q4_1", None)])
@pytest.mark.parametrize("activations", ["float", "int8"])
def test_gguf_blocks_tokens_identical(tmp_path, activations, embed, output):
    """Q4_0 and Q4_1 layers, one F16 and one Q5_0 matrix (float in memory); a Q8_0 embedding with a Q4_1 head, or a
    nibble embedding with the head tied to it."""
    from hugkit.gguf.linear import GGUFEmbedding, GGUFLinear
    from hugkit.quantization import set_activations_

    from tests.gguf.test_tiny_gguf import write_llama_gguf

    model = hugkit.AutoModelForCausalLM.from_pretrained(write_llama_gguf(tmp_path / "tiny.gguf", embed=embed,
                                                                         output=output))
    assert isinstance(model.model.embed_tokens, GGUFEmbedding) and model.model.embed_tokens.kind == embed
    assert isinstance(model.lm_head, GGUFLinear)
    assert isinstance(model.model.layers[0].mlp.up_proj, torch.nn.Linear)  # the F16 matrix, float
    set_activations_(model, activations)
    generator = torch.Generator().manual_seed(2)
    ids = torch.randint(3, 128, (2, 7), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, :4] = 0
    (tokens, logits), (native_tokens, native_logits) = _both(model, ids, mask)
    assert torch.equal(tokens, native_tokens)
    assert torch.equal(logits, native_logits)


def test_builtin_smollm2_tokens_identical():
    from tests.assets import SMOLLM2_GGUF, require

    model = hugkit.AutoModelForCausalLM.from_pretrained(require(SMOLLM2_GGUF))
    ids = torch.tensor([[1, 504, 3575, 282, 4649, 314]])  # "The capital of France is" after BOS
    (tokens, logits), (native_tokens, native_logits) = _both(model, ids, torch.ones_like(ids), steps=16)
    assert torch.equal(tokens, native_tokens)
    assert torch.equal(logits, native_logits)


def test_generate_matches_native_greedy(tiny_llm, batch):
    """The native runner, driven greedily, gives what model.generate (the Python loop) returns."""
    model = hugkit.AutoModelForCausalLM.from_pretrained(tiny_llm("mistral"))
    ids, mask = batch
    expected = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=STEPS, min_new_tokens=STEPS,
                              do_sample=False, pad_token_id=0)
    tokens, _ = greedy(NativeDecoderRunner(model, ids, mask, STEPS), STEPS, suppress=model.config.eos_token_id)
    assert torch.equal(expected[:, ids.shape[1]:], tokens)


def test_reorder_and_expand(tiny_llm, batch):
    """Beam-search style: rows expanded, then reordered mid-decode; both runners stay equal."""
    model = hugkit.AutoModelForCausalLM.from_pretrained(tiny_llm("qwen3"))
    ids, mask = batch
    runners = [cls(model, ids, mask, 12, expand=2) for cls in (DecoderOnlyRunner, NativeDecoderRunner)]
    assert runners[1].native and runners[1].rows == 6
    order = torch.tensor([1, 1, 0, 3, 5, 5])
    outputs = []
    with torch.inference_mode():
        for runner in runners:
            logits = runner.first_logits()
            seen = [logits]
            for step in range(10):
                if step == 4:
                    runner.reorder(order)
                logits = runner.step(logits.argmax(-1))
                seen.append(logits)
            outputs.append(torch.stack(seen))
    assert torch.equal(outputs[0], outputs[1])


def test_context_overflow_is_a_clear_error(tiny_llm):
    model = hugkit.AutoModelForCausalLM.from_pretrained(tiny_llm("llama"))
    ids = torch.tensor([[5, 6, 7]])
    runner = NativeDecoderRunner(model, ids, torch.ones_like(ids), 2)
    with torch.inference_mode():
        token = runner.first_logits().argmax(-1)
        token = runner.step(token).argmax(-1)
        token = runner.step(token).argmax(-1)
        with pytest.raises(ValueError, match="static KV cache holds 5 tokens"):
            runner.step(token)


def test_bad_token_id_is_a_clear_error(tiny_llm):
    model = hugkit.AutoModelForCausalLM.from_pretrained(tiny_llm("llama"))
    ids = torch.tensor([[5, 6, 7]])
    runner = NativeDecoderRunner(model, ids, torch.ones_like(ids), 4)
    with torch.inference_mode():
        runner.first_logits()
        with pytest.raises(RuntimeError, match="outside the vocabulary of 128"):
            runner.step(torch.tensor([500]))


def test_unsupported_models_decode_in_python(tiny_llm, batch):
    model = hugkit.AutoModelForCausalLM.from_pretrained(tiny_llm("llama"))
    ids, mask = batch
    handle = model.model.layers[1].mlp.register_forward_hook(lambda module, args, out: out * 1.5)
    try:
        assert "forward hooks" in unsupported_reason(model)
        runner = NativeDecoderRunner(model, ids, mask, 8)
        assert not runner.native
        expected, _ = greedy(DecoderOnlyRunner(model, ids, mask, 8), 8)
        assert torch.equal(greedy(runner, 8)[0], expected)
    finally:
        handle.remove()
    assert unsupported_reason(model) is None
    assert "float32" in unsupported_reason(model.to(torch.float64))


def test_many_quantized_rows_decode_in_python(tiny_llm):
    """Over kernel.MAX_ROWS rows the quantized layers leave the decode kernel: the runner stays in Python."""
    from hugkit.quantization import quantize_

    model = hugkit.AutoModelForCausalLM.from_pretrained(tiny_llm("llama"))
    quantize_(model, "q8_0")
    ids = torch.randint(3, 128, (17, 4), generator=torch.Generator().manual_seed(4))
    assert "17 rows" in unsupported_reason(model, 17)
    runner = NativeDecoderRunner(model, ids, torch.ones_like(ids), 4)
    assert not runner.native
    expected, _ = greedy(DecoderOnlyRunner(model, ids, torch.ones_like(ids), 4), 4)
    assert torch.equal(greedy(runner, 4)[0], expected)


def test_fallback_without_compiler_logs_one_line(tiny_llm, batch, tmp_path, monkeypatch, caplog):
    """No compiler and nothing cached: one log line, and the runner decodes the same tokens in Python."""
    model = hugkit.AutoModelForCausalLM.from_pretrained(tiny_llm("qwen2"))
    ids, mask = batch
    expected, _ = greedy(DecoderOnlyRunner(model, ids, mask, STEPS), STEPS)
    monkeypatch.setenv("HUGKIT_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    native.reset()
    try:
        with caplog.at_level(logging.DEBUG, logger="hugkit"):
            runners = [NativeDecoderRunner(model, ids, mask, STEPS) for _ in range(3)]
            tokens = [greedy(runner, STEPS)[0] for runner in runners]
        lines = [r for r in caplog.records if r.name.startswith("hugkit.native")]
        assert len(lines) == 1, [r.getMessage() for r in lines]
        assert "no C++ compiler found" in lines[0].getMessage() and "Python modules" in lines[0].getMessage()
        assert not any(runner.native for runner in runners)
        for got in tokens:
            assert torch.equal(got, expected)
    finally:
        native.reset()


def test_second_process_imports_the_cached_build():
    """A fresh process finds the module built by this one and never calls the compiler."""
    code = (
        "import torch.utils.cpp_extension as ext\n"
        "def no_build(*a, **k): raise AssertionError('rebuilt')\n"
        "ext.load = no_build\n"
        "from hugkit import native\n"
        "assert native.load() is not None, native.unavailable_reason()\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_portable_build_close_to_python(tiny_llm, batch):
    """The build without AVX2 (what machines without it run): same tokens on float weights, logits within 1e-4."""
    module = native.load(vectorized=False)
    assert module is not None, native.unavailable_reason(vectorized=False)
    from hugkit.generation.native_runner import build_spec

    model = hugkit.AutoModelForCausalLM.from_pretrained(tiny_llm("qwen3"))
    ids, mask = batch
    python = DecoderOnlyRunner(model, ids, mask, 16)
    portable = NativeDecoderRunner(model, ids, mask, 16)
    portable._step = module.DecodeStep(build_spec(model, portable.cache, ids.shape[1] + 16))
    (tokens, logits), (got_tokens, got_logits) = greedy(python, 16), greedy(portable, 16)
    assert torch.equal(tokens, got_tokens)
    assert np.abs((logits - got_logits).numpy()).max() <= 1e-4
