"""Run one documentation snippet with transformers and with hugkit: the snippet is a function of the library
module (``lib.AutoTokenizer`` where the docs write ``from transformers import AutoTokenizer``)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

import hugkit


HUGKIT_DIR = str(Path(hugkit.__file__).resolve().parent)


def run_both(snippet: Callable[[Any], Any]) -> tuple[Any, Any]:
    """(hugkit's result, transformers' result). No warning may come from hugkit's code: normal use is quiet."""
    import transformers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers' own deprecation and length reminders
        expected = snippet(transformers)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = snippet(hugkit)
    ours = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught if str(Path(w.filename).resolve()).startswith(HUGKIT_DIR)]
    assert not ours, f"hugkit warned in normal use: {ours}"
    return got, expected


def device_map_auto(lib) -> dict:
    """``device_map="auto"`` as the docs pass it; transformers needs accelerate for it, which the test environment
    does not install, so the reference loads without it (on a CPU-only machine "auto" means the CPU anyway)."""
    return {"device_map": "auto"} if lib is hugkit else {}
