#!/usr/bin/env bash
# The README's second command: set up, then run the whole test suite (CPU, ~minutes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup.sh
exec .venv/bin/python -m pytest "$@"
