"""Semantic segmentation speed: every detseg head next to torchvision's ``fcn_resnet50``, same run.

What is compared (be precise: the two "FCN-ResNet50"s are different networks):

* **torchvision ``fcn_resnet50``** (``weights=None``, ``aux_loss=False``): ResNet-50 *dilated to
  output stride 8* (layer3 and layer4 run at 1/8 resolution with dilation 2 and 4), then an
  ``FCNHead``: 3x3 conv 2048 -> 512 + BN + ReLU + dropout + 1x1 classifier, all on the stride-8
  map, and bilinear interpolation of the logits to the input size. No skips, no transposed convs.
* **detseg ``fcn8s`` ResNet-50**: the paper's FCN-8s on an *undilated* ResNet-50 (stride 32):
  1x1 classifier on c5, learned x2 transposed convs fusing 1x1 scores of c4 (stride 16) and c3
  (stride 8), fixed bilinear x8 transposed conv. The backbone does ~1/4 of the dilated one's
  work in layer3/layer4 and there is no 3x3 2048->512 conv at stride 8, so it is expected to be
  several times faster; it is the architecture the FCN paper describes, not a tuned copy of
  torchvision's model. ``--dilated-head`` adds detseg ``deeplabv3`` at output stride 8 for a
  like-for-like cost class.
* also measured: ``fcn32s``/``fcn16s`` ResNet-50, ``fcn8s`` VGG-16, classic ``unet`` (64 base
  channels, depth 4), ``unet_backbone`` ResNet-50, ``deeplabv3`` ResNet-50 at output stride 16
  (and 8 with ``--dilated-head``).

Both sides run the same way: bf16 autocast (``--amp off`` for fp32), channels_last weights and
inputs, cudnn.benchmark, random weights, ``--num-classes`` + 1 output channels (21 = VOC by
default), images ``--size`` x ``--size`` (512). Training = forward + cross-entropy (ignore 255)
+ backward + SGD step on batch ``--train-batch``; inference = forward + arg-max label map under
``torch.no_grad`` on batch ``--infer-batch``. Median time per step -> images/s.

Usage:
    python benchmarks/seg_speed.py                          # on CUDA when available
    python benchmarks/seg_speed.py --quick                  # tiny CPU smoke run (64 px, few steps)
    python benchmarks/seg_speed.py --models fcn8s_r50 torchvision_fcn_r50
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.models.segmentation import fcn_resnet50

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detseg.config import load_config  # noqa: E402
from detseg.models import build_model  # noqa: E402
from detseg.structures.instances import Instances  # noqa: E402
from detseg.utils.timing import median_seconds  # noqa: E402

#: name -> config overrides of a detseg model (``None`` = torchvision's fcn_resnet50)
MODELS: dict[str, list[str] | None] = {
    "torchvision_fcn_r50": None,
    "fcn8s_r50": ["model.arch=fcn8s", "model.backbone.name=resnet50"],
    "fcn16s_r50": ["model.arch=fcn16s", "model.backbone.name=resnet50"],
    "fcn32s_r50": ["model.arch=fcn32s", "model.backbone.name=resnet50"],
    "fcn8s_vgg16": ["model.arch=fcn8s", "model.backbone.name=vgg16"],
    "unet": ["model.arch=unet"],
    "unet_r50": ["model.arch=unet_backbone", "model.backbone.name=resnet50"],
    "deeplabv3_r50_os16": ["model.arch=deeplabv3", "model.backbone.name=resnet50", "model.backbone.output_stride=16"],
    "deeplabv3_r50_os8": ["model.arch=deeplabv3", "model.backbone.name=resnet50", "model.backbone.output_stride=8"],
}
DEFAULT = [m for m in MODELS if m != "deeplabv3_r50_os8"]
QUICK = ["model.backbone.width=0.125", "model.segmentation.unet.base_channels=8",
         "model.segmentation.aspp.channels=32"]


class TorchvisionWrapper(torch.nn.Module):
    """torchvision's model with the same call shapes as detseg's (``loss`` / ``predict``)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.net = fcn_resnet50(weights=None, weights_backbone=None, num_classes=num_classes + 1, aux_loss=False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def _logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images.float() / 255 - self.mean) / self.std)["out"]

    def loss(self, images, targets):
        target = torch.stack([t.semantic for t in targets])
        return {"loss_seg": F.cross_entropy(self._logits(images).float(), target, ignore_index=255)}

    @torch.no_grad()
    def predict(self, images, image_sizes=None):
        return self._logits(images).argmax(1)


def build(name: str, num_classes: int, quick: bool) -> torch.nn.Module:
    overrides = MODELS[name]
    if overrides is None:
        return TorchvisionWrapper(num_classes)
    cfg = load_config(None, [f"model.num_classes={num_classes}", *overrides, *(QUICK if quick else [])])
    return build_model(cfg.model)



def inputs(n: int, size: int, num_classes: int, device: torch.device):
    """uint8 images Tensor[n, 3, size, size] (channels_last) and targets with random label maps."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    images = images.to(device).contiguous(memory_format=torch.channels_last)
    sem = torch.randint(0, num_classes + 1, (n, size, size), generator=g).to(device)
    empty = torch.zeros(0, 4, device=device)
    targets = [Instances(empty, torch.zeros(0, dtype=torch.int64, device=device),
                         torch.zeros(0, dtype=torch.bool, device=device), (size, size), semantic=s) for s in sem]
    return images, targets


def measure(name: str, args, device: torch.device) -> dict[str, float]:
    model = build(name, args.num_classes, args.quick).to(device).to(memory_format=torch.channels_last)
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if args.amp == "bf16"
           else contextlib.nullcontext())
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
    images, targets = inputs(args.train_batch, args.size, args.num_classes, device)

    def train_step():
        with amp:
            loss = sum(model.loss(images, targets).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    t_train = median_seconds(train_step, args.iters, args.warmup, device)
    infer_images, _ = inputs(args.infer_batch, args.size, args.num_classes, device)
    model.eval()

    def infer_step():
        with torch.no_grad(), amp:
            model.predict(infer_images)

    t_infer = median_seconds(infer_step, args.iters, args.warmup, device)
    out = {"train": args.train_batch / t_train, "infer": args.infer_batch / t_infer,
           "params_m": sum(p.numel() for p in model.parameters()) / 1e6}
    if device.type == "cuda":
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=None, choices=list(MODELS))
    p.add_argument("--dilated-head", action="store_true", help="also deeplabv3 ResNet-50 at output stride 8")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--train-batch", type=int, default=8)
    p.add_argument("--infer-batch", type=int, default=16)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--num-classes", type=int, default=20, help="foreground classes K (K + 1 outputs)")
    p.add_argument("--amp", choices=["bf16", "off"], default="bf16")
    p.add_argument("--device", default="auto")
    p.add_argument("--quick", action="store_true", help="tiny widths, 64 px, 2 iterations (CPU smoke test)")
    args = p.parse_args()
    if args.quick:
        args.size, args.train_batch, args.infer_batch, args.iters, args.warmup = 64, 2, 2, 2, 1
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    torch.backends.cudnn.benchmark = True
    names = args.models or DEFAULT + (["deeplabv3_r50_os8"] if args.dilated_head else [])
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"# {gpu}, torch {torch.__version__}, {args.size}x{args.size}, amp {args.amp}, channels_last, "
          f"train batch {args.train_batch}, infer batch {args.infer_batch}, {args.num_classes + 1} classes"
          + (" (QUICK: tiny widths; torchvision full size)" if args.quick else ""))
    print(f"{'model':<22}{'train img/s':>12}{'infer img/s':>12}{'params M':>10}{'peak GiB':>10}")
    results = {}
    for name in names:
        r = results[name] = measure(name, args, device)
        if device.type == "cuda":  # the model is gone with measure()'s frame: free its memory
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        print(f"{name:<22}{r['train']:>12.1f}{r['infer']:>12.1f}{r['params_m']:>10.1f}"
              f"{r.get('peak_gib', float('nan')):>10.2f}", flush=True)
    if "fcn8s_r50" in results and "torchvision_fcn_r50" in results:
        ours, tv = results["fcn8s_r50"], results["torchvision_fcn_r50"]
        print(f"detseg fcn8s ResNet-50 / torchvision fcn_resnet50: train {ours['train'] / tv['train']:.2f}x, "
              f"inference {ours['infer'] / tv['infer']:.2f}x (target >= 1.3x)")


if __name__ == "__main__":
    main()
