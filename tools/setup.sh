#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install detseg into it.
# Sourced by tools/demo.sh and tools/test.sh; safe to run again: it reinstalls only when
# pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
stamp=.venv/.detseg-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "[setup] installing torch, torchvision and detseg[test] (a few minutes the first time)"
    # The versions detseg is tested with; pyproject.toml admits a wider range.
    .venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
    .venv/bin/python -m pip install -q -e ".[test]"
    echo "$want" > "$stamp"
fi
