"""Builders: ``ModelConfig`` -> segmentation model, mapping config fields to explicit arguments."""

from __future__ import annotations

from typing import Sequence

from ..backbones.base import Backbone
from ..backbones.build import build_backbone
from ..backbones.weights import read_state_dict
from ..config import ModelConfig
from ..structures.instances import num_with_background
from .deeplab import DeepLabV3
from .fcn import FCN
from .losses import SegmentationLoss
from .unet import BackboneUNet, UNet


def _criterion(cfg: ModelConfig) -> SegmentationLoss:
    loss = cfg.segmentation.loss
    return SegmentationLoss(num_with_background(cfg.num_classes), ignore_index=loss.ignore_index,
                            class_weights=loss.class_weights, dice_weight=loss.dice_weight)


def _backbone(cfg: ModelConfig, out_features: Sequence[str] | None) -> Backbone:
    b = cfg.backbone
    return build_backbone(
        b.name, out_features=b.out_features or out_features, width=b.width, output_stride=b.output_stride,
        pretrained_path=b.pretrained, frozen_stages=b.frozen_stages, freeze_bn=b.freeze_bn)


def _build_fcn(cfg: ModelConfig, variant: str) -> FCN:
    if cfg.backbone.output_stride != 32:
        raise ValueError(f"fcn{variant} runs on undilated stride-32 features; got model.backbone.output_stride="
                         f"{cfg.backbone.output_stride} (for dilated features use arch deeplabv3)")
    stages = {"32s": ("c5",), "16s": ("c4", "c5"), "8s": ("c3", "c4", "c5")}[variant]
    f = cfg.segmentation.fcn
    model = FCN(_backbone(cfg, stages), cfg.num_classes, variant=variant, head_channels=f.head_channels,
                fc_channels=f.fc_channels, dropout=f.dropout, criterion=_criterion(cfg))
    if f.fc_channels and cfg.backbone.pretrained and cfg.backbone.name.startswith("vgg"):
        model.load_vgg_classifier(read_state_dict(cfg.backbone.pretrained), cfg.backbone.pretrained)
    return model


def build_fcn32s(cfg: ModelConfig) -> FCN:
    """FCN-32s on ``model.backbone``'s ``c5``."""
    return _build_fcn(cfg, "32s")


def build_fcn16s(cfg: ModelConfig) -> FCN:
    """FCN-16s: ``c5`` scores + the ``c4`` skip."""
    return _build_fcn(cfg, "16s")


def build_fcn8s(cfg: ModelConfig) -> FCN:
    """FCN-8s: ``c5`` scores + the ``c4`` and ``c3`` skips."""
    return _build_fcn(cfg, "8s")


def build_unet(cfg: ModelConfig) -> UNet:
    """The classic U-Net (``model.backbone`` is not used)."""
    u = cfg.segmentation.unet
    return UNet(cfg.num_classes, base_channels=u.base_channels, depth=u.depth, use_bn=u.use_bn,
                criterion=_criterion(cfg))


def build_unet_backbone(cfg: ModelConfig) -> BackboneUNet:
    """U-Net decoder over every stage of ``model.backbone`` (or its ``out_features``)."""
    u = cfg.segmentation.unet
    return BackboneUNet(_backbone(cfg, None), cfg.num_classes, max_decoder_channels=u.max_decoder_channels,
                        use_bn=u.use_bn, criterion=_criterion(cfg))


def build_deeplabv3(cfg: ModelConfig) -> DeepLabV3:
    """DeepLab-v3: ASPP on the last stage of ``model.backbone`` (set ``output_stride`` 8 or 16)."""
    a = cfg.segmentation.aspp
    return DeepLabV3(_backbone(cfg, ("c5",)), cfg.num_classes, aspp_channels=a.channels, rates=a.rates,
                     dropout=a.dropout, criterion=_criterion(cfg))


