"""Export a trained detector or segmenter to ONNX (or TorchScript), checked against PyTorch.

Usage:
    python tools/export.py --checkpoint RUN/best.pt [--format onnx|torchscript] [--out FILE]
                           [--image-size 640] [--exporter auto|dynamo|torchscript]

Every family exports: YOLO (boxes + class scores before NMS), segmenters (logits), and
Faster / Mask R-CNN (final boxes, scores, labels and mask probabilities of one image, NMS and
RoIAlign inside the graph; ONNX only). ``detseg/inference/export.py`` describes the graphs. The
current exporter (``torch.export``) is tried first, the TorchScript-based one where it fails;
the output says which. The file is then run (onnxruntime for ONNX) on images at two sizes and,
for detectors, on a blank one, and compared with PyTorch: a file that does not reproduce it is
deleted and the run fails. Class names, category ids, input size, resize mode and score
thresholds are stored in the file, so ``tools/infer.py --checkpoint FILE.onnx`` runs it as it
runs the checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

from detseg.inference import Predictor
from detseg.inference.export import (
    ExportError, check_images, export_checked, export_metadata, graph_kind, min_side,
)
from detseg.structures.instances import DEFAULT_SCORE_THRESH

EXPORTERS = {"dynamo": "the dynamo exporter (torch.export)", "torchscript": "the TorchScript-based exporter (legacy)",
             "trace": "torch.jit.trace"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="best.pt / last.pt written by tools/train.py")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    parser.add_argument("--out", help="output file (default: next to the checkpoint)")
    parser.add_argument("--image-size", type=int, help="example input side, rounded up to a multiple of 32 "
                        "(default: the training size); the graph takes any size")
    parser.add_argument("--exporter", choices=("auto", "dynamo", "torchscript"), default="auto",
                        help="ONNX exporter: auto tries dynamo, then the TorchScript-based one (default: %(default)s)")
    parser.add_argument("--score", type=float, default=DEFAULT_SCORE_THRESH,
                        help="the file's default score threshold: detections below it are dropped when the file "
                             "is run by detseg (Predictor, tools/infer.py; --score there overrides it) "
                             "(default: %(default)s)")
    args = parser.parse_args(argv)
    if not 0.0 <= args.score < 1.0:
        parser.error(f"--score must be in [0, 1), got {args.score}")
    try:
        predictor = Predictor.from_checkpoint(args.checkpoint, device="cpu")
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model = predictor.model.float().cpu().to(memory_format=torch.contiguous_format).eval()
    size = max(args.image_size or predictor.resize.image_size, min_side(model))
    size = (size + 31) // 32 * 32
    suffix = ".onnx" if args.format == "onnx" else ".torchscript"
    out = Path(args.out) if args.out else Path(args.checkpoint).with_suffix(suffix)
    resize = replace(predictor.resize, image_size=args.image_size or predictor.resize.image_size)
    metadata = export_metadata(model, predictor.class_names, resize, category_ids=predictor.category_ids,
                               score_thresh=args.score)
    try:
        written, result = export_checked(model, out, images=check_images(model, size), format=args.format,
                                         image_size=(size, size), exporter=args.exporter, metadata=metadata)
    except (ExportError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"exported with {EXPORTERS[written.exporter]}" + (f" ({written.note})" if written.note else ""))
    if graph_kind(model) == "two_stage":
        print("graph: one image per run (batch 1), any size from "
              f"{min_side(model)} px; outputs {', '.join(metadata['outputs'])}")
    print(f"checked: {args.format} output matches PyTorch ({result})")
    print(f"saved: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
