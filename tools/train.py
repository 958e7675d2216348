"""Train a model from a config file.

A thin entry point for checkouts: the code is :mod:`detseg.cli.train`, also run as ``detseg train``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's detseg, installed or not
from detseg.cli.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
