"""Convert a detection dataset between COCO, Pascal VOC and YOLO (and to mask folders).

A thin entry point for checkouts: the code is :mod:`detseg.cli.convert`, also run as ``detseg convert``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's detseg, installed or not
from detseg.cli.convert import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
