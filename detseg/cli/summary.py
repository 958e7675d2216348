"""Print a per-layer summary (shapes, activations, params, FLOPs) of a detseg backbone.

Builds the backbone with random weights and runs one image through it; see
:mod:`detseg.utils.summary` for what is counted and how.

Usage (``python tools/summary.py`` in a checkout takes the same arguments):
    detseg summary MODEL [--input-size H [W]] [--width W] [--num-classes K] [--features] [--max-rows N]

Example:
    detseg summary alexnet                 # classifier at 224x224
    detseg summary vgg16 --features        # stages c1..c5 only, no classifier
    detseg summary resnet18 --width 0.25 --input-size 64

Exit status: 0 on success, 2 for an unknown model or bad arguments, 1 when the forward pass
fails (e.g. an input too small for the network).
"""

from __future__ import annotations

import argparse
import difflib
import sys

from detseg.utils.summary import summarize


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Per-layer summary of a detseg backbone (one random image, batch 1).",
        epilog="Example: detseg summary resnet18 --width 0.25 --input-size 64",
    )
    parser.add_argument("model", metavar="MODEL", help="backbone name, e.g. alexnet, resnet50")
    parser.add_argument(
        "--input-size",
        type=int,
        nargs="+",
        default=[224],
        metavar="SIZE",
        help="image size: one value (square) or H W (default: 224)",
    )
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier (default: 1)")
    parser.add_argument(
        "--num-classes", type=int, default=1000, help="classifier outputs (default: 1000)"
    )
    parser.add_argument(
        "--features",
        action="store_true",
        help="summarize feature extraction (stages c1..c5) only, without the classifier head",
    )
    parser.add_argument(
        "--max-rows", type=int, default=None, help="show at most this many layer rows"
    )
    args = parser.parse_args(argv)
    if len(args.input_size) not in (1, 2) or min(args.input_size) < 1:
        parser.error("--input-size takes one or two positive integers (SIZE or H W)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Imported here so that `--help` works even while a backbone module is broken.
    from detseg.backbones.build import BACKBONES, build_backbone

    if args.model not in BACKBONES:
        close = difflib.get_close_matches(args.model, BACKBONES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(
            f"error: unknown model {args.model!r}{hint}; choose one of: {', '.join(BACKBONES)}",
            file=sys.stderr,
        )
        return 2

    height, width = args.input_size * 2 if len(args.input_size) == 1 else args.input_size
    num_classes = None if args.features else args.num_classes
    model = build_backbone(args.model, num_classes=num_classes, width=args.width)
    forward = None if args.features else model.classify
    try:
        summary = summarize(model, (3, height, width), forward=forward)
    except RuntimeError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(
            f"error: {args.model} failed on a 3x{height}x{width} input: {first_line}; "
            "try a larger --input-size",
            file=sys.stderr,
        )
        return 1
    what = "feature extractor" if args.features else f"classifier, {args.num_classes} classes"
    print(f"{args.model} ({what}, width {args.width:g})")
    print(summary.table(max_rows=args.max_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
