"""Path Aggregation Network (Liu et al., 2018 "PANet"), in the YOLOv5/v8 form.

An FPN's top-down pathway carries semantics down to the fine levels; PAN adds a **bottom-up**
pathway after it, so localisation detail from the fine levels reaches the coarse ones in a few
layers instead of through the whole backbone. Fusion is by concatenation followed by a
:class:`~detseg.backbones.csp_darknet.C2f` block (not the FPN's sum + 3x3 conv), as in YOLOv8.

Shape shorthand: N images; levels 3..5 with strides 8/16/32 and sizes Hl x Wl.

::

    c5 ───────────────────────────────┐──────────────────────────── cat -> C2f -> p5
     │ up                              │                              ↑ conv s2
    cat(c4) -> C2f -> t4 ──────────────┼──── cat -> C2f -> p4 ─────────┘
                       │ up            │         ↑ conv s2
                      cat(c3) -> C2f -> p3 ──────┘

Upsampling is nearest-neighbour *to the skip's size* (not a fixed factor 2), so inputs whose
size is not a multiple of 32 work.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones.base import FeatureSpec
from ..backbones.csp_darknet import C2f, ConvBNAct


class PAN(nn.Module):
    """Top-down then bottom-up fusion of three backbone stages into ``p3, p4, p5``.

    Args:
        in_specs: specs of exactly three backbone stages in stride order, e.g.
            ``{"c3": (64, 8), "c4": (128, 16), "c5": (256, 32)}``.
        out_channels: channels of ``p3, p4, p5``; ``None`` keeps the input channels (YOLOv8).
        depth: bottlenecks per C2f block (YOLOv8: ``3 x depth multiplier``, at least 1).

    Inputs/outputs: ``{"c3": Tensor[N, C3, H3, W3], ...}`` -> ``{"p3": Tensor[N, O3, H3, W3],
    "p4": ..., "p5": ...}``; ``feature_specs`` describes the outputs.

    Example:
        >>> pan = PAN(backbone.feature_specs, out_channels=(64, 128, 256), depth=1)
        >>> pyramid = pan(backbone(images))        # {"p3": ..., "p4": ..., "p5": ...}
    """

    def __init__(self, in_specs: Mapping[str, FeatureSpec], out_channels: Sequence[int] | None = None,
                 depth: int = 1) -> None:
        super().__init__()
        names = list(in_specs)
        if len(names) != 3:
            raise ValueError(f"PAN fuses exactly three stages (e.g. c3, c4, c5), got {names}")
        strides = [s.stride for s in in_specs.values()]
        if any(b != 2 * a for a, b in zip(strides, strides[1:])):
            raise ValueError(f"PAN inputs must have strides s, 2s, 4s, got {dict(zip(names, strides))}")
        c3, c4, c5 = (s.channels for s in in_specs.values())
        o3, o4, o5 = tuple(out_channels) if out_channels is not None else (c3, c4, c5)
        self.in_features: tuple[str, ...] = tuple(names)
        self.top_down4 = C2f(c5 + c4, o4, depth)
        self.top_down3 = C2f(o4 + c3, o3, depth)
        self.down3 = ConvBNAct(o3, o3, 3, 2)
        self.bottom_up4 = C2f(o3 + o4, o4, depth)
        self.down4 = ConvBNAct(o4, o4, 3, 2)
        self.bottom_up5 = C2f(o4 + c5, o5, depth)
        levels = [int(n[1:]) for n in names]
        self.feature_specs: dict[str, FeatureSpec] = {
            f"p{k}": FeatureSpec(c, s) for k, c, s in zip(levels, (o3, o4, o5), strides)
        }

    def forward(self, features: Mapping[str, Tensor]) -> "OrderedDict[str, Tensor]":
        """Fuse ``features[in_features]`` into the levels described by ``feature_specs``."""
        missing = [n for n in self.in_features if n not in features]
        if missing:
            raise KeyError(
                f"PAN expects backbone stages {list(self.in_features)} but got {list(features)}; "
                f"set the backbone's out_features to include {missing}"
            )
        x3, x4, x5 = (features[n] for n in self.in_features)
        t4 = self.top_down4(torch.cat([F.interpolate(x5, size=x4.shape[-2:], mode="nearest"), x4], 1))
        p3 = self.top_down3(torch.cat([F.interpolate(t4, size=x3.shape[-2:], mode="nearest"), x3], 1))
        p4 = self.bottom_up4(torch.cat([self.down3(p3), t4], 1))
        p5 = self.bottom_up5(torch.cat([self.down4(p4), x5], 1))
        return OrderedDict(zip(self.feature_specs, (p3, p4, p5)))


def build_pan(backbone_specs: Mapping[str, FeatureSpec], in_features: Sequence[str],
              out_channels: Sequence[int] | None = None, depth: int = 1) -> PAN:
    """Build a PAN on ``in_features`` of a backbone, checking the stages exist."""
    missing = [n for n in in_features if n not in backbone_specs]
    if missing:
        raise ValueError(
            f"PAN in_features {list(in_features)}: the backbone returns only {list(backbone_specs)}"
        )
    return PAN({n: backbone_specs[n] for n in in_features}, out_channels, depth)
