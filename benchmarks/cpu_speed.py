"""CPU inference speed of detseg next to its peers, in one run on this machine's CPU.

Every row times a detseg model and its peer at batch 1, in the same process, with the same
number of threads for PyTorch and onnxruntime alike (``--threads``; ``auto``: every core this
process may use, or 1 when other processes already keep them busy, load average >= cores,
where a second thread mostly waits for a core), after a warm-up, as the median of
``--repeats`` runs. The two sides are timed alternately (detseg, peer, detseg, ...), so load
from other processes falls on both. Weights are random; inputs are smooth random images. PyTorch
eager runs each model as its own inference code does on a CPU: detseg's ``Predictor`` (batch
norms folded into the convolutions before them, ``channels_last`` so oneDNN's convolutions need
no layout reorders), Ultralytics' predictor and exporter (convolution and batch norm fused,
``model.fuse()``), torchvision as built.

Rows:

* **YOLO nano vs Ultralytics yolov8n**, 640 px, 80 classes, the network with its box decoding
  (before NMS, what Ultralytics' ONNX figures time). ONNX: both graphs written by the same
  ``torch.onnx.export(..., dynamo=True)`` call and run by onnxruntime with every graph
  optimisation; eager: PyTorch float32.
  yolov8n is built from the yaml inside the ``ultralytics`` package (``pip install
  ".[bench]"``); without it those rows say so.
* **Faster R-CNN R50-FPN vs torchvision ``fasterrcnn_resnet50_fpn``**, one 800 x 1067 image
  (torchvision's own size, so its resize is the identity), 91 classes, the same random weights
  in both (class scores scaled so ~100 boxes pass the 0.05 threshold, as with a trained
  model): the whole detector, image to final detections. Eager: ``model.predict`` vs
  torchvision's ``model([image])``. ONNX: detseg's file from :func:`detseg.inference.export.export`
  (dynamo exporter, dynamic size) vs torchvision's model exported by the TorchScript-based
  exporter (the way torchvision documents; its detectors do not pass the dynamo exporter,
  pytorch/vision#9306, #9462). detseg's ONNX detections are checked against torchvision's.
* **FCN-8s R50 vs torchvision ``fcn_resnet50``** and **DeepLab-v3 R50 vs ``deeplabv3_resnet50``**,
  512 px, 21 classes, logits at the input size. torchvision's FCN is ResNet-50 dilated to output
  stride 8 (a costlier network than the paper's FCN-8s on stride-32 features, detseg's); detseg's
  DeepLab-v3 runs at output stride 8 like torchvision's. The FLOPs column shows the difference.
  Eager and ONNX (same export call both sides).

Columns: milliseconds and images/s of each side, peer/detseg (the peer's time over detseg's:
above 1, detseg is faster), FLOPs of one image (``torch.utils.flop_counter``: 2 x MACs of
convolutions and matrix products, the same counter on both sides; the data-dependent RoI part
counted as it ran) and FLOP utilisation: FLOPs / time / the CPU's peak (threads x clock x
FLOPs per cycle from ``/proc/cpuinfo``: 64 with AVX-512, two FMA units x 16 float32 x 2; 32
with AVX2 + FMA; or the rate onnxruntime's fastest convolution and GEMM kernels reach here,
where higher: see :func:`cpu_peak`). The last line is ``worst ratio peer/detseg: X``.

Usage:
    python benchmarks/cpu_speed.py [--threads 2] [--repeats 10] [--rows yolo frcnn seg]
    python benchmarks/cpu_speed.py --quick          # 3 repeats, 1 warm-up
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detseg.config import load_config
from detseg.detection import faster_rcnn, load_torchvision_faster_rcnn
from detseg.inference.export import export, match_detections
from detseg.inference.predictor import fuse_conv_bn
from detseg.models import build_model
from detseg.structures.normalize import IMAGENET_MEAN, IMAGENET_STD
from detseg.yolo import yolo


# ---- the machine --------------------------------------------------------------------------------
def cpu_peak(threads: int) -> tuple[float, str]:
    """(peak float32 FLOP/s of ``threads`` cores, how it was worked out).

    The nominal peak is threads x clock x FLOPs per cycle, with the clock ``/proc/cpuinfo``
    reports; in a virtual machine that is the base clock, and cores boost above it. So the
    fastest kernels these networks use are timed too, in onnxruntime on the same threads: a 3x3
    convolution (256 channels, 64 x 64) and a 768^3 matrix product, the best of many runs
    (other processes only ever slow a run down). The peak is the largest of the three: a low
    reported clock cannot flatter the utilisation figures.
    """
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    per_cycle = 64 if "avx512f" in flags else 32 if {"avx2", "fma"} <= flags else 16 if "avx" in flags else 8
    mhz = float(fields.get("cpu MHz", 0) or 0) or 2000.0
    name = fields.get("model name", platform.processor() or "unknown CPU")
    nominal = threads * mhz * 1e6 * per_cycle
    rng = np.random.default_rng(0)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads

    def best_rate(node, inputs: dict, weights: list, out_shape, flops: float, runs: int) -> float:
        spec = [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in inputs.items()]
        out = [helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, out_shape)]
        model = helper.make_model(helper.make_graph([node], "peak", spec, out, weights))
        sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return max(flops / timed(lambda: sess.run(None, inputs)) for _ in range(runs))

    n, c, hw = 768, 256, 64
    gemm = best_rate(helper.make_node("MatMul", ["a", "b"], ["c"]),
                     {k: rng.random((n, n), dtype=np.float32) for k in "ab"}, [], [n, n], 2 * n**3, 200)
    weight = numpy_helper.from_array(rng.random((c, c, 3, 3), dtype=np.float32) * 0.01, "w")
    conv = best_rate(helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
                     {"x": rng.random((1, c, hw, hw), dtype=np.float32)}, [weight], [1, c, hw, hw],
                     2 * c * c * 9 * hw * hw, 60)
    peak = max(nominal, gemm, conv)
    return peak, (f"{name}, {threads} thread(s); peak {peak / 1e9:.0f} GFLOP/s, the largest of {threads} x "
                  f"{mhz / 1000:.2f} GHz x {per_cycle} FLOPs/cycle = {nominal / 1e9:.0f} and the best of many "
                  f"onnxruntime runs of a 3x3 convolution ({conv / 1e9:.0f}) and a {n}^3 GEMM ({gemm / 1e9:.0f})")


def timed(fn) -> float:
    """Seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def flops(fn) -> float:
    """FLOPs of one call (2 x MACs of convolutions and matrix products)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def timed_pair(a, b, repeats: int, warmup: int) -> tuple[float, float]:
    """Median seconds of ``a`` and of ``b``, timed alternately after ``warmup`` calls of each."""
    for _ in range(warmup):
        a()
        b()
    times_a, times_b = [], []
    for i in range(repeats):
        for fn, times in ((a, times_a), (b, times_b)) if i % 2 == 0 else ((b, times_b), (a, times_a)):
            times.append(timed(fn))
    return statistics.median(times_a), statistics.median(times_b)


def session(path: Path, threads: int):
    """onnxruntime on the CPU, every graph optimisation, ``threads`` intra-op threads (both sides)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_same_way(module: torch.nn.Module, example: torch.Tensor, path: Path) -> Path:
    """The one ``torch.onnx.export`` call both sides of a pair go through (dynamo, fixed shape)."""
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(None):
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (example,), str(path), input_names=["images"], dynamo=True, verbose=False)
    return path


def as_predictor_runs(model: torch.nn.Module, images: torch.Tensor) -> tuple[torch.nn.Module, torch.Tensor]:
    """A copy of ``model`` as detseg's Predictor runs it on a CPU (batch norms folded into the
    convolutions before them, ``channels_last``), and ``images`` in ``channels_last``."""
    model = copy.deepcopy(model)
    fuse_conv_bn(model)
    return model.to(memory_format=torch.channels_last), images.contiguous(memory_format=torch.channels_last)


def smooth_images(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """uint8 Tensor[n, 3, h, w]: random colours, bilinearly upsampled (image-like, not noise)."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, 3, max(1, h // 16), max(1, w // 16), generator=g)
    return (F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False) * 255).round().to(torch.uint8)


# ---- the rows ------------------------------------------------------------------------------------
@dataclass
class Row:
    name: str
    runtime: str
    peer: str
    ours_s: float
    peer_s: float
    ours_flops: float
    peer_flops: float
    note: str = ""


class Forward(torch.nn.Module):
    """``model.export_outputs`` as a module (what detseg exports)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor):
        return self.model.export_outputs(images)


class TorchvisionSegmenter(torch.nn.Module):
    """A torchvision segmentation model taking float images in [0, 1] (normalised inside, as detseg's)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images - self.mean) / self.std)["out"]


def yolo_rows(args, tmp: Path) -> list[Row]:
    try:
        from ultralytics.nn.tasks import DetectionModel
    except ImportError as exc:
        print(f"ultralytics not installed ({exc}); YOLO rows skipped (pip install '.[bench]')")
        return []
    torch.manual_seed(0)
    ours = Forward(yolo(num_classes=80, scale="nano").eval())
    with contextlib.redirect_stdout(None):
        peer = DetectionModel("yolov8n.yaml", nc=80, verbose=False).eval().fuse(verbose=False)
    peer.model[-1].export, peer.model[-1].format = True, "onnx"  # decoded [1, 84, A] only, as in its ONNX files
    x = smooth_images(1, 640, 640).float() / 255
    f_ours, f_peer = flops(lambda: ours(x)), flops(lambda: peer(x))
    s_ours = session(export_same_way(ours, x, tmp / "yolo_detseg.onnx"), args.threads)
    s_peer = session(export_same_way(peer, x, tmp / "yolo_ultralytics.onnx"), args.threads)
    ours_cl, x_cl = as_predictor_runs(ours, x)
    rows = []
    with torch.no_grad():
        t = timed_pair(lambda: ours_cl(x_cl), lambda: peer(x), args.repeats, args.warmup)
    rows.append(Row("YOLO nano 640 px", "PyTorch eager", "Ultralytics yolov8n", *t, f_ours, f_peer))
    report(rows[-1], args)
    feed = {"images": x.numpy()}
    t = timed_pair(lambda: s_ours.run(None, feed), lambda: s_peer.run(None, feed), args.repeats, args.warmup)
    rows.append(Row("YOLO nano 640 px", "onnxruntime", "Ultralytics yolov8n", *t, f_ours, f_peer))
    report(rows[-1], args)
    return rows


def frcnn_rows(args, tmp: Path) -> list[Row]:
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    torch.manual_seed(0)
    peer = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91).eval()
    with torch.no_grad():  # confident random scores: ~100 detections per image, as a trained model gives
        peer.roi_heads.box_predictor.cls_score.weight.mul_(5)
    ours = faster_rcnn("resnet50", num_classes=90).eval()
    load_torchvision_faster_rcnn(ours, peer.state_dict())
    h, w = 800, 1067
    image = smooth_images(1, h, w)
    padded = F.pad(image, (0, (-w) % 32, 0, (-h) % 32))
    x = image.float() / 255
    peer_fn = lambda: peer([x[0]])  # noqa: E731
    f_ours, f_peer = flops(lambda: ours.predict(padded, [(h, w)])), flops(peer_fn)
    ours_cl, padded_cl = as_predictor_runs(ours, padded)
    rows = []
    with torch.no_grad():
        t = timed_pair(lambda: ours_cl.predict(padded_cl, [(h, w)]), peer_fn, args.repeats, args.warmup)
        reference = peer([x[0]])[0]
    rows.append(Row("Faster R-CNN R50-FPN 800 px", "PyTorch eager", "torchvision fasterrcnn_resnet50_fpn",
                    *t, f_ours, f_peer))
    report(rows[-1], args)

    path = export(ours, tmp / "frcnn_detseg.onnx", image_size=(h, h), exporter="dynamo").path
    s_ours = session(path, args.threads)
    feed = {"images": x.numpy()}
    got = s_ours.run(None, feed)
    matched, box_diff, score_diff = match_detections(
        (reference["boxes"], reference["scores"], reference["labels"] - 1), got[:3],
        score_floor=ours.roi_heads.score_thresh, max_count=ours.roi_heads.detections_per_img)
    agreement = (f"detseg ONNX = torchvision eager: {matched} detections, boxes within {box_diff:.1e} px, "
                 f"scores within {score_diff:.1e}")
    peer_path = tmp / "frcnn_torchvision.onnx"
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(peer, ([x[0]],), str(peer_path), input_names=["images"], opset_version=17,
                              dynamic_axes={"images": {1: "height", 2: "width"}}, dynamo=False)
        s_peer = session(peer_path, args.threads)
        peer_feed = {"images": x[0].numpy()}
        t = timed_pair(lambda: s_ours.run(None, feed), lambda: s_peer.run(None, peer_feed), args.repeats, args.warmup)
        rows.append(Row("Faster R-CNN R50-FPN 800 px", "onnxruntime",
                        "torchvision, TorchScript-based export", *t, f_ours, f_peer, agreement))
    except Exception as exc:  # noqa: BLE001 - the peer's export failing is a finding to print, not a crash
        print(f"torchvision's ONNX export failed ({type(exc).__name__}: {str(exc)[:200]}); "
              "detseg's ONNX file is compared with torchvision eager")
        with torch.no_grad():
            t = timed_pair(lambda: s_ours.run(None, feed), peer_fn, args.repeats, args.warmup)
        rows.append(Row("Faster R-CNN R50-FPN 800 px", "onnxruntime (peer: eager)",
                        "torchvision fasterrcnn_resnet50_fpn", *t, f_ours, f_peer, agreement))
    report(rows[-1], args)
    return rows


def seg_rows(args, tmp: Path) -> list[Row]:
    from torchvision.models.segmentation import deeplabv3_resnet50, fcn_resnet50

    pairs = [
        ("FCN-8s R50 512 px", ["model.arch=fcn8s", "model.backbone.name=resnet50"],
         "torchvision fcn_resnet50 (dilated, OS 8)", fcn_resnet50),
        ("DeepLab-v3 R50 OS8 512 px", ["model.arch=deeplabv3", "model.backbone.name=resnet50",
                                       "model.backbone.output_stride=8"],
         "torchvision deeplabv3_resnet50", deeplabv3_resnet50),
    ]
    x = smooth_images(1, 512, 512).float() / 255
    rows = []
    for name, overrides, peer_name, builder in pairs:
        torch.manual_seed(0)
        ours = build_model(load_config(None, ["model.num_classes=20", *overrides]).model).eval()
        peer = TorchvisionSegmenter(builder(weights=None, weights_backbone=None, num_classes=21, aux_loss=False)).eval()
        ours_fwd = Forward(ours)
        f_ours, f_peer = flops(lambda: ours_fwd(x)), flops(lambda: peer(x))
        ours_cl, x_cl = as_predictor_runs(ours_fwd, x)
        with torch.no_grad():
            t = timed_pair(lambda: ours_cl(x_cl), lambda: peer(x), args.repeats, args.warmup)
        rows.append(Row(name, "PyTorch eager", peer_name, *t, f_ours, f_peer))
        report(rows[-1], args)
        stem = name.split()[0].lower()
        s_ours = session(export_same_way(ours_fwd, x, tmp / f"{stem}_detseg.onnx"), args.threads)
        s_peer = session(export_same_way(peer, x, tmp / f"{stem}_torchvision.onnx"), args.threads)
        feed = {"images": x.numpy()}
        t = timed_pair(lambda: s_ours.run(None, feed), lambda: s_peer.run(None, feed), args.repeats, args.warmup)
        rows.append(Row(name, "onnxruntime", peer_name, *t, f_ours, f_peer))
        report(rows[-1], args)
    return rows


# ---- output --------------------------------------------------------------------------------------
HEADER = (f"| {'model':<28} | {'runtime':<25} | {'detseg ms':>9} | {'img/s':>6} | {'peer':<38} | {'peer ms':>8} | "
          f"{'img/s':>6} | {'peer/detseg':>11} | {'GFLOPs detseg / peer':>20} | {'FLOP util. detseg / peer':>24} |")


def report(row: Row, args) -> None:
    """One table row, printed as soon as it is measured (a later row may fail or time out)."""
    ours, peer = (100 * f / t / args.peak for f, t in ((row.ours_flops, row.ours_s), (row.peer_flops, row.peer_s)))
    util = f"{ours:.1f}% / {peer:.1f}%"
    print(f"| {row.name:<28} | {row.runtime:<25} | {1000 * row.ours_s:>9.1f} | {1 / row.ours_s:>6.2f} | "
          f"{row.peer:<38} | {1000 * row.peer_s:>8.1f} | {1 / row.peer_s:>6.2f} | {row.peer_s / row.ours_s:>11.2f} | "
          f"{f'{row.ours_flops / 1e9:.1f} / {row.peer_flops / 1e9:.1f}':>20} | {util:>24} |", flush=True)
    if row.note:
        print(f"|   ({row.note})", flush=True)


def main(argv: list[str] | None = None) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", default="auto", help="PyTorch and onnxruntime threads, or auto: every core, or 1 "
                   "on a machine other processes keep busy (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per side (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs per side first (default: %(default)s)")
    p.add_argument("--rows", nargs="+", choices=("yolo", "frcnn", "seg"), default=["yolo", "frcnn", "seg"])
    p.add_argument("--quick", action="store_true", help="3 repeats, 1 warm-up")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup = 3, 1
    load = os.getloadavg()[0]
    args.threads = int(args.threads) if args.threads != "auto" else cores if load < cores else 1
    torch.set_num_threads(args.threads)
    args.peak, machine = cpu_peak(args.threads)
    import onnxruntime as ort

    print(f"CPU inference, batch 1, median of {args.repeats} after {args.warmup} warm-up run(s), sides alternating")
    print(f"{machine}; torch {torch.__version__}, onnxruntime {ort.__version__}; {cores} core(s), load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())} before the run (other processes add noise)")
    print(HEADER)
    print("|" + "|".join("-" * len(c) for c in HEADER.split("|")[1:-1]) + "|")
    rows: list[Row] = []
    builders = {"yolo": yolo_rows, "frcnn": frcnn_rows, "seg": seg_rows}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.rows:
            rows += builders[name](args, Path(tmp))
    if not rows:
        print("nothing measured")
        return 1
    worst = min(rows, key=lambda r: r.peer_s / r.ours_s)
    print(f"slowest relative to its peer: {worst.name}, {worst.runtime}")
    print(f"worst ratio peer/detseg: {worst.peer_s / worst.ours_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
