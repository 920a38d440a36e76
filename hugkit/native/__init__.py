"""Compiled decode steps: one C++ call per generated token instead of ~1,700 torch ops and 211 kernel calls.

``decode_step.cpp`` holds the step of the Llama family (Llama, Mistral, Qwen2, Qwen3, SmolLM2: RMSNorm, rotary,
attention over the static KV cache with grouped kv heads and sliding windows, the gated MLP, residuals). Its
quantized matmuls are hugkit/gguf/kernel.py's own (GGUF Q4_0/Q4_1/Q8_0, hugkit int8/int4), compiled into the same
module and shared out between threads by the step's own worker pool; float matmuls are at::linear. By default its
logits are bit-identical to the Python modules'. ``loader.load()`` builds it once per machine (cached on disk under
the hugkit cache folder) or returns None, after one log line, when no compiler is available;
hugkit.generation.native_runner drives it and falls back to the Python modules then.

Why a C++ step rather than ``torch.compile`` of the Python step, with measurements: hugkit/generation/native_runner.py.
"""

from __future__ import annotations

from .loader import cache_dir, load, reset, unavailable_reason

__all__ = ["cache_dir", "load", "native_available", "reset", "unavailable_reason"]


def native_available() -> bool:
    """Whether the native decode step is built (or can be built) and loaded in this process."""
    return load() is not None
