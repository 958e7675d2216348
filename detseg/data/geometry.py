"""The evaluation resize between an image file and the model input, forward and back.

One home for the affine map ``x' = scale_x * x + pad_x`` (``y`` likewise) that resizes an image
for evaluation and inference: the data pipeline resizes images, boxes and label maps with it
(:mod:`detseg.data.transforms`), and evaluation and inference map boxes, masks and label maps
back through its exact inverse and scale areas by it. Resize modes (``AugmentConfig.resize``),
with ``S = image_size``:

* ``letterbox``: longest side to ``S`` keeping the aspect ratio, then pad to ``S x S`` with the
  image centred (whole-pixel pads);
* ``keep_ratio``: longest side to ``S``, no padding (the collate function pads the batch);
* ``stretch``: ``S x S``, the two axes scaled differently.

Example:
    >>> r = Resize.of((50, 100), 64, "letterbox")
    >>> (r.scale_x, r.pad_y, r.content_size)
    (0.64, 16.0, (32, 64))
    >>> r.boxes_back(r.boxes(np.array([[10.0, 10, 30, 40]]))).round(3).tolist()
    [[10.0, 10.0, 30.0, 40.0]]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..structures import boxes as box_ops

RESIZE_MODES = ("letterbox", "keep_ratio", "stretch")


def scaled_size(h: int, w: int, scale_y: float, scale_x: float) -> tuple[int, int]:
    """``(h, w)`` scaled and rounded to whole pixels (at least 1)."""
    return max(1, int(round(h * scale_y))), max(1, int(round(w * scale_x)))


@dataclass(frozen=True)
class Resize:
    """The evaluation resize of one image.

    Attributes:
        orig_size: ``(H, W)`` of the image file.
        scale_x, scale_y: the scales (equal except for ``stretch``).
        pad_x, pad_y: whole-pixel offsets of the resized image in the canvas (``letterbox``).
        content_size: ``(h, w)`` of the resized image before padding (whole pixels).
    """

    orig_size: tuple[int, int]
    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    content_size: tuple[int, int]

    @classmethod
    def of(cls, orig_size: Sequence[int], image_size: int, mode: str = "letterbox") -> "Resize":
        """The resize of a ``orig_size = (H, W)`` image to ``image_size`` in ``mode``."""
        if mode not in RESIZE_MODES:
            raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
        h, w = (int(v) for v in orig_size)
        if mode == "stretch":
            sx, sy = image_size / w, image_size / h
        else:
            sx = sy = image_size / max(h, w)
        content = scaled_size(h, w, sy, sx)
        px = py = 0.0
        if mode == "letterbox":
            px, py = float((image_size - content[1]) // 2), float((image_size - content[0]) // 2)
        return cls((h, w), sx, sy, px, py, content)

    @classmethod
    def from_config(cls, orig_size: Sequence[int], cfg) -> "Resize":
        """:meth:`of` with ``cfg.image_size`` and ``cfg.resize`` (an ``AugmentConfig``)."""
        return cls.of(orig_size, cfg.image_size, cfg.resize)

    @property
    def area_scale(self) -> float:
        """What multiplies an area of the resized image to give image-file pixels."""
        return 1.0 / (self.scale_x * self.scale_y)

    def _affine(self, boxes):
        scale, pad = [self.scale_x, self.scale_y] * 2, [self.pad_x, self.pad_y] * 2
        if isinstance(boxes, torch.Tensor):
            return boxes.new_tensor(scale), boxes.new_tensor(pad)
        dtype = np.result_type(boxes, np.float32)
        return np.asarray(scale, dtype), np.asarray(pad, dtype)

    def boxes(self, boxes):
        """``[N, 4]`` xyxy boxes of the file -> the resized image (numpy or tensor; not clipped)."""
        scale, pad = self._affine(boxes)
        return boxes * scale + pad

    def boxes_back(self, boxes, clip: bool = True):
        """``[N, 4]`` xyxy boxes of the resized image -> the file, clipped to it by default."""
        scale, pad = self._affine(boxes)
        out = (boxes - pad) / scale
        return box_ops.clip(out, self.orig_size) if clip else out

    def maps_back(self, maps: torch.Tensor) -> torch.Tensor:
        """``[N, h, w]`` maps of the model input (instance masks, label maps, probabilities) ->
        ``[N, H, W]`` float of the file: the padding cropped off, the rest resampled with
        ``nearest-exact`` (pixel centres, as the forward resize samples; ``nearest`` would shift
        maps by half a pixel)."""
        h, w = self.orig_size
        if len(maps) == 0:
            return maps.new_zeros((0, h, w), dtype=torch.float32)
        y0, x0 = int(self.pad_y), int(self.pad_x)
        crop = maps[:, y0: y0 + self.content_size[0], x0: x0 + self.content_size[1]]
        return F.interpolate(crop[:, None].float(), size=(h, w), mode="nearest-exact")[:, 0]

    def detections_back(self, det):
        """A :class:`~detseg.structures.instances.Detections` of the model input -> of the file."""
        masks = det.masks
        if masks is not None:
            masks = self.maps_back(masks) > 0.5
        return replace(det, boxes=self.boxes_back(det.boxes), masks=masks)
