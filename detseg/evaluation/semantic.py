"""Semantic segmentation metrics (mIoU, pixel accuracy) from a confusion matrix kept on the device."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


class SemanticEvaluator:
    """Accumulates a [C, C] pixel confusion matrix (rows true, columns predicted) over batches.

    Class convention of semantic maps in detseg: **0 is background and k + 1 is foreground class
    k**, 255 ignored (see :class:`~detseg.structures.instances.Instances`). So ``num_classes``
    here counts background too: a detector with K foreground classes is scored with
    ``SemanticEvaluator(K + 1, class_names=("background", *names))``.

    The matrix lives on the device of the first batch (``torch.bincount`` there), so a GPU
    validation loop moves no masks to the host; ``evaluate()`` reads C * C numbers once.

    Args:
        num_classes: C, including background.
        class_names: C names for the ``iou/<name>`` keys; default ``("background", "1", ...)``.
        ignore_index: target value excluded from every metric (its predictions included).

    Metrics (``evaluate()``):
        ``miou``: mean IoU over the classes present in the target or the prediction of the
        evaluated pixels. A class absent from both has IoU 0 / 0: it is reported as NaN in
        ``iou/<name>`` and left out of the mean (counting it as 0 or 1 would move mIoU for a
        class the data never asked about). NaN too when no pixel was evaluated.
        ``pixel_acc``: correct / evaluated pixels. ``mean_acc``: per-class recall averaged
        over the classes present in the target. ``iou/<name>``: per-class IoU.

    Example:
        >>> ev = SemanticEvaluator(3, ("background", "cat", "dog"))
        >>> ev.process(torch.tensor([[[0, 1], [2, 2]]]), torch.tensor([[[0, 1], [2, 255]]]))
        >>> ev.evaluate()["miou"]
        1.0
    """

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None,
                 ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 (background counts), got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class_names for num_classes={num_classes} "
                             "(background counts: names[0] is background)")
        self.num_classes = num_classes
        self.class_names = tuple(class_names) if class_names is not None else (
            ("background",) + tuple(str(i) for i in range(1, num_classes)))
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        self.confusion: Tensor | None = None

    def process(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch.

        Args:
            pred: Tensor[N, H, W] int class map, or Tensor[N, C, H, W] logits/scores (argmax
                over C is taken).
            target: Tensor[N, H, W] int class map with ``ignore_index`` where unlabelled.

        Raises:
            ValueError: shapes differ (upsample logits to the target size first, e.g.
                ``F.interpolate(logits, size=target.shape[-2:], mode="bilinear")``), or a
                non-ignored value is outside ``[0, num_classes)``.
        """
        if pred.dim() == target.dim() + 1:
            pred = pred.argmax(1)
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ; "
                             "give [N, H, W] maps (or [N, C, H, W] logits) at the target's size")
        c = self.num_classes
        target = target.to(pred.device)
        valid = target != self.ignore_index
        t = target[valid].long()
        p = pred[valid].long()
        bad = (t < 0) | (t >= c) | (p < 0) | (p >= c)
        if bool(bad.any()):
            raise ValueError(
                f"values outside [0, {c}) besides ignore_index={self.ignore_index}: target "
                f"{sorted(set(t[bad].unique().tolist()))[:10]}, prediction "
                f"{sorted(set(p[bad].unique().tolist()))[:10]} (num_classes counts background)")
        counts = torch.bincount(t * c + p, minlength=c * c).view(c, c)
        if self.confusion is None:
            self.confusion = counts
        else:
            self.confusion += counts.to(self.confusion.device)

    def class_counts(self) -> dict[str, int]:
        """Labelled (not ignored) pixels per true class processed since :meth:`reset`."""
        c = self.num_classes
        cm = self.confusion if self.confusion is not None else torch.zeros(c, c, dtype=torch.int64)
        return {name: int(n) for name, n in zip(self.class_names, cm.sum(1).tolist())}

    def evaluate(self) -> dict[str, float]:
        """``miou``, ``pixel_acc``, ``mean_acc`` and ``iou/<name>`` (see the class docstring)."""
        c = self.num_classes
        cm = (self.confusion if self.confusion is not None
              else torch.zeros(c, c, dtype=torch.int64)).double().cpu()
        tp = cm.diag()
        gt = cm.sum(1)
        union = gt + cm.sum(0) - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))
        acc = torch.where(gt > 0, tp / gt.clamp(min=1), torch.full_like(tp, math.nan))
        total = float(cm.sum())
        metrics = {
            "miou": float(iou.nanmean()) if (union > 0).any() else math.nan,
            "pixel_acc": float(tp.sum()) / total if total else math.nan,
            "mean_acc": float(acc.nanmean()) if (gt > 0).any() else math.nan,
        }
        for name, value in zip(self.class_names, iou.tolist()):
            metrics[f"iou/{name}"] = value
        return metrics
