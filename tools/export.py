"""Export a trained detector or segmenter to ONNX (or TorchScript), checked against PyTorch.

A thin entry point for checkouts: the code is :mod:`detseg.cli.export`, also run as ``detseg export``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's detseg, installed or not
from detseg.cli.export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
