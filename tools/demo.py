"""The demo: train a small detector and a small segmenter on generated shapes, then draw them.

A thin entry point for checkouts: the code is :mod:`detseg.cli.demo`, also run as ``detseg demo``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's detseg, installed or not
from detseg.cli.demo import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
