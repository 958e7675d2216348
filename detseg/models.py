"""The one place architecture names become models: an explicit name -> builder dict."""

from __future__ import annotations

from typing import Callable

from torch import nn

from .backbones.build import build_backbone
from .classification import ImageClassifier
from .config import ModelConfig
from .detection.faster_rcnn import build_faster_rcnn
from .detection.mask_rcnn import build_mask_rcnn
from .detection.rcnn import build_fast_rcnn, build_rcnn
from .yolo.model import build_yolo
from .yolo.yolov1 import build_yolov1
from .segmentation.build import (
    build_deeplabv3, build_fcn8s, build_fcn16s, build_fcn32s, build_unet, build_unet_backbone,
)


def build_classifier(cfg: ModelConfig) -> ImageClassifier:
    """An image classifier: the configured backbone with a ``num_classes``-way head."""
    b = cfg.backbone
    backbone = build_backbone(
        b.name, num_classes=cfg.num_classes, width=b.width, output_stride=b.output_stride,
        pretrained_path=b.pretrained, frozen_stages=b.frozen_stages, freeze_bn=b.freeze_bn,
        out_features=b.out_features,
    )
    return ImageClassifier(backbone)


#: arch name -> builder(ModelConfig) -> model with ``loss(images, targets)`` / ``predict(images)``
MODELS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "classifier": build_classifier,
    "rcnn": build_rcnn,
    "fast_rcnn": build_fast_rcnn,
    "faster_rcnn": build_faster_rcnn,
    "mask_rcnn": build_mask_rcnn,
    "fcn32s": build_fcn32s,
    "fcn16s": build_fcn16s,
    "fcn8s": build_fcn8s,
    "unet": build_unet,
    "unet_backbone": build_unet_backbone,
    "deeplabv3": build_deeplabv3,
    "yolo": build_yolo,
    "yolov1": build_yolov1,
}


def build_model(cfg: ModelConfig) -> nn.Module:
    """Build the model named by ``cfg.arch``; unknown names list the valid ones."""
    if cfg.arch not in MODELS:
        raise KeyError(f"unknown model arch {cfg.arch!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[cfg.arch](cfg)
