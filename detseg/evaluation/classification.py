"""Top-1 accuracy and per-class recall for image classifiers."""

from __future__ import annotations

import torch
from torch import Tensor


class ClassificationEvaluator:
    """Accumulates a confusion matrix over batches.

    Args:
        num_classes: K.
        class_names: optional names for per-class keys (``accuracy/<name>``).
    """

    def __init__(self, num_classes: int, class_names: tuple[str, ...] | None = None) -> None:
        self.num_classes = num_classes
        self.class_names = class_names or tuple(str(i) for i in range(num_classes))
        self.reset()

    def reset(self) -> None:
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)

    def process(self, predictions, gt_labels: Tensor) -> None:
        """Add a batch: ``Classifications`` (or Tensor[N] predicted labels) and Tensor[N] labels in [0, K)."""
        pred_labels = getattr(predictions, "labels", predictions)
        k = self.num_classes
        idx = gt_labels.cpu().long() * k + pred_labels.cpu().long()
        self.confusion += torch.bincount(idx, minlength=k * k).view(k, k)

    def class_counts(self) -> dict[str, int]:
        """Images per true class processed since :meth:`reset`."""
        return {name: int(n) for name, n in zip(self.class_names, self.confusion.sum(1).tolist())}

    def evaluate(self) -> dict[str, float]:
        """``accuracy`` (top-1) and ``accuracy/<class>`` (per-class recall; NaN-free: 0 if absent)."""
        total = int(self.confusion.sum())
        correct = int(self.confusion.diag().sum())
        metrics = {"accuracy": correct / total if total else 0.0}
        per_class = self.confusion.diag().float() / self.confusion.sum(1).clamp(min=1).float()
        for name, value in zip(self.class_names, per_class.tolist()):
            metrics[f"accuracy/{name}"] = value
        return metrics
