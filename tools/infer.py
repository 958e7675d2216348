"""Run a trained detector or segmenter on images, folders, globs, video files or a camera.

Usage:
    python tools/infer.py --checkpoint RUN/best.pt --source PATH [--out DIR] [options]

PATH is an image, a folder, a glob (quote it: "data/*.jpg"), a video file (mp4/avi/mov/mkv) or a
camera index (0). Results go to DIR (default ``RUN/infer/``):

* images: one drawn picture per image, ``predictions.json`` (COCO results) and ``images.json``
  (the image ids it refers to); unreadable files are reported and skipped;
* video: the drawn video at the input's frame rate and size (H.264 when OpenCV has it, else
  mp4v; the codec used is printed) and ``<name>.jsonl`` with one line of detections per frame.
  Frames are streamed in batches, so memory stays flat however long the video is.

A summary (images or frames, detections per class, frames per second) ends every run.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
from tqdm import tqdm

from detseg.data.sample import ImageReadError, read_image
from detseg.inference import Predictor

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm"}


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


def run_images(predictor: Predictor, files: list[Path], out: Path, args, counts: Counter) -> int:
    """Predict, draw and record every image; returns how many were processed."""
    results, images, bad = [], [], []
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
            results += r.to_coco(image_id)
            counts.update(r.names)
            if not args.no_save:
                cv2.imwrite(str(out / f"{f.stem}.jpg"), cv2.cvtColor(r.plot(), cv2.COLOR_RGB2BGR))
    (out / "predictions.json").write_text(json.dumps(results))
    (out / "images.json").write_text(json.dumps(images, indent=1))
    if bad:
        print(f"{len(bad)} unreadable file(s) skipped", file=sys.stderr)
    return len(images)


def run_video(predictor: Predictor, source: str, out: Path, args, counts: Counter) -> int:
    """Stream frames in batches through the model into a drawn video and JSON lines."""
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
                counts.update(r.names)
                if writer is not None:
                    writer.write(cv2.cvtColor(r.plot(), cv2.COLOR_RGB2BGR))
                frames += 1
            bar.update(len(batch))
    capture.release()
    if writer is not None:
        writer.release()
        print(f"video: {out / f'{stem}.mp4'} ({codec}, {fps:g} fps, {size[0]}x{size[1]})")
    return frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="best.pt / last.pt written by tools/train.py")
    parser.add_argument("--source", required=True, help="image, folder, glob, video file or camera index")
    parser.add_argument("--out", help="output folder (default: <checkpoint folder>/infer)")
    parser.add_argument("--score", type=float, default=0.25, help="score threshold")
    parser.add_argument("--classes", type=int, nargs="+", help="keep only these class indices")
    parser.add_argument("--image-size", type=int, help="model input size (default: the checkpoint's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--half", action="store_true", help="fp16 autocast on CUDA")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tile", type=int, help="sliced inference at full resolution with tiles of this size (large "
                        "images; detections merged with NMS, segmentation probabilities averaged)")
    parser.add_argument("--no-save", action="store_true", help="write predictions only, no pictures/video")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        predictor = Predictor.from_checkpoint(args.checkpoint, image_size=args.image_size, device=args.device,
                                              half=args.half, score_threshold=args.score, classes=args.classes)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / "infer"
    out.mkdir(parents=True, exist_ok=True)
    counts: Counter = Counter()
    start = time.perf_counter()
    is_video = args.source.isdigit() or Path(args.source).suffix.lower() in VIDEO_EXTENSIONS
    try:
        if is_video:
            n, unit = run_video(predictor, args.source, out, args, counts), "frames"
        else:
            files = list_images(args.source)
            if not files or (len(files) == 1 and not files[0].exists()):
                raise OSError(f"no images found at {args.source}")
            n, unit = run_images(predictor, files, out, args, counts), "images"
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    per_class = ", ".join(f"{name} {k}" for name, k in counts.most_common()) or "none"
    print(f"{n} {unit} in {seconds:.1f} s ({n / max(seconds, 1e-9):.1f} per second); detections: {per_class}")
    print(f"saved: {out}")
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
