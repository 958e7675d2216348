"""Check a dataset before training on it: decode every image, count, and list what is wrong.

Usage:
    python tools/check_dataset.py --format coco --images DIR --annotations FILE [--no-masks] [options]
    python tools/check_dataset.py --format voc --root DIR [--split train] [--class-names a,b,c|FILE] [options]
    python tools/check_dataset.py --format yolo --data-yaml FILE [--split train] [options]
    options: [--json PATH] [--quiet] [--max-examples N] [--used-classes-only]

Example:
    python tools/check_dataset.py --format coco --images ../shared/data/coco128/images \\
        --annotations ../shared/data/coco128/annotations/instances.json

Prints images and instances per class (crowd/ignore regions counted apart), images without
labels, and every problem with a few examples naming the file: unreadable images, boxes of zero
area or (partly) outside the image as annotated (before the clipping training applies), labels
out of range, and what the reader itself dropped when parsing (e.g. COCO
``degenerate_annotations``, YOLO ``missing_label_files``). See :mod:`detseg.data.report`.

Exit status: 0 when the dataset is usable (warnings allowed), 1 when the report has a fatal
problem (an unreadable image, a label out of range, an annotation error found when loading),
2 when the dataset cannot be built at all (missing files, malformed or inconsistent annotations:
the error names the file) or for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from detseg.data.report import (
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
        epilog="Exit status: 0 usable, 1 fatal problems in the report, 2 dataset cannot be built.",
    )
    add_source_arguments(parser, format_flags=("--format", "--from"))
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
    args = parse_args(argv)
    try:
        dataset = dataset_from_args(args)
    except (DatasetError, OSError) as exc:
        print(f"error: cannot build the {args.format} dataset: {one_line(exc)}{source_hint(args, exc)}",
              file=sys.stderr)
        return 2
    report = check_dataset(dataset, progress=not args.quiet, max_examples=args.max_examples)
    print(report.format(all_classes=not args.used_classes_only))
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
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    sys.exit(main())
