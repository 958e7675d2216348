"""YOLO speed at 640 px: training images/s, inference throughput (batch 32) and latency (batch 1).

detseg's YOLO (``--scale nano`` by default, 80 classes) is measured as users would run it on a
GPU: float32 eager, then bf16 autocast + channels_last, then the same with the network forward
captured in a CUDA graph (batch-1 latency is launch-bound: ~150 kernels of a few microseconds
each) and, with ``--compile``, ``torch.compile``. Inference figures are given twice: the network
forward alone (what the Ultralytics reference figure measures) and end to end (forward +
decoding + score threshold + class-aware NMS per image).

Also printed: parameter count and FLOPs at 640 px (``detseg.utils.summary``; FLOPs = 2 x MACs,
the convention of Ultralytics' "8.7 GFLOPs" for yolov8n). If ``ultralytics`` is importable, its
yolov8n (built from the bundled yaml, random weights, nothing downloaded) is timed in the same
run with the same settings; otherwise the script says so.

Training images/s: one AdamW step (assignment and losses included) on a batch of synthetic
images with 8 random boxes each, bf16 autocast + channels_last on GPU.

Usage:
    python benchmarks/yolo_speed.py [--scale nano] [--train-batch 32] [--infer-batch 32] [--compile]
    python benchmarks/yolo_speed.py --quick      # tiny CPU smoke run (128 px, batch 2)
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detseg.structures.instances import Instances
from detseg.utils.summary import summarize
from detseg.utils.timing import median_seconds
from detseg.yolo import yolo



def make_batch(n: int, size: int, device: torch.device, num_classes: int = 80, seed: int = 0):
    """Smooth random uint8 images Tensor[n, 3, size, size] and 8 random boxes per image."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, 3, size // 16, size // 16, generator=g)
    img = torch.nn.functional.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
    images = (img * 255).round().to(torch.uint8).to(device)
    xy = torch.rand(n, 8, 2, generator=g) * size * 0.7
    wh = 8 + torch.rand(n, 8, 2, generator=g) * size * 0.3
    boxes = torch.cat([xy, (xy + wh).clamp(max=size)], -1)
    labels = torch.randint(0, num_classes, (n, 8), generator=g)
    targets = [Instances(b.to(device), l.to(device), torch.zeros(8, dtype=torch.bool, device=device), (size, size))
               for b, l in zip(boxes, labels)]
    return images, targets


class GraphedForward:
    """A forward ``images -> outputs`` captured once in a CUDA graph, replayed on a static input."""

    def __init__(self, fn, example: torch.Tensor) -> None:
        self.static_in = example.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm-up outside the graph (cuDNN autotuning, allocator)
                fn(self.static_in)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = fn(self.static_in)

    def __call__(self, images: torch.Tensor):
        self.static_in.copy_(images)
        self.graph.replay()
        return self.static_out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", default="nano", choices=("nano", "small", "medium"))
    p.add_argument("--size", type=int, default=640)
    p.add_argument("--train-batch", type=int, default=32)
    p.add_argument("--infer-batch", type=int, default=32)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--compile", action="store_true", help="also time torch.compile of the network")
    p.add_argument("--quick", action="store_true", help="CPU smoke run: 128 px, batch 2, 2 iterations")
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.quick else "cpu")
    if args.quick:
        args.size, args.train_batch, args.infer_batch, args.iters, args.warmup = 128, 2, 2, 2, 1
    cuda = device.type == "cuda"
    torch.backends.cudnn.benchmark = True
    size = args.size

    torch.manual_seed(0)
    model = yolo(num_classes=80, scale=args.scale)
    params = sum(p.numel() for p in model.parameters())
    summary = summarize(model, (3, size, size), forward=model.raw_outputs)
    model.to(device)
    n = max(args.train_batch, args.infer_batch)
    images, targets = make_batch(n, size, device)
    sizes = [(size, size)] * n
    bf16 = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext

    def train_rate(net, autocast) -> float:
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        net.train()
        x, t = images[: args.train_batch], targets[: args.train_batch]

        def step():
            with autocast():
                losses = net.loss(x, t)
            opt.zero_grad(set_to_none=True)
            sum(losses.values()).backward()
            opt.step()
        return args.train_batch / median_seconds(step, args.iters, args.warmup, device)

    def infer_rates(forward, autocast, *, end_to_end: bool) -> tuple[float, float]:
        """(images/s at infer batch, ms at batch 1) of the forward or the whole predict."""
        model.eval()
        out = []
        for b in (args.infer_batch, 1):
            fwd = forward(b)

            def run():
                with torch.no_grad(), autocast():
                    raw = fwd(images[:b])
                    return model.head.predict(raw, sizes[:b]) if end_to_end else raw
            out.append(median_seconds(run, args.iters, args.warmup, device))
        return args.infer_batch / out[0], out[1] * 1000

    gpu = torch.cuda.get_device_name() if cuda else "CPU"
    print(f"\nYOLO {args.scale}, 80 classes, {size}x{size}, {gpu}; train batch {args.train_batch}, "
          f"inference batch {args.infer_batch}")
    print(f"parameters {params:,} ({params / 1e6:.2f} M); {summary.total_macs / 1e9:.2f} GMACs = "
          f"{2 * summary.total_macs / 1e9:.2f} GFLOPs at {size} px")
    print(f"{'variant':<26}{'train img/s':>12}{'fwd img/s':>11}{'fwd b1 ms':>11}{'e2e img/s':>11}{'e2e b1 ms':>11}")

    def row(name, tr, fwd, fwd1, e2e=float("nan"), e2e1=float("nan")):
        """Print a row as soon as it is measured (a later variant may fail or time out)."""
        print(f"{name:<26}{tr:>12.1f}{fwd:>11.1f}{fwd1:>11.2f}{e2e:>11.1f}{e2e1:>11.2f}", flush=True)

    eager = lambda b: model.raw_outputs  # noqa: E731
    row("detseg fp32", train_rate(model, contextlib.nullcontext),
        *infer_rates(eager, contextlib.nullcontext, end_to_end=False),
        *infer_rates(eager, contextlib.nullcontext, end_to_end=True))
    if cuda:
        model.to(memory_format=torch.channels_last)
        row("detseg bf16+CL", train_rate(model, bf16), *infer_rates(eager, bf16, end_to_end=False),
            *infer_rates(eager, bf16, end_to_end=True))
        model.eval()
        graphs = {}

        def graphed(b):
            if b not in graphs:
                def fwd(x):
                    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                        return model.raw_outputs(x)
                graphs[b] = GraphedForward(fwd, images[:b])
            return graphs[b]
        row("detseg bf16+CL+graph", float("nan"), *infer_rates(graphed, bf16, end_to_end=False),
            *infer_rates(graphed, bf16, end_to_end=True))
        if args.compile:
            compiled = torch.compile(model.raw_outputs)
            row("detseg bf16+CL+compile", float("nan"), *infer_rates(lambda b: compiled, bf16, end_to_end=False),
                *infer_rates(lambda b: compiled, bf16, end_to_end=True))

    try:
        from ultralytics.nn.tasks import DetectionModel
    except ImportError as exc:
        print(f"ultralytics not installed ({exc}); yolov8n not measured")
        return
    torch.manual_seed(0)
    v8 = DetectionModel("yolov8n.yaml", nc=80, verbose=False).to(device).eval()
    v8_params = sum(p.numel() for p in v8.parameters())
    print(f"ultralytics yolov8n: {v8_params:,} parameters (forward only, inputs float [0, 1])")
    x = images.float() / 255

    def v8_rates(forward, autocast):
        out = []
        for b in (args.infer_batch, 1):
            def run():
                with torch.no_grad(), autocast():
                    return forward(b)(x[:b])
            out.append(median_seconds(run, args.iters, args.warmup, device))
        return args.infer_batch / out[0], out[1] * 1000
    row("yolov8n fp32", float("nan"), *v8_rates(lambda b: v8, contextlib.nullcontext))
    if cuda:
        v8.to(memory_format=torch.channels_last)
        row("yolov8n bf16+CL", float("nan"), *v8_rates(lambda b: v8, bf16))

        def v8_fwd(t):
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                return v8(t)
        # Batch 1 only: Detect caches its anchors per input shape, so a second capture at another
        # batch size frees the buffers the first graph replays (an illegal memory access).
        v8_graph = GraphedForward(v8_fwd, x[:1])
        t1 = median_seconds(lambda: v8_graph(x[:1]), args.iters, args.warmup, device)
        row("yolov8n bf16+CL+graph", float("nan"), float("nan"), t1 * 1000)


if __name__ == "__main__":
    main()
