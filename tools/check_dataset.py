"""Check a dataset before training on it: every problem of its files in one pass, then decode every image.

A thin entry point for checkouts: the code is :mod:`detseg.cli.check_dataset`, also run as ``detseg check``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's detseg, installed or not
from detseg.cli.check_dataset import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
