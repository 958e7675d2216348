"""The semantic segmentation contract shared by FCN, U-Net and DeepLab.

Shape shorthand: N images, K foreground classes, C = K + 1 output channels (background first),
H x W the input batch size (already padded by the data loader), Hs x Ws the same rounded up to
the network's ``size_divisibility``.

Every model here is a :class:`SemanticSegmenter`: it normalises the images, pads them to its
stride, runs :meth:`~SemanticSegmenter.forward_logits` (the architecture) and crops the logits
back, so *any* input size works and the output always has the input's size.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..structures import Normalize
from ..structures.instances import Instances, num_with_background
from .losses import SegmentationLoss


class SemanticSegmenter(nn.Module, metaclass=ABCMeta):
    """Base class: preprocessing, stride padding, the loss and the label-map prediction.

    Subclasses implement :meth:`forward_logits` on normalised images whose size is a multiple of
    ``size_divisibility``, returning Tensor[N, C, Hs, Ws] logits at that same size.

    Args:
        num_classes: K foreground classes; the network predicts K + 1 channels (0 = background).
        criterion: the loss the model owns (default: cross-entropy ignoring 255).
        size_divisibility: inputs are zero-padded (in normalised space, i.e. with the mean
            colour) at the bottom/right to a multiple of this before the network and the logits
            are cropped back; use the network's total stride so feature maps align exactly.

    Contract (what :mod:`detseg.engine` relies on):
        ``loss(images, targets)`` -> ``{"loss_seg": ..., ["loss_dice": ...]}`` in train and eval
        mode; ``predict(images, image_sizes=None)`` -> Tensor[N, H, W] int64 label map (0
        background, ``k + 1`` class ``k``) at the input size, in any mode; ``forward`` is
        ``loss`` in training mode and ``predict`` in eval mode. ``images``: Tensor[N, 3, H, W]
        uint8 RGB or float RGB in [0, 1]. ``targets``: one :class:`Instances` per image whose
        ``semantic`` is Tensor[H, W] int64 (255 = ignore, including batch padding).
    """

    task = "segmentation"
    with_masks = False

    def __init__(self, num_classes: int, *, criterion: nn.Module | None = None,
                 size_divisibility: int = 32) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 (foreground classes), got {num_classes}")
        if size_divisibility < 1:
            raise ValueError(f"size_divisibility must be >= 1, got {size_divisibility}")
        self.num_classes = num_classes
        self.size_divisibility = size_divisibility
        self.normalize = Normalize()
        self.criterion = criterion if criterion is not None else SegmentationLoss(num_with_background(num_classes))

    # ---- architecture hook ----------------------------------------------------------------
    @abstractmethod
    def forward_logits(self, x: Tensor) -> Tensor:
        """Normalised Tensor[N, 3, Hs, Ws] -> logits Tensor[N, K + 1, Hs, Ws]."""

    # ---- shared machinery -----------------------------------------------------------------
    def logits(self, images: Tensor) -> Tensor:
        """Images Tensor[N, 3, H, W] (uint8, or float in [0, 1]) -> logits Tensor[N, K + 1, H, W].

        Pads to ``size_divisibility``, runs the network, crops back to ``H x W``.
        """
        x = self.normalize(images)
        h, w = x.shape[-2:]
        d = self.size_divisibility
        pad_h, pad_w = (-h) % d, (-w) % d
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        out = self.forward_logits(x)
        if out.shape[-2:] != x.shape[-2:] or out.shape[1] != num_with_background(self.num_classes):
            raise RuntimeError(f"{type(self).__name__}.forward_logits returned {tuple(out.shape)} for input "
                               f"{tuple(x.shape)}; expected [N, {num_with_background(self.num_classes)}, {x.shape[-2]}, {x.shape[-1]}]")
        return out[..., :h, :w]

    def export_outputs(self, images: Tensor) -> Tensor:
        """Logits Tensor[N, K + 1, H, W] at the input size (what ONNX/TorchScript export carry)."""
        return self.logits(images)

    def check_targets(self, images: Tensor, targets: Sequence[Instances]) -> Tensor:
        """Stack the targets' semantic maps into Tensor[N, H, W] int64, with clear errors."""
        if len(targets) != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {len(targets)} targets")
        maps = []
        for i, t in enumerate(targets):
            sem = t.semantic
            if sem is None:
                raise ValueError(f"target {i} has no semantic map; build the dataset for task 'segmentation' "
                                 "(semantic label maps: 0 background, k + 1 class k, 255 ignore)")
            if tuple(sem.shape) != tuple(images.shape[-2:]):
                raise ValueError(f"target {i}: semantic map {tuple(sem.shape)} does not match the padded image "
                                 f"batch {tuple(images.shape[-2:])}; pad maps with 255 (see detseg.data.collate)")
            maps.append(sem)
        target = torch.stack(maps).to(images.device, torch.int64)
        ignore = self.criterion.ignore_index if hasattr(self.criterion, "ignore_index") else 255
        bad = (target != ignore) & ((target < 0) | (target > self.num_classes))
        if bool(bad.any()):
            values = sorted(set(target[bad].unique().tolist()))[:10]
            raise ValueError(f"semantic labels {values} are outside [0, {self.num_classes}] (0 background, "
                             f"k + 1 class k for num_classes={self.num_classes}) and not the ignore value {ignore}")
        return target

    def loss(self, images: Tensor, targets: Sequence[Instances]) -> dict[str, Tensor]:
        """Pixel losses against ``targets[i].semantic`` (see the class docstring)."""
        target = self.check_targets(images, targets)
        return self.criterion(self.logits(images), target)

    @torch.no_grad()
    def predict(self, images: Tensor, image_sizes: Sequence[tuple[int, int]] | None = None) -> Tensor:
        """Label map Tensor[N, H, W] int64 at the input (padded batch) size.

        ``image_sizes`` (true sizes before batch padding) are accepted for the common model
        interface; pixels beyond them are predicted like any other and ignored by the evaluator.
        """
        return self.logits(images).argmax(dim=1)

    def forward(self, images: Tensor, targets: Sequence[Instances] | None = None):
        """torchvision-style sugar: losses in training mode, label maps in eval mode."""
        if self.training:
            if targets is None:
                raise ValueError(f"{type(self).__name__} in training mode needs targets; call .eval() to predict")
            return self.loss(images, targets)
        return self.predict(images)
