"""The backbone contract shared by every task.

A backbone is a CNN cut into named stages ``c1..c5`` (nominal strides 2, 4, 8, 16, 32). It is
used two ways:

* **feature extractor**: ``backbone(images)`` returns an ordered dict of the requested stages'
  feature maps; ``backbone.feature_specs`` says their channels and strides, so heads never
  hard-code numbers;
* **image classifier**: ``backbone.classify(images)`` runs every stage and the classifier head
  (built only when ``num_classes`` is given), with module names that mirror torchvision so a
  torchvision ImageNet state dict loads with ``strict=True``.

Shape shorthand: N images, C channels, H x W input size.
Inputs are float images normalised with the ImageNet mean/std (models own that step).
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn
from torchvision.ops import FrozenBatchNorm2d

STAGE_NAMES = ("c1", "c2", "c3", "c4", "c5")


@dataclass(frozen=True)
class FeatureSpec:
    """Channels and stride (input pixels per feature cell) of one feature map."""

    channels: int
    stride: int


def scale_channels(channels: int, width: float, minimum: int = 4) -> int:
    """Scale a channel count by a width multiplier (tiny test variants use e.g. 0.125)."""
    return max(minimum, int(round(channels * width)))


class Backbone(nn.Module, metaclass=ABCMeta):
    """Base class: explicit stages, selectable outputs, freezing, optional classifier head.

    Subclasses build their layers with torchvision's attribute names, then implement
    :meth:`stage_modules` (stage name -> modules run in order for that stage) and, when they have
    a classifier, :meth:`forward_head`. They set ``self.stage_specs`` for all of their stages.

    Args:
        out_features: stage names returned by ``forward``; ``None`` means every stage.
    """

    stage_specs: dict[str, FeatureSpec]

    def __init__(self) -> None:
        super().__init__()
        self._out_features: tuple[str, ...] = ()
        self.num_classes: int | None = None

    # ---- subclass hooks -------------------------------------------------------------------
    @abstractmethod
    def stage_modules(self) -> "OrderedDict[str, Sequence[nn.Module]]":
        """Stage name -> the modules that run, in order, to produce that stage's output."""

    @abstractmethod
    def forward_head(self, last: Tensor) -> Tensor:
        """Classifier head on the last stage's feature map: Tensor[N, C, h, w] -> Tensor[N, K]."""

    # ---- configuration --------------------------------------------------------------------
    def set_out_features(self, out_features: Sequence[str] | None) -> None:
        """Choose which stages ``forward`` returns (validated against the stages that exist)."""
        names = tuple(self.stage_specs) if out_features is None else tuple(out_features)
        unknown = [n for n in names if n not in self.stage_specs]
        if unknown or not names:
            raise ValueError(
                f"{type(self).__name__} has stages {list(self.stage_specs)}; "
                f"cannot return {list(names) or 'no stages'}"
            )
        order = list(self.stage_specs)
        self._out_features = tuple(sorted(names, key=order.index))

    @property
    def out_features(self) -> tuple[str, ...]:
        return self._out_features

    @property
    def feature_specs(self) -> dict[str, FeatureSpec]:
        """Specs of the stages ``forward`` returns, in order."""
        return {n: self.stage_specs[n] for n in self._out_features}

    def freeze_stages(self, num_stages: int) -> None:
        """Freeze the first ``num_stages`` stages: no gradients, batch norm kept in eval mode."""
        names = list(self.stage_specs)
        if not 0 <= num_stages <= len(names):
            raise ValueError(f"frozen_stages must be in [0, {len(names)}], got {num_stages}")
        self._frozen = names[:num_stages]
        for name in self._frozen:
            for module in self.stage_modules()[name]:
                module.eval()
                for p in module.parameters():
                    p.requires_grad_(False)

    def train(self, mode: bool = True) -> "Backbone":
        super().train(mode)
        for name in getattr(self, "_frozen", ()):
            for module in self.stage_modules()[name]:
                module.eval()
        return self

    # ---- forward --------------------------------------------------------------------------
    def check_input(self, images: Tensor) -> None:
        """Fail early, with a fix, on input that would otherwise crash deep inside a layer."""
        if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(
                f"{type(self).__name__} expects images as Tensor[N, 3, H, W], got {shape}; "
                "stack images into a batch and put channels first (img.permute(2, 0, 1))"
            )
        if not images.is_floating_point():
            raise TypeError(
                f"{type(self).__name__} expects float images normalised with mean/std, got "
                f"{images.dtype}; convert with images.float() / 255 and normalise first"
            )

    def forward_stages(self, images: Tensor, last: str | None = None) -> "OrderedDict[str, Tensor]":
        """Run stages in order up to ``last`` (default: the deepest stage) and return all of them."""
        self.check_input(images)
        stages = self.stage_modules()
        last = last or next(reversed(stages))
        outputs: OrderedDict[str, Tensor] = OrderedDict()
        x = images
        for name, modules in stages.items():
            for module in modules:
                x = module(x)
            outputs[name] = x
            if name == last:
                break
        return outputs

    def forward(self, images: Tensor) -> "OrderedDict[str, Tensor]":
        """Tensor[N, 3, H, W] -> {stage: Tensor[N, C_s, ~H/s, ~W/s]} for ``out_features``."""
        outputs = self.forward_stages(images, last=self._out_features[-1])
        return OrderedDict((n, outputs[n]) for n in self._out_features)

    def classify(self, images: Tensor) -> Tensor:
        """Tensor[N, 3, H, W] -> class logits Tensor[N, K] (main head only)."""
        if self.num_classes is None:
            raise RuntimeError(
                f"{type(self).__name__} was built without a classifier head; pass num_classes=K"
            )
        last = self.forward_stages(images)
        return self.forward_head(next(reversed(last.values())))

    def classify_with_aux(self, images: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits plus auxiliary-classifier logits (only GoogLeNet has them, in training)."""
        return self.classify(images), []


def check_builder_args(
    name: str, num_classes: int | None, width: float, output_stride: int, supported: tuple[int, ...]
) -> None:
    """Reject builder arguments that would otherwise build a silently wrong model."""
    if output_stride not in supported:
        raise ValueError(f"{name} supports output_stride in {list(supported)}, got {output_stride}")
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    if num_classes is not None and num_classes < 1:
        raise ValueError(f"num_classes must be >= 1 or None (no head), got {num_classes}")


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d by a FrozenBatchNorm2d holding the same statistics.

    Detection fine-tuning uses batches of 1-2 images, where batch statistics are noise; frozen
    BN keeps the (pretrained) running statistics and affine parameters fixed.
    """
    if isinstance(module, nn.BatchNorm2d):
        frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps)
        with torch.no_grad():
            frozen.weight.copy_(module.weight)
            frozen.bias.copy_(module.bias)
            frozen.running_mean.copy_(module.running_mean)
            frozen.running_var.copy_(module.running_var)
        return frozen
    for name, child in module.named_children():
        new = freeze_batch_norm(child)
        if new is not child:
            setattr(module, name, new)
    return module
