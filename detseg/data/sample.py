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

Bad input: every reader records what is wrong with its files in a :class:`ProblemLog` while it
is built (one pass, every problem, each naming the file and the line, object or annotation id)
and leaves the bad item out. In the default ``strict`` mode (training) the reader then raises one
:class:`DatasetError` summarising the fatal problems; with ``strict=False`` (the dataset checker)
it keeps the log in ``dataset.problems`` and the usable rest of the data. Problem kinds, their
descriptions and which of them are fatal are listed once, in :data:`PROBLEM_KINDS`. Readers
built with ``check_image_sizes`` (training and the checker) read every image header in threads
(:func:`read_image_sizes`: missing, unreadable and truncated files, sizes) so those are found
before epoch 1. An image that is corrupt in ways a header does not show, or breaks after the
build, is found when it is decoded: :class:`ImageReadError` is raised then and
:class:`SafeDataset` turns it into a logged skip; per-image problems found at load time raise a
:class:`DatasetError` whose ``kind`` is one of :data:`PROBLEM_KINDS`.

Boxes: :func:`sanitize_boxes` clips boxes to their image and drops those left without area.
:func:`box_changes` says which boxes that will change, by problem kind; readers record it when
they are built (where they know every image size, without decoding), and the dataset checker
records it for samples it decodes, with the same words.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..errors import InputError
from ..structures import boxes as box_ops

logger = logging.getLogger(__name__)

IGNORE_INDEX = 255


#: problem kind -> (description that reads after a count, fatal?). Fatal problems make a strict
#: reader raise and ``tools/check_dataset.py`` exit with 1; the others are reported only.
PROBLEM_KINDS: dict[str, tuple[str, bool]] = {
    # files
    "missing_images": ("image files missing", True),
    "unreadable_images": ("unreadable images or masks (corrupt, truncated, empty or not an image)", True),
    "duplicate_images": ("images listed twice", True),
    "size_mismatch": ("images whose size differs from the annotation's height/width", True),
    "missing_annotation_files": ("annotation files missing", True),
    "malformed_files": ("annotation files that cannot be parsed", True),
    # annotations
    "invalid_images": ("invalid image entries (id, file_name, height/width)", True),
    "invalid_categories": ("invalid category entries", True),
    "unknown_classes": ("objects of an unknown class (category id, class name or class index)", True),
    "unknown_image_ids": ("annotations of an image id not in 'images'", True),
    "invalid_annotations": ("malformed annotations", True),
    "invalid_boxes": ("malformed boxes (missing, not numbers, or max < min)", True),
    "invalid_segmentations": ("malformed polygons or RLE masks", True),
    "malformed_lines": ("label lines with a wrong column count or a non-number", True),
    "coords_outside": ("label lines with coordinates outside [0, 1]", True),
    # mask folders
    "missing_masks": ("images without a mask", True),
    "mask_size_mismatch": ("masks whose size differs from their image", True),
    "mask_format": ("masks of the wrong kind (colour vs index map)", True),
    "mask_values": ("masks with values that are neither a class, background nor ignore", True),
    "no_class_pixels": ("mask folders without a single pixel of any class", True),
    # found when images are decoded (tools/check_dataset.py)
    "load_errors": ("other errors found when loading an image", True),
    "labels_out_of_range": ("labels outside [0, num_classes)", True),
    "non_finite_boxes": ("boxes with NaN/inf coordinates", True),
    # reported only
    "duplicate_annotation_ids": ("duplicate annotation ids (COCO evaluation refuses the file)", False),
    "annotation_id_zero": ("annotations with id 0 (COCO evaluation refuses the file)", False),
    "degenerate_annotations": ("annotations with zero or negative width/height (left out)", False),
    "invalid_polygons": ("polygons with fewer than 3 points (left out)", False),
    "unpaired_masks": ("masks without an image (not used)", False),
    "degenerate_boxes": ("boxes of zero or negative width/height (dropped)", False),
    "boxes_partly_outside": ("boxes partly outside their image (clipped)", False),
    "boxes_fully_outside": ("boxes fully outside their image (dropped)", False),
}

#: Fatal kinds for which the reader leaves a whole image out (its file, mask or entry is
#: unusable) and nothing else: ``data.bad_samples=skip`` trains without such images. The other
#: fatal kinds would silently remove single objects or lines, so they stay errors.
IMAGE_PROBLEMS: frozenset[str] = frozenset({
    "missing_images", "unreadable_images", "duplicate_images", "size_mismatch", "missing_annotation_files",
    "malformed_files", "invalid_images", "missing_masks", "mask_size_mismatch", "mask_format", "mask_values",
})

MIN_BOX_SIZE = 1e-3
"""Pixels: boxes narrower or shorter than this after clipping are dropped (:func:`sanitize_boxes`)."""

OUTSIDE_TOLERANCE = 1e-3
"""Pixels a box may stick out of its image before it counts as outside (float round-off of
``x + w`` in json files is not worth a report line; it is still clipped)."""

_KEPT_EXAMPLES = 1000  # texts a ProblemLog keeps per kind; counts are always exact
_SUMMARY_EXAMPLES = 5  # examples quoted in a strict reader's error


class DatasetError(InputError):
    """A dataset cannot be used as given; the message names the file (and line or annotation).

    Args:
        message: the one-line reason.
        kind: a key of :data:`PROBLEM_KINDS` for a per-image problem found at load time (the
            checker counts it under that kind).
    """

    def __init__(self, message: str, kind: str = "load_errors") -> None:
        super().__init__(message)
        self.kind = kind


class ImageReadError(OSError):
    """An image file is missing, truncated or not an image."""


class ProblemLog:
    """What a reader found wrong while building a dataset, counted by kind with examples.

    Readers call :meth:`add` for every problem and leave the bad item (image, annotation, line,
    object) out, then :meth:`raise_if_fatal` once at the end of the build: a strict log raises one
    :class:`DatasetError` listing the fatal problems, a non-strict one (the checker's, and
    training's, which applies ``data.bad_samples`` itself) lets the build finish with the usable
    rest. Training and checking so run the same code and agree on what is wrong.

    Attributes:
        strict: raise at :meth:`raise_if_fatal` when a fatal problem was added.
        counts: kind -> number of problems (exact).
        examples: kind -> one-line texts naming the file (the first 1000).
        num_examples: kind -> texts added (kept or not).
        left_out: one line per image the reader left out because of a problem, naming its file
            (all of them: the list that ``data.bad_samples=skip`` writes).
        source: what :meth:`raise_if_fatal` was given (the annotation file, split file, ...).
    """

    def __init__(self, strict: bool = True) -> None:
        self.strict = strict
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}
        self.num_examples: dict[str, int] = {}
        self.left_out: list[str] = []
        self.source = ""

    @property
    def skipped_images(self) -> int:
        """Images the reader left out because of a problem."""
        return len(self.left_out)

    def add(self, kind: str, text: str, count: int = 1, *, left_out: bool = False) -> None:
        """Record ``count`` problems of ``kind`` (a key of :data:`PROBLEM_KINDS`) with one example.

        ``count`` other than 1 lets one text stand for several problems (e.g. one example per
        bad mask value, counted in masks). ``left_out``: the image ``text`` names is left out
        for it (see :meth:`leave_out`).
        """
        if kind not in PROBLEM_KINDS:
            raise KeyError(f"unknown problem kind {kind!r}")
        self.counts[kind] = self.counts.get(kind, 0) + count
        self.num_examples[kind] = self.num_examples.get(kind, 0) + 1
        texts = self.examples.setdefault(kind, [])
        if len(texts) < _KEPT_EXAMPLES:
            texts.append(text)
        if left_out:
            self.leave_out(text)

    def leave_out(self, text: str) -> None:
        """Record that one image is left out; ``text`` names its file and why."""
        self.left_out.append(text)

    @property
    def fatal(self) -> dict[str, int]:
        """Kinds of fatal problems that occurred -> counts, in :data:`PROBLEM_KINDS` order."""
        return {k: self.counts[k] for k, (_, fatal) in PROBLEM_KINDS.items() if fatal and self.counts.get(k)}

    def summary(self, source: str | Path, kinds: dict[str, int] | None = None) -> str:
        """One line: ``source``, how many problems of each kind, the first few examples.

        Args:
            kinds: kind -> count to summarise (default: :attr:`fatal`).
        """
        kinds = self.fatal if kinds is None else kinds
        head = ", ".join(f"{n} {PROBLEM_KINDS[k][0]}" for k, n in kinds.items())
        texts = [t for k in kinds for t in self.examples[k]]
        shown = texts[:_SUMMARY_EXAMPLES]
        more = sum(self.num_examples[k] for k in kinds) - len(shown)
        tail = f" (and {more} more: tools/check_dataset.py lists them all)" if more > 0 else ""
        return f"{source}: {head}; e.g. {'; '.join(shown)}{tail}"

    def raise_if_fatal(self, source: str | Path) -> None:
        """Remember ``source``; in strict mode, raise one :class:`DatasetError` (:meth:`summary`)
        if anything fatal was added."""
        self.source = str(source)
        if self.strict and self.fatal:
            raise DatasetError(self.summary(source))


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
    areas: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.labels = np.asarray(self.labels, np.int64).reshape(-1)
        if self.iscrowd is None:
            self.iscrowd = np.zeros(len(self.labels), bool)
        self.iscrowd = np.asarray(self.iscrowd, bool).reshape(-1)
        if self.areas is not None:
            self.areas = np.asarray(self.areas, np.float32).reshape(-1)
        if self.orig_size == (0, 0):
            self.orig_size = tuple(self.image.shape[:2])

    @property
    def num_instances(self) -> int:
        return len(self.labels)

    def replace(self, **changes) -> "Sample":
        """A copy with some fields replaced (what transforms return)."""
        return replace(self, **changes)

    def select(self, keep: np.ndarray) -> "Sample":
        """The instances ``keep`` (bool mask or indices), every per-instance field kept paired."""
        return replace(
            self, boxes=self.boxes[keep], labels=self.labels[keep], iscrowd=self.iscrowd[keep],
            masks=None if self.masks is None else self.masks[keep],
            areas=None if self.areas is None else self.areas[keep],
        )

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


#: Pillow format -> bytes a complete file of that format ends with.
_END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}


def image_size(path: str | Path) -> tuple[int, int]:
    """``(H, W)`` of an image file from its header, without decoding the pixels.

    Uses Pillow when it is installed (it reads only the header); otherwise decodes with cv2.
    Sizes are those of the stored pixel layout (EXIF orientation ignored, as :func:`read_image`).
    A JPEG or PNG must also end with its end marker; one that does not (cut short by a copy,
    or followed by extra bytes) is decoded once to tell which, so a truncated file is found
    here rather than in the middle of an epoch.

    Raises:
        ImageReadError: the file is missing, its header is not an image's, or it is truncated;
            names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image file not found: {path}")
    try:
        from PIL import Image
    except ImportError:
        return read_image(path).shape[:2]
    try:
        with Image.open(path) as image:
            width, height = image.size
            end = _END_MARKERS.get(image.format or "")
            if end is not None and not _ends_with(path, end):
                try:
                    image.load()  # extra bytes after the end marker are fine; a cut-short file is not
                except (OSError, ValueError, SyntaxError) as exc:
                    raise ImageReadError(f"{path}: truncated or corrupt image (no {image.format} end marker, "
                                         f"and decoding fails: {exc})") from None
    except Image.DecompressionBombError:  # Pillow's guard against huge images; cv2 has none
        return read_image(path).shape[:2]
    except ImageReadError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        reason = str(exc).replace(f" '{path}'", "")  # Pillow quotes the path, which is named already
        raise ImageReadError(f"{path}: cannot read the image header (corrupt or not an image: {reason})") from None
    return int(height), int(width)


def _ends_with(path: Path, marker: bytes) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() < len(marker):
            return False
        f.seek(-len(marker), os.SEEK_END)
        return f.read() == marker


def read_image_sizes(paths: Sequence[str | Path], workers: int = 16) -> list[tuple[int, int] | ImageReadError]:
    """:func:`image_size` of every path, in ``workers`` threads; a bad file gives its error.

    Threads overlap the file system's latency (most of the cost on network storage); from the
    page cache, on 2 cores, the 128 coco128 images take 10-15 ms and 20,000 about 1.5 s.
    """

    def one(path):
        try:
            return image_size(path)
        except ImageReadError as exc:
            return exc

    if len(paths) < 2 * workers:
        return [one(p) for p in paths]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, paths, chunksize=64))


def box_changes(boxes: np.ndarray, height, width, min_size: float = MIN_BOX_SIZE) -> dict[str, np.ndarray]:
    """Which boxes :func:`sanitize_boxes` will drop or clip, by problem kind (the one rule).

    Args:
        boxes: ``[N, 4]`` xyxy absolute pixels, as annotated (before clipping).
        height, width: the image size, scalars or ``[N]`` (one per box).
        min_size: as :func:`sanitize_boxes`.

    Returns:
        ``{"degenerate_boxes", "boxes_fully_outside", "boxes_partly_outside"}`` -> ``[N]`` bool,
        disjoint: less than ``min_size`` wide or high as annotated (dropped); more than
        :data:`OUTSIDE_TOLERANCE` outside the image and nothing left inside (dropped), or
        something left (clipped). Non-finite boxes are in none of them.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    height = np.asarray(height, np.float64)
    width = np.asarray(width, np.float64)
    finite = np.isfinite(boxes).all(1)
    with np.errstate(invalid="ignore"):
        degenerate = finite & ((boxes[:, 2] - boxes[:, 0] < min_size) | (boxes[:, 3] - boxes[:, 1] < min_size))
        x1, x2 = np.clip(boxes[:, 0], 0, width), np.clip(boxes[:, 2], 0, width)
        y1, y2 = np.clip(boxes[:, 1], 0, height), np.clip(boxes[:, 3], 0, height)
        nothing_inside = (x2 - x1 < min_size) | (y2 - y1 < min_size)
        sticks_out = ((boxes[:, :2] < -OUTSIDE_TOLERANCE).any(1) | (boxes[:, 2] > width + OUTSIDE_TOLERANCE)
                      | (boxes[:, 3] > height + OUTSIDE_TOLERANCE))
    usable = finite & ~degenerate
    return {"degenerate_boxes": degenerate, "boxes_fully_outside": usable & nothing_inside,
            "boxes_partly_outside": usable & ~nothing_inside & sticks_out}


def box_text(where: str, name: str, box: np.ndarray, height: int, width: int) -> str:
    """How a box problem is named: ``file: instance: box xyxy [...] in a HxW (HxW) image``."""
    coords = ", ".join(f"{float(v):g}" for v in box)
    return f"{where}: {name + ': ' if name else ''}box xyxy [{coords}] in a {int(height)}x{int(width)} (HxW) image"


def sanitize_boxes(sample: Sample, counts: dict[str, int] | None = None, min_size: float = MIN_BOX_SIZE) -> Sample:
    """Clip boxes to the image and drop zero-area ones (with their masks), counting both.

    Which boxes this changes is said, before any image is decoded, by :func:`box_changes`.

    Args:
        sample: any sample; not modified.
        counts: optional dict incremented under ``"clipped_boxes"`` and ``"dropped_boxes"``.
        min_size: boxes narrower or shorter than this (pixels) after clipping are dropped.
    """
    if not sample.num_instances:
        return sample
    boxes = box_ops.clip(sample.boxes, sample.image.shape[:2])
    clipped = int((boxes != sample.boxes).any(1).sum())
    keep = box_ops.sizes_at_least(boxes, min_size)
    if counts is not None:
        counts["clipped_boxes"] = counts.get("clipped_boxes", 0) + clipped
        counts["dropped_boxes"] = counts.get("dropped_boxes", 0) + int((~keep).sum())
    if keep.all() and not clipped:
        return sample
    return sample.replace(boxes=boxes).select(keep)


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


class DetectionDataset(ABC):
    """Base of every dataset reader: ``load(index) -> Sample``, then box sanitising, then transform.

    Subclasses index their files and parse annotations in ``__init__``, recording every problem
    in ``problems`` (a :class:`ProblemLog`) and leaving bad items out, then call
    ``self.problems.raise_if_fatal(source)``: strict datasets fail when built, naming the files;
    non-strict ones keep the usable rest for the checker. They set ``class_names``; ``load``
    decodes one image. ``counts`` accumulates ``clipped_boxes`` / ``dropped_boxes`` for the
    dataset report. Readers that know every image's size at build time (from the annotations or
    the image headers) call :meth:`_check_boxes`, so the boxes that ``__getitem__`` will clip or
    drop are in ``problems`` before training (``boxes_checked`` is then True).

    Args:
        transform: callable ``Sample -> Sample`` (augmentation, resizing), applied last.
        strict: raise at the end of the build when a fatal problem was found (training);
            ``False`` keeps the problems in ``self.problems`` (``tools/check_dataset.py``).
    """

    class_names: tuple[str, ...] = ()

    def __init__(self, transform=None, *, strict: bool = True) -> None:
        self.transform = transform
        self.counts: dict[str, int] = {}
        self.problems = ProblemLog(strict)
        self.boxes_checked = False

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _check_boxes(self, boxes: Sequence[np.ndarray], sizes: Sequence[tuple[int, int] | None],
                     files: Sequence[str | Path]) -> None:
        """Record in ``problems`` each box that ``__getitem__`` will clip or drop (:func:`box_changes`).

        Args:
            boxes: per index ``[N_i, 4]`` xyxy absolute pixels, as ``load(i)`` will give them.
            sizes: per index ``(H, W)`` of the image file; nothing is recorded unless every
                size is known (the checker then finds the boxes when it decodes the images).
            files: per index, the image file (named by the examples, with :meth:`instance_names`).
        """
        if any(size is None for size in sizes):
            return
        self.boxes_checked = True
        counts = [len(b) for b in boxes]
        if not sum(counts):
            return
        owner = np.repeat(np.arange(len(counts)), counts)
        hw = np.asarray(sizes, np.float64).reshape(-1, 2)[owner]
        flat = np.concatenate([np.asarray(b, np.float64).reshape(-1, 4) for b in boxes])
        first = np.cumsum([0] + counts)[:-1]
        for kind, flagged in box_changes(flat, hw[:, 0], hw[:, 1]).items():
            for j in np.flatnonzero(flagged).tolist():
                index = int(owner[j])
                names = self.instance_names(index)
                k = j - int(first[index])
                self.problems.add(kind, box_text(str(files[index]), names[k] if k < len(names) else "", flat[j],
                                                 *hw[j]))

    @abstractmethod
    def __len__(self) -> int:
        """Number of samples."""

    @abstractmethod
    def load(self, index: int) -> Sample:
        """The untransformed sample ``index`` (boxes may still be outside the image)."""

    def notes(self) -> list[str]:
        """Lines the dataset report prints about what the reader found (e.g. mask values)."""
        return []

    def instance_names(self, index: int) -> list[str]:
        """How the annotation files name the instances of ``load(index)``, in order (e.g.
        ``"annotation 12"``, ``"object 3"``, ``"line 5"``), for problem reports; ``[]`` if unnamed."""
        return []

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {type(self).__name__} of length {len(self)}")
        sample = sanitize_boxes(self.load(index % len(self)), self.counts)
        return self.transform(sample) if self.transform is not None else sample
