"""transformers v4's pipelines that v5 removed (question answering, summarization, translation, text2text) as a test
reference.

v4 is pip-installed once (no dependencies resolved: torch, numpy and the rest come from the test venv) into
``.assets/transformers-v4/`` beside the other fetched assets, and runs in a subprocess whose path puts it
ahead of the venv's v5. One subprocess answers a whole list of calls, since importing transformers is slow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.assets import ASSETS

V4_PACKAGES = ["transformers==4.57.6", "huggingface_hub==0.36.2", "tokenizers==0.22.2"]
V4_DIR = ASSETS / "transformers-v4"

_RUNNER = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import transformers
assert transformers.__version__.startswith("4."), transformers.__version__
transformers.logging.set_verbosity_error()
import torch
pipes = {}
results = []

def plain(value):  # tensors (return_tensors=True) as lists, so the results travel as JSON
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value

for call in json.load(sys.stdin):
    key = (call.get("task", "question-answering"), call["folder"])
    if key not in pipes:
        pipes[key] = transformers.pipeline(key[0], model=key[1], device="cpu", **call.get("init", {}))
    try:
        results.append({"ok": plain(pipes[key](*call.get("args", []), **call.get("kwargs", {})))})
    except Exception as error:
        results.append({"error": f"{type(error).__name__}: {error}"})
json.dump(results, sys.stdout)
"""


def install_v4() -> Path:
    """The folder holding transformers v4 and its matching hub and tokenizers packages (installed once)."""
    if (V4_DIR / "transformers" / "pipelines" / "question_answering.py").is_file():
        return V4_DIR
    V4_DIR.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="transformers-v4-", dir=V4_DIR.parent))
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", str(staging), *V4_PACKAGES]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        message = f"could not install {V4_PACKAGES} as the question-answering reference:\n{done.stderr[-2000:]}"
        if os.environ.get("HUGKIT_REQUIRE_ASSETS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    try:
        staging.rename(V4_DIR)  # atomic: a concurrent run sees all of it or none
    except OSError:  # another run finished first; its copy is as good
        shutil.rmtree(staging, ignore_errors=True)
    return V4_DIR


def run_v4(calls: list[dict]) -> list:
    """Each call is {"folder", "args", "kwargs"} plus optional "task" (default question-answering) and "init"
    (pipeline() arguments); returns v4's outputs (or {"error": ...}) in order, tensors as lists."""
    site = install_v4()
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-c", _RUNNER], input=json.dumps(calls), capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"transformers v4 reference failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)
