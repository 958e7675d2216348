"""The one box convention, ``[N, 4]`` xyxy in absolute pixels, and the few operations on it that
work on numpy arrays (datasets, evaluation) as well as on tensors (models).

Tensors go through ``torchvision.ops`` where it has the operation; numpy arrays get the same
arithmetic, so data and models cannot drift apart on what "clipped" or "xywh" means.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
from torchvision.ops import box_area, box_convert, clip_boxes_to_image

Boxes = TypeVar("Boxes", np.ndarray, torch.Tensor)


def clip(boxes: Boxes, size: tuple[int, int]) -> Boxes:
    """Boxes clipped to an image of ``size = (H, W)``; a new array/tensor of the same type."""
    h, w = (int(v) for v in size)
    if isinstance(boxes, torch.Tensor):
        return clip_boxes_to_image(boxes, (h, w))
    out = np.array(boxes, copy=True)
    out[..., 0::2] = out[..., 0::2].clip(0, w)
    out[..., 1::2] = out[..., 1::2].clip(0, h)
    return out


def to_xywh(boxes: Boxes) -> Boxes:
    """xyxy -> COCO's xywh (top-left corner, width, height)."""
    if isinstance(boxes, torch.Tensor):
        return box_convert(boxes, "xyxy", "xywh")
    return np.concatenate([boxes[..., :2], boxes[..., 2:] - boxes[..., :2]], axis=-1)


def areas(boxes: Boxes) -> Boxes:
    """Box areas ``[N]`` (zero or negative for degenerate boxes: not clamped)."""
    if isinstance(boxes, torch.Tensor):
        return box_area(boxes)
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def sizes_at_least(boxes: Boxes, min_size: float) -> Boxes:
    """``[N]`` bool: width and height both at least ``min_size`` pixels."""
    return ((boxes[..., 2] - boxes[..., 0]) >= min_size) & ((boxes[..., 3] - boxes[..., 1]) >= min_size)
