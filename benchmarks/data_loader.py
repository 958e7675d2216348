"""Data loader throughput on coco128 at 640 px with the detection training augmentations.

Prints images/s for several worker counts, so we know whether loading can keep a GPU busy.

Usage:
    python benchmarks/data_loader.py [--coco128 ../shared/data/coco128] [--workers 0 2 8] [--epochs 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from detseg.config import load_config
from detseg.data.build import build_datasets, make_loader

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco128"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--coco128", type=Path, default=DEFAULT)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--epochs", type=int, default=2, help="passes over the 128 images per setting")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--masks", action="store_true", help="also decode instance masks")
    args = parser.parse_args()
    images, ann = args.coco128 / "images", args.coco128 / "annotations" / "instances.json"
    for workers in args.workers:
        cfg = load_config(None, [
            "data.format=coco", f"data.train.images={images}", f"data.train.annotations={ann}",
            f"data.val.images={images}", f"data.val.annotations={ann}", "data.augment.image_size=640",
            "data.augment.scale_jitter=[0.5,1.5]", "data.augment.color_jitter=0.3",
            f"data.batch_size={args.batch_size}", f"data.num_workers={workers}",
        ]).data
        train, _ = build_datasets(cfg, "detection", with_masks=args.masks)
        loader = make_loader(train, cfg, train=True, pin_memory=torch.cuda.is_available())
        next(iter(loader))  # start workers, warm caches
        start, seen = time.perf_counter(), 0
        for epoch in range(args.epochs):
            loader.sampler.set_epoch(epoch)
            for batch in loader:
                seen += len(batch)
        rate = seen / (time.perf_counter() - start)
        print(f"workers={workers:2d} masks={args.masks} batch={args.batch_size}: {rate:7.1f} images/s", flush=True)


if __name__ == "__main__":
    main()
