"""The one place backbone names become classes: an explicit name -> builder dict."""

from __future__ import annotations

import logging
from typing import Callable, Sequence

from .alexnet import alexnet
from .base import Backbone, freeze_batch_norm
from .csp_darknet import csp_darknet
from .densenet import densenet121, densenet169, densenet201
from .googlenet import googlenet
from .lenet import lenet5
from .resnet import resnet18, resnet34, resnet50, resnet101
from .vgg import vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn
from .weights import load_torchvision_weights

logger = logging.getLogger(__name__)

#: name -> builder(*, num_classes, width, output_stride, **options) -> Backbone
BACKBONES: dict[str, Callable[..., Backbone]] = {
    "lenet5": lenet5,
    "alexnet": alexnet,
    "vgg11": vgg11,
    "vgg11_bn": vgg11_bn,
    "vgg13": vgg13,
    "vgg13_bn": vgg13_bn,
    "vgg16": vgg16,
    "vgg16_bn": vgg16_bn,
    "vgg19": vgg19,
    "vgg19_bn": vgg19_bn,
    "googlenet": googlenet,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "densenet121": densenet121,
    "densenet169": densenet169,
    "densenet201": densenet201,
    "csp_darknet": csp_darknet,
}


def build_backbone(
    name: str,
    *,
    out_features: Sequence[str] | None = None,
    num_classes: int | None = None,
    width: float = 1.0,
    output_stride: int = 32,
    pretrained_path: str | None = None,
    frozen_stages: int = 0,
    freeze_bn: bool = False,
    **options,
) -> Backbone:
    """Build a backbone by name.

    Args:
        name: a key of :data:`BACKBONES` (e.g. ``"resnet50"``).
        out_features: stages ``forward`` returns, e.g. ``("c3", "c4", "c5")``; ``None``: all.
        num_classes: build the classifier head with K outputs; ``None``: feature extractor only.
        width: channel multiplier (``0.125`` gives tiny test/CPU variants).
        output_stride: 32, or 16/8 for backbones that support dilation (segmentation).
        pretrained_path: local torchvision-format ``.pth`` file; loaded before BN freezing so
            frozen statistics are the pretrained ones. GoogLeNet then defaults to
            ``transform_input=True``, as torchvision's pretrained GoogLeNet does.
        frozen_stages: freeze the first N stages in ``stage_specs`` order (AlexNet starts at
            ``c2``, the others at ``c1``).
        freeze_bn: replace BatchNorm2d by FrozenBatchNorm2d.
        **options: builder-specific options (e.g. GoogLeNet ``aux_logits``).

    Raises:
        KeyError: unknown name, listing the valid ones.

    Example:
        >>> bb = build_backbone("resnet18", out_features=("c3", "c4", "c5"), width=0.25)
        >>> {k: (s.channels, s.stride) for k, s in bb.feature_specs.items()}
        {'c3': (32, 8), 'c4': (64, 16), 'c5': (128, 32)}
    """
    if name not in BACKBONES:
        raise KeyError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    if pretrained_path and name == "googlenet":
        # torchvision's ImageNet GoogLeNet expects inputs rescaled to [-1, 1] (its builder sets
        # transform_input=True whenever it loads weights); without it the input is at twice the scale
        options.setdefault("transform_input", True)
    backbone = BACKBONES[name](
        num_classes=num_classes, width=width, output_stride=output_stride, **options
    )
    if pretrained_path:
        dropped = load_torchvision_weights(backbone, pretrained_path)
        heads = "/".join(sorted({k.split(".")[0] for k in dropped}))
        if dropped and num_classes:  # a classifier for other classes: its head starts fresh, and says so
            logger.warning("%s: the file's classifier head (%s) does not fit %d classes and starts fresh; "
                           "every other layer is loaded", pretrained_path, heads, num_classes)
        elif dropped:
            logger.info("%s: classifier head (%s) not used by a feature extractor", pretrained_path, heads)
    if freeze_bn:
        freeze_batch_norm(backbone)
    backbone.set_out_features(out_features)
    if frozen_stages:
        backbone.freeze_stages(frozen_stages)
    return backbone
