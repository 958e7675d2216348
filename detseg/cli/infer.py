"""Run a trained detector or segmenter on images, folders, globs, video files or a camera.

Usage:
    python tools/infer.py --checkpoint RUN/best.pt --source PATH [--out DIR] [options]
    python tools/infer.py --checkpoint RUN/best.onnx --source PATH ...   # an exported file, onnxruntime

PATH is an image, a folder, a glob (quote it: "data/*.jpg"), a video file (mp4/avi/mov/mkv) or a
camera index (0). Results go to DIR (default ``RUN/infer/``):

* images, detectors: one drawn picture per image, ``predictions.json`` (COCO results, with the
  dataset's own category ids from the checkpoint) and ``images.json`` (the image ids it refers to);
* images, segmenters: ``masks/<name>.png`` label maps (0 background, k + 1 class k; 16-bit when
  there are more than 254 classes), one colour overlay per image with a key naming the classes
  present, ``segmentation.json`` (per image: its label map and the pixels of each class) and
  ``images.json``;
* images, detectors, with ``--save-format coco|yolo|voc``: also ``<format>/``, the detections
  at or above ``--save-score`` as a dataset in that format with copies of the images under
  their own names: pre-annotations to import into CVAT or Label Studio, or to correct and train
  on (see ``detseg/inference/pre_annotations.py``);
* video: the drawn video at the input's frame rate and size (H.264 when OpenCV has it, else
  mp4v; the codec used is printed) and ``<name>.jsonl`` with one line per frame: its detections,
  or a segmenter's pixels per class. Frames are streamed in batches, so memory stays flat
  however long the video is.

Unreadable image files are reported and skipped. A summary ends every run: images or frames
per second, and detections per class or each class's share of all pixels.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from detseg.data.sample import ImageReadError, read_image
from detseg.inference import Predictor, Result
from detseg.inference.pre_annotations import FORMATS, PredictionDataset
from detseg.structures.instances import DEFAULT_SCORE_THRESH

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm"}

EXAMPLES = """examples:
  python tools/infer.py --checkpoint runs/yolo/best.pt --source photo.jpg
  python tools/infer.py --checkpoint runs/yolo/best.pt --source "imgs/*.png" --score 0.5 --classes 0 2
  python tools/infer.py --checkpoint runs/unet/best.pt --source clip.mp4 --out runs/unet/video
  python tools/infer.py --checkpoint runs/yolo/best.pt --source big.tif --tile 640 --device cuda --half
  python tools/infer.py --checkpoint runs/yolo/best.pt --source imgs/ --save-format coco --save-score 0.5
"""


class Tally:
    """What a run found, for its summary: detections per class, or pixels per class (segmenters)."""

    def __init__(self) -> None:
        self.detections: Counter = Counter()
        self.pixels: Counter = Counter()
        self.total_pixels = 0
        self.segmentation = False

    def add(self, result: Result) -> None:
        """Count one image's or frame's detections, or its pixels per class and in all."""
        if result.semantic is not None:
            self.segmentation = True
            self.pixels.update(result.areas)
            self.total_pixels += result.semantic.size
        else:
            self.detections.update(result.names)

    def summary(self) -> str:
        """``detections: car 3, person 1`` or ``classes (share of all N pixels): circle 12.50%, ...``."""
        if not self.segmentation:
            return "detections: " + (", ".join(f"{name} {k}" for name, k in self.detections.most_common()) or "none")
        if not self.pixels:
            return f"classes: none (all {self.total_pixels:,} pixels background)"
        share = {name: 100 * k / self.total_pixels for name, k in self.pixels.most_common()}
        listed = ", ".join(f"{name} {pct:.2f}%" for name, pct in share.items())
        return (f"classes (share of all {self.total_pixels:,} pixels): {listed}; "
                f"background {100 - sum(share.values()):.2f}%")


def save_label_map(path: Path, label_map: np.ndarray, num_classes: int) -> None:
    """A PNG of the values as they are (0 background, k + 1 class k): 8-bit, or 16-bit past 254 classes."""
    dtype = np.uint8 if num_classes < 255 else np.uint16
    if not cv2.imwrite(str(path), label_map.astype(dtype)):
        raise OSError(f"cannot write {path}")


def list_images(source: str) -> list[Path]:
    """The image files a folder, glob or single path names, sorted."""
    path = Path(source)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if any(ch in source for ch in "*?["):
        return sorted(Path(p) for p in glob.glob(source) if Path(p).suffix.lower() in IMAGE_EXTENSIONS)
    return [path]


def open_writer(path: Path, fps: float, size: tuple[int, int]) -> tuple[cv2.VideoWriter, str]:
    """An mp4 writer: H.264 (browsers play it) when this OpenCV build has it, else mp4v."""
    for codec in ("avc1", "mp4v"):
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, size)
        if writer.isOpened():
            return writer, codec
        writer.release()
    raise OSError(f"OpenCV cannot write video to {path}")


def run_images(predictor: Predictor, files: list[Path], out: Path, args, tally: Tally,
               dataset: PredictionDataset | None = None) -> int:
    """Predict, draw and record every image (detections also into ``dataset``); returns how many were processed."""
    segmenter = predictor.model.task == "segmentation"
    results, images, bad = [], [], []
    if segmenter:
        (out / "masks").mkdir(exist_ok=True)
    for start in tqdm(range(0, len(files), args.batch_size), desc="images", disable=args.quiet, unit="batch"):
        arrays, names = [], []
        for f in files[start: start + args.batch_size]:
            try:
                arrays.append(read_image(f))
                names.append(f)
            except ImageReadError as exc:
                bad.append(str(exc))
                print(f"skipped: {exc}", file=sys.stderr)
        if not arrays:
            continue
        preds = [predictor.predict_tiled(a, args.tile) for a in arrays] if args.tile else predictor.predict_arrays(arrays, [str(n) for n in names])
        for f, r in zip(names, preds):
            image_id = len(images) + 1
            images.append({"id": image_id, "file_name": str(f), "height": r.image.shape[0], "width": r.image.shape[1]})
            tally.add(r)
            if segmenter:
                save_label_map(out / "masks" / f"{f.stem}.png", r.semantic, len(r.class_names))
                results.append({"image_id": image_id, "file_name": str(f), "label_map": f"masks/{f.stem}.png",
                                "areas": r.areas})
            else:
                results += r.to_coco(image_id)
                if dataset is not None:
                    dataset.add(f, r)
            if not args.no_save:
                cv2.imwrite(str(out / f"{f.stem}.jpg"), cv2.cvtColor(r.plot(), cv2.COLOR_RGB2BGR))
    if segmenter:
        values = {str(k + 1): name for k, name in enumerate(predictor.class_names)}
        (out / "segmentation.json").write_text(json.dumps({"label_values": values, "images": results}, indent=1))
    else:
        (out / "predictions.json").write_text(json.dumps(results))
    (out / "images.json").write_text(json.dumps(images, indent=1))
    if bad:
        print(f"{len(bad)} unreadable file(s) skipped", file=sys.stderr)
    return len(images)


def run_video(predictor: Predictor, source: str, out: Path, args, tally: Tally) -> int:
    """Stream frames in batches through the model into a drawn video and JSON lines (detections or class pixels)."""
    capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not capture.isOpened():
        raise OSError(f"cannot open video source {source}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    stem = f"camera{source}" if source.isdigit() else Path(source).stem
    writer, codec = (None, "") if args.no_save else open_writer(out / f"{stem}.mp4", fps, size)
    frames = 0
    with open(out / f"{stem}.jsonl", "w") as lines, tqdm(total=total, desc=stem, unit="frame", disable=args.quiet) as bar:
        while True:
            batch = []
            while len(batch) < args.batch_size:
                ok, frame = capture.read()
                if not ok:
                    break
                batch.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            if not batch:
                break
            for r in predictor.predict_arrays(batch, [f"{source}#{frames + i}" for i in range(len(batch))]):
                lines.write(json.dumps({"frame": frames, **r.to_dict()}) + "\n")
                tally.add(r)
                if writer is not None:
                    writer.write(cv2.cvtColor(r.plot(), cv2.COLOR_RGB2BGR))
                frames += 1
            bar.update(len(batch))
    capture.release()
    if writer is not None:
        writer.release()
        print(f"video: {out / f'{stem}.mp4'} ({codec}, {fps:g} fps, {size[0]}x{size[1]})")
    return frames


def build_parser() -> argparse.ArgumentParser:
    """The command line: every option with its meaning and default, examples at the end."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="best.pt / last.pt written by tools/train.py, or a .onnx "
                        "file written by tools/export.py (run with onnxruntime, same outputs)")
    parser.add_argument("--source", required=True, help="image, folder, glob, video file or camera index")
    parser.add_argument("--out", help="output folder (default: <checkpoint folder>/infer)")
    parser.add_argument("--score", type=float, help="drop detections below this score: the Predictor's score_thresh "
                        f"(default: an exported file's own, set by tools/export.py --score; {DEFAULT_SCORE_THRESH} "
                        "for a checkpoint)")
    parser.add_argument("--classes", type=int, nargs="+", help="keep only detections of these 0-based class indices")
    parser.add_argument("--image-size", type=int, help="model input size (default: the checkpoint's)")
    parser.add_argument("--device", default="auto", help="torch device: auto (CUDA when available, else cpu), cpu, "
                        "cuda, cuda:1 ... (default: %(default)s)")
    parser.add_argument("--half", action="store_true", help="fp16 autocast on CUDA (ignored on the CPU)")
    parser.add_argument("--batch-size", type=int, default=8, help="images or video frames per forward pass "
                        "(default: %(default)s)")
    parser.add_argument("--tile", type=int, help="sliced inference at full resolution with tiles of this size (large "
                        "images; detections merged with NMS, segmentation probabilities averaged)")
    parser.add_argument("--no-save", action="store_true", help="write predictions only (json, label maps), "
                        "no drawn pictures/video")
    parser.add_argument("--save-format", choices=FORMATS, help="also write the detections on images as a dataset "
                        "in this format into OUT/<format>/ (pre-annotations for CVAT or Label Studio)")
    parser.add_argument("--save-score", type=float, default=0.5, help="score threshold of the --save-format dataset, "
                        "at least --score (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    try:
        chosen = {} if args.score is None else {"score_thresh": args.score}  # else: the file's (or the default)
        predictor = Predictor.from_checkpoint(args.checkpoint, image_size=args.image_size, device=args.device,
                                              half=args.half, classes=args.classes, **chosen)
        dataset = PredictionDataset.for_predictor(predictor, args.save_score) if args.save_format else None
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / "infer"
    out.mkdir(parents=True, exist_ok=True)
    tally = Tally()
    start = time.perf_counter()
    is_video = args.source.isdigit() or Path(args.source).suffix.lower() in VIDEO_EXTENSIONS
    try:
        if is_video:
            if dataset is not None:
                raise OSError("--save-format writes a dataset of image files; extract the video's frames first")
            n, unit = run_video(predictor, args.source, out, args, tally), "frames"
        else:
            files = list_images(args.source)
            if not files or (len(files) == 1 and not files[0].exists()):
                raise OSError(f"no images found at {args.source}")
            n, unit = run_images(predictor, files, out, args, tally, dataset), "images"
            if dataset is not None:
                print(dataset.summary(args.save_format, dataset.write(args.save_format, out / args.save_format)))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    print(f"{n} {unit} in {seconds:.1f} s ({n / max(seconds, 1e-9):.1f} per second); {tally.summary()}")
    print(f"saved: {out}")
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
