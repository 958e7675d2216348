"""The one sample format every dataset reader produces, and the shared reading/validation rules.

Conventions (everywhere inside detseg; converted at the edges only):

* ``image``: ``[H, W, 3]`` uint8 **RGB**.
* ``boxes``: ``[N, 4]`` float32 **xyxy in absolute pixels** of ``image``, no "+1": a box covering
  pixel columns ``0..9`` is ``x1=0, x2=10``.
* ``labels``: ``[N]`` int64 **0-based contiguous** class indices ``0..K-1`` into the dataset's
  ``class_names``; there is no background class in the labels (heads add it internally).
* ``masks``: optional ``[N, H, W]`` bool instance masks.
* ``iscrowd``: ``[N]`` bool; crowd regions are kept as "ignore" regions, never as positives.
* ``semantic``: optional ``[H, W]`` uint8 class map, **0 = background, k + 1 = class k**,
  ``ignore_index`` (255) = unlabelled.
* ``image_id``: the dataset's id of the image (COCO ``id``; the index elsewhere).
* ``orig_size``: ``(H, W)`` of the image file, before any transform.

Bad input: a missing file or malformed annotation raises :class:`DatasetError` naming the file
(and line) when the dataset is *built*; a corrupt image file is only found when it is decoded,
so :class:`ImageReadError` is raised then and :class:`SafeDataset` turns it into a logged skip.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

logger = logging.getLogger(__name__)

IGNORE_INDEX = 255


class DatasetError(ValueError):
    """A dataset cannot be used as given; the message names the file (and line or annotation)."""


class ImageReadError(OSError):
    """An image file is missing, truncated or not an image."""


@dataclass
class Sample:
    """One image and its ground truth in detseg's internal format (see the module docstring)."""

    image: np.ndarray
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    masks: np.ndarray | None = None
    iscrowd: np.ndarray | None = None
    semantic: np.ndarray | None = None
    image_id: int = 0
    file_name: str = ""
    orig_size: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.labels = np.asarray(self.labels, np.int64).reshape(-1)
        if self.iscrowd is None:
            self.iscrowd = np.zeros(len(self.labels), bool)
        self.iscrowd = np.asarray(self.iscrowd, bool).reshape(-1)
        if self.orig_size == (0, 0):
            self.orig_size = tuple(self.image.shape[:2])

    @property
    def num_instances(self) -> int:
        return len(self.labels)

    def replace(self, **changes) -> "Sample":
        """A copy with some fields replaced (what transforms return)."""
        return replace(self, **changes)

    def validate(self, num_classes: int | None = None) -> None:
        """Check shapes, dtypes and ranges; raise :class:`DatasetError` naming ``file_name``."""
        where = self.file_name or f"image {self.image_id}"
        img = self.image
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise DatasetError(f"{where}: image must be HxWx3 uint8 RGB, got {img.shape} {img.dtype}")
        n = len(self.labels)
        if len(self.boxes) != n or len(self.iscrowd) != n:
            raise DatasetError(
                f"{where}: {len(self.boxes)} boxes, {n} labels, {len(self.iscrowd)} iscrowd flags"
            )
        if self.masks is not None and (self.masks.shape[0] != n or self.masks.shape[1:] != img.shape[:2]):
            raise DatasetError(f"{where}: masks {self.masks.shape} do not match {n} instances of {img.shape[:2]}")
        if self.semantic is not None and self.semantic.shape != img.shape[:2]:
            raise DatasetError(f"{where}: semantic map {self.semantic.shape} vs image {img.shape[:2]}")
        if not np.isfinite(self.boxes).all():
            raise DatasetError(f"{where}: non-finite box coordinates")
        if num_classes is not None and n and (self.labels.min() < 0 or self.labels.max() >= num_classes):
            raise DatasetError(
                f"{where}: labels {sorted(set(self.labels.tolist()))} outside [0, {num_classes})"
            )


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to ``[H, W, 3]`` uint8 RGB (grey and RGBA are converted).

    Raises:
        ImageReadError: the file is missing, empty, truncated or not an image; names the file.
    """
    path = Path(path)
    data = np.fromfile(path, np.uint8) if path.is_file() else None
    if data is None:
        raise ImageReadError(f"image file not found: {path}")
    # EXIF orientation is ignored: COCO/VOC/YOLO annotations refer to the stored pixel layout
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if image is None:
        raise ImageReadError(f"cannot decode image (corrupt or not an image): {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def sanitize_boxes(sample: Sample, counts: dict[str, int] | None = None, min_size: float = 1e-3) -> Sample:
    """Clip boxes to the image and drop zero-area ones (with their masks), counting both.

    Args:
        sample: any sample; not modified.
        counts: optional dict incremented under ``"clipped_boxes"`` and ``"dropped_boxes"``.
        min_size: boxes narrower or shorter than this (pixels) after clipping are dropped.
    """
    if not sample.num_instances:
        return sample
    h, w = sample.image.shape[:2]
    boxes = sample.boxes.copy()
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    clipped = int((boxes != sample.boxes).any(1).sum())
    keep = ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)
    if counts is not None:
        counts["clipped_boxes"] = counts.get("clipped_boxes", 0) + clipped
        counts["dropped_boxes"] = counts.get("dropped_boxes", 0) + int((~keep).sum())
    if keep.all() and not clipped:
        return sample
    return sample.replace(
        boxes=boxes[keep], labels=sample.labels[keep], iscrowd=sample.iscrowd[keep],
        masks=None if sample.masks is None else sample.masks[keep],
    )


class SafeDataset:
    """Wrap a dataset so that corrupt images are skipped with a warning instead of crashing.

    ``__getitem__`` returns ``None`` for an unreadable image (the collate function drops it and
    counts it); :class:`DatasetError` for bad annotations is *not* caught. When more than
    ``max_bad_fraction`` of the items seen so far (after at least 20) were bad, raises
    :class:`DatasetError`, because a mostly broken dataset would silently train on a few images.

    Counts are per process: with DataLoader workers, use the ``skipped`` count that the collate
    function puts in each batch for epoch summaries.
    """

    def __init__(self, dataset, max_bad_fraction: float = 0.1) -> None:
        self.dataset = dataset
        self.max_bad_fraction = max_bad_fraction
        self.seen = 0
        self.bad: list[str] = []

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index: int):
        self.seen += 1
        try:
            return self.dataset[index]
        except ImageReadError as exc:
            self.bad.append(str(exc))
            logger.warning("skipping image %d: %s", index, exc)
            if self.seen >= 20 and len(self.bad) > self.max_bad_fraction * self.seen:
                raise DatasetError(
                    f"{len(self.bad)} of {self.seen} images could not be read "
                    f"(more than {self.max_bad_fraction:.0%}); first: {self.bad[0]}"
                ) from exc
            return None


def check_class_names(names: Sequence[str], source: str) -> tuple[str, ...]:
    """Class names as a tuple; duplicates or empty lists are a :class:`DatasetError`."""
    names = tuple(str(n) for n in names)
    if not names:
        raise DatasetError(f"{source}: no class names")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DatasetError(f"{source}: duplicate class names {dupes}")
    return names


class DetectionDataset:
    """Base of every dataset reader: ``load(index) -> Sample``, then box sanitising, then transform.

    Subclasses index their files and parse annotations in ``__init__`` (so bad annotations fail
    when the dataset is built, naming the file) and set ``class_names``; ``load`` decodes one
    image. ``counts`` accumulates ``clipped_boxes`` / ``dropped_boxes`` for the dataset report.

    Args:
        transform: callable ``Sample -> Sample`` (augmentation, resizing), applied last.
    """

    class_names: tuple[str, ...] = ()

    def __init__(self, transform=None) -> None:
        self.transform = transform
        self.counts: dict[str, int] = {}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> Sample:
        """The untransformed sample ``index`` (boxes may still be outside the image)."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {type(self).__name__} of length {len(self)}")
        sample = sanitize_boxes(self.load(index % len(self)), self.counts)
        return self.transform(sample) if self.transform is not None else sample
