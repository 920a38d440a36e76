"""Compiled decode steps: one C++ call per generated token instead of a few hundred torch ops from Python.

``decode_step.cpp`` holds the step of the Llama family (Llama, Mistral, Qwen2, Qwen3, SmolLM2: RMSNorm, rotary,
attention over the static KV cache with grouped kv heads and sliding windows, the gated MLP, residuals) and calls
hugkit/gguf/kernel.py's quantized matmuls (GGUF Q4_0/Q4_1/Q8_0, hugkit int8/int4) or at::linear for float weights.
``loader.load()`` builds it once per machine (cached on disk) or returns None, after one log line, when no compiler
is available; hugkit.generation.native_runner drives it and falls back to the Python modules then.

Why a C++ step rather than ``torch.compile`` of the Python step: see hugkit/generation/native_runner.py.
"""

from __future__ import annotations

from .loader import cache_dir, load, reset, unavailable_reason

__all__ = ["cache_dir", "load", "native_available", "reset", "unavailable_reason"]


def native_available() -> bool:
    """Whether the native decode step is built (or can be built) and loaded in this process."""
    return load() is not None
