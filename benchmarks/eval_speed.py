"""COCO evaluation speed: detseg's CocoEvaluator against plain pycocotools, on coco128.

Plain pycocotools here is the usual recipe: write the results json, ``coco_gt.loadRes(path)``,
``COCOeval(...).evaluate(); .accumulate(); .summarize()`` (prints redirected). Both sides reuse
one ground-truth COCO built beforehand. The result set is coco128-sized and detector-like:
every non-crowd object found with a jittered box (and, for masks, a shifted mask) plus false
positives up to ``--dets-per-image`` per image; objects score U(0.2, 1), false positives
U(0, 0.6).

The script fails (exit 1) unless the 12 summary numbers and the full precision/recall/score
arrays are identical on both sides.

Usage:
    python benchmarks/eval_speed.py [--dets-per-image 100] [--repeat 3] [--no-segm]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detseg.evaluation import CocoEvaluator
from detseg.structures.instances import Detections

ANN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco128" / "annotations" / "instances.json"


def make_detections(coco: COCO, dets_per_image: int, with_masks: bool, seed: int = 0) -> list[Detections]:
    rng = np.random.default_rng(seed)
    cat_ids = sorted(coco.getCatIds())
    out = []
    for image_id in sorted(coco.getImgIds()):
        img = coco.imgs[image_id]
        h, w = img["height"], img["width"]
        anns = [a for a in coco.imgToAnns[image_id] if not a["iscrowd"]]
        boxes, labels, masks = [], [], []
        for a in anns:
            x, y, bw, bh = a["bbox"]
            j = rng.normal(0, 0.08, 4) * [bw, bh, bw, bh]
            boxes.append([x + j[0], y + j[1], x + bw + j[0] + j[2], y + bh + j[1] + j[3]])
            labels.append(cat_ids.index(a["category_id"]))
            if with_masks:
                dx, dy = (rng.normal(0, 0.05, 2) * [bw, bh]).round().astype(int)
                masks.append(np.roll(coco.annToMask(a), (dy, dx), axis=(0, 1)).astype(bool))
        present = labels or [0]
        for _ in range(max(dets_per_image - len(anns), 0)):
            bw, bh = rng.uniform(4, min(w, h) / 2, 2)
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            boxes.append([x, y, x + bw, y + bh])
            labels.append(int(rng.choice(present)) if rng.random() < 0.5 else int(rng.integers(0, 80)))
            if with_masks:
                m = np.zeros((h, w), bool)
                m[int(y):int(y + bh), int(x):int(x + bw)] = True
                masks.append(m)
        # Found objects mostly score higher than false positives, as from a trained detector.
        scores = np.concatenate([rng.uniform(0.2, 1.0, len(anns)), rng.uniform(0.0, 0.6, len(boxes) - len(anns))])
        order = np.argsort(-scores)
        out.append(Detections(
            torch.tensor(np.asarray(boxes)[order], dtype=torch.float32),
            torch.tensor(scores[order], dtype=torch.float32),
            torch.tensor(np.asarray(labels)[order], dtype=torch.int64),
            torch.from_numpy(np.stack(masks)[order]) if with_masks else None,
            image_id,
        ))
    return out


def plain_pycocotools(coco_gt: COCO, results_path: str, iou_type: str) -> tuple[float, COCOeval]:
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        E = COCOeval(coco_gt, coco_gt.loadRes(results_path), iou_type)
        E.evaluate()
        E.accumulate()
        E.summarize()
    return time.perf_counter() - t, E


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ann", type=Path, default=ANN)
    parser.add_argument("--dets-per-image", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-segm", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with_masks = not args.no_segm
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(args.ann))
    t = time.perf_counter()
    detections = make_detections(coco_gt, args.dets_per_image, with_masks)
    print(f"{len(detections)} images, {sum(len(d) for d in detections)} detections"
          f"{' with masks' if with_masks else ''} (made in {time.perf_counter() - t:.1f} s)")

    evaluator = CocoEvaluator(coco_gt)
    t = time.perf_counter()
    evaluator.process(detections)
    t_process = time.perf_counter() - t
    ours = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        metrics = evaluator.evaluate()
        ours.append(time.perf_counter() - t)

    ok = True
    iou_types = ("bbox", "segm") if with_masks else ("bbox",)
    with tempfile.TemporaryDirectory() as tmp:
        plain_times = {}
        for iou_type in iou_types:
            # segm results carry no "bbox" (Detectron2's convention), so that the detection
            # area is the mask area (loadRes would take the box's otherwise)
            path = Path(tmp) / f"{iou_type}.json"
            path.write_text(json.dumps(evaluator.results(iou_type)))
            plain_times[iou_type] = []
            for _ in range(args.repeat):
                dt, E = plain_pycocotools(coco_gt, str(path), iou_type)
                plain_times[iou_type].append(dt)
            mine = evaluator.coco_eval[iou_type]
            same = np.array_equal(E.stats, mine.stats) and all(
                np.array_equal(E.eval[k], mine.eval[k]) for k in ("precision", "recall", "scores"))
            ok &= same
            print(f"{iou_type}: mAP {E.stats[0]:.4f} (plain) {metrics[f'{iou_type}/mAP']:.4f} (detseg) "
                  f"-> {'identical' if same else 'DIFFERENT'} stats and precision/recall arrays")

    plain_total = sum(statistics.median(v) for v in plain_times.values())
    ours_median = statistics.median(ours)
    print(f"plain pycocotools (loadRes + evaluate/accumulate/summarize), median of {args.repeat}:")
    for iou_type, v in plain_times.items():
        print(f"  {iou_type}: {statistics.median(v):.3f} s")
    print(f"  total: {plain_total:.3f} s")
    print(f"detseg CocoEvaluator.evaluate() ({' + '.join(iou_types)}, F1 included), median of "
          f"{args.repeat}: {ours_median:.3f} s   [process() once: {t_process:.3f} s, RLE encoding "
          f"included; plain pycocotools needs the same json/RLE export, not timed]")
    print(f"speed-up: {plain_total / ours_median:.1f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
