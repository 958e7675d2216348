"""Validation shared by the training loop and ``tools/eval.py``: losses and metrics in one pass."""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

import torch
from torch import nn
from tqdm import tqdm

from ..config.schema import AugmentConfig
from ..data.geometry import Resize
from ..evaluation import ClassificationEvaluator, CocoEvaluator, SemanticEvaluator
from ..structures.instances import Batch, num_with_background


def to_device(batch, device: torch.device):
    """``(images, targets)`` on ``device`` from a :class:`Batch` or an ``(images, labels)`` pair."""
    if isinstance(batch, Batch):
        batch = batch.to(device, non_blocking=True)
        return batch.images, batch.targets
    images, labels = batch
    return images.to(device, non_blocking=True), labels.to(device, non_blocking=True)


def build_evaluator(task: str, num_classes: int, class_names: tuple[str, ...], *, with_masks: bool = False):
    """The metric accumulator of a task (``reset``/``process(predictions, targets)``/``evaluate``).

    Detection: COCO AP (``bbox/mAP``, ``bbox/mAP50`` ..., ``segm/...`` with masks) against the
    batch targets. Segmentation: ``miou``/``pixel_acc`` over ``num_classes + 1`` classes
    (background first, as in the label maps).
    """
    if task == "classification":
        return ClassificationEvaluator(num_classes, tuple(class_names))
    if task == "detection":
        return CocoEvaluator(None, class_names=tuple(class_names),
                             iou_types=("bbox", "segm") if with_masks else ("bbox",))
    if task == "segmentation":
        return SemanticEvaluator(num_with_background(num_classes), ("background",) + tuple(class_names))
    raise ValueError(f"no evaluator for task {task!r}")


def predict(model: nn.Module, images: torch.Tensor, targets):
    """Predictions of any model, in the frame of the model's input images."""
    if model.task == "classification":
        return model.predict(images)
    return model.predict(images, image_sizes=[t.image_size for t in targets])


def process(evaluator, task: str, predictions, targets, *, resize: AugmentConfig | None = None,
            original_frame: bool = False) -> None:
    """Feed one batch to the evaluator.

    Validation during training scores predictions in the model-input frame (after the eval
    resize ``resize``), against the targets in that same frame: IoUs are unchanged by the
    letterbox map, and no mask has to be resampled; areas are scaled back to image-file pixels
    (or taken from the dataset, e.g. COCO's ``area``), so COCO's small/medium/large ranges mean
    what they mean in pycocotools. With ``original_frame``, detections are mapped back to the
    image files instead, for an evaluator holding the dataset's own COCO json: the numbers are
    then exactly pycocotools' on the original annotations.
    """
    if task == "detection":
        predictions = [replace(d, image_id=t.image_id) for d, t in zip(predictions, targets)]
        if original_frame:
            predictions = [Resize.from_config(t.orig_size, resize).detections_back(d) for d, t in zip(predictions, targets)]
            evaluator.process(predictions, targets)
        else:
            scales = [Resize.from_config(t.orig_size, resize).area_scale if resize is not None else 1.0 for t in targets]
            evaluator.process(predictions, [replace(t, orig_size=t.image_size) for t in targets], area_scales=scales)
    elif task == "segmentation":
        evaluator.process(predictions, torch.stack([t.semantic for t in targets]))
    else:
        evaluator.process(predictions, targets)


@torch.no_grad()
def validate(model: nn.Module, loader: Iterable, evaluator, device: torch.device, precision=None,
             *, quiet: bool = True, resize: AugmentConfig | None = None, original_frame: bool = False) -> dict[str, float]:
    """Validation loss terms (``val/<loss>``, and their sum ``val/loss``) and metrics, in eval mode.

    ``resize`` (the eval resize of the loader, ``data.augment``) and ``original_frame``: see
    :func:`process`.
    """
    if original_frame and resize is None:
        raise ValueError("original_frame needs the eval resize settings (resize=)")
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
        process(evaluator, model.task, predictions, targets, resize=resize, original_frame=original_frame)
        batches += 1
    metrics = {f"val/{k}": v / max(1, batches) for k, v in sums.items()}
    metrics["val/loss"] = sum(metrics.values())
    metrics.update(evaluator.evaluate())
    model.train(was_training)
    return metrics
