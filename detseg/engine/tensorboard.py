"""TensorBoard event files of a training run: losses, learning rate, metrics, pictures of predictions.

The files go into the run folder itself, so ``tensorboard --logdir runs`` shows every run as
one line per tag. Only rank 0 writes (the training loop gives the other ranks a disabled
logger). Tags follow the ecosystem (Detectron2, MMDetection, Ultralytics): a section per
prefix, the same names as the columns of ``metrics.csv`` where those exist.

=============================== ==================================================================
tag                             value
=============================== ==================================================================
``train/loss``                  summed loss of each batch (the mean over ranks under DDP)
``train/loss_*``                each loss term of the batch (``train/loss_rpn_cls`` ...; rank 0's)
``lr``                          learning rate of the batch (first parameter group)
``val/loss``, ``val/loss_*``    validation losses, at each evaluation
``val/<metric>``                validation metrics: ``val/bbox/mAP50``, ``val/segm/mAP``,
                                ``val/miou``, ``val/accuracy`` ...
``val_per_class/<metric>``      per-class values (``val_per_class/bbox/AP/<class>``,
                                ``val_per_class/iou/<class>`` ...): a section of their own, so
                                80 classes do not bury the overall numbers
``train/skipped_images``        unreadable images skipped in the epoch, when there were any
``val/predictions/<i>``         validation image ``i`` (of the first :data:`NUM_IMAGES`):
                                predictions left, ground truth right
=============================== ==================================================================

The step of every value is the number of batches trained so far, this one included (Detectron2's
and MMDetection's axis: a batch's loss at 1, 2 ..., an evaluation after ``n`` batches at ``n``),
so the per-batch losses and the per-evaluation metrics share one x axis. A resumed run appends
to the same folder and purges what the first run wrote past its ``last.pt``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch import nn

from ..structures.instances import DEFAULT_SCORE_THRESH
from ..utils.visualize import draw_detections, overlay_semantic
from .evaluate import predict, to_device

#: validation images drawn at each evaluation (the first ones of the split: the same every time)
NUM_IMAGES = 4
#: smaller images are enlarged by a whole factor to about this long side before drawing, so
#: names and keys stay small next to the objects of a tiny (e.g. 64-px) validation image
MIN_DRAW_SIDE = 256
#: row keys logged per batch instead (``train/loss``, ``lr``) or bookkeeping (``epoch``)
PER_BATCH_OR_BOOKKEEPING = ("train/loss", "lr", "epoch")


def metric_tag(key: str) -> str | None:
    """The TensorBoard tag of a ``metrics.csv`` column logged per evaluation; ``None``: not logged here.

    Example:
        >>> [metric_tag(k) for k in ("val/loss_cls", "bbox/mAP50", "bbox/AP/cat", "iou/cat", "miou", "lr")]
        ['val/loss_cls', 'val/bbox/mAP50', 'val_per_class/bbox/AP/cat', 'val_per_class/iou/cat', 'val/miou', None]
    """
    if key in PER_BATCH_OR_BOOKKEEPING:
        return None
    if key.startswith(("train/", "val/")):
        return key
    if key == "skipped_images":
        return "train/skipped_images"
    head, _, rest = key.partition("/")
    per_class = "/" in rest or (rest and head in ("accuracy", "iou"))  # bbox/AP/<class>, iou/<class> ...
    return f"val_per_class/{key}" if per_class else f"val/{key}"


def _rgb(image: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """``[3, Hp, Wp]`` uint8 (a padded batch image) -> ``[H, W, 3]`` uint8 RGB of its true ``size``."""
    h, w = size
    return np.ascontiguousarray(image[:, :h, :w].permute(1, 2, 0).cpu().numpy())


def _enlarge(x, k: int, dims: tuple[int, int]):
    """``x`` (tensor or array) with axes ``dims`` repeated ``k`` times each (nearest, exact)."""
    if k == 1:
        return x
    if isinstance(x, torch.Tensor):
        return x.repeat_interleave(k, dims[0]).repeat_interleave(k, dims[1])
    return np.repeat(np.repeat(x, k, dims[0]), k, dims[1])


def _caption(image: np.ndarray, text: str) -> np.ndarray:
    """``text`` on a dark strip at the top of ``image`` (a classifier's picture has nothing else to draw)."""
    out = image.copy()
    scale = max(0.35, min(out.shape[:2]) / 400)
    (_, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    out[: th + base + 4] = (out[: th + base + 4] * 0.4).astype(np.uint8)
    cv2.putText(out, text, (2, th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def draw_pair(task: str, image: np.ndarray, prediction, target, class_names: Sequence[str]) -> np.ndarray:
    """One picture: ``prediction`` drawn left, the ground truth ``target`` right, 4 white pixels between.

    Images with a long side under :data:`MIN_DRAW_SIDE` are enlarged ``k`` times first (the
    picture is then ``[kH, 2kW + 4, 3]``).

    Args:
        task: ``detection``, ``segmentation`` or ``classification`` (``model.task``).
        image: ``[H, W, 3]`` uint8 RGB, the model-input frame (after the eval resize).
        prediction: a :class:`~detseg.structures.instances.Detections` (boxes xyxy pixels of
            ``image``), a label map ``Tensor[Hp, Wp]`` (0 background, k + 1 class k) or
            ``(scores [K], label)`` of a classifier.
        target: the image's :class:`~detseg.structures.instances.Instances`, or a class index.
    """
    h, w = image.shape[:2]
    k = max(1, MIN_DRAW_SIDE // max(h, w))
    image = _enlarge(image, k, (0, 1))
    if task == "detection":
        masks = None if prediction.masks is None else _enlarge(prediction.masks[:, :h, :w] > 0.5, k, (1, 2))
        left = draw_detections(image, prediction.boxes * k, prediction.labels, prediction.scores, masks,
                               class_names=class_names, score_thresh=DEFAULT_SCORE_THRESH)
        gt_masks = None if target.masks is None else _enlarge(target.masks[:, :h, :w], k, (1, 2))
        right = draw_detections(image, target.boxes * k, target.labels, masks=gt_masks, class_names=class_names)
    elif task == "segmentation":
        left = overlay_semantic(image, _enlarge(prediction[:h, :w], k, (0, 1)), class_names=class_names)
        right = overlay_semantic(image, _enlarge(target.semantic[:h, :w], k, (0, 1)), class_names=class_names)
    else:
        scores, label = prediction
        left = _caption(image, f"{class_names[label]} {float(scores[label]):.2f}")
        right = _caption(image, class_names[int(target)])
    gap = np.full((h * k, 4, 3), 255, np.uint8)
    return np.concatenate([left, gap, right], axis=1)


class TensorBoardLogger:
    """Writes one run's event files (see the module docstring for the tags); a no-op when disabled.

    Args:
        log_dir: the run folder; ``None`` disables the logger (``train.tensorboard=false``, ranks > 0).
        purge_step: for a resumed run, the first step it logs: values the first run logged at
            or past it are dropped from the view (those batches are trained again).

    Example:
        >>> with TensorBoardLogger(tmp_path) as tb:  # doctest: +SKIP
        ...     tb.log_step(1, torch.tensor(1.5), {"loss_cls": torch.tensor(1.5)}, lr=0.01)
    """

    def __init__(self, log_dir: str | Path | None, *, purge_step: int | None = None) -> None:
        self.writer = None
        self._batch = None
        if log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(log_dir), purge_step=purge_step or None)

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def log_step(self, step: int, loss: torch.Tensor, losses: dict[str, torch.Tensor], lr: float) -> None:
        """``train/loss`` (the summed ``loss``), ``train/<term>`` for each of ``losses``, and ``lr``."""
        if self.writer is None:
            return
        values = torch.stack([loss.detach().float(), *(v.detach().float() for v in losses.values())]).tolist()
        self.writer.add_scalar("train/loss", values[0], step)
        for name, value in zip(losses, values[1:]):
            self.writer.add_scalar(f"train/{name}", value, step)
        self.writer.add_scalar("lr", lr, step)

    def log_epoch(self, step: int, row: dict[str, float]) -> None:
        """The values of an epoch's ``metrics.csv`` row not logged per batch (see :func:`metric_tag`)."""
        if self.writer is None:
            return
        for key, value in row.items():
            tag = metric_tag(key)
            if tag is not None:
                self.writer.add_scalar(tag, float(value), step)
        self.writer.flush()

    @torch.no_grad()
    def log_predictions(self, step: int, model: nn.Module, dataset, collate_fn, device: torch.device,
                        class_names: Sequence[str]) -> None:
        """``val/predictions/<i>``: the first :data:`NUM_IMAGES` images of ``dataset`` with ``model``'s predictions.

        Args:
            dataset: the validation dataset as its loader holds it (eval resize applied);
                ``collate_fn`` the loader's, which batches its items.
        """
        if self.writer is None:
            return
        if self._batch is None:  # the same images at every evaluation, read once
            items = [dataset[i] for i in range(min(NUM_IMAGES, len(dataset)))]
            items = [item for item in items if item is not None]  # None: unreadable (SafeDataset)
            if not items:
                return
            self._batch = collate_fn(items)
        images, targets = to_device(self._batch, device)
        was_training = model.training
        model.eval()
        predictions = predict(model, images, targets)
        model.train(was_training)
        for i in range(len(images)):
            if model.task == "classification":
                image, pair = _rgb(images[i], images.shape[-2:]), (predictions.scores[i], int(predictions.labels[i]))
                picture = draw_pair(model.task, image, pair, targets[i], class_names)
            else:
                image = _rgb(images[i], targets[i].image_size)
                picture = draw_pair(model.task, image, predictions[i], targets[i], class_names)
            self.writer.add_image(f"val/predictions/{i}", picture, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> "TensorBoardLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
