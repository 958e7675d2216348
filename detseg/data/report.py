"""Dataset health report (the logic of ``tools/check_dataset.py``) and the source arguments of the data tools.

:func:`check_dataset` decodes every image of a dataset once, with ``dataset.load(i)`` (boxes as
the annotations give them, *before* the clipping and dropping that ``dataset[i]`` applies), and
collects what a person wants to know before training on it: how many images and instances per
class, crowd/ignore regions, images without labels, and every problem it finds, counted and with
a few examples each. One bad image does not stop the check: a corrupt or missing image file
(:class:`~detseg.data.sample.ImageReadError`) or a per-image annotation error found only when
the image is decoded (:class:`~detseg.data.sample.DatasetError` from ``load``, e.g. an image
whose size differs from the json) is recorded and the check goes on.

What is fatal (:attr:`DatasetReport.ok` is False) and what is only reported:

=============================  ======  ===================================================
problem                        fatal   why
=============================  ======  ===================================================
unreadable image               yes     training would skip it (``SafeDataset``) or crash
annotation error at load       yes     ``dataset[i]`` raises for this image
label outside ``[0, K)``       yes     would index past the classifier
non-finite box coordinate      yes     NaN losses
no images at all               yes     nothing to train on
degenerate box (area <= 0)     no      dropped by ``sanitize_boxes`` when loading
box partly outside the image   no      clipped to the image when loading
box fully outside the image    no      clipping leaves zero area, so it is dropped
=============================  ======  ===================================================

The dataset's own build-time ``counts`` (annotations its reader dropped or fixed while parsing,
e.g. COCO ``degenerate_annotations`` / ``invalid_polygons``, YOLO ``missing_label_files``) are
copied into the report as they are: those annotations never reach ``load``, so this is the only
place they show.

:func:`add_source_arguments` / :func:`dataset_from_args` give ``tools/convert.py`` and
``tools/check_dataset.py`` one way of naming a dataset on the command line::

    --format coco --images DIR --annotations FILE [--no-masks]
    --format voc  --root DIR [--split train] [--class-names a,b,c | --class-names FILE]
    --format yolo --data-yaml FILE [--split train]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .sample import DatasetError, ImageReadError

SOURCE_FORMATS: tuple[str, ...] = ("coco", "voc", "yolo")
"""Formats :func:`open_dataset` reads."""

OUTSIDE_TOLERANCE = 1e-3
"""Pixels a box may stick out of the image before it counts as outside (float round-off of
``x + w`` in json files is not worth a report line)."""

#: problem key -> (readable description, fatal?) in report order
PROBLEMS: dict[str, tuple[str, bool]] = {
    "unreadable_images": ("unreadable images (corrupt or missing file)", True),
    "load_errors": ("annotation errors found when loading", True),
    "labels_out_of_range": ("labels outside [0, num_classes)", True),
    "non_finite_boxes": ("boxes with NaN/inf coordinates", True),
    "degenerate_boxes": ("degenerate boxes (zero or negative width/height)", False),
    "boxes_partly_outside": ("boxes partly outside the image (will be clipped)", False),
    "boxes_fully_outside": ("boxes fully outside the image (will be dropped)", False),
}


@dataclass
class DatasetReport:
    """What :func:`check_dataset` found; ``format()`` for people, ``to_dict()`` for files.

    Attributes:
        source: description of the dataset (its ``repr``).
        class_names: ``K`` class names in label order.
        num_images: images in the dataset (readable or not).
        instances_per_class: ``[K]`` instances (crowd included) per class, from readable images.
        crowd_per_class: ``[K]`` of those that are crowd/ignore regions (COCO ``iscrowd``, VOC
            ``difficult``).
        images_per_class: ``[K]`` readable images holding at least one instance of the class.
        images_with_labels: readable images with at least one instance (crowd included).
        images_without_labels: readable images with no instance at all (negatives).
        crowd_only_images: readable images whose only instances are crowd/ignore regions.
        image_sizes: ``(min_h, min_w, max_h, max_w)`` over readable images, or ``None``.
        problems: problem key (see :data:`PROBLEMS`) -> count.
        examples: problem key -> up to ``max_examples`` one-line examples naming the file.
        build_counts: the dataset's own ``counts`` (see the module docstring).
    """

    source: str
    class_names: tuple[str, ...]
    num_images: int = 0
    instances_per_class: list[int] = field(default_factory=list)
    crowd_per_class: list[int] = field(default_factory=list)
    images_per_class: list[int] = field(default_factory=list)
    images_with_labels: int = 0
    images_without_labels: int = 0
    crowd_only_images: int = 0
    image_sizes: tuple[int, int, int, int] | None = None
    problems: dict[str, int] = field(default_factory=lambda: {key: 0 for key in PROBLEMS})
    examples: dict[str, list[str]] = field(default_factory=lambda: {key: [] for key in PROBLEMS})
    build_counts: dict[str, int] = field(default_factory=dict)

    @property
    def num_instances(self) -> int:
        """All instances of readable images with a valid label, crowd included."""
        return int(sum(self.instances_per_class))

    @property
    def num_crowd(self) -> int:
        return int(sum(self.crowd_per_class))

    @property
    def fatal_problems(self) -> dict[str, int]:
        """The fatal problems that occurred (plus ``no_images`` for an empty dataset)."""
        found = {k: n for k, n in self.problems.items() if n and PROBLEMS[k][1]}
        if not self.num_images:
            found["no_images"] = 1
        return found

    @property
    def ok(self) -> bool:
        """False when an image is unreadable, a label is out of range, or another fatal problem
        of :data:`PROBLEMS` occurred (or the dataset is empty)."""
        return not self.fatal_problems

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-serialisable types."""
        return {
            "source": self.source,
            "ok": self.ok,
            "num_images": self.num_images,
            "num_instances": self.num_instances,
            "num_crowd": self.num_crowd,
            "images_with_labels": self.images_with_labels,
            "images_without_labels": self.images_without_labels,
            "crowd_only_images": self.crowd_only_images,
            "image_sizes": None if self.image_sizes is None else dict(
                zip(("min_height", "min_width", "max_height", "max_width"), self.image_sizes)),
            "classes": [
                {"name": name, "instances": n, "crowd": c, "images": m}
                for name, n, c, m in zip(self.class_names, self.instances_per_class,
                                         self.crowd_per_class, self.images_per_class)
            ],
            "problems": dict(self.problems),
            "examples": {k: list(v) for k, v in self.examples.items() if v},
            "build_counts": dict(self.build_counts),
        }

    def format(self, *, all_classes: bool = True) -> str:
        """A readable multi-line report: overview, per-class table, problems, verdict.

        Args:
            all_classes: list classes without instances too (else only those that occur).
        """
        lines = [f"dataset: {self.source}"]
        sizes = ""
        if self.image_sizes is not None:
            min_h, min_w, max_h, max_w = self.image_sizes
            sizes = (f", size {min_h}x{min_w}" if (min_h, min_w) == (max_h, max_w)
                     else f", sizes {min_h}x{min_w} .. {max_h}x{max_w} (HxW)")
        lines.append(f"images: {self.num_images}{sizes}; {self.images_without_labels} without labels, "
                     f"{self.crowd_only_images} with crowd regions only")
        used = sum(1 for n in self.instances_per_class if n)
        lines.append(f"instances: {self.num_instances} ({self.num_crowd} crowd/ignore) in "
                     f"{used} of {len(self.class_names)} classes")

        rows = [(name, n, c, m) for name, n, c, m in zip(
            self.class_names, self.instances_per_class, self.crowd_per_class, self.images_per_class)
            if all_classes or n]
        width = max([len("class"), len("total")] + [len(r[0]) for r in rows])
        lines += ["", f"{'class':<{width}}  {'instances':>9}  {'crowd':>6}  {'images':>6}"]
        lines += [f"{name:<{width}}  {n:>9}  {c:>6}  {m:>6}" for name, n, c, m in rows]
        lines.append(f"{'total':<{width}}  {self.num_instances:>9}  {self.num_crowd:>6}  "
                     f"{self.images_with_labels:>6}")

        lines += ["", "problems (found decoding every image, boxes before clipping):"]
        width = max(len(text) for text, _ in PROBLEMS.values())
        for key, (text, fatal) in PROBLEMS.items():
            count = self.problems[key]
            mark = "  FATAL" if fatal and count else ""
            lines.append(f"  {text:<{width}}  {count:>6}{mark}")
            lines += [f"      e.g. {example}" for example in self.examples[key]]
        if self.build_counts:
            lines += ["", "counted by the reader when the dataset was built (not seen by load):"]
            width = max(len(k) for k in self.build_counts)
            lines += [f"  {k:<{width}}  {v:>6}" for k, v in self.build_counts.items()]

        fatal = self.fatal_problems
        verdict = "OK" if not fatal else "FAILED: " + ", ".join(
            f"{n} {k.replace('_', ' ')}" if k != "no_images" else "no images" for k, n in fatal.items())
        lines += ["", f"result: {verdict}"]
        return "\n".join(lines)


def describe_dataset(dataset) -> str:
    """One line naming the dataset: its ``repr``, or type, source path, size and class count."""
    text = repr(dataset)
    if text.startswith("<"):  # the default object repr says nothing useful
        where = next((str(getattr(dataset, a)) for a in ("data_yaml", "root", "ann_file", "image_dir")
                      if getattr(dataset, a, None) is not None), "")
        split = getattr(dataset, "split", None)
        where = f"{where!r}" + (f", split {split!r}" if split else "") + ", " if where else ""
        text = (f"{type(dataset).__name__}({where}{len(dataset)} images, "
                f"{len(getattr(dataset, 'class_names', ()))} classes)")
    return text


def _fmt_box(box: np.ndarray) -> str:
    return "[" + ", ".join(f"{float(v):g}" for v in box) + "]"


def check_dataset(dataset, *, progress: bool = True, max_examples: int = 5) -> DatasetReport:
    """Decode every image of ``dataset`` and report its contents and problems.

    Args:
        dataset: anything with ``class_names``, ``__len__`` and ``load(i) -> Sample`` (any
            :class:`~detseg.data.sample.DetectionDataset`); ``__getitem__`` is used when there
            is no ``load``, but then boxes are already clipped and the outside counts are 0.
        progress: show a tqdm progress bar over images (on stderr).
        max_examples: one-line examples kept per problem kind.

    Returns:
        The :class:`DatasetReport`. Nothing is raised for per-image problems; a
        :class:`~detseg.data.sample.DatasetError` raised *building* the dataset happens before
        this function and is the caller's to report.
    """
    names = tuple(str(n) for n in getattr(dataset, "class_names", ()))
    k = len(names)
    report = DatasetReport(source=describe_dataset(dataset), class_names=names, num_images=len(dataset),
                           instances_per_class=[0] * k, crowd_per_class=[0] * k, images_per_class=[0] * k)
    get = getattr(dataset, "load", None) or dataset.__getitem__
    per_class = np.zeros(k, np.int64)
    crowd_per_class = np.zeros(k, np.int64)
    images_per_class = np.zeros(k, np.int64)
    min_hw, max_hw = [math.inf, math.inf], [0, 0]

    def problem(key: str, count: int, example: str) -> None:
        if count:
            report.problems[key] += count
            if len(report.examples[key]) < max_examples:
                report.examples[key].append(example)

    for index in tqdm(range(len(dataset)), desc="checking images", unit="img", disable=not progress,
                      leave=False, file=sys.stderr):
        try:
            sample = get(index)
        except ImageReadError as exc:
            problem("unreadable_images", 1, str(exc))
            continue
        except DatasetError as exc:
            problem("load_errors", 1, str(exc))
            continue
        where = getattr(sample, "file_name", "") or f"image {index}"
        h, w = sample.image.shape[:2]
        min_hw = [min(min_hw[0], h), min(min_hw[1], w)]
        max_hw = [max(max_hw[0], h), max(max_hw[1], w)]

        boxes = np.asarray(sample.boxes, np.float64).reshape(-1, 4)
        labels = np.asarray(sample.labels, np.int64).reshape(-1)
        iscrowd = getattr(sample, "iscrowd", None)
        iscrowd = np.zeros(len(labels), bool) if iscrowd is None else np.asarray(iscrowd, bool).reshape(-1)
        if not len(labels):
            report.images_without_labels += 1
            continue
        report.images_with_labels += 1
        if iscrowd.all():
            report.crowd_only_images += 1

        valid = (labels >= 0) & (labels < k)
        bad = labels[~valid]
        problem("labels_out_of_range", len(bad), f"{where}: labels {sorted(set(bad.tolist()))} "
                f"outside [0, {k})")
        np.add.at(per_class, labels[valid], 1)
        np.add.at(crowd_per_class, labels[valid & iscrowd], 1)
        images_per_class[np.unique(labels[valid])] += 1

        finite = np.isfinite(boxes).all(1)
        problem("non_finite_boxes", int((~finite).sum()),
                f"{where}: box {_fmt_box(boxes[~finite][0]) if (~finite).any() else ''}")
        boxes = boxes[finite]
        degenerate = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
        clipped = boxes.copy()
        clipped[:, 0::2] = clipped[:, 0::2].clip(0, w)
        clipped[:, 1::2] = clipped[:, 1::2].clip(0, h)
        tol = OUTSIDE_TOLERANCE
        sticks_out = ((boxes[:, :2] < -tol).any(1) | (boxes[:, 2] > w + tol) | (boxes[:, 3] > h + tol))
        empty_inside = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
        fully = ~degenerate & sticks_out & empty_inside
        partly = ~degenerate & sticks_out & ~empty_inside
        for key, mask in (("degenerate_boxes", degenerate), ("boxes_fully_outside", fully),
                          ("boxes_partly_outside", partly)):
            if mask.any():
                problem(key, int(mask.sum()), f"{where}: box xyxy {_fmt_box(boxes[mask][0])} "
                        f"in a {h}x{w} (HxW) image")

    report.instances_per_class = per_class.tolist()
    report.crowd_per_class = crowd_per_class.tolist()
    report.images_per_class = images_per_class.tolist()
    if max_hw[0]:
        report.image_sizes = (int(min_hw[0]), int(min_hw[1]), int(max_hw[0]), int(max_hw[1]))
    report.build_counts = {str(k): int(v) for k, v in dict(getattr(dataset, "counts", {}) or {}).items()
                           if k not in ("clipped_boxes", "dropped_boxes")}  # those are __getitem__'s
    return report


# --------------------------------------------------------------------------- command-line sources


def add_source_arguments(parser: argparse.ArgumentParser, *, format_flags: Sequence[str] = ("--format",)) -> None:
    """Add the arguments naming a dataset (see the module docstring) to ``parser``.

    Args:
        format_flags: option strings of the format choice (``tools/convert.py`` uses
            ``("--from", "--format")``); the value lands in ``args.format``.
    """
    group = parser.add_argument_group("source dataset")
    group.add_argument(*format_flags, dest="format", required=True, choices=SOURCE_FORMATS,
                       help="format of the dataset to read")
    group.add_argument("--images", metavar="DIR", help="coco: the image folder that file_name entries are relative to")
    group.add_argument("--annotations", metavar="FILE", help="coco: the instances json")
    group.add_argument("--no-masks", action="store_true",
                       help="coco: read boxes only (for COCO files without 'segmentation'; faster)")
    group.add_argument("--root", metavar="DIR", help="voc: folder holding Annotations/, JPEGImages/, ImageSets/Main/")
    group.add_argument("--data-yaml", metavar="FILE", help="yolo: the dataset yaml (path, train/val, names)")
    group.add_argument("--split", default="train",
                       help="voc: ImageSets/Main/SPLIT.txt; yolo: the yaml key of the split (default: train)")
    group.add_argument("--class-names", metavar="NAMES",
                       help="voc: class names in label order, comma-separated or a text file with one "
                            "name a line (default: the 20 Pascal VOC classes)")


#: format -> (arguments it needs, arguments that only other formats take)
_NEEDS = {"coco": ("images", "annotations"), "voc": ("root",), "yolo": ("data_yaml",)}
_ONLY_FOR = {"images": "coco", "annotations": "coco", "no_masks": "coco", "root": "voc",
             "data_yaml": "yolo", "class_names": "voc"}


def check_source_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``parser.error`` (exit 2) for a missing argument of the format, or one of another format."""
    missing = [f"--{a.replace('_', '-')}" for a in _NEEDS[args.format] if not getattr(args, a)]
    if missing:
        parser.error(f"--format {args.format} needs {' and '.join(missing)}")
    stray = [f"--{a.replace('_', '-')} (is for {fmt})" for a, fmt in _ONLY_FOR.items()
             if fmt != args.format and getattr(args, a)]
    if stray:
        parser.error(f"not used by --format {args.format}: {', '.join(stray)}")


def parse_class_names(value: str) -> list[str]:
    """``"a,b,c"`` or the path of a text file with one name a line (blank lines ignored)."""
    path = Path(value)
    if "," not in value and path.is_file():
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not names:
            raise DatasetError(f"{path}: class names file is empty")
        return names
    return [n.strip() for n in value.split(",") if n.strip()]


def open_dataset(
    format: str,
    *,
    images: str | Path | None = None,
    annotations: str | Path | None = None,
    root: str | Path | None = None,
    data_yaml: str | Path | None = None,
    split: str = "train",
    class_names: Sequence[str] | None = None,
    with_masks: bool = True,
):
    """Build the reader of ``format`` (``coco``, ``voc``, ``yolo``) without any transform.

    Everything is kept (empty images, crowd regions, VOC ``difficult`` objects as crowd) so that
    a report or a conversion sees the whole dataset.

    Raises:
        DatasetError: from the reader (missing files, malformed annotations ...), naming the file.
        ValueError: an unknown format or a missing path argument.
    """
    from .coco import CocoDataset
    from .voc import VOC_CLASSES, VOCDataset
    from .yolo import YOLODataset

    if format == "coco":
        if images is None or annotations is None:
            raise ValueError("coco needs images and annotations")
        return CocoDataset(annotations, images, with_masks=with_masks, keep_empty=True)
    if format == "voc":
        if root is None:
            raise ValueError("voc needs root")
        return VOCDataset(root, split, class_names=class_names or VOC_CLASSES, keep_difficult=True,
                          keep_empty=True)
    if format == "yolo":
        if data_yaml is None:
            raise ValueError("yolo needs data_yaml")
        return YOLODataset(data_yaml, split, keep_empty=True)
    raise ValueError(f"unknown dataset format {format!r}; choose one of {SOURCE_FORMATS}")


def dataset_from_args(args: argparse.Namespace, *, with_masks: bool = True):
    """:func:`open_dataset` from :func:`add_source_arguments` arguments (``--no-masks`` wins)."""
    class_names = parse_class_names(args.class_names) if args.class_names else None
    return open_dataset(args.format, images=args.images, annotations=args.annotations, root=args.root,
                        data_yaml=args.data_yaml, split=args.split, class_names=class_names,
                        with_masks=with_masks and not args.no_masks)


def source_hint(args: argparse.Namespace, exc: Exception) -> str:
    """A short fix to append to a build error, when one is obvious."""
    text = str(exc)
    if args.format == "coco" and "no segmentation" in text:
        return " (for box-only COCO files pass --no-masks)"
    if args.format == "voc" and "unknown class name" in text and not args.class_names:
        return " (pass --class-names a,b,c or a file with one name a line)"
    return ""


def one_line(exc: BaseException) -> str:
    """The exception message on one line (YAML errors, for one, span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__
