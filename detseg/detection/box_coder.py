"""Box <-> delta encoding of the R-CNN family (Girshick et al., 2014, appendix C).

A box ``g`` relative to a reference ``p`` (anchor or proposal), both xyxy absolute pixels::

    dx = wx * (gx - px) / pw      dw = ww * log(gw / pw)
    dy = wy * (gy - py) / ph      dh = wh * log(gh / ph)

with ``(x, y)`` box centres. ``weights`` rescale the deltas so their spread suits the loss
(``(1, 1, 1, 1)`` in the RPN, ``(10, 10, 5, 5)`` in the RoI heads). Arithmetic follows
torchvision's ``BoxCoder`` operation by operation, so decoded boxes match it bit for bit.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

#: largest dw/dh used when decoding: exp(clip) = 1000/16 keeps boxes finite on wild predictions
DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


class BoxCoder:
    """Encode ground-truth boxes as deltas from reference boxes, and decode deltas back.

    Args:
        weights: ``(wx, wy, ww, wh)``.
        scale_clamp: upper clamp of ``dw, dh`` when decoding.
    """

    def __init__(self, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0), scale_clamp: float = DEFAULT_SCALE_CLAMP) -> None:
        self.weights = tuple(float(w) for w in weights)
        self.scale_clamp = scale_clamp

    def encode(self, gt: Tensor, ref: Tensor) -> Tensor:
        """Tensor[..., 4] ground truth, Tensor[..., 4] references (xyxy) -> Tensor[..., 4] deltas."""
        wx, wy, ww, wh = self.weights
        ref_w = ref[..., 2] - ref[..., 0]
        ref_h = ref[..., 3] - ref[..., 1]
        ref_x = ref[..., 0] + 0.5 * ref_w
        ref_y = ref[..., 1] + 0.5 * ref_h
        gt_w = gt[..., 2] - gt[..., 0]
        gt_h = gt[..., 3] - gt[..., 1]
        gt_x = gt[..., 0] + 0.5 * gt_w
        gt_y = gt[..., 1] + 0.5 * gt_h
        return torch.stack([
            wx * (gt_x - ref_x) / ref_w, wy * (gt_y - ref_y) / ref_h,
            ww * torch.log(gt_w / ref_w), wh * torch.log(gt_h / ref_h),
        ], dim=-1)

    def decode(self, deltas: Tensor, ref: Tensor) -> Tensor:
        """Tensor[..., 4] deltas applied to Tensor[..., 4] references (broadcast) -> boxes xyxy.

        Class-specific decoding passes ``deltas`` [R, C, 4] and ``ref`` [R, 1, 4].
        """
        ref = ref.to(deltas.dtype)
        wx, wy, ww, wh = self.weights
        widths = ref[..., 2] - ref[..., 0]
        heights = ref[..., 3] - ref[..., 1]
        ctr_x = ref[..., 0] + 0.5 * widths
        ctr_y = ref[..., 1] + 0.5 * heights
        dx = deltas[..., 0] / wx
        dy = deltas[..., 1] / wy
        dw = torch.clamp(deltas[..., 2] / ww, max=self.scale_clamp)
        dh = torch.clamp(deltas[..., 3] / wh, max=self.scale_clamp)
        pred_x = dx * widths + ctr_x
        pred_y = dy * heights + ctr_y
        half_w = 0.5 * (torch.exp(dw) * widths)
        half_h = 0.5 * (torch.exp(dh) * heights)
        return torch.stack([pred_x - half_w, pred_y - half_h, pred_x + half_w, pred_y + half_h], dim=-1)


def clip_boxes(boxes: Tensor, sizes: Tensor) -> Tensor:
    """Clip boxes to their images.

    Args:
        boxes: Tensor[..., M, 4] xyxy.
        sizes: Tensor[..., 1, 2] (or broadcastable) ``(H, W)`` per box/image, same dtype.
    """
    x = boxes[..., 0::2].clamp(min=0)
    y = boxes[..., 1::2].clamp(min=0)
    x = torch.minimum(x, sizes[..., 1:2])
    y = torch.minimum(y, sizes[..., 0:1])
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)
