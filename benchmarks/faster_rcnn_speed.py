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
the share of torchvision's detections found again (same label, IoU >= 0.9). Checks run with TF32 off
(strict float32); timings keep PyTorch's defaults.

Usage:
    python benchmarks/faster_rcnn_speed.py [--train-batch 4] [--infer-batch 8] [--iters 20] [--compile]
    python benchmarks/faster_rcnn_speed.py --quick     # tiny CPU smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn
from torchvision.ops import box_iou

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detseg.detection import faster_rcnn, load_torchvision_faster_rcnn
from detseg.structures.instances import Instances
from detseg.utils.timing import median_seconds


def make_inputs(n: int, h: int, w: int, device: torch.device, seed: int = 0):
    """Smooth random images (uint8 [N,3,Hp,Wp] padded to 32, and torchvision's float list) + 5 boxes each."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, 3, h // 16, w // 16, generator=g)
    img = torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    img = (img * 255).round().to(torch.uint8)
    padded = torch.zeros(n, 3, (h + 31) // 32 * 32, (w + 31) // 32 * 32, dtype=torch.uint8)
    padded[..., :h, :w] = img
    xy = torch.rand(n, 5, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
    wh = 20 + torch.rand(n, 5, 2, generator=g) * torch.tensor([w * 0.3, h * 0.3])
    boxes = torch.cat([xy, xy + wh], -1)
    labels = torch.randint(0, 90, (n, 5), generator=g)
    ours_t = [Instances(b.to(device), l.to(device), torch.zeros(5, dtype=torch.bool, device=device), (h, w))
              for b, l in zip(boxes, labels)]
    tv_t = [{"boxes": b.to(device), "labels": (l + 1).to(device)} for b, l in zip(boxes, labels)]
    floats = [x.to(device).float() / 255 for x in img]
    return padded.to(device), floats, ours_t, tv_t



@contextlib.contextmanager
def strict_fp32():
    """TF32 off for the agreement checks: with random weights many scores are near ties, and TF32
    rounding (different per cuDNN algorithm) reorders them even between two float32 runs."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


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


def diagnose(tv, ours, images, floats, sizes) -> None:
    """Where detseg and torchvision part on this device (strict float32): FPN features, RPN
    proposals, detections; and torchvision against itself in channels_last, a change of cuDNN
    algorithms only, to show how far rounding alone moves random-weight detections."""
    tv.eval()
    ours.eval()
    with torch.no_grad(), strict_fp32():
        batch, _ = tv.transform(floats)
        f_tv = tv.backbone(batch.tensors)
        f_ours = ours.extract(images, sizes)
        for (k1, a), (k2, b) in zip(f_tv.items(), f_ours.items()):
            print(f"features {k1}/{k2} {tuple(a.shape)}: relative difference {float((a - b).norm() / a.norm()):.2e}")
        p_tv, _ = tv.rpn(batch, f_tv)
        rpn_out = ours.rpn([f_ours[k] for k in ours.rpn_features], images.shape[-2:])
        p_ours = ours.rpn.proposals(rpn_out, sizes, train=False)
        same = sum(int((box_iou(a, b).max(1).values > 0.999).sum()) for a, b in zip(p_tv, p_ours) if len(b))
        print(f"proposals: {sum(map(len, p_tv))} torchvision, {sum(map(len, p_ours))} detseg, {same} equal")
        reference = tv(floats)
        exact, found = agreement(ours.predict(images, sizes), reference, False)
        print(f"detections detseg vs torchvision: identical {exact}, {found:.1%} found")
        tv.to(memory_format=torch.channels_last)
        exact, found = agreement(tv(floats), reference, True)
        print(f"detections torchvision channels_last vs torchvision: identical {exact}, {found:.1%} found")
        tv.to(memory_format=torch.contiguous_format)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train-batch", type=int, default=4)
    p.add_argument("--infer-batch", type=int, default=8)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="also time detseg with torch.compile(backbone, neck)")
    p.add_argument("--profile", action="store_true", help="only profile detseg's bf16 training step: where the time goes")
    p.add_argument("--diagnose", action="store_true", help="only compare features, proposals and detections")
    p.add_argument("--quick", action="store_true", help="CPU smoke run: 256 px, batch 2, 2 iterations")
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.quick else "cpu")
    h, w = (250, 300) if args.quick else (800, 1067)
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

    if args.diagnose:
        diagnose(tv, ours, images[: args.infer_batch], floats[: args.infer_batch], sizes[: args.infer_batch])
        return
    initial = {id(m): {k: v.clone() for k, v in m.state_dict().items()} for m in (tv, ours)}
    tv.eval()
    with strict_fp32():
        reference = infer(tv, contextlib.nullcontext(), True, args.infer_batch)()

    def measure(name, model, autocast, is_tv):
        """Restore the weights, check detections against torchvision fp32, then time."""
        model.load_state_dict(initial[id(model)])
        model.eval()
        with strict_fp32():
            check = agreement(infer(model, autocast, is_tv, args.infer_batch)(), reference, is_tv)
        opt = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9)
        model.train()
        t_train = median_seconds(train_step(model, autocast, is_tv, opt), args.iters, args.warmup, device)
        model.eval()
        t_infer = median_seconds(infer(model, autocast, is_tv, args.infer_batch), args.iters, args.warmup, device)
        t_one = median_seconds(infer(model, autocast, is_tv, 1), args.iters, args.warmup, device)
        return name, args.train_batch / t_train, args.infer_batch / t_infer, t_one * 1000, *check

    if args.profile:
        ours.to(memory_format=torch.channels_last).train()
        step = train_step(ours, bf16, False, torch.optim.SGD(ours.parameters(), lr=1e-5, momentum=0.9))
        wall = median_seconds(step, 5, args.warmup, device)
        with torch.profiler.profile() as prof:
            for _ in range(3):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize()
        events = prof.key_averages()
        kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA and not e.is_user_annotation]
        gpu_us = sum(e.self_device_time_total for e in kernels) / 3  # kernel events only: ops would count twice
        print(f"detseg bf16+CL train step: {wall * 1000:.1f} ms wall, {gpu_us / 1000:.1f} ms of GPU kernels "
              f"({gpu_us / 1e4 / wall:.0f}% busy)")
        print(events.table(sort_by="self_device_time_total" if device.type == "cuda" else "self_cpu_time_total",
                           row_limit=15, max_name_column_width=50))
        return
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"\nFaster R-CNN R50-FPN, {h}x{w}, {gpu}; train batch {args.train_batch}, inference batch {args.infer_batch}")
    print(f"{'variant':<24}{'train img/s':>12}{'x tv':>7}{'infer img/s':>13}{'x tv':>7}{'b1 ms':>8}  detections vs tv fp32")
    def report(name, model, autocast, is_tv, base=None) -> tuple[float, float]:
        """Measure one variant and print its row at once (a later variant may fail or time out);
        ratios against ``base`` = (train, inference) images/s, or against itself. Returns its rates."""
        name, tr, inf, one, exact, found = measure(name, model, autocast, is_tv)
        base_train, base_infer = base or (tr, inf)
        same = "identical" if exact else f"{found:.1%} found"
        print(f"{name:<24}{tr:>12.1f}{tr / base_train:>7.2f}{inf:>13.1f}{inf / base_infer:>7.2f}{one:>8.1f}  {same}",
              flush=True)
        return tr, inf

    base = report("torchvision fp32", tv, contextlib.nullcontext(), True)
    report("torchvision bf16", tv, bf16, True, base)
    report("detseg fp32", ours, contextlib.nullcontext(), False, base)
    ours.to(memory_format=torch.channels_last)
    report("detseg bf16+CL", ours, bf16, False, base)
    if args.compile:
        ours.backbone.compile()  # in place: the state-dict keys stay as they are
        ours.neck.compile()
        report("detseg bf16+CL+compile", ours, bf16, False, base)

if __name__ == "__main__":
    main()
