"""Check a dataset before training on it: every problem of its files in one pass, then decode every image.

Usage (``python tools/check_dataset.py`` in a checkout takes the same arguments):
    detseg check PATH [SECOND] [options]      the format is found from PATH:
        a COCO json [its image folder], a YOLO data yaml, a VOC root, an image folder and its
        mask folder, or a folder holding one of those
    detseg check --format coco --images DIR --annotations FILE [--no-masks] [options]
    detseg check --format voc --root DIR [--split train] [--class-names a,b,c|FILE] [options]
    detseg check --format yolo --data-yaml FILE [--split train] [options]
    detseg check --format masks --images DIR --masks DIR --class-names a,b \\
        [--mask-values V:MEANING,...] [--ignore-index N] [options]
    options: [--json PATH] [--quiet] [--max-examples N] [--used-classes-only]

Examples:
    detseg check ../shared/data/coco128/annotations/instances.json
    detseg check ../shared/data/isbi2012_membrane/images ../shared/data/isbi2012_membrane/labels \\
        --mask-values 0:membrane,255:cell

The reader is built as training builds it, but collecting its problems instead of stopping at
the first (see :mod:`detseg.data.report`): missing, unreadable or truncated files, malformed
entries, lines and XML, unknown classes, duplicate ids, image sizes that disagree with the
annotations (read from the file headers), polygon/RLE problems, mask values that are neither a
class, background nor ignore, and boxes of zero area or (partly) outside their image as
annotated (what the clipping in training drops or changes: the same lines training prints
before epoch 1); each counted, with examples naming the file and the line, object or annotation
id. Then every remaining image is decoded: corrupt images, labels out of range. It also prints
images and instances per class (pixels per class for label maps), crowd/ignore regions, images
without labels, and the values a mask folder holds.

Exit status: 0 when the dataset is usable (warnings allowed), 1 when a fatal problem was found,
2 when the dataset cannot be read at all (a missing or malformed json/yaml, no split file, no
image folder: the error names the file) or for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from detseg.data.report import (
    CHECK_FORMATS,
    add_source_arguments,
    check_dataset,
    check_source_arguments,
    dataset_from_args,
    one_line,
    source_hint,
)
from detseg.data.sample import DatasetError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit status: 0 usable, 1 fatal problems found, 2 dataset cannot be read or bad arguments.",
    )
    add_source_arguments(parser, format_flags=("--format", "--from"), formats=CHECK_FORMATS, positional=True)
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--max-examples", type=int, default=5, metavar="N",
                        help="examples listed per kind of problem (default: 5)")
    parser.add_argument("--used-classes-only", action="store_true",
                        help="leave classes without instances out of the table")
    args = parser.parse_args(argv)
    check_source_arguments(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    args = parse_args(argv)
    for key in args.guessed:
        print(f"{key}: {getattr(args, key)} (guessed from {args.path}; name it if that is wrong)")
    try:
        dataset = dataset_from_args(args, strict=False)
    except (DatasetError, ValueError, OSError) as exc:
        print(f"error: cannot read the {args.format} dataset: {one_line(exc)}{source_hint(args, exc)}",
              file=sys.stderr)
        return 2
    report = check_dataset(dataset, progress=not args.quiet, max_examples=args.max_examples)
    print(report.format(all_classes=not args.used_classes_only))
    hint = source_hint(args, " ".join(report.examples["unknown_classes"] + report.examples["invalid_segmentations"]))
    if hint:
        print(f"hint: {hint.strip(' ()')}")
    if args.json:
        path = Path(args.json)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        except OSError as exc:
            print(f"error: cannot write {path}: {one_line(exc)}", file=sys.stderr)
            return 2
        print(f"report written to {path}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
