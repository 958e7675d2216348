"""Dataset health report (the logic of ``tools/check_dataset.py``) and the source arguments of the data tools.

A report is built in two steps, and one bad item stops neither:

1. The reader is built with ``strict=False`` and ``check_image_sizes=True``: it records every
   problem of its annotation files in ``dataset.problems`` (a :class:`~detseg.data.sample.ProblemLog`:
   missing files, malformed entries or lines, unknown classes, duplicate ids, unreadable or
   truncated images and image sizes read from file headers ..., each naming the file and the
   line, object or annotation id) and leaves the bad item out, and the boxes that loading will
   clip or drop (outside the image, zero area). Training builds the same readers the same way
   and applies ``data.bad_samples`` to the same log (:mod:`detseg.data.preflight`): the two
   cannot disagree.
2. :func:`check_dataset` decodes every remaining image once, with ``dataset.load(i)`` (boxes as
   the annotations give them, *before* the clipping and dropping that ``dataset[i]`` applies),
   and records what only decoding shows: a corrupt image (:class:`~detseg.data.sample.ImageReadError`),
   a per-image annotation error (:class:`~detseg.data.sample.DatasetError`, counted under its
   ``kind``, e.g. an image whose size differs from the json), labels out of range, and, for a
   dataset that could not check its boxes when it was built, boxes that are degenerate or
   outside the image (:func:`~detseg.data.sample.box_changes`, the same rule and words).

It also counts what a person wants to know before training: images and instances per class
(pixels per class for label maps), crowd/ignore regions, images without labels, and what the
reader says it found (:meth:`~detseg.data.sample.DetectionDataset.notes`, e.g. the values a
mask folder holds). Which problems are fatal (:attr:`DatasetReport.ok` is False, exit status 1)
is said once, in :data:`~detseg.data.sample.PROBLEM_KINDS`; an empty dataset is fatal too.

The dataset's own build-time ``counts`` that are not problems (e.g. YOLO ``missing_label_files``,
COCO ``empty_images``) are copied into the report as they are.

:func:`add_source_arguments` / :func:`dataset_from_args` give ``tools/convert.py`` and
``tools/check_dataset.py`` one way of naming a dataset on the command line::

    --format coco  --images DIR --annotations FILE [--no-masks]
    --format voc   --root DIR [--split train] [--class-names a,b,c | --class-names FILE]
    --format yolo  --data-yaml FILE [--split train]
    --format masks --images DIR --masks DIR --class-names a,b [--mask-values 0:background,255:b]

and :func:`detect_source` finds the format from a path instead (``PATH [SECOND]``).
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

from .sample import (
    IGNORE_INDEX, PROBLEM_KINDS, DatasetError, ImageReadError, box_changes, box_text,
)

SOURCE_FORMATS: tuple[str, ...] = ("coco", "voc", "yolo")
"""Detection formats :func:`open_dataset` reads (the sources of ``tools/convert.py``)."""

CHECK_FORMATS: tuple[str, ...] = SOURCE_FORMATS + ("masks",)
"""Everything :func:`open_dataset` reads (``tools/check_dataset.py``)."""

PROBLEMS = PROBLEM_KINDS
"""Problem key -> (readable description, fatal?), in report order (see :data:`PROBLEM_KINDS`)."""


@dataclass
class DatasetReport:
    """What :func:`check_dataset` found; ``format()`` for people, ``to_dict()`` for files.

    Attributes:
        source: description of the dataset (its ``repr``).
        class_names: ``K`` class names in label order.
        num_images: images in the dataset (readable or not), not counting ``skipped_images``.
        skipped_images: images the reader left out because of a problem of their annotations.
        instances_per_class: ``[K]`` instances (crowd included) per class, from readable images.
        crowd_per_class: ``[K]`` of those that are crowd/ignore regions (COCO ``iscrowd``, VOC
            ``difficult``).
        images_per_class: ``[K]`` readable images holding at least one instance of the class
            (or, for label maps, one pixel).
        pixels_per_class: ``[K + 2]`` label-map pixels: background, the K classes, ignore
            (all 0 without label maps).
        images_with_labels: readable images with at least one instance (crowd included).
        images_without_labels: readable images with no instance at all (negatives).
        crowd_only_images: readable images whose only instances are crowd/ignore regions.
        image_sizes: ``(min_h, min_w, max_h, max_w)`` over readable images, or ``None``.
        problems: problem key (every key of :data:`PROBLEMS`) -> count.
        examples: problem key -> up to ``max_examples`` one-line examples naming the file.
        build_counts: the dataset's own ``counts`` (see the module docstring).
        notes: what the reader reports about the data (e.g. the values a mask folder holds).
    """

    source: str
    class_names: tuple[str, ...]
    num_images: int = 0
    skipped_images: int = 0
    instances_per_class: list[int] = field(default_factory=list)
    crowd_per_class: list[int] = field(default_factory=list)
    images_per_class: list[int] = field(default_factory=list)
    pixels_per_class: list[int] = field(default_factory=list)
    images_with_labels: int = 0
    images_without_labels: int = 0
    crowd_only_images: int = 0
    image_sizes: tuple[int, int, int, int] | None = None
    problems: dict[str, int] = field(default_factory=lambda: {key: 0 for key in PROBLEMS})
    examples: dict[str, list[str]] = field(default_factory=lambda: {key: [] for key in PROBLEMS})
    build_counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def num_instances(self) -> int:
        """All instances of readable images with a valid label, crowd included."""
        return int(sum(self.instances_per_class))

    @property
    def num_crowd(self) -> int:
        return int(sum(self.crowd_per_class))

    @property
    def is_label_maps(self) -> bool:
        """The samples are label maps without instances (a mask folder): the table shows pixels."""
        return not self.num_instances and any(self.pixels_per_class)

    @property
    def fatal_problems(self) -> dict[str, int]:
        """The fatal problems that occurred (plus ``no_images`` for an empty dataset)."""
        found = {k: n for k, n in self.problems.items() if n and PROBLEMS[k][1]}
        if not self.num_images:
            found["no_images"] = 1
        return found

    @property
    def ok(self) -> bool:
        """False when a fatal problem of :data:`PROBLEMS` occurred (or the dataset is empty)."""
        return not self.fatal_problems

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-serialisable types."""
        k = len(self.class_names)
        pixels = self.pixels_per_class or [0] * (k + 2)
        return {
            "source": self.source,
            "ok": self.ok,
            "num_images": self.num_images,
            "skipped_images": self.skipped_images,
            "num_instances": self.num_instances,
            "num_crowd": self.num_crowd,
            "images_with_labels": self.images_with_labels,
            "images_without_labels": self.images_without_labels,
            "crowd_only_images": self.crowd_only_images,
            "image_sizes": None if self.image_sizes is None else dict(
                zip(("min_height", "min_width", "max_height", "max_width"), self.image_sizes)),
            "classes": [
                {"name": name, "instances": n, "crowd": c, "images": m, "pixels": px}
                for name, n, c, m, px in zip(self.class_names, self.instances_per_class,
                                             self.crowd_per_class, self.images_per_class, pixels[1:k + 1])
            ],
            "background_pixels": pixels[0],
            "ignore_pixels": pixels[k + 1],
            "problems": dict(self.problems),
            "fatal": sorted(self.fatal_problems),
            "examples": {k: list(v) for k, v in self.examples.items() if v},
            "build_counts": dict(self.build_counts),
            "notes": list(self.notes),
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
        skipped = f" (and {self.skipped_images} left out for the problems below)" if self.skipped_images else ""
        if self.is_label_maps:
            lines.append(f"images: {self.num_images}{sizes}{skipped}; {self.images_without_labels} without a "
                         "pixel of any class")
        else:
            lines.append(f"images: {self.num_images}{sizes}{skipped}; {self.images_without_labels} without labels, "
                         f"{self.crowd_only_images} with crowd regions only")
        if self.is_label_maps:
            lines += self._pixel_table(all_classes)
        else:
            lines += self._instance_table(all_classes)
        if self.notes:
            lines += [""] + self.notes

        lines += ["", "problems (reading the annotations, then decoding every image; boxes before clipping):"]
        found = [(key, text, fatal) for key, (text, fatal) in PROBLEMS.items() if self.problems[key]]
        width = max([len(text) for _, text, _ in found], default=0)
        for key, text, fatal in found:
            mark = "  FATAL" if fatal else ""
            lines.append(f"  {text:<{width}}  {self.problems[key]:>6}{mark}")
            lines += [f"      e.g. {example}" for example in self.examples[key]]
        if not found:
            lines.append("  none")
        counted = {k: v for k, v in self.build_counts.items() if v}
        if counted:
            lines += ["", "counted by the reader when the dataset was built (not seen by load):"]
            width = max(len(k) for k in counted)
            lines += [f"  {k:<{width}}  {v:>6}" for k, v in counted.items()]

        fatal = self.fatal_problems
        verdict = "OK" if not fatal else "FAILED: " + ", ".join(
            f"{n} {k.replace('_', ' ')}" if k != "no_images" else "no images" for k, n in fatal.items())
        lines += ["", f"result: {verdict}"]
        return "\n".join(lines)

    def _instance_table(self, all_classes: bool) -> list[str]:
        used = sum(1 for n in self.instances_per_class if n)
        lines = [f"instances: {self.num_instances} ({self.num_crowd} crowd/ignore) in "
                 f"{used} of {len(self.class_names)} classes"]
        rows = [(name, n, c, m) for name, n, c, m in zip(
            self.class_names, self.instances_per_class, self.crowd_per_class, self.images_per_class)
            if all_classes or n]
        width = max([len("class"), len("total")] + [len(r[0]) for r in rows])
        lines += ["", f"{'class':<{width}}  {'instances':>9}  {'crowd':>6}  {'images':>6}"]
        lines += [f"{name:<{width}}  {n:>9}  {c:>6}  {m:>6}" for name, n, c, m in rows]
        lines.append(f"{'total':<{width}}  {self.num_instances:>9}  {self.num_crowd:>6}  "
                     f"{self.images_with_labels:>6}")
        return lines

    def _pixel_table(self, all_classes: bool) -> list[str]:
        k = len(self.class_names)
        pixels = self.pixels_per_class
        total = sum(pixels) or 1
        used = sum(1 for n in pixels[1:k + 1] if n)
        lines = [f"label maps: {used} of {k} classes present"]
        rows = [("(background)", pixels[0], None)]
        rows += [(name, px, m) for name, px, m in zip(self.class_names, pixels[1:k + 1], self.images_per_class)
                 if all_classes or px]
        rows.append(("(ignore)", pixels[k + 1], None))
        width = max(len("class"), *(len(r[0]) for r in rows))
        lines += ["", f"{'class':<{width}}  {'pixels':>12}  {'share':>6}  {'images':>6}"]
        lines += [f"{name:<{width}}  {px:>12}  {100 * px / total:>5.1f}%  {'' if m is None else m:>6}".rstrip()
                  for name, px, m in rows]
        return lines


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
    """Report the problems ``dataset``'s reader recorded, then decode every image and add its own.

    Args:
        dataset: anything with ``class_names``, ``__len__`` and ``load(i) -> Sample`` (any
            :class:`~detseg.data.sample.DetectionDataset`, best built with ``strict=False`` so
            that its ``problems`` hold what it left out); ``__getitem__`` is used when there is
            no ``load``, but then boxes are already clipped and the outside counts are 0.
        progress: show a tqdm progress bar over images (on stderr).
        max_examples: one-line examples kept per problem kind.

    Returns:
        The :class:`DatasetReport`. Nothing is raised for per-image problems; a
        :class:`~detseg.data.sample.DatasetError` raised *building* the dataset happens before
        this function and is the caller's to report.
    """
    names = tuple(str(n) for n in getattr(dataset, "class_names", ()))
    log = getattr(dataset, "problems", None)
    report = DatasetReport(source=describe_dataset(dataset), class_names=names, num_images=len(dataset),
                           skipped_images=int(getattr(log, "skipped_images", 0)),
                           notes=list(dataset.notes()) if hasattr(dataset, "notes") else [])
    tally = _Tally(report, dataset, max_examples)
    for key, count in (getattr(log, "counts", None) or {}).items():
        report.problems[key] += count
        report.examples[key] += log.examples[key][:max_examples]
    get = getattr(dataset, "load", None) or dataset.__getitem__
    for index in tqdm(range(len(dataset)), desc="checking images", unit="img", disable=not progress,
                      leave=False, file=sys.stderr):
        try:
            sample = get(index)
        except ImageReadError as exc:
            tally.problem("unreadable_images", 1, str(exc))
            continue
        except DatasetError as exc:
            tally.problem(exc.kind if exc.kind in PROBLEMS else "load_errors", 1, str(exc))
            continue
        tally.add(index, sample)
    return tally.finish()


class _Tally:
    """The counts :func:`check_dataset` gathers over decoded samples, written into its report at the end."""

    def __init__(self, report: DatasetReport, dataset, max_examples: int) -> None:
        k = len(report.class_names)
        self.report, self.dataset, self.k, self.max_examples = report, dataset, k, max_examples
        self.boxes_checked = bool(getattr(dataset, "boxes_checked", False))
        self.per_class = np.zeros(k, np.int64)
        self.crowd_per_class = np.zeros(k, np.int64)
        self.images_per_class = np.zeros(k, np.int64)
        self.pixels = np.zeros(k + 2, np.int64)  # background, classes, ignore
        self.min_hw, self.max_hw = [math.inf, math.inf], [0, 0]

    def problem(self, key: str, count: int, example: str) -> None:
        if count:
            self.report.problems[key] += count
            if len(self.report.examples[key]) < self.max_examples:
                self.report.examples[key].append(example)

    def add(self, index: int, sample) -> None:
        """One decoded sample: its size, then its label map or its instances."""
        h, w = sample.image.shape[:2]
        self.min_hw = [min(self.min_hw[0], h), min(self.min_hw[1], w)]
        self.max_hw = [max(self.max_hw[0], h), max(self.max_hw[1], w)]
        semantic = getattr(sample, "semantic", None)
        labels = np.asarray(sample.labels, np.int64).reshape(-1)
        if semantic is not None and not len(labels):
            self._label_map(semantic)
        elif not len(labels):
            self.report.images_without_labels += 1
        else:
            self._instances(index, sample, labels, h, w)

    def _label_map(self, semantic) -> None:
        k = self.k
        counts = np.bincount(np.asarray(semantic, np.uint8).ravel(), minlength=256)
        self.pixels[: k + 1] += counts[: k + 1]
        self.pixels[k + 1] += counts[IGNORE_INDEX]
        self.images_per_class[counts[1:k + 1] > 0] += 1
        if counts[1:k + 1].any():
            self.report.images_with_labels += 1
        else:
            self.report.images_without_labels += 1

    def _instances(self, index: int, sample, labels: np.ndarray, h: int, w: int) -> None:
        """Class counts, labels out of range, non-finite boxes and (unless the reader checked
        them) boxes that loading would clip or drop; examples name the file and the instance."""
        k, report, dataset = self.k, self.report, self.dataset
        where = getattr(sample, "file_name", "") or f"image {index}"
        boxes = np.asarray(sample.boxes, np.float64).reshape(-1, 4)
        iscrowd = getattr(sample, "iscrowd", None)
        iscrowd = np.zeros(len(labels), bool) if iscrowd is None else np.asarray(iscrowd, bool).reshape(-1)
        report.images_with_labels += 1
        if iscrowd.all():
            report.crowd_only_images += 1
        named = dataset.instance_names(index) if hasattr(dataset, "instance_names") else []
        named = named if len(named) == len(labels) else [""] * len(labels)

        def instance(mask: np.ndarray) -> str:
            """``where: <name of the first instance in mask>``."""
            first = named[int(np.flatnonzero(mask)[0])]
            return f"{where}: {first}" if first else where

        valid = (labels >= 0) & (labels < k)
        self.problem("labels_out_of_range", int((~valid).sum()),
                     f"{instance(~valid) if (~valid).any() else where}: labels "
                     f"{sorted(set(labels[~valid].tolist()))} outside [0, {k})")
        np.add.at(self.per_class, labels[valid], 1)
        np.add.at(self.crowd_per_class, labels[valid & iscrowd], 1)
        self.images_per_class[np.unique(labels[valid])] += 1

        finite = np.isfinite(boxes).all(1)
        if (~finite).any():
            self.problem("non_finite_boxes", int((~finite).sum()),
                         f"{instance(~finite)}: box {_fmt_box(boxes[~finite][0])}")
        if self.boxes_checked:
            return  # the reader recorded them when it was built, from the same sizes
        for key, mask in box_changes(boxes, h, w).items():
            if mask.any():
                first = int(np.flatnonzero(mask)[0])
                self.problem(key, int(mask.sum()), box_text(where, named[first], boxes[first], h, w))

    def finish(self) -> DatasetReport:
        report = self.report
        report.instances_per_class = self.per_class.tolist()
        report.crowd_per_class = self.crowd_per_class.tolist()
        report.images_per_class = self.images_per_class.tolist()
        report.pixels_per_class = self.pixels.tolist()
        if self.max_hw[0]:
            report.image_sizes = (int(self.min_hw[0]), int(self.min_hw[1]), int(self.max_hw[0]), int(self.max_hw[1]))
        report.build_counts = {str(k): int(v) for k, v in dict(getattr(self.dataset, "counts", {}) or {}).items()
                               if k not in ("clipped_boxes", "dropped_boxes")  # those are __getitem__'s
                               and k not in PROBLEMS}  # already among the problems, with examples
        return report


# --------------------------------------------------------------------------- command-line sources


def add_source_arguments(parser: argparse.ArgumentParser, *, format_flags: Sequence[str] = ("--format",),
                         formats: Sequence[str] = SOURCE_FORMATS, positional: bool = False) -> None:
    """Add the arguments naming a dataset (see the module docstring) to ``parser``.

    Args:
        format_flags: option strings of the format choice (``tools/convert.py`` uses
            ``("--from", "--format")``); the value lands in ``args.format``.
        formats: the formats offered (``masks`` adds ``--masks``, ``--mask-values`` and
            ``--ignore-index``).
        positional: also take ``PATH [SECOND]`` whose format :func:`detect_source` finds; the
            format flag is then optional.
    """
    group = parser.add_argument_group("source dataset")
    if positional:
        group.add_argument("path", nargs="?", metavar="PATH",
                           help="the dataset, its format found from it: a COCO json, a YOLO data yaml, a VOC "
                                "root, an image folder followed by its mask folder, or a folder holding one of those")
        group.add_argument("second", nargs="?", metavar="SECOND",
                           help="after an image folder: its mask folder; after a COCO json: its image folder "
                                "(default: an images/ folder next to the json)")
    group.add_argument(*format_flags, dest="format", required=not positional, choices=tuple(formats),
                       help="format of the dataset to read" + (" (default: found from PATH)" if positional else ""))
    group.add_argument("--images", metavar="DIR",
                       help="coco: the image folder that file_name entries are relative to; masks: the image folder")
    group.add_argument("--annotations", metavar="FILE", help="coco: the instances json")
    group.add_argument("--no-masks", action="store_true",
                       help="coco: read boxes only (for COCO files without 'segmentation'; faster)")
    group.add_argument("--root", metavar="DIR", help="voc: folder holding Annotations/, JPEGImages/, ImageSets/Main/")
    group.add_argument("--data-yaml", metavar="FILE", help="yolo: the dataset yaml (path, train/val, names)")
    group.add_argument("--split", default="train",
                       help="voc: ImageSets/Main/SPLIT.txt; yolo: the yaml key of the split (default: train)")
    group.add_argument("--class-names", metavar="NAMES",
                       help="voc, masks: class names in label order, comma-separated or a text file with one "
                            "name a line (voc default: the 20 Pascal VOC classes)")
    if "masks" in formats:
        group.add_argument("--masks", metavar="DIR", help="masks: the folder of PNG label maps (one per image stem)")
        group.add_argument("--mask-values", metavar="V:MEANING,...",
                           help="masks: what each stored value means, a class name, background or ignore, e.g. "
                                "0:background,255:cell (default: 0 background, k+1 class k, --ignore-index "
                                "ignore); gives the class names when --class-names is not given")
        group.add_argument("--ignore-index", type=int, metavar="N",
                           help="masks: the stored value of unlabelled pixels (default: 255)")


#: format -> arguments it needs; argument -> formats that take it
_NEEDS = {"coco": ("images", "annotations"), "voc": ("root",), "yolo": ("data_yaml",), "masks": ("images", "masks")}
_ONLY_FOR = {"images": ("coco", "masks"), "annotations": ("coco",), "no_masks": ("coco",), "root": ("voc",),
             "data_yaml": ("yolo",), "class_names": ("voc", "masks"), "masks": ("masks",),
             "mask_values": ("masks",), "ignore_index": ("masks",)}
#: format -> the arguments PATH and SECOND fill
_POSITIONAL = {"coco": ("annotations", "images"), "voc": ("root", None), "yolo": ("data_yaml", None),
               "masks": ("images", "masks")}


def check_source_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``parser.error`` (exit 2) for a missing argument of the format, or one of another format.

    With ``PATH`` (see :func:`add_source_arguments`), the format is found first and the paths it
    implies are filled in (``args.guessed`` lists what was guessed rather than given).
    """
    args.guessed = []
    if getattr(args, "path", None):
        if not args.second:  # "PATH --images DIR" / "PATH --masks DIR" name the second folder too
            flag = "masks" if getattr(args, "masks", None) else "images" if args.images else None
            args.second = getattr(args, flag) if flag else None
            if flag:
                setattr(args, flag, None)
        try:
            fmt, found, guessed = detect_source(Path(args.path), args.second and Path(args.second), args.format)
        except DatasetError as exc:
            parser.error(str(exc))
        given = [f"--{key.replace('_', '-')}" for key, value in found.items() if getattr(args, key, None)]
        if given:
            parser.error(f"{args.path} already names the dataset; {', '.join(given)} would name it again")
        args.format = fmt
        for key, value in found.items():
            setattr(args, key, str(value))
        args.guessed = guessed
    elif getattr(args, "second", None):
        parser.error("SECOND needs PATH")
    elif args.format is None:
        parser.error("name the dataset: PATH (its format is found from it) or --format and its paths")
    missing = [f"--{a.replace('_', '-')}" for a in _NEEDS[args.format] if not getattr(args, a, None)]
    if missing:
        parser.error(f"--format {args.format} needs {' and '.join(missing)}")
    stray = [f"--{a.replace('_', '-')} (is for {'/'.join(fmts)})" for a, fmts in _ONLY_FOR.items()
             if args.format not in fmts and getattr(args, a, None)]
    if stray:
        parser.error(f"not used by --format {args.format}: {', '.join(stray)}")


def detect_source(path: Path, second: Path | None = None, format: str | None = None
                  ) -> tuple[str, dict[str, Path], list[str]]:
    """The format of a dataset named by a path (and an optional second path), and its paths.

    What is recognised: a ``.json`` file (COCO; ``second`` is its image folder, else an
    ``images/`` folder next to the json or one level up, or one named after the json's split,
    e.g. ``val2017`` for ``instances_val2017.json``); a ``.yaml``/``.yml`` file (YOLO data
    yaml); a folder with ``Annotations/`` (VOC root); an image folder followed by a mask folder
    (``second``); a folder holding exactly one of: a ``*.yaml``, an ``annotations/*.json`` with
    ``images/``, or ``images/`` with ``masks/`` (or ``labels/`` of PNGs).

    Args:
        format: the format when the caller knows it; only the paths are then filled in.

    Returns:
        ``(format, {argument: path}, [guessed argument names])``; the arguments are those of
        :func:`add_source_arguments` (``annotations``, ``images``, ``root``, ``data_yaml``, ``masks``).

    Raises:
        DatasetError: the path does not exist, or nothing (or more than one thing) fits.
    """
    if not path.exists():
        raise DatasetError(f"not found: {path}")
    if format is None:
        format, path = _detect_format(path, second)
    first, other = _POSITIONAL[format]
    found, guessed = {first: path}, []
    if second is not None:
        if other is None:
            raise DatasetError(f"a {format} dataset is named by one path; {second} is one too many")
        found[other] = second
    elif format == "coco" and path.is_file():
        found["images"] = _coco_image_dir(path)
        guessed.append("images")
    elif format == "masks":
        masks = _mask_dir(path)
        found["images"], found["masks"] = path / "images", masks
        guessed += ["images", "masks"]
    return format, found, guessed


def _detect_format(path: Path, second: Path | None) -> tuple[str, Path]:
    """``(format, main path)`` of a dataset path (see :func:`detect_source`)."""
    if path.is_file():
        if path.suffix.lower() == ".json":
            return "coco", path
        if path.suffix.lower() in (".yaml", ".yml"):
            return "yolo", path
        raise DatasetError(f"{path}: expected a COCO json (.json), a YOLO data yaml (.yaml), a VOC root "
                           "folder, or an image folder followed by its mask folder")
    if second is not None:
        return "masks", path
    candidates = []
    if (path / "Annotations").is_dir():
        candidates.append(("voc", path))
    candidates += [("yolo", p) for p in sorted([*path.glob("*.yaml"), *path.glob("*.yml")])]
    if (path / "images").is_dir():
        candidates += [("coco", p) for p in sorted((path / "annotations").glob("*.json"))]
        if _mask_dir(path, required=False) is not None:
            candidates.append(("masks", path))
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise DatasetError(f"{path}: holds several datasets ({', '.join(f'{f} {p}' for f, p in candidates)}); "
                           "name one of them")
    raise DatasetError(f"{path}: cannot tell the dataset format: no Annotations/ (VOC), no *.yaml (YOLO), "
                       "no annotations/*.json with images/ (COCO), no images/ with masks/ (mask folders); "
                       "name the file, give IMAGES_DIR MASKS_DIR, or use --format")


def _coco_image_dir(ann_file: Path) -> Path:
    """The image folder of a COCO json, by the usual layouts (see :func:`detect_source`)."""
    split = ann_file.stem.removeprefix("instances_")
    for base in (ann_file.parent, ann_file.parent.parent):
        for candidate in (base / "images" / split, base / split, base / "images"):
            if candidate.is_dir() and candidate != ann_file.parent:
                return candidate
    raise DatasetError(f"{ann_file}: no image folder found next to it (images/, images/{split}/ or {split}/, "
                       "here or one level up); give it: PATH IMAGES_DIR")


def _mask_dir(root: Path, required: bool = True) -> Path | None:
    """``root/masks``, or ``root/labels`` when it holds PNGs and no YOLO ``.txt`` labels."""
    if (root / "masks").is_dir():
        return root / "masks"
    labels = root / "labels"
    if labels.is_dir() and any(labels.glob("*.png")) and not any(labels.rglob("*.txt")):
        return labels
    if required:
        raise DatasetError(f"{root}: no masks/ folder (or labels/ of PNG label maps) next to images/")
    return None


def parse_class_names(value: str) -> list[str]:
    """``"a,b,c"`` or the path of a text file with one name a line (blank lines ignored)."""
    path = Path(value)
    if "," not in value and path.is_file():
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not names:
            raise DatasetError(f"{path}: class names file is empty")
        return names
    return [n.strip() for n in value.split(",") if n.strip()]


def parse_mask_values(value: str) -> dict[int, str]:
    """``"0:background,255:cell"`` -> ``{0: "background", 255: "cell"}``."""
    out = {}
    for item in (part.strip() for part in value.split(",") if part.strip()):
        stored, sep, meaning = item.partition(":")
        if not sep or not stored.strip().isdigit() or not meaning.strip():
            raise DatasetError(f"--mask-values: expected VALUE:MEANING items like 0:background,255:cell, got {item!r}")
        out[int(stored)] = meaning.strip()
    return out


def mask_class_names(mask_values: dict[int, str]) -> list[str]:
    """Class names implied by ``mask_values``: its meanings other than background/ignore, in
    order of stored value."""
    names = [m for _, m in sorted(mask_values.items()) if m not in ("background", "ignore")]
    return list(dict.fromkeys(names))


def stored_mask_values(mask_dir: str | Path, limit: int = 200) -> list[int]:
    """The values the first ``limit`` PNGs of ``mask_dir`` hold (for a hint before a dataset exists)."""
    from .mask_folder import MaskFolderDataset

    found: set[int] = set()
    for path in sorted(Path(mask_dir).glob("*.png"))[:limit]:
        try:
            mask = MaskFolderDataset._decode_mask(path)
        except ImageReadError:
            continue
        found |= set(np.unique(mask).tolist())
    return sorted(found)


def open_dataset(
    format: str,
    *,
    images: str | Path | None = None,
    annotations: str | Path | None = None,
    root: str | Path | None = None,
    data_yaml: str | Path | None = None,
    masks: str | Path | None = None,
    split: str = "train",
    class_names: Sequence[str] | None = None,
    mask_values: dict[int, str] | None = None,
    ignore_index: int | None = None,
    with_masks: bool = True,
    strict: bool = True,
):
    """Build the reader of ``format`` (``coco``, ``voc``, ``yolo``, ``masks``) without any transform.

    The readers are training's (:data:`detseg.data.build.READERS`), with everything kept (empty
    images, crowd regions, VOC ``difficult`` objects as crowd) so that a report or a conversion
    sees the whole dataset. They record their problems in ``dataset.problems`` (every image
    header read: unreadable or truncated files, sizes against the annotations') and leave the bad
    items out.

    Args:
        strict: raise one :class:`DatasetError` when a fatal problem was found (a conversion);
            ``False`` keeps them for a report.

    Raises:
        DatasetError: from the reader (missing files, malformed annotations ...), naming the file.
        ValueError: an unknown format, a missing path argument, or bad mask-folder options.
    """
    from ..config.schema import DataConfig, SplitConfig
    from .build import READERS  # the one place formats become readers

    if format not in READERS:
        raise ValueError(f"unknown dataset format {format!r}; choose one of {CHECK_FORMATS}")
    if format == "masks" and images is not None and masks is not None:
        if not class_names and mask_values:
            class_names = mask_class_names(mask_values)
        if not class_names:
            raise DatasetError(f"{masks}: a mask folder needs class names (--class-names, or --mask-values "
                               f"naming them); its masks hold values {stored_mask_values(masks)}")
    required, reader = READERS[format]
    paths = {"images": images, "annotations": data_yaml if format == "yolo" else annotations, "masks": masks,
             "root": root}
    missing = [{"annotations": "data_yaml"}.get(k, k) if format == "yolo" else k for k in required if paths[k] is None]
    if missing:
        raise ValueError(f"{format} needs {' and '.join(missing)}")
    cfg = DataConfig(format=format, class_names=tuple(class_names) if class_names else None, keep_empty=True,
                     keep_difficult=True, mask_values={str(k): v for k, v in mask_values.items()} if mask_values else None,
                     ignore_index=IGNORE_INDEX if ignore_index is None else ignore_index)
    dataset = reader(cfg, SplitConfig(split=split, **paths), "detection", with_masks)
    if strict:
        dataset.problems.strict = True
        dataset.problems.raise_if_fatal(dataset.problems.source)  # the source the reader named
    return dataset


def dataset_from_args(args: argparse.Namespace, *, with_masks: bool = True, strict: bool = True):
    """:func:`open_dataset` from :func:`add_source_arguments` arguments (``--no-masks`` wins)."""
    class_names = parse_class_names(args.class_names) if args.class_names else None
    mask_values = getattr(args, "mask_values", None)
    return open_dataset(args.format, images=args.images, annotations=args.annotations, root=args.root,
                        data_yaml=args.data_yaml, masks=getattr(args, "masks", None), split=args.split,
                        class_names=class_names, mask_values=parse_mask_values(mask_values) if mask_values else None,
                        ignore_index=getattr(args, "ignore_index", None),
                        with_masks=with_masks and not args.no_masks, strict=strict)


def source_hint(args: argparse.Namespace, exc: Exception | str) -> str:
    """A short fix to append to an error (or to problems' text), when one is obvious."""
    text = str(exc)
    if args.format == "coco" and "no segmentation" in text:
        return " (for box-only COCO files pass --no-masks)"
    if args.format == "voc" and "unknown class name" in text and not args.class_names:
        return " (pass --class-names a,b,c or a file with one name a line)"
    return ""


def one_line(exc: BaseException) -> str:
    """The exception message on one line (YAML errors, for one, span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__
