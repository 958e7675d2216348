"""Can YOLO nano fit 128 real images? The overfit curve (epochs vs bbox mAP50) of configs/yolo_coco.yaml on coco128.

Trains the shipped config with train = val = coco128 (the classic check that targets, assigner,
losses and the optimisation recipe are right), validating every ``--interval`` epochs, and
prints the curve as a table; ``--compare`` adds the curve of another run's metrics.csv (e.g. one
trained by an older detseg) to the table and to the picture.

Usage:
    python benchmarks/yolo_coco128_overfit.py [--epochs 150] [--image-size 320] [--interval 5]
        [--out runs/bench/yolo_coco128] [--compare OTHER/metrics.csv] [key=value ...]

On 2 CPU cores at 320 px an epoch takes about 15 s.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METRIC = "bbox/mAP50"


def read_curve(path: Path) -> dict[int, float]:
    """``epoch -> bbox/mAP50`` of the validated epochs of a metrics.csv."""
    with open(path) as f:
        return {int(float(r["epoch"])): float(r[METRIC]) for r in csv.DictReader(f) if r.get(METRIC)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--image-size", type=int, default=320, help="letterbox size (640 in the config)")
    parser.add_argument("--interval", type=int, default=5, help="validate every N epochs")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "yolo_coco128")
    parser.add_argument("--compare", type=Path, help="metrics.csv of another run, shown beside this one")
    parser.add_argument("overrides", nargs="*", help="more config overrides")
    args = parser.parse_args()

    from detseg.config import load_config
    from detseg.engine.checkpoint import new_run_dir
    from detseg.engine.train_loop import train

    overrides = [f"train.epochs={args.epochs}", f"eval.interval={args.interval}", f"eval.metric={METRIC}",
                 f"data.augment.image_size={args.image_size}", f"data.num_workers={args.workers}", *args.overrides]
    cfg = load_config(REPO / "configs" / "yolo_coco.yaml", overrides)
    run = new_run_dir(args.out.parent, args.out.name)
    train(cfg, run, quiet=True)
    curves = {"detseg now": read_curve(run / "metrics.csv")}
    if args.compare:
        curves[f"{args.compare}"] = read_curve(args.compare)
    epochs = sorted(set().union(*curves.values()))
    print(f"\nYOLO nano, configs/yolo_coco.yaml, coco128 train = val, {args.image_size} px: {METRIC}")
    print("| epoch | " + " | ".join(curves) + " |\n|---|" + "---|" * len(curves))
    for e in epochs:
        print(f"| {e} | " + " | ".join(f"{c[e]:.3f}" if e in c else "" for c in curves.values()) + " |")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        ax.plot(list(curve), list(curve.values()), marker="o", ms=3, label=name)
    ax.set(xlabel="epoch", ylabel=METRIC, title=f"YOLO nano overfitting coco128 ({args.image_size} px)", ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(run / "overfit_curve.png", dpi=90)
    print(f"curve: {run / 'overfit_curve.png'}")


if __name__ == "__main__":
    main()
