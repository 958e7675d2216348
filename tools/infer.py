"""Run a trained detector or segmenter on images, folders, globs, video files or a camera.

A thin entry point for checkouts: the code is :mod:`detseg.cli.infer`, also run as ``detseg infer``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's detseg, installed or not
from detseg.cli.infer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
