"""Convert a detection dataset between COCO, Pascal VOC and YOLO (and to mask folders).

Usage (``python tools/convert.py`` in a checkout takes the same arguments):
    detseg convert --from coco --images DIR --annotations FILE [--no-masks] --to FORMAT --out DST [options]
    detseg convert --from voc --root DIR [--split train] [--class-names a,b,c|FILE] --to FORMAT --out DST [options]
    detseg convert --from yolo --data-yaml FILE [--split train] --to FORMAT --out DST [options]
    FORMAT: coco | voc | yolo | masks;  options: [--out-split NAME] [--quiet]

Example:
    detseg convert --from coco --images data/shapes/images \\
        --annotations data/shapes/annotations.json --to yolo --out data/shapes_yolo

What is written under DST (SPLIT is --out-split, by default --split):

    coco   DST/images/SPLIT/<original file names>, DST/annotations/instances_SPLIT.json
    voc    DST/Annotations/, DST/JPEGImages/, DST/ImageSets/Main/SPLIT.txt, DST/classes.txt
    yolo   DST/images/SPLIT/, DST/labels/SPLIT/, DST/data.yaml
    masks  DST/images/SPLIT/, DST/masks/SPLIT/ (PNG index maps, 0 background, k+1 class k,
           255 ignore), DST/classes.txt

Several splits can be written into one DST, one run each; a split that is already there is
refused (nothing is overwritten). Images are copied (JPEG bytes unchanged; other formats as
lossless PNG). The summary lists instances read and written per class, what could not be
represented in the target format and was changed or left out (VOC: integer boxes, no masks;
YOLO: crowd/difficult objects left out, boxes clipped to the image; masks: no boxes), and the
arguments that read the result back.

Exit status: 0 on success, 2 when the source cannot be read (the one-line error names the file),
the output split already exists, or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from detseg.data.report import (
    add_source_arguments,
    check_source_arguments,
    dataset_from_args,
    describe_dataset,
    one_line,
    source_hint,
)
from detseg.data.sample import DatasetError, ImageReadError, Sample, sanitize_boxes

TARGETS = ("coco", "voc", "yolo", "masks")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Example: detseg convert --from voc --root VOCdevkit/VOC2012 --split val "
               "--to yolo --out voc_yolo",
    )
    add_source_arguments(parser, format_flags=("--from", "--format"))
    group = parser.add_argument_group("output")
    group.add_argument("--to", required=True, choices=TARGETS, help="format to write")
    group.add_argument("--out", required=True, metavar="DST", help="output dataset folder (created)")
    group.add_argument("--out-split", metavar="NAME",
                       help="split name to write (default: --split, which defaults to train)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    check_source_arguments(parser, args)
    args.out_split = args.out_split or args.split
    if not args.out_split or any(c in args.out_split for c in "/\\") or args.out_split in (".", ".."):
        parser.error(f"--out-split must be a plain name, got {args.out_split!r}")
    return args


# ----------------------------------------------------------------------------- bookkeeping


class _SourceImageError(Exception):
    """A source image that cannot be loaded (corrupt file, annotation error found on decoding)."""


class _Recorder:
    """Wraps the source for a writer: counts what is read and what the target keeps of it.

    The writers call ``load(i)`` once per image in order; this does the same box clean-up they
    do (:func:`sanitize_boxes`) on a copy, only to count, and passes the sample on unchanged
    except for ``prepare`` (the COCO target copies the image file and points ``file_name`` at
    the copy).
    """

    def __init__(self, dataset, target: str, bar: tqdm, prepare=None) -> None:
        self.dataset = dataset
        self.class_names = tuple(dataset.class_names)
        self.target = target
        self.bar = bar
        self.prepare = prepare
        k = len(self.class_names)
        self.read = np.zeros(k, np.int64)
        self.written = np.zeros(k, np.int64)
        self.notes = {"crowd_read": 0, "crowd_written_as_difficult": 0, "crowd_left_out": 0,
                      "crowd_as_ignore_pixels": 0, "clipped_boxes": 0, "dropped_boxes": 0,
                      "fractional_boxes_rounded": 0, "masks_not_written": 0, "boxes_not_written": 0,
                      "empty_images": 0}

    def __getattr__(self, name):  # category_ids, supercategories ... of the source for write_coco
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __len__(self) -> int:
        return len(self.dataset)

    def load(self, index: int) -> Sample:
        try:
            sample = self.dataset.load(index)
        except (ImageReadError, DatasetError) as exc:
            raise _SourceImageError(exc) from exc
        self._count(sample)
        if self.prepare is not None:
            sample = self.prepare(index, sample)
        self.bar.update(1)
        return sample

    def _count(self, s: Sample) -> None:
        k, notes = len(self.class_names), self.notes
        np.add.at(self.read, s.labels[(s.labels >= 0) & (s.labels < k)], 1)
        notes["crowd_read"] += int(s.iscrowd.sum())
        notes["empty_images"] += int(not s.num_instances)
        has_masks = s.masks is not None and s.num_instances
        if self.target == "coco":  # written as read: boxes unclipped, crowd as iscrowd=1
            kept = s.labels
        elif self.target == "masks":  # painted into the label map; crowd regions become ignore
            kept = s.labels[~s.iscrowd]
            notes["crowd_as_ignore_pixels"] += int(s.iscrowd.sum())
            notes["boxes_not_written"] += len(kept)
        else:
            clean = sanitize_boxes(Sample(image=s.image, boxes=s.boxes, labels=s.labels, iscrowd=s.iscrowd),
                                   notes)
            notes["masks_not_written"] += s.num_instances if has_masks else 0
            if self.target == "voc":
                kept = clean.labels
                notes["crowd_written_as_difficult"] += int(clean.iscrowd.sum())
                notes["fractional_boxes_rounded"] += int((np.round(clean.boxes) != clean.boxes).any(1).sum())
            else:
                kept = clean.labels[~clean.iscrowd]
                notes["crowd_left_out"] += int(clean.iscrowd.sum())
        np.add.at(self.written, kept[(kept >= 0) & (kept < k)], 1)


def _copy_image(sample: Sample, folder: Path, used: set[str], index: int) -> Sample:
    """Copy the image file into ``folder`` under its own name (lossless PNG if it has none)."""
    source = Path(sample.file_name) if sample.file_name else None
    if source is not None and source.is_file():
        name = source.name
        if name in used:  # same name from two source folders
            name = f"{index:06d}_{name}"
        dest = folder / name
        shutil.copyfile(source, dest)
    else:
        dest = folder / f"{index:06d}.png"
        if not cv2.imwrite(str(dest), cv2.cvtColor(np.ascontiguousarray(sample.image), cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {dest}")
    used.add(dest.name)
    return sample.replace(file_name=str(dest))


def _existing_output(target: str, out: Path, split: str) -> Path | None:
    """The file or folder that shows ``split`` was already written to ``out``, if any."""
    candidates = {
        "coco": [out / "annotations" / f"instances_{split}.json", out / "images" / split],
        "voc": [out / "ImageSets" / "Main" / f"{split}.txt"],
        "yolo": [out / "images" / split, out / "labels" / split],
        "masks": [out / "images" / split, out / "masks" / split],
    }[target]
    for path in candidates:
        if path.is_file() or (path.is_dir() and any(path.iterdir())):
            return path
    return None


def _write_class_names(out: Path, names: tuple[str, ...]) -> Path:
    """``classes.txt`` (one name a line, label order); an existing one must agree."""
    path = out / "classes.txt"
    text = "".join(f"{n}\n" for n in names)
    if path.is_file() and path.read_text(encoding="utf-8") != text:
        raise DatasetError(f"{path}: lists other class names than the source's {list(names)}")
    path.write_text(text, encoding="utf-8")
    return path


def convert(dataset, target: str, out: Path, split: str, *, source_format: str, progress: bool = True):
    """Write ``dataset`` as ``target`` under ``out``; returns ``(recorder, read_back_args)``."""
    from detseg.data.coco import write_coco
    from detseg.data.mask_folder import write_mask_folder
    from detseg.data.voc import write_voc
    from detseg.data.yolo import write_yolo

    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(dataset), desc=f"writing {target}", unit="img", disable=not progress,
               leave=False, file=sys.stderr)
    with bar:
        if target == "coco":
            image_dir = out / "images" / split
            image_dir.mkdir(parents=True, exist_ok=True)
            used: set[str] = set()

            def prepare(index: int, sample: Sample) -> Sample:
                sample = _copy_image(sample, image_dir, used, index)
                # COCO ids of a COCO source are kept; other readers number images from 0
                return sample if source_format == "coco" else sample.replace(image_id=index + 1)

            recorder = _Recorder(dataset, target, bar, prepare)
            ann_file = write_coco(recorder, out / "annotations" / f"instances_{split}.json", image_root=image_dir)
            back = f"--from coco --images {image_dir} --annotations {ann_file}"
        elif target == "voc":
            recorder = _Recorder(dataset, target, bar)
            write_voc(recorder, out, split)
            names = _write_class_names(out, recorder.class_names)
            back = f"--from voc --root {out} --split {split} --class-names {names}"
        elif target == "yolo":
            recorder = _Recorder(dataset, target, bar)
            yaml_path = write_yolo(recorder, out, split)
            back = f"--from yolo --data-yaml {yaml_path} --split {split}"
        else:
            recorder = _Recorder(dataset, target, bar)
            write_mask_folder(recorder, out / "images" / split, out / "masks" / split)
            names = _write_class_names(out, recorder.class_names)
            back = (f"MaskFolderDataset('{out / 'images' / split}', '{out / 'masks' / split}', "
                    f"class_names=<{names}>)")
    return recorder, back


def summary(recorder: _Recorder, dataset, args: argparse.Namespace, out: Path, back: str) -> str:
    """The report printed after a conversion: counts per class, what changed and why."""
    names, n = recorder.class_names, recorder.notes
    lines = [f"read  {args.format}: {describe_dataset(dataset)}",
             (f"wrote {args.to}: {out} (split {args.out_split!r}): {len(dataset)} images "
              f"({n['empty_images']} without objects), {int(recorder.written.sum())} of "
              f"{int(recorder.read.sum())} instances")]
    width = max(len("class"), *(len(c) for c in names))
    lines += ["", f"  {'class':<{width}}  {'read':>7}  {'written':>7}"]
    lines += [f"  {c:<{width}}  {r:>7}  {w:>7}" for c, r, w in zip(names, recorder.read, recorder.written)
              if r or w]
    lines.append(f"  {'total':<{width}}  {int(recorder.read.sum()):>7}  {int(recorder.written.sum()):>7}")

    changes = []
    for key, value in sorted(getattr(dataset, "counts", {}).items()):
        if value and key not in ("clipped_boxes", "dropped_boxes", "empty_images"):
            changes.append(f"{value} {key.replace('_', ' ')} (counted by the {args.format} reader; "
                           "those annotations were not read)" if key != "missing_label_files" else
                           f"{value} images without a label file, read as having no objects")
    explain = {
        "crowd_left_out": "crowd/difficult instances left out: YOLO has no ignore regions, and as "
                          "normal objects they would become positives",
        "crowd_written_as_difficult": "crowd instances written as <difficult>1</difficult> (VOC's ignore flag)",
        "crowd_as_ignore_pixels": "crowd regions painted as ignore (255), not as their class",
        "clipped_boxes": "boxes clipped to the image",
        "dropped_boxes": "boxes left out: zero area once clipped to the image",
        "fractional_boxes_rounded": "fractional boxes rounded to whole pixels (VOC stores integers)",
        "masks_not_written": f"instance masks not written: {args.to.upper()} labels are boxes only",
        "boxes_not_written": "instances written as label-map pixels only: a mask folder has no boxes "
                             "and no instance identity",
    }
    changes += [f"{n[key]} {text}" for key, text in explain.items() if n.get(key)]
    if args.format == "coco" and args.to in ("voc", "yolo"):
        changes.append(f"segmentations of the source, if any, not read: {args.to.upper()} labels are boxes only")
    if args.to == "coco" and args.format == "coco" and getattr(dataset, "with_masks", False):
        changes.append("segmentations re-encoded as compressed RLE (polygons included)")
    lines += ["", "changed or left out:"] + [f"  - {c}" for c in changes or ["nothing"]]
    lines += ["", f"read it back with: {back}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    args = parse_args(argv)
    out = Path(args.out)
    existing = _existing_output(args.to, out, args.out_split)
    if existing is not None:
        print(f"error: {existing} already exists: split {args.out_split!r} was written to {out} before; "
              "delete it or choose another --out / --out-split", file=sys.stderr)
        return 2
    try:
        dataset = dataset_from_args(args, with_masks=args.to in ("coco", "masks"))
    except (DatasetError, OSError) as exc:
        print(f"error: cannot read the {args.format} dataset: {one_line(exc)}{source_hint(args, exc)}",
              file=sys.stderr)
        return 2
    if args.to == "masks" and not getattr(dataset, "with_masks", False):
        why = {"coco": "--no-masks was given", "voc": "VOC labels are boxes",
               "yolo": "not every label line is a polygon"}[args.format]
        print(f"error: --to masks needs instance masks, but the {args.format} source has none ({why}); "
              "use COCO segmentations or YOLO polygon labels", file=sys.stderr)
        return 2
    try:
        recorder, back = convert(dataset, args.to, out, args.out_split, source_format=args.format,
                                 progress=not args.quiet)
    except _SourceImageError as exc:
        print(f"error: conversion stopped, {out} is incomplete: {one_line(exc)} "
              "(tools/check_dataset.py lists every such problem of the source)", file=sys.stderr)
        return 2
    except (DatasetError, OSError) as exc:  # e.g. DST/data.yaml of a dataset with other classes
        print(f"error: conversion stopped: {one_line(exc)}", file=sys.stderr)
        return 2
    print(summary(recorder, dataset, args, out, back))
    return 0


if __name__ == "__main__":
    sys.exit(main())
