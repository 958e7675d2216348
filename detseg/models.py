"""The one place architecture names become models: an explicit name -> :class:`ModelSpec` table."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Literal, get_args

from torch import nn

from .backbones.build import build_backbone
from .classification import ImageClassifier
from .config import ConfigError, ModelConfig
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


#: what a model does, which picks its datasets, evaluator and result drawing
Task = Literal["classification", "detection", "segmentation"]


@dataclass(frozen=True)
class ModelSpec:
    """An architecture: its builder, and what it needs from the data before it is built.

    Attributes:
        build: ``ModelConfig -> model`` with ``loss(images, targets)`` / ``predict(images)``.
        task: ``classification``, ``detection`` or ``segmentation`` (which datasets and evaluator).
        with_masks: the model learns instance masks (datasets decode them).
    """

    build: Callable[[ModelConfig], nn.Module]
    task: Task
    with_masks: bool = False

    def __post_init__(self) -> None:
        if self.task not in get_args(Task):
            raise ValueError(f"task must be one of {', '.join(get_args(Task))}, got {self.task!r}")


MODELS: dict[str, ModelSpec] = {
    "classifier": ModelSpec(build_classifier, "classification"),
    "rcnn": ModelSpec(build_rcnn, "detection"),
    "fast_rcnn": ModelSpec(build_fast_rcnn, "detection"),
    "faster_rcnn": ModelSpec(build_faster_rcnn, "detection"),
    "mask_rcnn": ModelSpec(build_mask_rcnn, "detection", with_masks=True),
    "fcn32s": ModelSpec(build_fcn32s, "segmentation"),
    "fcn16s": ModelSpec(build_fcn16s, "segmentation"),
    "fcn8s": ModelSpec(build_fcn8s, "segmentation"),
    "unet": ModelSpec(build_unet, "segmentation"),
    "unet_backbone": ModelSpec(build_unet_backbone, "segmentation"),
    "deeplabv3": ModelSpec(build_deeplabv3, "segmentation"),
    "yolo": ModelSpec(build_yolo, "detection"),
    "yolov1": ModelSpec(build_yolov1, "detection"),
}


def model_spec(arch: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``arch``; unknown names list the valid ones (``KeyError``)."""
    if arch not in MODELS:
        raise KeyError(f"unknown model arch {arch!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[arch]


def build_model(cfg: ModelConfig, *, pretrained: bool = True) -> nn.Module:
    """Build the model named by ``cfg.arch``.

    ``pretrained=False`` skips ``backbone.pretrained`` (the ImageNet file): for a model whose
    weights come from a checkpoint next, on a machine that may not have that file.

    Raises:
        KeyError: unknown ``arch``, listing the valid ones.
        ConfigError: ``num_classes`` not set (``tools/train.py`` takes it from the data).
    """
    spec = model_spec(cfg.arch)
    if cfg.num_classes is None:
        raise ConfigError("model.num_classes is not set: give it, or let tools/train.py take it from the data")
    if not pretrained:
        cfg = replace(cfg, backbone=replace(cfg.backbone, pretrained=None))
    return spec.build(cfg)
