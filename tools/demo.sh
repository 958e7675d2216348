#!/usr/bin/env bash
# The README's first command: set up, then train a small detector and segmenter on generated
# shapes and save pictures of their predictions (runs/demo/*.png).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup.sh
exec .venv/bin/python tools/demo.py "$@"
