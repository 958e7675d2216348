"""Tensor-side ground truth, predictions and batches: what models take and return.

Datasets produce numpy :class:`~detseg.data.sample.Sample` objects;
:func:`detseg.data.collate.collate` turns a list of them into one :class:`Batch`: images padded to
a common size (a multiple of 32 by default) and kept as **uint8** (4x less host-to-device
traffic; models normalise on the device), plus one :class:`Instances` per image with the true
image size for post-processing. Models return one :class:`Detections` per image.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from torch import Tensor

from . import boxes as box_ops


def num_with_background(num_classes: int) -> int:
    """Outputs of a head that also predicts background: ``K + 1`` for ``K`` foreground classes.

    detseg's one background convention: ``num_classes`` counts foreground classes only (labels
    ``0..K-1``); heads that predict background (R-CNN class logits and deltas, Mask R-CNN masks,
    segmentation channels) put it **first**, at index 0, so class ``k`` is at index ``k + 1``, as
    in semantic label maps (0 background, ``k + 1`` class ``k``) and torchvision's checkpoints.
    YOLO and the classifier have no background output.
    """
    return num_classes + 1


@dataclass
class Instances:
    """Ground truth of one image, as tensors.

    Attributes:
        boxes: Tensor[N, 4] float32, xyxy absolute pixels of the (transformed) image.
        labels: Tensor[N] int64 in ``[0, K)``.
        iscrowd: Tensor[N] bool; crowd boxes are ignore regions, never positives.
        masks: Tensor[N, H, W] bool instance masks, or ``None``.
        semantic: Tensor[H, W] int64 class map (0 background, k + 1 class k, 255 ignore) or ``None``.
        image_size: ``(H, W)`` of the image as given to the model (before padding).
        orig_size: ``(H, W)`` of the image file (predictions are mapped back to it).
        image_id: the dataset's image id (COCO ``id``).
        areas: Tensor[N] float32 annotated area of each instance in image-file pixels (COCO
            ``area``, the segmentation's), which picks COCO's small/medium/large ranges; ``None``
            when the dataset has none (evaluation then uses box or mask areas).
    """

    boxes: Tensor
    labels: Tensor
    iscrowd: Tensor
    image_size: tuple[int, int]
    masks: Tensor | None = None
    semantic: Tensor | None = None
    orig_size: tuple[int, int] = (0, 0)
    image_id: int = 0
    areas: Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Instances":
        """Copy of the tensors on ``device``."""
        moved = {
            f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
            for f in fields(self) if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **moved)

    def pin_memory(self) -> "Instances":
        """Page-locked copy (called by ``DataLoader(pin_memory=True)``)."""
        return replace(self, **{
            f.name: getattr(self, f.name).pin_memory()
            for f in fields(self) if isinstance(getattr(self, f.name), Tensor)
        })

    def without_crowd(self) -> "Instances":
        """The non-crowd instances only (training positives)."""
        keep = ~self.iscrowd
        return replace(
            self, boxes=self.boxes[keep], labels=self.labels[keep], iscrowd=self.iscrowd[keep],
            masks=None if self.masks is None else self.masks[keep],
            areas=None if self.areas is None else self.areas[keep],
        )

    def to_dict(self) -> dict[str, Tensor]:
        """torchvision-style target dict (``boxes``, ``labels``, optional ``masks``, ``iscrowd``)."""
        out = {"boxes": self.boxes, "labels": self.labels, "iscrowd": self.iscrowd}
        if self.masks is not None:
            out["masks"] = self.masks
        return out

    @classmethod
    def from_sample(cls, sample) -> "Instances":
        """Tensors sharing memory with a numpy :class:`~detseg.data.sample.Sample`."""
        return cls(
            boxes=torch.from_numpy(np.ascontiguousarray(sample.boxes, np.float32)),
            labels=torch.from_numpy(np.ascontiguousarray(sample.labels, np.int64)),
            iscrowd=torch.from_numpy(np.ascontiguousarray(sample.iscrowd, bool)),
            masks=None if sample.masks is None else torch.from_numpy(np.ascontiguousarray(sample.masks, bool)),
            semantic=None if sample.semantic is None else torch.from_numpy(sample.semantic.astype(np.int64)),
            image_size=tuple(int(s) for s in sample.image.shape[:2]),
            orig_size=tuple(int(s) for s in sample.orig_size),
            image_id=int(sample.image_id),
            areas=None if getattr(sample, "areas", None) is None else torch.from_numpy(
                np.ascontiguousarray(sample.areas, np.float32)),
        )


#: The score from which a detection is shown to people: kept by :class:`~detseg.inference.Predictor`
#: (its ``score_thresh``; ``tools/infer.py --score``), drawn in TensorBoard pictures, and counted in
#: :meth:`~detseg.evaluation.CocoEvaluator.confusion_matrix`. Models keep far lower scores (their
#: own ``score_thresh``, 0.001-0.05) because mAP needs the whole ranking.
DEFAULT_SCORE_THRESH = 0.25


@dataclass
class Detections:
    """Predictions for one image, in the coordinates of the original image file.

    Attributes:
        boxes: Tensor[M, 4] float32, xyxy absolute pixels of the original image.
        scores: Tensor[M] float32 confidences in [0, 1], sorted high to low.
        labels: Tensor[M] int64 class indices in ``[0, K)``.
        masks: Tensor[M, H, W] bool instance masks at original size, or ``None``.
        image_id: id of the image the predictions belong to (matches ``Instances.image_id``).
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    masks: Tensor | None = None
    image_id: int = 0

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def xywh(self) -> Tensor:
        """Boxes as Tensor[M, 4] ``(x, y, width, height)`` (COCO's format)."""
        return box_ops.to_xywh(self.boxes)

    def to(self, device: torch.device | str) -> "Detections":
        return replace(self, boxes=self.boxes.to(device), scores=self.scores.to(device),
                       labels=self.labels.to(device),
                       masks=None if self.masks is None else self.masks.to(device))

    def __getitem__(self, keep: Tensor | slice) -> "Detections":
        """The detections selected by an index, slice or boolean mask."""
        return replace(self, boxes=self.boxes[keep], scores=self.scores[keep], labels=self.labels[keep],
                       masks=None if self.masks is None else self.masks[keep])

    @classmethod
    def empty(cls, image_id: int = 0, device: torch.device | str = "cpu") -> "Detections":
        return cls(torch.zeros((0, 4), device=device), torch.zeros((0,), device=device),
                   torch.zeros((0,), dtype=torch.int64, device=device), image_id=image_id)


@dataclass
class Batch:
    """A padded image batch and its per-image targets.

    Attributes:
        images: Tensor[N, 3, Hp, Wp] uint8 RGB, padded with the mean colour at the bottom/right
            to a multiple of ``size_divisibility``; the true sizes are ``targets[i].image_size``.
        targets: one :class:`Instances` per image.
        skipped: unreadable images dropped from this batch (counted for the epoch summary).
    """

    images: Tensor
    targets: list[Instances]
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def image_sizes(self) -> list[tuple[int, int]]:
        return [t.image_size for t in self.targets]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        return replace(
            self, images=self.images.to(device, non_blocking=non_blocking),
            targets=[t.to(device, non_blocking) for t in self.targets],
        )

    def pin_memory(self) -> "Batch":
        return replace(self, images=self.images.pin_memory(), targets=[t.pin_memory() for t in self.targets])
