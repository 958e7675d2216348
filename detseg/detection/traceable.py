"""The two detection ops whose torchvision forms do not export, written so they do.

``torch.export`` (behind ``torch.onnx.export(..., dynamo=True)``) records one graph for every
input: a Python branch on data or on a size read with ``int()`` is frozen at the example's
value, and a branch on a data-dependent size fails the export. torchvision's ``batched_nms``
branches on ``boxes.numel()`` (and its coordinate trick on an empty input), and
``MultiScaleRoIAlign`` infers each level's scale from the feature and image sizes in Python.
The forms here have neither, and give the same results:

* :func:`batched_nms`: torchvision's own function when not exporting; under export its
  "coordinate trick" (each group's boxes shifted by ``group * bound`` so groups never overlap)
  with a bound that needs no branch for an empty input;
* :func:`multiscale_roi_align`: RoIAlign on the level torchvision's ``LevelMapper`` picks for
  each box, with the level scales fixed by the strides the model was built with.

Shape shorthand: R boxes, C channels, S x S output size.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torchvision
from torch import Tensor
from torchvision.ops import nms, roi_align


def is_exporting() -> bool:
    """True under ``torch.export`` / the dynamo ONNX exporter or the TorchScript tracer."""
    return torch.compiler.is_exporting() or torch.jit.is_tracing()


def batched_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each group; indices kept, by decreasing score (``torchvision.ops.batched_nms``).

    Args:
        boxes: Tensor[R, 4] xyxy, non-negative coordinates (clipped to the image).
        scores: Tensor[R]; groups: Tensor[R] int64 (class, or image and level).
    """
    if not is_exporting():
        return torchvision.ops.batched_nms(boxes, scores, groups, iou_threshold)
    # a zero appended so the max of an empty input is defined without a branch
    bound = torch.cat([boxes.reshape(-1), boxes.new_zeros(1)]).max() + 1
    return nms(boxes + (groups.to(boxes) * bound)[:, None], scores, iou_threshold)


def multiscale_roi_align(features: Sequence[Tensor], boxes: Tensor, strides: Sequence[int], output_size: int,
                         sampling_ratio: int, canonical_scale: float = 224, canonical_level: float = 4) -> Tensor:
    """RoIAlign of one image's boxes, each on the level its size picks (FPN paper, eq. 1).

    Same rule and arithmetic as torchvision's ``MultiScaleRoIAlign`` (``aligned=False``): level
    ``floor(canonical_level + log2(sqrt(area) / canonical_scale) + 1e-6)`` clamped to the
    levels given. torchvision infers each level's scale from the sizes at run time; here it is
    ``1 / stride``, which is what that inference gives for inputs padded to the largest stride.

    Args:
        features: L maps Tensor[1, C, Hl, Wl] of one image, finest first.
        boxes: Tensor[R, 4] xyxy input pixels.
        strides: L strides, powers of two, increasing.

    Returns:
        Tensor[R, C, S, S].
    """
    rois = torch.cat([torch.zeros_like(boxes[:, :1]), boxes], 1)  # batch index 0: one image
    size = (output_size, output_size)
    if len(features) == 1:
        return roi_align(features[0], rois, size, 1.0 / strides[0], sampling_ratio)
    k_min, k_max = math.log2(strides[0]), math.log2(strides[-1])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    level = torch.floor(canonical_level + torch.log2(torch.sqrt(area) / canonical_scale)
                        + torch.tensor(1e-6, dtype=area.dtype))
    level = level.clamp(min=k_min, max=k_max).to(torch.int64) - int(k_min)
    out = boxes.new_zeros((boxes.shape[0], features[0].shape[1], *size))
    for i, (x, stride) in enumerate(zip(features, strides)):
        idx = (level == i).nonzero().squeeze(1)
        out = out.index_put((idx,), roi_align(x, rois[idx], size, 1.0 / stride, sampling_ratio))
    return out


__all__ = ["batched_nms", "is_exporting", "multiscale_roi_align"]
