"""Print a per-layer summary (shapes, activations, params, FLOPs) of a detseg backbone.

A thin entry point for checkouts: the code is :mod:`detseg.cli.summary`, also run as ``detseg summary``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's detseg, installed or not
from detseg.cli.summary import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
