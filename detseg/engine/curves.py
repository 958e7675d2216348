"""The run's history on disk: ``metrics.csv`` (one row per epoch) and ``curves.png``."""

from __future__ import annotations

import csv
import math
from pathlib import Path

#: box / mask metrics drawn (``bbox/<name>``, ``segm/<name>``); the other COCO stats and the F1
#: thresholds stay in metrics.csv, where eight lines would become fifteen
DETECTION_CURVES = ("mAP", "mAP50", "mAP75", "mAP_s", "mAP_m", "mAP_l", "AR100", "f1_best")
#: panel titles, in drawing order, with the keys each takes (see :func:`curve_groups`)
PANELS = ("loss", "loss terms", "box (bbox/)", "mask (segm/)", "segmentation", "classification", "other",
          "learning rate")
#: log keys that are bookkeeping, not curves
NOT_CURVES = ("epoch", "skipped_images")


def write_csv(rows: list[dict[str, float]], path: Path) -> None:
    """One row per epoch; columns are the union of all keys (validation epochs have more)."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def _panel(key: str) -> str | None:
    """The panel of a log key; ``None`` for per-class values and bookkeeping."""
    head, _, rest = key.partition("/")
    if key in NOT_CURVES or "/" in rest or (rest and head in ("accuracy", "iou")):
        return None  # per class: bbox/AP/<name>, accuracy/<name>, iou/<name>
    if head in ("train", "val"):
        return "loss" if rest == "loss" else "loss terms"
    if head in ("bbox", "segm"):
        return ("box (bbox/)" if head == "bbox" else "mask (segm/)") if rest in DETECTION_CURVES else None
    if key in ("miou", "pixel_acc", "mean_acc"):
        return "segmentation"
    if key == "accuracy":
        return "classification"
    return "learning rate" if key == "lr" else "other"


def curve_groups(rows: list[dict[str, float]]) -> dict[str, list[str]]:
    """Panel title -> the log keys drawn in it, for the panels that have any.

    Losses (totals; and the per-term ``train/loss_*`` / ``val/loss_*`` when there are several),
    box and mask COCO metrics, segmentation and classification metrics, anything else, and the
    learning rate each get a panel; per-class keys (``bbox/AP/<class>``, ``iou/<class>`` ...) are
    left out.
    """
    groups: dict[str, list[str]] = {title: [] for title in PANELS}
    for key in dict.fromkeys(k for r in rows for k in r):
        title = _panel(key)
        if title is not None:
            groups[title].append(key)
    if len({k.partition("/")[2] for k in groups["loss terms"]}) < 2:
        groups["loss terms"] = []  # one term is the total again (a classifier's loss_cls)
    return {title: keys for title, keys in groups.items() if keys}


def curves_figure(rows: list[dict[str, float]]):
    """A matplotlib figure of :func:`curve_groups`: one axes per panel, each legend inside its axes.

    Loss terms share a colour per term: training solid, validation dashed; COCO's mAP by object
    size is dotted.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    groups = curve_groups(rows)
    cols = 2 if len(groups) == 4 else min(3, max(1, len(groups)))
    nrows = max(1, math.ceil(len(groups) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.4 * nrows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[len(groups):]:
        fig.delaxes(ax)
    for ax, (title, keys) in zip(flat, groups.items()):
        colours: dict[str, str] = {}
        for key in keys:
            points = [(r["epoch"], r[key]) for r in rows if key in r and "epoch" in r]
            if not points:
                continue
            style = {"linestyle": ":"} if key.endswith(("mAP_s", "mAP_m", "mAP_l")) else {}
            if title == "loss terms":
                term = key.partition("/")[2]
                style = {"linestyle": "--" if key.startswith("val/") else "-"}
                if term in colours:
                    style["color"] = colours[term]
            line, = ax.plot(*zip(*points), marker="o", ms=3, label=key, **style)
            if title == "loss terms":
                colours.setdefault(key.partition("/")[2], line.get_color())
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if title == "learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        ax.legend(fontsize=6, loc="best", framealpha=0.6)
    fig.tight_layout()
    return fig


def plot_curves(rows: list[dict[str, float]], path: Path) -> None:
    """``curves.png``: the log's curves in panels by kind (see :func:`curve_groups`), per epoch."""
    fig = curves_figure(rows)
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=80)
    plt.close(fig)
