"""Real images, detseg next to its peer: one script, two datasets.

``--task isbi2012`` (the default), the segmenters. ISBI 2012 (``../shared/data/isbi2012_membrane``,
the U-Net paper's EM data): a fixed split of the 30 sections, 00-23 train and 24-29 validation,
from scratch (no pretrained weights). One class, ``membrane`` (stored value 0; 255 = cell interior
= background, declared with ``data.mask_values``). Every model, detseg's and the peer alike, is
trained by detseg's own engine with the same data, image size, augmentation, batch, optimiser,
schedule, loss and number of steps, and validated on the same 6 images at the same epochs, so the
only difference in a row is the network:

* detseg U-Net (classic; ``--unet-channels`` base channels, depth 4), U-Net on ResNet-18,
  FCN-8s on ResNet-18, DeepLab-v3 on ResNet-18 at output stride 8;
* the peer: segmentation_models_pytorch ``Unet("resnet18", encoder_weights=None)`` (``pip install
  ".[bench]"``), wrapped as a detseg segmenter (its network, detseg's loss and normalisation).

Printed: a table of membrane IoU (the foreground), mIoU and pixel accuracy at the best validation
of each run, training time, and detseg / smp ratios; the curve (epochs vs membrane IoU) of every
model is saved as ``isbi2012_curves.png`` in ``--out``.

``--task coco128``, the detectors: can each family fit 128 real images? Train = validation =
coco128 (80 classes, boxes and masks), from scratch, no augmentation: the classic check that
targets, anchors, sampling, losses and recipes are right on real data. One row per family (Faster
R-CNN, Mask R-CNN, YOLO nano with the config's recipe, with a step per batch and with AdamW, Fast
R-CNN, R-CNN, YOLOv1), each from its config in ``configs/`` with the overrides listed in
:func:`coco_entries`; the two-stage rows train with AdamW at 5e-4 (at the shapes configs' 3e-3 the
loss on real images hardly moves until the schedule has lowered the rate).
``--minutes M`` gives every row the same wall-clock budget: short probe runs measure the row's
epoch time on this machine, and the run gets as many epochs as fit in M minutes (its schedule
planned for them, so it ends annealed); without it, ``--epochs`` are trained. Rows run one after
another: several processes on one GPU time-slice it, and each row then gets far fewer steps.
bbox mAP50 (and Mask R-CNN's segm mAP50) at the best validation; the curves go to
``coco128_curves.png``.

``--curves RUN [RUN ...]`` draws finished training runs of any config (e.g. the
``configs/*_coco128_overfit.yaml`` runs, each to its own budget) into one picture of their
validation curves, each labelled with its run folder's name: ``coco128_overfit_curves.png``.

A finished run of the same settings already in ``--out`` is read back instead of trained again
(delete its folder to retrain); ``--read-back`` only reads (a run stopped early is reported with
the epochs it reached), to tabulate runs made by parallel processes (``--only``).
``--write-docs`` records the figures in ``docs/real_data.yaml`` and the picture in
``docs/images/`` for the model zoo (``python tools/make_docs.py`` renders them).

Usage:
    python benchmarks/real_data.py [--epochs 50] [--image-size 256] [--device cpu] [--write-docs]
    python benchmarks/real_data.py --quick       # 4 epochs, 128 px: a few-minute smoke run
    python benchmarks/real_data.py --task coco128 --minutes 6 --device cuda
    python benchmarks/real_data.py --task coco128 --quick   # 2 epochs at 128 px on the CPU
    python benchmarks/real_data.py --curves runs/faster_rcnn_coco128_overfit runs/yolo_coco128_overfit
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ISBI = REPO.parent / "shared" / "data" / "isbi2012_membrane"
COCO128 = REPO.parent / "shared" / "data" / "coco128"
METRIC = "iou/membrane"
DET_METRIC = "bbox/mAP50"

from detseg.config import load_config  # noqa: E402
from detseg.models import MODELS, ModelSpec  # noqa: E402
from detseg.segmentation.base import SemanticSegmenter  # noqa: E402
from detseg.segmentation.losses import SegmentationLoss  # noqa: E402


class SMPUnet(SemanticSegmenter):
    """segmentation_models_pytorch's ``Unet(encoder)`` as a detseg segmenter: smp's network,
    detseg's normalisation, padding and loss, so the engine trains and validates it like its own."""

    def __init__(self, num_classes: int, criterion: SegmentationLoss, encoder: str = "resnet18") -> None:
        super().__init__(num_classes, criterion=criterion, size_divisibility=32)
        import segmentation_models_pytorch as smp

        self.net = smp.Unet(encoder, encoder_weights=None, classes=num_classes + 1)

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_smp_unet(cfg) -> SMPUnet:
    loss = cfg.segmentation.loss
    return SMPUnet(cfg.num_classes, SegmentationLoss(cfg.num_classes + 1, ignore_index=loss.ignore_index,
                                                     class_weights=loss.class_weights, dice_weight=loss.dice_weight))


@dataclass
class Entry:
    """One trained model of the table."""

    name: str
    overrides: list[str]
    peer: bool = False
    peer_twin: bool = False  # the same network as the peer's (the like-for-like row)
    config: str | None = None  # a config file under configs/ the overrides apply to
    folder: str | None = None  # the run's folder in --out (default: the model's arch)

    def chosen(self, only: list[str] | None) -> bool:
        """Picked by ``--only``: a word equal to the row's folder, or contained in its name."""
        return not only or any(w == (self.folder or "") or w.lower() in self.name.lower() for w in only)


def seg_entries(unet_channels: int) -> list[Entry]:
    r18 = ["model.backbone.name=resnet18"]
    return [
        Entry(f"detseg U-Net (classic, {unet_channels} base channels)",
              ["model.arch=unet", f"model.segmentation.unet.base_channels={unet_channels}"]),
        Entry("detseg U-Net ResNet-18", ["model.arch=unet_backbone", *r18], peer_twin=True),
        Entry("detseg FCN-8s ResNet-18", ["model.arch=fcn8s", *r18]),
        Entry("detseg DeepLab-v3 ResNet-18 OS8", ["model.arch=deeplabv3", *r18, "model.backbone.output_stride=8"]),
        Entry("smp Unet(resnet18)", ["model.arch=smp_unet"], peer=True),
    ]


def coco_entries(args: argparse.Namespace) -> list[Entry]:
    """The detector rows: each family's ``*_coco128_overfit.yaml`` (YOLO nano: ``yolo_coco.yaml``, the
    recipe under test, without augmentation), sized for ``args.image_size`` and, the two-stage and
    YOLOv1 rows, at full ResNet-18 width."""
    two_stage = ["model.backbone.width=1.0", "model.neck.out_channels=128",
                 f"model.two_stage.roi_heads.canonical_scale={args.image_size // 4}",
                 "model.two_stage.roi_heads.batch_size_per_image=256",
                 "model.two_stage.rpn.anchor_sizes=[[16, 32], [32, 64], [64, 128], [128, 256]]"]
    yolo = ["data.augment.mosaic_prob=0", "data.augment.close_mosaic=0", "data.augment.color_jitter=0",
            "data.augment.scale_jitter=[1, 1]", "data.batch_size=16"]
    return [
        Entry("Faster R-CNN R18-FPN", two_stage, config="faster_rcnn_coco128_overfit.yaml", folder="faster_rcnn"),
        Entry("Mask R-CNN R18-FPN",
              [*two_stage, "model.two_stage.mask.conv_layers=4", "model.two_stage.mask.conv_channels=128"],
              config="mask_rcnn_coco128_overfit.yaml", folder="mask_rcnn"),
        Entry("YOLO nano, the config's recipe (nbs 64)", yolo, config="yolo_coco.yaml", folder="yolo_nbs64"),
        Entry("YOLO nano, a step per batch (nbs 16)", [*yolo, "train.nominal_batch_size=16"], config="yolo_coco.yaml",
              folder="yolo_nbs16"),
        Entry("YOLO nano, AdamW 1e-3 (mean losses)", [*yolo, "train.optimizer=adamw", "train.lr=0.001",
                                                      "train.nominal_batch_size=null", "train.warmup_iters=30"],
              config="yolo_coco.yaml", folder="yolo_adamw"),
        Entry("Fast R-CNN R18x0.5-FPN (selective search)",
              [f"model.two_stage.roi_heads.canonical_scale={args.image_size // 4}"],
              config="fast_rcnn_coco128_overfit.yaml", folder="fast_rcnn"),
        Entry("R-CNN R18x0.5 (warped regions)", [], config="rcnn_coco128_overfit.yaml", folder="rcnn"),
        Entry("YOLOv1 R18 (8x8 grid)", ["model.backbone.width=1.0"], config="yolov1_coco128_overfit.yaml",
              folder="yolov1"),
    ]


def coco_overrides(args: argparse.Namespace) -> list[str]:
    """What every detector row shares: train = val = coco128, no augmentation, the size and device."""
    images, annotations = COCO128 / "images", COCO128 / "annotations" / "instances.json"
    return [
        "data.format=coco", f"data.train.images={images}", f"data.train.annotations={annotations}",
        f"data.val.images={images}", f"data.val.annotations={annotations}",
        f"data.augment.image_size={args.image_size}", "data.augment.resize=letterbox", "data.augment.hflip_prob=0",
        f"data.batch_size={args.batch_size}", f"data.num_workers={args.workers}",
        f"train.device={args.device}", f"train.seed={args.seed}", "train.tensorboard=false",
        f"eval.metric={DET_METRIC}",
    ]


def make_split(out: Path) -> Path:
    """``out/split/{train,val}/{images,labels}``: links to sections 00-23 and 24-29."""
    root = out / "split"
    for split, ids in (("train", range(0, 24)), ("val", range(24, 30))):
        for kind in ("images", "labels"):
            folder = root / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in ids:
                link = folder / f"{i:02d}.png"
                if not link.exists():
                    link.symlink_to(ISBI / kind / f"{i:02d}.png")
    return root


def common_overrides(split: Path, args: argparse.Namespace) -> list[str]:
    """What every model of the table shares: data, augmentation, optimiser, schedule, validation."""
    return [
        "model.num_classes=1",
        "data.format=masks", "data.class_names=[membrane]", "data.mask_values={0: membrane, 255: background}",
        f"data.train.images={split / 'train' / 'images'}", f"data.train.masks={split / 'train' / 'labels'}",
        f"data.val.images={split / 'val' / 'images'}", f"data.val.masks={split / 'val' / 'labels'}",
        f"data.augment.image_size={args.image_size}",
        "data.augment.resize=stretch", "data.augment.hflip_prob=0.5", "data.augment.color_jitter=0.2",
        f"data.batch_size={args.batch_size}", f"data.num_workers={args.workers}",
        f"train.epochs={args.epochs}", "train.optimizer=adamw", f"train.lr={args.lr}", "train.weight_decay=1e-4",
        "train.schedule=cosine", "train.warmup_iters=20", f"train.device={args.device}", f"train.seed={args.seed}",
        "model.segmentation.loss.dice_weight=1.0",
        f"eval.interval={args.interval}", f"eval.metric={METRIC}",
    ]


def read_curve(path: Path, metric: str = METRIC) -> dict[int, float]:
    import csv

    with open(path) as f:
        return {int(float(r["epoch"])): float(r[metric]) for r in csv.DictReader(f) if r.get(metric)}


#: config keys that must agree for a finished run in ``--out`` to stand for a row
SAME = ("model.arch", "model.backbone.name", "model.segmentation.unet.base_channels", "data.augment.image_size",
        "data.batch_size", "train.epochs", "train.lr", "train.seed")
#: the same for a detector row (its epochs follow from the time budget)
SAME_DET = ("model.arch", "model.backbone.name", "model.backbone.width", "data.augment.image_size", "data.batch_size",
            "train.lr", "train.nominal_batch_size", "train.seed")


def finished_run(run: Path, cfg, metric: str = METRIC, keys: tuple[str, ...] = SAME,
                 partial: bool = False) -> dict | None:
    """The best validation row of an earlier run of the same ``keys`` settings in ``run``, or None.

    The run must have trained all its planned epochs unless ``partial``; the row carries the
    epochs reached (``epochs_run``) and planned (``epochs_planned``)."""
    import csv

    import yaml

    if not (run / "metrics.csv").is_file() or not (run / "config.yaml").is_file():
        return None
    saved = yaml.safe_load((run / "config.yaml").read_text())
    for key in keys if cfg is not None else ():
        a, b = saved, cfg
        for part in key.split("."):
            a, b = (a or {}).get(part), getattr(b, part)
        if a != b:
            return None
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    planned = saved["train"]["epochs"]
    scored = [r for r in rows if r.get(metric)]
    if not scored or (not partial and int(float(rows[-1]["epoch"])) != planned):
        return None
    best = max(scored, key=lambda r: float(r[metric]))
    best = {k: float(v) for k, v in best.items() if v}
    best |= {"epochs_run": int(float(rows[-1]["epoch"])), "epochs_planned": planned,
             "seconds": (run / "metrics.csv").stat().st_mtime - (run / "config.yaml").stat().st_mtime}
    return best


def run_entry(entry: Entry, common: list[str], out: Path, read_back: bool = False) -> dict | None:
    """Train one row's model into ``out/<arch>`` (or read back a finished run of the same settings there)."""
    from detseg.engine.train_loop import train

    cfg = load_config(None, [*common, *entry.overrides])
    run = out / cfg.model.arch
    best = finished_run(run, cfg)
    if best is None and read_back:
        print(f"[real_data] {entry.name}: no finished run in {run}")
        return None
    if best is None:
        if run.exists():
            shutil.rmtree(run)
        run.mkdir(parents=True)
        start = time.perf_counter()
        best = dict(train(cfg, run, quiet=True))
        best["seconds"] = time.perf_counter() - start
    else:
        print(f"[real_data] {entry.name}: read back the finished run in {run}")
    params = sum(p.numel() for p in MODELS[cfg.model.arch].build(cfg.model).parameters())
    return {"model": entry.name, "peer": entry.peer, "peer_twin": entry.peer_twin, "arch": cfg.model.arch, "params": params,
            "membrane_iou": best[METRIC], "miou": best["miou"], "pixel_acc": best["pixel_acc"],
            "best_epoch": int(best.get("epoch", 0)), "seconds": best["seconds"], "run": str(run),
            "curve": read_curve(run / "metrics.csv")}


def probe_epochs(config: Path, overrides: list[str], run: Path, seconds: float) -> int:
    """How many epochs of this row fit in ``seconds`` here. Two probe runs, of 1 and of 3 epochs,
    each validated after every epoch: their time difference is two epochs with their validations,
    without the start-up (data checks, model build, CUDA start) that the real run pays once."""
    from detseg.engine.train_loop import train

    times = []
    for epochs in (1, 3):
        probe = run.parent / f"{run.name}-probe"
        shutil.rmtree(probe, ignore_errors=True)
        probe.mkdir(parents=True)
        start = time.perf_counter()
        train(load_config(config, [*overrides, f"train.epochs={epochs}", "eval.interval=1"]), probe, quiet=True)
        times.append(time.perf_counter() - start)
        shutil.rmtree(probe)
    per_epoch = max(times[1] - times[0], 1e-3) / 2
    epochs = max(2, int(seconds / per_epoch))
    print(f"[real_data] {run.name}: {per_epoch:.1f} s per epoch here: {epochs} epochs in {seconds / 60:.1f} min",
          flush=True)
    return epochs


def run_coco_entry(entry: Entry, common: list[str], args: argparse.Namespace) -> dict | None:
    """Train one detector row into ``out/<folder>`` (or read back a run of the same settings there)."""
    from detseg.engine.train_loop import train

    config = REPO / "configs" / entry.config
    overrides = [*common, *entry.overrides]
    run = args.out / entry.folder
    best = finished_run(run, None if args.read_back else load_config(config, overrides), DET_METRIC, SAME_DET,
                        partial=args.read_back)
    if best is not None:
        print(f"[real_data] {entry.name}: read back the run in {run}")
    elif args.read_back:
        print(f"[real_data] {entry.name}: no run in {run}")
        return None
    else:
        epochs = probe_epochs(config, overrides, run, args.minutes * 60) if args.minutes else args.epochs
        cfg = load_config(config, [*overrides, f"train.epochs={epochs}", f"eval.interval={max(1, epochs // 10)}"])
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir(parents=True)
        try:
            train(cfg, run, quiet=True)
        except KeyboardInterrupt:
            print(f"[real_data] {entry.name}: stopped early; reporting the epochs it reached")
        best = finished_run(run, None, DET_METRIC, partial=True)
        if best is None:
            return None
    cfg = load_config(run / "config.yaml")
    params = sum(p.numel() for p in MODELS[cfg.model.arch].build(cfg.model).parameters())
    curves = {m: read_curve(run / "metrics.csv", m) for m in (DET_METRIC, "segm/mAP50")}
    return {"model": entry.name, "arch": cfg.model.arch, "params": params, "bbox_map50": best[DET_METRIC],
            "bbox_map": best.get("bbox/mAP", 0.0), "segm_map50": best.get("segm/mAP50"),
            "best_epoch": int(best["epoch"]), "epochs_run": best["epochs_run"], "epochs": best["epochs_planned"],
            "batch": cfg.data.batch_size, "image_size": cfg.data.augment.image_size, "seconds": best["seconds"],
            "run": str(run), "curve": curves[DET_METRIC], "curve_segm": curves["segm/mAP50"] or None}


def coco_table(results: list[dict]) -> list[str]:
    lines = ["| model | params | bbox mAP50 | bbox mAP | segm mAP50 | best epoch | epochs | train time |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        segm = f"{r['segm_map50']:.3f}" if r["segm_map50"] is not None else ""
        epochs = f"{r['epochs']}" if r["epochs_run"] == r["epochs"] else f"{r['epochs_run']} of {r['epochs']}"
        lines.append(f"| {r['model']} | {r['params'] / 1e6:.1f} M | {r['bbox_map50']:.3f} | {r['bbox_map']:.3f} | "
                     f"{segm} | {r['best_epoch']} | {epochs} | {r['seconds']:.0f} s |")
    return lines


def plot(results: list[dict], path: Path, title: str, ylabel: str = "validation membrane IoU") -> None:
    """One line per row (``curve``: epoch -> metric); a dotted twin for a row's ``curve_segm``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for r in results:
        line, = ax.plot(list(r["curve"]), list(r["curve"].values()), marker="o", ms=3, label=r["model"],
                        linestyle="--" if r.get("peer") else "-")
        if r.get("curve_segm"):
            ax.plot(list(r["curve_segm"]), list(r["curve_segm"].values()), marker="s", ms=3, linestyle=":",
                    color=line.get_color(), label=f"{r['model']} (masks)")
    ax.set(xlabel="epoch", ylabel=ylabel, title=title, ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def table(results: list[dict]) -> list[str]:
    peer = next((r for r in results if r["peer"]), None)
    lines = ["| model | params | membrane IoU | mIoU | pixel acc | best epoch | train time | IoU / smp |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        ratio = f"{r['membrane_iou'] / peer['membrane_iou']:.3f}" if peer and not r["peer"] else ""
        lines.append(f"| {r['model']} | {r['params'] / 1e6:.1f} M | {r['membrane_iou']:.3f} | {r['miou']:.3f} | "
                     f"{r['pixel_acc']:.3f} | {r['best_epoch']} | {r['seconds']:.0f} s | {ratio} |")
    return lines


def hardware(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"{cpu}, {torch.get_num_threads()} threads"


def recorded_args(argv: list[str]) -> list[str]:
    """The command line that reproduces a run, without where it was written (``--out``) or ``--write-docs``."""
    out, skip = [], False
    for a in argv:
        if skip or a in ("--write-docs", "--read-back") or a.startswith("--out="):
            skip = False
            continue
        if a == "--out":
            skip = True
            continue
        out.append(a)
    return out


def write_docs(key: str, fields: dict, curve: Path, device: str | None) -> None:
    """Record one task's ``fields`` (data, setting, rows) under ``key`` of docs/real_data.yaml, with
    this command line and, for runs trained here, this ``device``'s machine; its curves in
    docs/images/."""
    import yaml

    picture = REPO / "docs" / "images" / curve.name
    shutil.copyfile(curve, picture)
    entry = {"command": " ".join(["python benchmarks/real_data.py", *recorded_args(sys.argv[1:])]), **fields,
             "picture": f"images/{picture.name}"}
    if device is not None:
        entry["hardware"] = f"{hardware(device)}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}"
    path = REPO / "docs" / "real_data.yaml"
    doc = yaml.safe_load(path.read_text()) if path.is_file() else {}
    if doc.get(key, {}).get("notes"):
        entry["notes"] = doc[key]["notes"]  # hand-written: what the figures mean, kept until rewritten
    doc[key] = entry
    header = "# Written by benchmarks/real_data.py --write-docs; rendered into docs/model_zoo.md by tools/make_docs.py.\n"
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False, width=110))
    print(f"wrote {path} and {picture}")


def main_isbi(args: argparse.Namespace) -> None:
    """The segmenters on ISBI 2012, detseg's and smp's."""
    if not ISBI.is_dir():
        sys.exit(f"ISBI 2012 not found at {ISBI}")
    try:
        import segmentation_models_pytorch  # noqa: F401
    except ImportError:
        segmentation_models_pytorch = None
    MODELS["smp_unet"] = ModelSpec(build_smp_unet, "segmentation")  # the peer, for this process only

    common = common_overrides(make_split(args.out), args)
    entries = [e for e in seg_entries(args.unet_channels) if e.chosen(args.only)]
    results = []
    for entry in entries:
        if entry.peer and segmentation_models_pytorch is None:
            print(f"[real_data] {entry.name}: segmentation_models_pytorch is not installed (pip install '.[bench]')")
            continue
        print(f"[real_data] {entry.name} ...", flush=True)
        row = run_entry(entry, common, args.out, args.read_back)
        if row is not None:
            results.append(row)
            print("\n".join(table(results[-1:])[2:]), flush=True)
    curve = args.out / "isbi2012_curves.png"
    plot(results, curve, f"ISBI 2012, 24 train / 6 val, {args.image_size} px, from scratch")
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nISBI 2012 membranes, {args.image_size} px, {args.epochs} epochs, batch {args.batch_size}, "
          f"{hardware(args.device)}:")
    print("\n".join(table(results)))
    peer = next((r for r in results if r["peer"]), None)
    twin = next((r for r in results if r["peer_twin"]), None)
    if peer and twin:
        print(f"same network, detseg / smp membrane IoU: {twin['membrane_iou'] / peer['membrane_iou']:.3f} "
              f"({twin['model']} vs {peer['model']})")
    print(f"curves: {curve}")
    if args.write_docs:
        write_docs("isbi2012", {
            "data": "ISBI 2012 membranes, sections 00-23 train / 24-29 validation, from scratch",
            "setting": (f"{args.image_size} px (stretched from 512), batch {args.batch_size}, {args.epochs} epochs, "
                        f"AdamW lr {args.lr} cosine, cross-entropy + Dice, flips and colour jitter, the best of "
                        f"validations every {args.interval} epochs; every model trained by detseg's engine"),
            "rows": [{k: r[k] for k in ("model", "peer", "peer_twin", "params", "membrane_iou", "miou", "pixel_acc",
                                        "best_epoch")} | {"seconds": round(r["seconds"])} for r in results],
        }, curve, args.device)


def main_coco(args: argparse.Namespace) -> None:
    """The detectors fitting coco128 (train = val), each family in its own row."""
    if not COCO128.is_dir():
        sys.exit(f"coco128 not found at {COCO128}")
    common = coco_overrides(args)
    entries = [e for e in coco_entries(args) if e.chosen(args.only)]
    results = []
    for entry in entries:
        print(f"[real_data] {entry.name} ...", flush=True)
        row = run_coco_entry(entry, common, args)
        if row is not None:
            results.append(row)
            print("\n".join(coco_table([row])[2:]), flush=True)
    curve = args.out / "coco128_curves.png"
    plot(results, curve, "coco128 overfit (train = val), from scratch", ylabel="bbox mAP50 (masks: segm mAP50)")
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    budget = f"{args.minutes} min per row" if args.minutes else f"{args.epochs} epochs"
    print(f"\ncoco128, train = val, {budget}, {hardware(args.device)}:")
    print("\n".join(coco_table(results)))
    print(f"curves: {curve}")
    if args.write_docs:
        write_docs("coco128", {
            "data": "coco128 (128 real COCO images, 80 classes), train = validation, from scratch, no augmentation",
            "setting": (f"{budget}: each row's epochs are what fits in it on this machine, its schedule planned for "
                        "them; validated 10 times per run, the best validation shown"),
            "rows": [{k: r[k] for k in ("model", "params", "bbox_map50", "bbox_map", "segm_map50", "best_epoch",
                                        "epochs_run", "epochs", "batch", "image_size")}
                     | {"seconds": round(r["seconds"])} for r in results],
        }, curve, args.device)


def main_curves(args: argparse.Namespace) -> None:
    """One picture of the validation curves of finished runs (``--curves``), labelled by folder."""
    import yaml

    results = []
    for run in args.curves:
        if not (run / "metrics.csv").is_file() or not (run / "config.yaml").is_file():
            sys.exit(f"{run}: not a training run (no metrics.csv and config.yaml)")
        size = yaml.safe_load((run / "config.yaml").read_text())["data"]["augment"]["image_size"]
        results.append({"model": f"{run.name} ({size} px)", "curve": read_curve(run / "metrics.csv", DET_METRIC),
                        "curve_segm": read_curve(run / "metrics.csv", "segm/mAP50") or None})
    curve = args.out / "coco128_overfit_curves.png"
    plot(results, curve, "the coco128 overfit configs (train = val), from scratch",
         ylabel="bbox mAP50 (masks: segm mAP50)")
    print(f"curves: {curve}")
    if args.write_docs:
        write_docs("coco128_overfit", {"data": "the coco128 overfit configs, each run to its own budget"}, curve, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=("isbi2012", "coco128"), default="isbi2012")
    parser.add_argument("--epochs", type=int, help="epochs per row (default: 50 on isbi2012, 100 on coco128)")
    parser.add_argument("--minutes", type=float, help="coco128: the wall-clock budget of each row (sets its epochs)")
    parser.add_argument("--image-size", type=int, help="default: 256 on isbi2012, 512 on coco128")
    parser.add_argument("--batch-size", type=int, help="default: 4 on isbi2012, 8 on coco128 (YOLO rows: 16)")
    parser.add_argument("--lr", type=float, default=1e-3, help="isbi2012 (detector rows keep their config's)")
    parser.add_argument("--interval", type=int, default=5, help="isbi2012: validate every N epochs")
    parser.add_argument("--unet-channels", type=int, default=32, help="classic U-Net base channels (paper: 64)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*",
                        help="the rows whose name contains one of these words, or whose folder is one of them "
                             "(coco128: faster_rcnn, mask_rcnn, yolo_nbs64, yolo_nbs16, yolo_adamw, fast_rcnn, rcnn, yolov1)")
    parser.add_argument("--quick", action="store_true",
                        help="a few-minute smoke run: isbi2012 4 epochs at 128 px; coco128 2 epochs at 128 px")
    parser.add_argument("--read-back", action="store_true", help="only tabulate the runs already in --out")
    parser.add_argument("--out", type=Path, help="default: runs/bench/real_data (isbi2012), .../coco128")
    parser.add_argument("--write-docs", action="store_true", help="record the figures for the model zoo")
    parser.add_argument("--curves", nargs="+", type=Path, metavar="RUN",
                        help="only draw the validation curves of these finished runs into one picture")
    args = parser.parse_args()
    isbi = args.task == "isbi2012"
    args.epochs = args.epochs or (50 if isbi else 100)
    args.image_size = args.image_size or (256 if isbi else 512)
    args.batch_size = args.batch_size or (4 if isbi else 8)
    args.out = args.out or REPO / "runs" / "bench" / ("real_data" if isbi else "coco128")
    if args.quick:
        args.epochs, args.image_size, args.interval, args.minutes = (4 if isbi else 2), 128, 2, None
    args.out.mkdir(parents=True, exist_ok=True)
    (main_curves if args.curves else main_isbi if isbi else main_coco)(args)


if __name__ == "__main__":
    main()
