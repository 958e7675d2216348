"""The demo: train a small detector and a small segmenter on generated shapes, then draw them.

Usage (``python tools/demo.py`` in a checkout takes the same arguments):
    detseg demo [--out runs/demo] [--quick] [key.sub=value ...]
    detseg demo --draw RUN/best.pt [RUN2/best.pt ...] --out DIR   # pictures only

Trains ``configs/mask_rcnn_shapes.yaml`` (boxes and instance masks) and
``configs/fcn8s_shapes.yaml`` (semantic label maps) on the CPU in a few minutes, prints their
validation metrics, and saves ``detections.png`` and ``segmentation.png``: unseen shapes images
with the predictions drawn (one colour per class). Overrides apply to both configs;
``--quick`` trains one short epoch each (for a smoke test, not for good pictures). ``--draw``
trains nothing: it draws the same 8 images with each given checkpoint into ``DIR/<run>.png``
(the pictures in the README and docs/ were made this way).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from detseg.config import ConfigError, load_config
from detseg.data.synthetic import ShapesConfig, generate_sample
from detseg.engine.checkpoint import new_run_dir
from detseg.engine.train_loop import train
from detseg.inference import Predictor

#: (config, picture file, what the picture shows)
#: the repository of a checkout or editable install (configs/ lives there)
CHECKOUT = Path(__file__).resolve().parents[2]

DEMOS = (
    ("configs/mask_rcnn_shapes.yaml", "detections.png", "Mask R-CNN: boxes, names, scores and masks"),
    ("configs/fcn8s_shapes.yaml", "segmentation.png", "FCN-8s: label map overlaid"),
)
QUICK = ["train.epochs=1", "data.num_train=64", "data.num_val=16"]


def demo_config(config: str) -> Path:
    """``configs/<name>`` of the checkout detseg runs from, else of the working directory.

    Raises:
        ConfigError: neither has it (an installed wheel carries no configs).
    """
    for root in (CHECKOUT, Path.cwd()):
        if (root / config).is_file():
            return root / config
    raise ConfigError(f"{config} not found in {CHECKOUT} or {Path.cwd()}: the demo trains the shapes configs "
                      "of a detseg checkout; run it from a clone")


def picture_grid(results, columns: int = 4) -> np.ndarray:
    """Drawn results tiled into one RGB image."""
    tiles = [r.plot(score_thresh=0.5) for r in results]
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    grid = np.full((rows * h, columns * w, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = cv2.resize(tile, (w, h))
    return grid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="dotted overrides applied to both configs")
    parser.add_argument("--out", default="runs/demo", help="folder for the runs and pictures")
    parser.add_argument("--quick", action="store_true", help="one short epoch each (smoke test)")
    parser.add_argument("--draw", nargs="+", metavar="CHECKPOINT", help="only draw these checkpoints' predictions")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # 8 images the models never saw: a seed no training or validation split uses
    shapes = ShapesConfig(num_images=8, image_size=(128, 128), max_objects=4, seed=2024)
    images = [generate_sample(shapes, i).image for i in range(8)]
    if args.draw:
        for checkpoint in map(Path, args.draw):
            try:
                predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
            except (ValueError, FileNotFoundError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            path = out / f"{checkpoint.parent.name}.png"
            cv2.imwrite(str(path), cv2.cvtColor(picture_grid(predictor.predict_arrays(images)), cv2.COLOR_RGB2BGR))
            print(f"saved: {path}")
        return 0
    for config, picture, title in DEMOS:
        try:
            cfg = load_config(demo_config(config), (QUICK if args.quick else []) + args.overrides)
        except (ConfigError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"\n== {title} ({config})", flush=True)
        run_dir = new_run_dir(out, Path(config).stem)
        best = train(cfg, run_dir, quiet=True)
        print("best: " + "  ".join(f"{k}={v:.3f}" for k, v in best.items()
                                   if isinstance(v, float) and k.split("/")[-1] in ("mAP", "mAP50", "miou", "pixel_acc")))
        predictor = Predictor.from_checkpoint(run_dir / "best.pt", device="cpu")
        path = out / picture
        cv2.imwrite(str(path), cv2.cvtColor(picture_grid(predictor.predict_arrays(images)), cv2.COLOR_RGB2BGR))
        print(f"saved: {path} (run: {run_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
