"""How slow is R-CNN? Inference speed of R-CNN, Fast R-CNN and Faster R-CNN on the same images.

The three shapes configs (``configs/{rcnn,fast_rcnn,faster_rcnn}_shapes.yaml``: the same
ResNet-18 x0.25 trunk) predict the same batches of 128-px shapes images. Selective search runs
on the CPU and is timed separately from the networks, so the table shows where the time goes:
R-CNN runs the CNN once per region (hundreds per image), Fast R-CNN once per image plus
RoIAlign, Faster R-CNN also replaces selective search with the RPN.

Usage:
    python benchmarks/rcnn_lineage.py [--images 64] [--batch 16] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from detseg.config import load_config
from detseg.data.synthetic import ShapesConfig, generate_sample
from detseg.detection.proposals import images_to_proposals
from detseg.models import build_model


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    cfg = ShapesConfig(num_images=args.images, image_size=(128, 128), max_objects=4, seed=123)
    images = torch.stack([torch.from_numpy(generate_sample(cfg, i).image).permute(2, 0, 1) for i in range(args.images)])
    batches = [images[i: i + args.batch].to(device) for i in range(0, args.images, args.batch)]
    sizes = [(128, 128)] * args.batch

    rows = []
    for name in ("rcnn", "fast_rcnn", "faster_rcnn"):
        model = build_model(load_config(ROOT / f"configs/{name}_shapes.yaml").model).to(device).eval()
        model.predict(batches[0], sizes[: len(batches[0])])  # warm-up
        t_props = t_net = 0.0
        regions = 0
        for b in batches:
            sync(device)
            t0 = time.perf_counter()
            proposals = None
            if name != "faster_rcnn":
                proposals = images_to_proposals(b, sizes[: len(b)], **model.proposal_options)
                regions += sum(min(len(x), model.max_proposals["test"]) for x in proposals)
            t1 = time.perf_counter()
            if proposals is None:
                model.predict(b, sizes[: len(b)])
            else:
                model.predict(b, sizes[: len(b)], proposals=proposals)
            sync(device)
            t2 = time.perf_counter()
            t_props, t_net = t_props + t1 - t0, t_net + t2 - t1
        rows.append((name, t_props, t_net, regions / args.images))

    n = args.images
    print(f"\nR-CNN lineage, {n} shapes images at 128 px, batch {args.batch}, {device} "
          f"({torch.get_num_threads()} threads)")
    print(f"{'model':<12}{'proposals ms/img':>18}{'network ms/img':>16}{'total img/s':>13}{'regions/img':>13}")
    base = rows[-1][1] + rows[-1][2]
    for name, tp, tn, r in rows:
        print(f"{name:<12}{1000 * tp / n:>18.1f}{1000 * tn / n:>16.1f}{n / (tp + tn):>13.1f}{r:>13.0f}"
              f"   {(tp + tn) / base:.1f}x Faster R-CNN's time")


if __name__ == "__main__":
    main()
