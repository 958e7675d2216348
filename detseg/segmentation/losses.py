"""Pixel-wise losses of the semantic segmentation models.

Shape shorthand: N images, C = K + 1 classes (background first), H x W pixels.
Targets follow the detseg label-map convention: 0 background, ``k + 1`` foreground class ``k``,
``ignore_index`` (255) for unlabelled pixels, crowd regions and batch padding.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def dice_loss(logits: Tensor, target: Tensor, ignore_index: int = 255, smooth: float = 1.0) -> Tensor:
    """Soft multi-class Dice loss ``1 - mean_c dice_c`` on softmax probabilities.

    Ignored pixels are removed from both the probabilities and the one-hot targets. The mean runs
    over the classes present in the target or predicted with some mass in the batch; ``smooth``
    keeps classes absent from both at dice 1 (they neither help nor hurt).

    Args:
        logits: Tensor[N, C, H, W] raw scores.
        target: Tensor[N, H, W] int64 in ``[0, C)`` or ``ignore_index``.
        ignore_index: label of pixels that take no part.
        smooth: additive smoothing of numerator and denominator.

    Returns:
        Scalar tensor in ``[0, 1]``.
    """
    num_classes = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1)                           # [N, 1, H, W]
    probs = logits.float().softmax(dim=1) * valid
    onehot = F.one_hot(target.clamp(0, num_classes - 1) * valid[:, 0], num_classes)
    onehot = onehot.permute(0, 3, 1, 2).to(probs.dtype) * valid              # [N, C, H, W]
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + smooth) / (denom + smooth)
    return 1 - dice.mean()


class SegmentationLoss(nn.Module):
    """Cross-entropy with an ignore index and optional class weights, plus an optional Dice term.

    Args:
        num_classes: C, the number of output channels (foreground classes + 1 for background).
        ignore_index: target value whose pixels contribute nothing (loss nor gradient).
        class_weights: C per-class weights of the cross-entropy (background first), or ``None``.
            With weights the mean is taken over the *weighted* valid pixels (PyTorch's rule).
        dice_weight: weight of the soft Dice term; 0 leaves it out (no ``loss_dice`` key).

    Returns (``forward``):
        ``{"loss_seg": ce}`` and, when ``dice_weight > 0``, ``"loss_dice": dice_weight * dice``.
        A batch whose pixels are all ignored gives zero losses that still backpropagate
        (``F.cross_entropy`` alone would return NaN there: 0 / 0).

    Example:
        >>> criterion = SegmentationLoss(4, class_weights=(0.5, 1, 1, 1), dice_weight=0.5)
        >>> criterion(logits, target)     # logits [N, 4, H, W], target [N, H, W]
        {'loss_seg': tensor(...), 'loss_dice': tensor(...)}
    """

    def __init__(self, num_classes: int, *, ignore_index: int = 255,
                 class_weights: Sequence[float] | None = None, dice_weight: float = 0.0) -> None:
        super().__init__()
        if class_weights is not None:
            if len(class_weights) != num_classes:
                raise ValueError(
                    f"class_weights has {len(class_weights)} values for {num_classes} classes "
                    "(background counts: give K + 1 weights, background first)")
            if any(w < 0 for w in class_weights):
                raise ValueError(f"class_weights must be >= 0, got {tuple(class_weights)}")
        if dice_weight < 0:
            raise ValueError(f"dice_weight must be >= 0, got {dice_weight}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.dice_weight = dice_weight
        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", weight, persistent=False)

    def forward(self, logits: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Losses of ``logits`` Tensor[N, C, H, W] against ``target`` Tensor[N, H, W] int64."""
        if logits.shape[0] != target.shape[0] or logits.shape[2:] != target.shape[1:]:
            raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ in "
                             "batch or spatial size; targets must be at the logits' resolution")
        # fp32 loss under autocast: a log-softmax over few classes in bf16 loses the small terms
        logits = logits.float()
        valid = target != self.ignore_index
        if not bool(valid.any()):
            zero = logits.sum() * 0.0
            losses = {"loss_seg": zero}
            if self.dice_weight > 0:
                losses["loss_dice"] = zero.clone()
            return losses
        losses = {"loss_seg": F.cross_entropy(logits, target, weight=self.class_weights,
                                              ignore_index=self.ignore_index)}
        if self.dice_weight > 0:
            losses["loss_dice"] = self.dice_weight * dice_loss(logits, target, self.ignore_index)
        return losses
