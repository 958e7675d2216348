"""Anchor boxes for region proposal networks, laid out as torchvision's ``AnchorGenerator``.

Shape shorthand: L levels, A anchors per location, Hi x Wi the size of level i, T the total
number of anchors ``sum_i Hi * Wi * A``.

Layout (the RPN head's flattened outputs follow it): level by level; inside a level, location
by location in row-major order; inside a location, aspect ratio by ratio, and for each ratio
size by size. Anchors are centred on ``(x * stride, y * stride)`` (the cell's top-left
pixel, as torchvision does) and rounded to whole pixels, so torchvision checkpoints see the
anchors they were trained with.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


def cell_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> Tensor:
    """Anchors around the origin for one level.

    Args:
        sizes: anchor sizes ``s`` in pixels (an anchor of ratio ``r`` has area ``s**2``).
        aspect_ratios: height / width ratios ``r``.

    Returns:
        Tensor[len(ratios) * len(sizes), 4] float32, xyxy, rounded; ratio-major order.
    """
    scales = torch.as_tensor(sizes, dtype=torch.float32)
    ratios = torch.as_tensor(aspect_ratios, dtype=torch.float32)
    h_ratios = torch.sqrt(ratios)
    w_ratios = 1 / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).view(-1)
    hs = (h_ratios[:, None] * scales[None, :]).view(-1)
    return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()


class AnchorGenerator(nn.Module):
    """Anchors of several sizes and aspect ratios at every location of every level.

    Args:
        sizes: one tuple of sizes (pixels) per level, e.g. ``((32,), (64,), ...)`` for an FPN
            or ``((128, 256, 512),)`` for a single feature map.
        aspect_ratios: height / width ratios, one tuple per level (or one tuple for all).

    Example:
        >>> gen = AnchorGenerator(((32,),), ((1.0,),))
        >>> gen([(2, 2)], (32, 32))[0]       # stride 16: centres 0 and 16
        tensor([[-16., -16., 16., 16.], [0., -16., 32., 16.], [-16., 0., 16., 32.], [0., 0., 32., 32.]])
    """

    def __init__(self, sizes: Sequence[Sequence[float]], aspect_ratios: Sequence[Sequence[float]]) -> None:
        super().__init__()
        if len(aspect_ratios) == 1 and len(sizes) > 1:
            aspect_ratios = tuple(aspect_ratios) * len(sizes)
        if len(sizes) != len(aspect_ratios):
            raise ValueError(f"{len(sizes)} levels of anchor sizes but {len(aspect_ratios)} of aspect ratios")
        self.sizes = tuple(tuple(float(s) for s in level) for level in sizes)
        self.aspect_ratios = tuple(tuple(float(r) for r in level) for level in aspect_ratios)
        self.cells = [cell_anchors(s, r) for s, r in zip(self.sizes, self.aspect_ratios)]
        self._cache: dict[tuple, list[Tensor]] = {}

    @property
    def num_anchors_per_location(self) -> list[int]:
        """A for each level."""
        return [len(c) for c in self.cells]

    def forward(self, feature_sizes: Sequence[tuple[int, int]], image_size: tuple[int, int],
                device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> list[Tensor]:
        """Anchors for feature maps of the given sizes on a (padded) input of ``image_size``.

        Args:
            feature_sizes: ``(Hi, Wi)`` per level.
            image_size: ``(Hp, Wp)`` of the padded input batch; the stride of level ``i`` is
                ``Hp // Hi`` (and ``Wp // Wi``), as in torchvision.

        Returns:
            One Tensor[Hi * Wi * A, 4] per level, xyxy absolute pixels.
        """
        if len(feature_sizes) != len(self.cells):
            raise ValueError(
                f"anchor generator has {len(self.cells)} levels of sizes {self.sizes} but got "
                f"{len(feature_sizes)} feature maps; give one anchor-size tuple per RPN level"
            )
        sizes = [v for hw in feature_sizes for v in hw] + list(image_size)
        if not all(isinstance(v, int) for v in sizes):  # symbolic sizes (export): computed in the graph
            return [self._grid(cell, hw, image_size, device, dtype) for cell, hw in zip(self.cells, feature_sizes)]
        key = (tuple(map(tuple, feature_sizes)), tuple(image_size), str(device), dtype)
        if key not in self._cache:
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[key] = [self._grid(cell, hw, image_size, device, dtype)
                                for cell, hw in zip(self.cells, feature_sizes)]
        return self._cache[key]

    @staticmethod
    def _grid(cell: Tensor, hw: tuple[int, int], image_size: tuple[int, int], device, dtype) -> Tensor:
        h, w = hw
        stride_y, stride_x = image_size[0] // h, image_size[1] // w
        shift_x = torch.arange(w, dtype=torch.int32, device=device) * stride_x
        shift_y = torch.arange(h, dtype=torch.int32, device=device) * stride_y
        sy, sx = torch.meshgrid(shift_y, shift_x, indexing="ij")
        sx, sy = sx.reshape(-1), sy.reshape(-1)
        shifts = torch.stack((sx, sy, sx, sy), dim=1)
        # [HW, 1, 4] + [1, A, 4]: location-major, anchor-minor (the head's flattening order)
        return (shifts.view(-1, 1, 4) + cell.to(device).view(1, -1, 4)).reshape(-1, 4).to(dtype)


def default_anchor_sizes(strides: Sequence[int], single_map: bool) -> tuple[tuple[float, ...], ...]:
    """``(8 * stride,)`` per FPN level (torchvision's 32..512 on p2..p6); ``(128, 256, 512)``
    on a single feature map (the Faster R-CNN paper)."""
    if single_map:
        return ((128.0, 256.0, 512.0),)
    return tuple((8.0 * s,) for s in strides)


__all__ = ["AnchorGenerator", "cell_anchors", "default_anchor_sizes"]
