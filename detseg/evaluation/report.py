"""Metric tables for the terminal: the headline numbers in one block, then one row per class.

An evaluation of 80 COCO classes holds several hundred values (``metrics.json`` keeps them all);
what a person reads after training or ``tools/eval.py`` is the layout Ultralytics prints: the
overall metrics (box and mask side by side), then per class its ground-truth count, AP50 and AP
(segmentation: IoU; classification: accuracy).

Example:
    >>> print(format_metrics({"accuracy": 0.9, "accuracy/cat": 0.8, "accuracy/dog": 1.0}))
    accuracy  0.900
    <BLANKLINE>
    class  accuracy
    cat       0.800
    dog       1.000
"""

from __future__ import annotations

import math
from typing import Mapping

#: overall detection rows, by metric key suffix (``bbox/<name>``, ``segm/<name>``)
DETECTION_ROWS = ("mAP", "mAP50", "mAP75", "mAP_s", "mAP_m", "mAP_l", "AR100", "f1_best", "f1_threshold")
SEGMENTATION_ROWS = ("miou", "pixel_acc", "mean_acc")
#: what the per-class count column counts, by task
COUNT_NAMES = {"detection": "instances", "segmentation": "pixels", "classification": "images"}
#: class names wider than this are cut in the table
MAX_NAME = 24


def infer_task(metrics: Mapping[str, float]) -> str | None:
    """``detection`` / ``segmentation`` / ``classification`` from the metric keys; ``None`` if unknown."""
    if any(k.startswith(("bbox/", "segm/")) for k in metrics):
        return "detection"
    if "miou" in metrics:
        return "segmentation"
    if "accuracy" in metrics:
        return "classification"
    return None


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Columns padded to their widest cell: the first left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in [header, *rows]]


def _name(name: str) -> str:
    return name if len(name) <= MAX_NAME else name[:MAX_NAME - 3] + "..."


def _losses(metrics: Mapping[str, float]) -> list[str]:
    """One line: the epoch (of a log row), total train/val loss and the validation loss terms."""
    parts = [f"{split} {metrics[f'{split}/loss']:.4g}" for split in ("train", "val") if f"{split}/loss" in metrics]
    terms = [f"{k[len('val/loss_'):]} {v:.4g}" for k, v in metrics.items() if k.startswith("val/loss_")]
    if terms:
        parts.append(f"({', '.join(terms)})")
    words = [f"epoch {int(metrics['epoch'])}"] if "epoch" in metrics else []  # the best row of a training log
    if parts:
        words.append("loss: " + "  ".join(parts))
    return ["  ".join(words)] if words else []


def _per_class(metrics: Mapping[str, float], prefix: str) -> list[str]:
    return [k[len(prefix):] for k in metrics if k.startswith(prefix)]


def _detection(metrics: Mapping[str, float], counts: Mapping[str, int] | None) -> list[str]:
    kinds = [(t, label) for t, label in (("bbox", "box"), ("segm", "mask")) if f"{t}/mAP" in metrics]
    rows = [[name] + [_num(metrics.get(f"{t}/{name}")) for t, _ in kinds]
            for name in DETECTION_ROWS if any(f"{t}/{name}" in metrics for t, _ in kinds)]
    lines = _table(["", *(label for _, label in kinds)], rows)
    names = list(dict.fromkeys(n for t, _ in kinds for n in _per_class(metrics, f"{t}/AP/")))
    if not names:
        return lines
    shown = [n for n in names if any(not math.isnan(metrics.get(f"{t}/AP/{n}", math.nan)) for t, _ in kinds)]
    # (per-class key prefix, overall key, title); AP is COCO's, over IoU 0.50:0.95
    columns = [(f"{t}/{ap}/", f"{t}/m{ap}", f"{label} {title}") for t, label in kinds
               for ap, title in (("AP50", "AP50"), ("AP", "AP50-95"))
               if any(k.startswith(f"{t}/{ap}/") for k in metrics)]
    header = ["class"] + (["instances"] if counts is not None else []) + [title for *_, title in columns]
    table = [["all"] + ([str(sum(counts.values()))] if counts is not None else [])
             + [_num(metrics.get(overall)) for _, overall, _ in columns]]
    table += [[_name(n)] + ([str(counts.get(n, "-"))] if counts is not None else [])
              + [_num(metrics.get(prefix + n)) for prefix, *_ in columns] for n in shown]
    lines += ["", *_table(header, table)]
    if len(shown) < len(names):
        lines.append(f"({len(names) - len(shown)} of {len(names)} classes have no ground truth here: not listed)")
    return lines


def _scores(metrics: Mapping[str, float], rows: tuple[str, ...], prefix: str, column: str,
            counts: Mapping[str, int] | None, count_name: str) -> list[str]:
    """Overall ``rows`` (one ``key value`` line each), then per class ``prefix<name>`` values."""
    lines = _table(["", ""], [[k, _num(metrics[k])] for k in rows if k in metrics])[1:]
    names = _per_class(metrics, prefix)
    if not names:
        return lines
    shown = [n for n in names if not math.isnan(metrics[prefix + n])]
    header = ["class"] + ([count_name] if counts is not None else []) + [column]
    table = [[_name(n)] + ([str(counts.get(n, "-"))] if counts is not None else []) + [_num(metrics[prefix + n])]
             for n in shown]
    lines += ["", *_table(header, table)]
    if len(shown) < len(names):
        lines.append(f"({len(names) - len(shown)} of {len(names)} classes absent from labels and predictions: "
                     "not listed)")
    return lines


def format_metrics(metrics: Mapping[str, float], task: str | None = None, *,
                   counts: Mapping[str, int] | None = None) -> str:
    """A compact, readable table of an evaluation's metrics (at most about 15 lines + one per class).

    Args:
        metrics: what ``validate`` / an evaluator returns (``bbox/mAP``, ``segm/AP/<class>``,
            ``miou``, ``iou/<class>``, ``accuracy/<class>``, ``val/loss_*`` ...), or the best row
            of a training log. Keys the table does not show stay in ``metrics.json``.
        task: ``detection``, ``segmentation`` or ``classification``; default: read from the keys.
        counts: ground truth per class name (detection: instances, segmentation: pixels,
            classification: images), e.g. an evaluator's ``class_counts()``; adds a column.

    Returns:
        Lines: the losses, the overall metrics (detection: ``mAP``, ``mAP50``, ``mAP75``,
        ``mAP_s/m/l``, ``AR100``, best F1 and its score threshold, with box and mask columns),
        then an ``all`` row and one row per class (detection: AP50 and AP50-95 for box and mask;
        segmentation: IoU; classification: accuracy). Classes with no value (no ground truth
        and no prediction) are counted in one line instead of listed.
    """
    task = task or infer_task(metrics)
    lines = _losses(metrics)
    if task == "detection":
        body = _detection(metrics, counts)
    elif task == "segmentation":
        body = _scores(metrics, SEGMENTATION_ROWS, "iou/", "IoU", counts, COUNT_NAMES[task])
    elif task == "classification":
        body = _scores(metrics, ("accuracy",), "accuracy/", "accuracy", counts, COUNT_NAMES[task])
    else:
        body = [f"{k}  {_num(v, 4)}" for k, v in metrics.items() if "/" not in k]
    return "\n".join(lines + body)
