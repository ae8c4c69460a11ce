#!/usr/bin/env bash
# Install tts and its test dependencies into a fresh .venv, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
pip install -q -e ".[test]"
python -m pytest -q
