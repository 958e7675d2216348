"""CSP-Darknet: the YOLOv5/v8-family backbone (Wang et al., 2019 "CSPNet"; Bochkovskiy et al., 2020).

Built from three blocks that the YOLO neck (:mod:`detseg.necks.pan`) reuses:

* :class:`ConvBNAct`: conv (no bias) + batch norm + SiLU, the unit of every YOLO since v4;
* :class:`C2f`: a cross-stage-partial block: a 1x1 conv splits the channels in two halves, one
  half runs through ``n`` residual :class:`Bottleneck` s, and *every* intermediate output is
  concatenated before a 1x1 fusion conv (richer gradient flow than C3 at the same cost);
* :class:`SPPF`: three chained 5x5 max-pools concatenated, i.e. spatial pyramid pooling with
  receptive fields 5/9/13 at the cost of one 5x5 pool each.

Scale variants multiply the base depths ``(3, 6, 6, 3)`` (bottlenecks per C2f stage) by ``depth``
and the base channels ``(64, 128, 256, 512, 1024)`` by ``width`` (rounded up to multiples of 8,
capped at ``max_channels * width``), as Ultralytics' n/s/m rows do (``0.33/0.25``, ``0.33/0.5``,
``0.67/0.75`` with ``max_channels`` 1024, 1024, 768).

Shape shorthand: N images, H x W input size, C = base channels x ``width``.

====  ==========================  ======  ========
name  modules                     stride  channels
====  ==========================  ======  ========
c1    stem (3x3 s2)               2       64
c2    conv s2, C2f(3d)            4       128
c3    conv s2, C2f(6d)            8       256
c4    conv s2, C2f(6d)            16      512
c5    conv s2, C2f(3d), SPPF      32      1024
====  ==========================  ======  ========
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Sequence

import torch
from torch import Tensor, nn

from .base import Backbone, FeatureSpec, check_builder_args

__all__ = ["ConvBNAct", "Bottleneck", "C2f", "SPPF", "CSPDarknet", "csp_darknet", "make_divisible"]


def make_divisible(channels: float, divisor: int = 8) -> int:
    """Round ``channels`` up to a multiple of ``divisor`` (at least ``divisor``)."""
    return max(divisor, int(math.ceil(channels / divisor) * divisor))


def scaled_depth(n: int, depth: float) -> int:
    """Number of repeated blocks after the depth multiplier (at least 1)."""
    return max(1, round(n * depth)) if n > 1 else n


class ConvBNAct(nn.Sequential):
    """``Conv2d(k, stride, padding=k//2, bias=False) -> BatchNorm2d -> SiLU``.

    Shapes: Tensor[N, in_channels, h, w] -> Tensor[N, out_channels, ceil(h/stride), ceil(w/stride)].
    BN uses YOLO's ``eps=1e-3, momentum=0.03`` (slow running statistics suit long schedules).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels, eps=1e-3, momentum=0.03),
            nn.SiLU(inplace=True),
        )


class Bottleneck(nn.Module):
    """Two 3x3 :class:`ConvBNAct`, plus the input when ``shortcut`` and channels match."""

    def __init__(self, in_channels: int, out_channels: int, shortcut: bool = True, expansion: float = 1.0) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.cv1 = ConvBNAct(in_channels, hidden, 3)
        self.cv2 = ConvBNAct(hidden, out_channels, 3)
        self.add = shortcut and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """CSP block with two convolutions and ``n`` bottlenecks on half of the channels.

    Args:
        in_channels / out_channels: channels of input and output.
        n: number of :class:`Bottleneck` s.
        shortcut: residual bottlenecks (backbone) or plain ones (neck).
        expansion: share of ``out_channels`` each half gets.

    Shapes: Tensor[N, in_channels, h, w] -> Tensor[N, out_channels, h, w].
    """

    def __init__(self, in_channels: int, out_channels: int, n: int = 1, shortcut: bool = False,
                 expansion: float = 0.5) -> None:
        super().__init__()
        self.hidden = int(out_channels * expansion)
        self.cv1 = ConvBNAct(in_channels, 2 * self.hidden, 1)
        self.cv2 = ConvBNAct((2 + n) * self.hidden, out_channels, 1)
        self.m = nn.ModuleList(Bottleneck(self.hidden, self.hidden, shortcut) for _ in range(n))

    def forward(self, x: Tensor) -> Tensor:
        parts = list(self.cv1(x).chunk(2, dim=1))
        for block in self.m:
            parts.append(block(parts[-1]))
        return self.cv2(torch.cat(parts, dim=1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: ``cat(x, p(x), p(p(x)), p(p(p(x))))`` with 5x5 max-pools.

    Shapes: Tensor[N, in_channels, h, w] -> Tensor[N, out_channels, h, w].
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.cv1 = ConvBNAct(in_channels, hidden, 1)
        self.cv2 = ConvBNAct(hidden * 4, out_channels, 1)
        self.m = nn.MaxPool2d(kernel_size, stride=1, padding=kernel_size // 2)

    def forward(self, x: Tensor) -> Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.m(y[-1]))
        return self.cv2(torch.cat(y, dim=1))


class CSPDarknet(Backbone):
    """CSP-Darknet with C2f stages and SPPF (the YOLOv8 backbone layout), stages ``c1..c5``.

    Args:
        width: channel multiplier (nano 0.25, small 0.5, medium 0.75).
        depth: block-count multiplier (nano/small 0.33, medium 0.67).
        max_channels: cap on base channels before ``width`` (1024; 768 for medium).
        num_classes: add a GAP + linear classifier head with K outputs (``classify``).

    Example:
        >>> bb = CSPDarknet(width=0.25, depth=0.33)
        >>> bb.set_out_features(("c3", "c4", "c5"))
        >>> {k: (s.channels, s.stride) for k, s in bb.feature_specs.items()}
        {'c3': (64, 8), 'c4': (128, 16), 'c5': (256, 32)}
    """

    base_channels = (64, 128, 256, 512, 1024)
    base_depths = (3, 6, 6, 3)

    def __init__(self, width: float = 1.0, depth: float = 1.0, max_channels: int = 1024,
                 num_classes: int | None = None) -> None:
        super().__init__()
        ch = [make_divisible(min(c, max_channels) * width) for c in self.base_channels]
        n = [scaled_depth(d, depth) for d in self.base_depths]
        self.stem = ConvBNAct(3, ch[0], 3, 2)
        self.stage2 = nn.Sequential(ConvBNAct(ch[0], ch[1], 3, 2), C2f(ch[1], ch[1], n[0], shortcut=True))
        self.stage3 = nn.Sequential(ConvBNAct(ch[1], ch[2], 3, 2), C2f(ch[2], ch[2], n[1], shortcut=True))
        self.stage4 = nn.Sequential(ConvBNAct(ch[2], ch[3], 3, 2), C2f(ch[3], ch[3], n[2], shortcut=True))
        self.stage5 = nn.Sequential(ConvBNAct(ch[3], ch[4], 3, 2), C2f(ch[4], ch[4], n[3], shortcut=True),
                                    SPPF(ch[4], ch[4]))
        self.stage_specs = {f"c{i + 1}": FeatureSpec(c, 2 ** (i + 1)) for i, c in enumerate(ch)}
        self.num_classes = num_classes
        if num_classes is not None:
            self.fc = nn.Linear(ch[4], num_classes)
        self.set_out_features(None)

    def stage_modules(self) -> "OrderedDict[str, Sequence[nn.Module]]":
        return OrderedDict(c1=[self.stem], c2=[self.stage2], c3=[self.stage3], c4=[self.stage4], c5=[self.stage5])

    def forward_head(self, last: Tensor) -> Tensor:
        return self.fc(last.mean(dim=(2, 3)))


def csp_darknet(*, num_classes: int | None = None, width: float = 1.0, output_stride: int = 32,
                depth: float = 1.0, max_channels: int = 1024) -> CSPDarknet:
    """CSP-Darknet builder for :data:`detseg.backbones.build.BACKBONES` (``depth``/``max_channels``
    are builder options; YOLO's scale variants set them)."""
    check_builder_args("csp_darknet", num_classes, width, output_stride, (32,))
    if depth <= 0:
        raise ValueError(f"depth must be > 0, got {depth}")
    return CSPDarknet(width=width, depth=depth, max_channels=max_channels, num_classes=num_classes)
