"""Validation shared by the training loop and ``tools/eval.py``: losses and metrics in one pass."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from tqdm import tqdm

from ..evaluation import ClassificationEvaluator
from ..structures.instances import Batch


def to_device(batch, device: torch.device):
    """``(images, targets)`` on ``device`` from a :class:`Batch` or an ``(images, labels)`` pair."""
    if isinstance(batch, Batch):
        batch = batch.to(device, non_blocking=True)
        return batch.images, batch.targets
    images, labels = batch
    return images.to(device, non_blocking=True), labels.to(device, non_blocking=True)


def build_evaluator(task: str, num_classes: int, class_names: tuple[str, ...]):
    """The metric accumulator of a task (``reset``/``process(predictions, targets)``/``evaluate``)."""
    if task == "classification":
        return ClassificationEvaluator(num_classes, tuple(class_names))
    raise ValueError(f"no evaluator for task {task!r}")


def predict(model: nn.Module, images: torch.Tensor, targets):
    """Predictions of any model; detection/segmentation models map them to original image sizes."""
    if model.task == "classification":
        return model.predict(images)
    return model.predict(images, image_sizes=[t.image_size for t in targets],
                         orig_sizes=[t.orig_size for t in targets])


@torch.no_grad()
def validate(model: nn.Module, loader: Iterable, evaluator, device: torch.device, precision=None,
             *, quiet: bool = True) -> dict[str, float]:
    """Validation loss terms (``val/<loss>``, and their sum ``val/loss``) and metrics, in eval mode."""
    was_training = model.training
    model.eval()
    evaluator.reset()
    sums: dict[str, float] = {}
    batches = 0
    for batch in tqdm(loader, desc="validate", disable=quiet, leave=False):
        images, targets = to_device(batch, device)
        with (precision.autocast() if precision is not None else torch.autocast(device.type, enabled=False)):
            losses = model.loss(images, targets)
            predictions = predict(model, images, targets)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v.item()
        evaluator.process(predictions, targets)
        batches += 1
    metrics = {f"val/{k}": v / max(1, batches) for k, v in sums.items()}
    metrics["val/loss"] = sum(metrics.values())
    metrics.update(evaluator.evaluate())
    model.train(was_training)
    return metrics
