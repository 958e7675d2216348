"""Faster R-CNN R50-FPN speed: detseg against torchvision's ``fasterrcnn_resnet50_fpn``, same run.

Both models get the same weights (torchvision's randomly initialised state dict, loaded into
detseg with :func:`load_torchvision_faster_rcnn`; the class-score weights are scaled 5x so that ~100
detections per image pass the 0.05 threshold, as with a trained model) and the same images at
torchvision's default size (800 x 1067, already at ``min_size``, so torchvision's resize is
the identity; both pad to 800 x 1088). torchvision runs as users run it: float32 (TF32
convolutions, PyTorch's default) with its per-image ``GeneralizedRCNNTransform``; torchvision
under bf16 autocast is measured too, for reference. detseg runs float32 and its fast path: bf16
autocast + channels_last (+ ``torch.compile`` of backbone and FPN with ``--compile``).

Printed: train images/s (SGD step, batch ``--train-batch``), inference images/s (batch
``--infer-batch``) and batch-1 latency, the ratio against torchvision float32, and detection
agreement: float32 detections equal to torchvision's (boxes 1e-3, labels, scores), and for bf16
the share of torchvision's detections found again (same label, IoU >= 0.9).

Usage:
    python benchmarks/faster_rcnn_speed.py [--train-batch 4] [--infer-batch 8] [--iters 20] [--compile]
    python benchmarks/faster_rcnn_speed.py --quick     # tiny CPU smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn
from torchvision.ops import box_iou

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detseg.detection import faster_rcnn, load_torchvision_faster_rcnn
from detseg.structures.instances import Instances


def make_inputs(n: int, h: int, w: int, device: torch.device, seed: int = 0):
    """Smooth random images (uint8 [N,3,H,Wp] padded to 32, and torchvision's float list) + 5 boxes each."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, 3, h // 16, w // 16, generator=g)
    img = torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    img = (img * 255).round().to(torch.uint8)
    wp = (w + 31) // 32 * 32
    padded = torch.zeros(n, 3, h, wp, dtype=torch.uint8)
    padded[..., :w] = img
    xy = torch.rand(n, 5, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
    wh = 20 + torch.rand(n, 5, 2, generator=g) * torch.tensor([w * 0.3, h * 0.3])
    boxes = torch.cat([xy, xy + wh], -1)
    labels = torch.randint(0, 90, (n, 5), generator=g)
    ours_t = [Instances(b.to(device), l.to(device), torch.zeros(5, dtype=torch.bool, device=device), (h, w))
              for b, l in zip(boxes, labels)]
    tv_t = [{"boxes": b.to(device), "labels": (l + 1).to(device)} for b, l in zip(boxes, labels)]
    floats = [x.to(device).float() / 255 for x in img]
    return padded.to(device), floats, ours_t, tv_t


def timed(fn, iters: int, warmup: int, device: torch.device) -> float:
    """Median seconds per call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def agreement(dets, reference, is_tv: bool) -> tuple[bool, float]:
    """Against torchvision fp32: (equal to 1e-3, share of its detections found with IoU >= 0.9, same label)."""
    exact, found, total = True, 0, 0
    for d, e in zip(dets, reference):
        eb, el, es = e["boxes"].float(), e["labels"] - 1, e["scores"].float()
        db, dl, ds = (d["boxes"], d["labels"] - 1, d["scores"]) if is_tv else (d.boxes, d.labels, d.scores)
        db, ds = db.float(), ds.float()
        exact &= len(db) == len(eb) and bool(torch.allclose(db, eb, atol=1e-3)) \
            and bool(torch.equal(dl, el)) and bool(torch.allclose(ds, es, atol=1e-4))
        total += len(eb)
        if len(eb) and len(db):
            iou = box_iou(eb, db)
            iou[el[:, None] != dl[None]] = 0
            found += int((iou.max(1).values >= 0.9).sum())
    return exact, found / max(total, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train-batch", type=int, default=4)
    p.add_argument("--infer-batch", type=int, default=8)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="also time detseg with torch.compile(backbone, neck)")
    p.add_argument("--quick", action="store_true", help="CPU smoke run: 256 px, batch 2, 2 iterations")
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.quick else "cpu")
    h, w = (256, 320) if args.quick else (800, 1067)
    if args.quick:
        args.train_batch, args.infer_batch, args.iters, args.warmup = 2, 2, 2, 1
    torch.backends.cudnn.benchmark = True

    torch.manual_seed(0)
    tv = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91, min_size=h, max_size=max(w, 1333))
    state = {k: (v * 5 if k.startswith("roi_heads.box_predictor.cls_score") else v) for k, v in tv.state_dict().items()}
    tv.load_state_dict(state)
    ours = faster_rcnn("resnet50", num_classes=90)
    load_torchvision_faster_rcnn(ours, state)
    tv.to(device)
    ours.to(device)

    n = max(args.train_batch, args.infer_batch)
    images, floats, ours_t, tv_t = make_inputs(n, h, w, device)
    sizes = [(h, w)] * n
    bf16 = torch.autocast(device.type, dtype=torch.bfloat16)

    def train_step(model, autocast, is_tv, opt):
        def step():
            with autocast:
                if is_tv:
                    losses = model(floats[: args.train_batch], tv_t[: args.train_batch])
                else:
                    losses = model.loss(images[: args.train_batch], ours_t[: args.train_batch])
            opt.zero_grad(set_to_none=True)
            sum(losses.values()).backward()
            opt.step()
        return step

    def infer(model, autocast, is_tv, b):
        def run():
            with torch.no_grad(), autocast:
                return model(floats[:b]) if is_tv else model.predict(images[:b], sizes[:b])
        return run

    initial = {id(m): {k: v.clone() for k, v in m.state_dict().items()} for m in (tv, ours)}
    tv.eval()
    reference = infer(tv, contextlib.nullcontext(), True, args.infer_batch)()

    def measure(name, model, autocast, is_tv):
        """Restore the weights, check detections against torchvision fp32, then time."""
        model.load_state_dict(initial[id(model)])
        model.eval()
        check = agreement(infer(model, autocast, is_tv, args.infer_batch)(), reference, is_tv)
        opt = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9)
        model.train()
        t_train = timed(train_step(model, autocast, is_tv, opt), args.iters, args.warmup, device)
        model.eval()
        t_infer = timed(infer(model, autocast, is_tv, args.infer_batch), args.iters, args.warmup, device)
        t_one = timed(infer(model, autocast, is_tv, 1), args.iters, args.warmup, device)
        return name, args.train_batch / t_train, args.infer_batch / t_infer, t_one * 1000, *check

    rows = [measure("torchvision fp32", tv, contextlib.nullcontext(), True),
            measure("torchvision bf16", tv, bf16, True),
            measure("detseg fp32", ours, contextlib.nullcontext(), False)]
    ours.to(memory_format=torch.channels_last)
    rows.append(measure("detseg bf16+CL", ours, bf16, False))
    if args.compile:
        ours.backbone = torch.compile(ours.backbone)
        ours.neck = torch.compile(ours.neck)
        rows.append(measure("detseg bf16+CL+compile", ours, bf16, False))

    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"\nFaster R-CNN R50-FPN, {h}x{w}, {gpu}; train batch {args.train_batch}, inference batch {args.infer_batch}")
    base_train, base_infer = rows[0][1], rows[0][2]
    print(f"{'variant':<24}{'train img/s':>12}{'x tv':>7}{'infer img/s':>13}{'x tv':>7}{'b1 ms':>8}  detections vs tv fp32")
    for name, tr, inf, one, exact, found in rows:
        same = "identical" if exact else f"{found:.1%} found"
        print(f"{name:<24}{tr:>12.1f}{tr / base_train:>7.2f}{inf:>13.1f}{inf / base_infer:>7.2f}{one:>8.1f}  {same}")


if __name__ == "__main__":
    main()
