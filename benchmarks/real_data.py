"""Real images, detseg next to its peer: the segmenters on ISBI 2012, trained in one script.

ISBI 2012 (``../shared/data/isbi2012_membrane``, the U-Net paper's EM data): a fixed split of the
30 sections, 00-23 train and 24-29 validation, from scratch (no pretrained weights). One class,
``membrane`` (stored value 0; 255 = cell interior = background, declared with ``data.mask_values``).
Every model, detseg's and the peer alike, is trained by detseg's own engine with the same data,
image size, augmentation, batch, optimiser, schedule, loss and number of steps, and validated on
the same 6 images at the same epochs, so the only difference in a row is the network:

* detseg U-Net (classic; ``--unet-channels`` base channels, depth 4), U-Net on ResNet-18,
  FCN-8s on ResNet-18, DeepLab-v3 on ResNet-18 at output stride 8;
* the peer: segmentation_models_pytorch ``Unet("resnet18", encoder_weights=None)`` (``pip install
  ".[bench]"``), wrapped as a detseg segmenter (its network, detseg's loss and normalisation).

Printed: a table of membrane IoU (the foreground), mIoU and pixel accuracy at the best validation
of each run, training time, and detseg / smp ratios; the curve (epochs vs membrane IoU) of every
model is saved as ``isbi2012_curves.png`` in ``--out``. A finished run of the same settings
already in ``--out`` is read back instead of trained again (delete its folder to retrain).
``--write-docs`` records the figures in ``docs/real_data.yaml`` and the picture in
``docs/images/`` for the model zoo (``python tools/make_docs.py`` renders them).

Usage:
    python benchmarks/real_data.py [--epochs 50] [--image-size 256] [--device cpu] [--write-docs]
    python benchmarks/real_data.py --quick       # 4 epochs, 128 px: a few-minute smoke run
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
METRIC = "iou/membrane"

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


def read_curve(path: Path) -> dict[int, float]:
    import csv

    with open(path) as f:
        return {int(float(r["epoch"])): float(r[METRIC]) for r in csv.DictReader(f) if r.get(METRIC)}


#: config keys that must agree for a finished run in ``--out`` to stand for a row
SAME = ("model.arch", "model.backbone.name", "model.segmentation.unet.base_channels", "data.augment.image_size",
        "data.batch_size", "train.epochs", "train.lr", "train.seed")


def finished_run(run: Path, cfg) -> dict | None:
    """The best validation row of a complete earlier run of the same settings in ``run``, or None."""
    import csv

    import yaml

    if not (run / "metrics.csv").is_file() or not (run / "config.yaml").is_file():
        return None
    saved = yaml.safe_load((run / "config.yaml").read_text())
    for key in SAME:
        a, b = saved, cfg
        for part in key.split("."):
            a, b = (a or {}).get(part), getattr(b, part)
        if a != b:
            return None
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    if not rows or int(float(rows[-1]["epoch"])) != cfg.train.epochs:
        return None
    best = max((r for r in rows if r.get(METRIC)), key=lambda r: float(r[METRIC]))
    best = {k: float(v) for k, v in best.items() if v}
    best["seconds"] = (run / "metrics.csv").stat().st_mtime - (run / "config.yaml").stat().st_mtime
    return best


def run_entry(entry: Entry, common: list[str], out: Path) -> dict:
    """Train one row's model into ``out/<arch>`` (or read back a finished run of the same settings there)."""
    from detseg.engine.train_loop import train

    cfg = load_config(None, [*common, *entry.overrides])
    run = out / cfg.model.arch
    best = finished_run(run, cfg)
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


def plot(results: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for r in results:
        ax.plot(list(r["curve"]), list(r["curve"].values()), marker="o", ms=3, label=r["model"],
                linestyle="--" if r["peer"] else "-")
    ax.set(xlabel="epoch", ylabel="validation membrane IoU", title=title, ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
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
        if skip or a == "--write-docs" or a.startswith("--out="):
            skip = False
            continue
        if a == "--out":
            skip = True
            continue
        out.append(a)
    return out


def write_docs(results: list[dict], args: argparse.Namespace, curve: Path) -> None:
    import yaml

    picture = REPO / "docs" / "images" / "isbi2012_curves.png"
    shutil.copyfile(curve, picture)
    entry = {
        "command": " ".join(["python benchmarks/real_data.py", *recorded_args(sys.argv[1:])]),
        "data": "ISBI 2012 membranes, sections 00-23 train / 24-29 validation, from scratch",
        "setting": (f"{args.image_size} px (stretched from 512), batch {args.batch_size}, {args.epochs} epochs, "
                    f"AdamW lr {args.lr} cosine, cross-entropy + Dice, flips and colour jitter, the best of "
                    f"validations every {args.interval} epochs; every model trained by detseg's engine"),
        "hardware": f"{hardware(args.device)}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}",
        "picture": f"images/{picture.name}",
        "rows": [{k: r[k] for k in ("model", "peer", "peer_twin", "params", "membrane_iou", "miou", "pixel_acc",
                                    "best_epoch")}
                 | {"seconds": round(r["seconds"])} for r in results],
    }
    path = REPO / "docs" / "real_data.yaml"
    doc = yaml.safe_load(path.read_text()) if path.is_file() else {}
    doc["isbi2012"] = entry
    header = "# Written by benchmarks/real_data.py --write-docs; rendered into docs/model_zoo.md by tools/make_docs.py.\n"
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False, width=110))
    print(f"wrote {path} and {picture}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--interval", type=int, default=5, help="validate every N epochs")
    parser.add_argument("--unet-channels", type=int, default=32, help="classic U-Net base channels (paper: 64)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="run the rows whose name contains one of these words")
    parser.add_argument("--quick", action="store_true", help="4 epochs at 128 px, validated every 2")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "real_data")
    parser.add_argument("--write-docs", action="store_true", help="record the figures for the model zoo")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.image_size, args.interval = 4, 128, 2
    if not ISBI.is_dir():
        sys.exit(f"ISBI 2012 not found at {ISBI}")
    try:
        import segmentation_models_pytorch  # noqa: F401
    except ImportError:
        segmentation_models_pytorch = None
    MODELS["smp_unet"] = ModelSpec(build_smp_unet, "segmentation")  # the peer, for this process only

    args.out.mkdir(parents=True, exist_ok=True)
    common = common_overrides(make_split(args.out), args)
    entries = [e for e in seg_entries(args.unet_channels)
               if not args.only or any(w.lower() in e.name.lower() for w in args.only)]
    results = []
    for entry in entries:
        if entry.peer and segmentation_models_pytorch is None:
            print(f"[real_data] {entry.name}: segmentation_models_pytorch is not installed (pip install '.[bench]')")
            continue
        print(f"[real_data] {entry.name} ...", flush=True)
        results.append(run_entry(entry, common, args.out))
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
        write_docs(results, args, curve)


if __name__ == "__main__":
    main()
