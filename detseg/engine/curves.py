"""The run's history on disk: ``metrics.csv`` (one row per epoch) and ``curves.png``."""

from __future__ import annotations

import csv
from pathlib import Path


def write_csv(rows: list[dict[str, float]], path: Path) -> None:
    """One row per epoch; columns are the union of all keys (validation epochs have more)."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def plot_curves(rows: list[dict[str, float]], path: Path) -> None:
    """Loss curves (train and validation terms) beside the headline metrics, per epoch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = [k for k in dict.fromkeys(k for r in rows for k in r) if k.startswith(("train/", "val/"))]
    metrics = [k for k in dict.fromkeys(k for r in rows for k in r)
               if k not in losses and k not in ("epoch", "lr", "skipped_images") and "/" not in k.split("/", 1)[-1]
               and not any(k.startswith(p) for p in ("accuracy/", "iou/", "bbox/AP/", "segm/AP/", "bbox/f1_threshold/"))]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, keys, title in ((axes[0], losses, "losses"), (axes[1], metrics, "metrics")):
        for key in keys:
            points = [(r["epoch"], r[key]) for r in rows if key in r]
            ax.plot(*zip(*points), marker="o", ms=3, label=key)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if keys:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
