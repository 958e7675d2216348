"""Evaluate a checkpoint on the validation split of its config.

A thin entry point for checkouts: the code is :mod:`detseg.cli.eval`, also run as ``detseg eval``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's detseg, installed or not
from detseg.cli.eval import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
