#!/usr/bin/env bash
# The README's first command: set up, then train and evaluate the demo on generated data.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup.sh
exec .venv/bin/python tools/train.py configs/classifier_resnet18_shapes.yaml "$@"
