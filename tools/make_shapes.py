"""Write the synthetic shapes set to disk: a COCO dataset with mask PNGs, or a short video.

Usage:
    python tools/make_shapes.py --out DIR [--num-images 256] [--size 128] [--seed 0]
    python tools/make_shapes.py --video FILE.mp4 [--num-images 48] [--size 128] [--fps 12]

The dataset is ``DIR/images/*.png``, ``DIR/annotations.json`` (COCO instances with RLE masks)
and ``DIR/masks/*.png`` (label maps: 0 background, k + 1 class k): a stand-in for your own data
in the tutorials (docs/tutorials.md), convertible to VOC, YOLO or mask folders with
``tools/convert.py``. Different seeds give disjoint images (use one per split).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detseg.data.synthetic import CLASS_NAMES, SHAPE_KINDS, ShapesConfig, generate_sample, write_coco


EXAMPLES = """examples:
  python tools/make_shapes.py --out data/shapes/train --num-images 256 --seed 0
  python tools/make_shapes.py --out data/shapes/val --num-images 64 --seed 1
  python tools/make_shapes.py --video clip.mp4 --num-images 48 --size 160 --fps 24
  python tools/make_shapes.py --out data/shapes5/train --classes circle,rectangle,triangle,ellipse,cross
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line: every option with its meaning and default, examples at the end."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", help="dataset folder to create")
    target.add_argument("--video", help="video file to write (frames are shapes images)")
    parser.add_argument("--num-images", type=int, help="images (default 256) or frames (default 48)")
    parser.add_argument("--size", type=int, default=128, help="side of the square images or video frames, "
                        "in pixels (default: %(default)s)")
    parser.add_argument("--max-objects", type=int, default=4, help="at most this many shapes per image "
                        "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; different seeds give disjoint images, "
                        "so use one per split (default: %(default)s)")
    parser.add_argument("--fps", type=float, default=12.0, help="frame rate of --video (default: %(default)s)")
    parser.add_argument("--classes", default=",".join(CLASS_NAMES),
                        help=f"comma-separated shape kinds, in label order, from {', '.join(SHAPE_KINDS)} "
                             "(default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    n = args.num_images or (256 if args.out else 48)
    try:
        cfg = ShapesConfig(num_images=n, image_size=(args.size, args.size), max_objects=args.max_objects,
                           seed=args.seed, classes=tuple(c.strip() for c in args.classes.split(",")))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        if Path(args.out).exists() and any(Path(args.out).iterdir()):
            print(f"error: {args.out} exists and is not empty", file=sys.stderr)
            return 2
        path = write_coco(cfg, args.out)
        print(f"wrote {n} images: {Path(args.out) / 'images'}, {path}, {Path(args.out) / 'masks'}")
        return 0
    writer = cv2.VideoWriter(args.video, cv2.VideoWriter_fourcc(*"mp4v"), args.fps, (args.size, args.size))
    if not writer.isOpened():
        print(f"error: cannot write video {args.video}", file=sys.stderr)
        return 2
    for i in range(n):
        writer.write(cv2.cvtColor(generate_sample(cfg, i).image, cv2.COLOR_RGB2BGR))
    writer.release()
    print(f"wrote {args.video}: {n} frames, {args.size}x{args.size}, {args.fps:g} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
