#!/usr/bin/env bash
# The README's second command: set up, then run the whole test suite (CPU, ~minutes) on
# DETSEG_TEST_WORKERS processes (default 2, one torch thread each; 0 runs in-process).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup.sh
exec .venv/bin/python -m pytest -n "${DETSEG_TEST_WORKERS:-2}" "$@"
