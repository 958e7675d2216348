"""Export a trained single-shot detector or segmenter to ONNX or TorchScript, and check it.

Usage:
    python tools/export.py --checkpoint RUN/best.pt [--format onnx|torchscript] [--out FILE]
                           [--image-size 640] [--no-check]

The file takes ``images`` float32 [N, 3, H, W] RGB in [0, 1] and returns the dense outputs
described in ``detseg/inference/export.py`` (boxes + class scores before NMS, or segmentation
logits); class names, input size and task are stored in the file's metadata. Unless
``--no-check``, the file is run (onnxruntime for ONNX) on random images and compared with
PyTorch; a mismatch is an error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detseg.inference import Predictor
from detseg.inference.export import ExportError, check_export, export, export_metadata


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="best.pt / last.pt written by tools/train.py")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    parser.add_argument("--out", help="output file (default: next to the checkpoint)")
    parser.add_argument("--image-size", type=int, help="example input side (default: the training size)")
    parser.add_argument("--no-check", action="store_true", help="skip the comparison with PyTorch")
    args = parser.parse_args(argv)
    try:
        predictor = Predictor.from_checkpoint(args.checkpoint, device="cpu")
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = args.image_size or predictor.resize.image_size
    size = (size + 31) // 32 * 32
    suffix = ".onnx" if args.format == "onnx" else ".torchscript"
    out = Path(args.out) if args.out else Path(args.checkpoint).with_suffix(suffix)
    model = predictor.model.float().cpu().eval()
    try:
        export(model, out, format=args.format, image_size=(size, size),
               metadata=export_metadata(predictor.class_names, size, model.task))
        if not args.no_check:
            images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
            diff = check_export(model, out, images)
            print(f"checked: {args.format} output matches PyTorch (max relative difference {diff:.1e})")
    except (ExportError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"saved: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
