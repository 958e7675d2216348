"""Feature Pyramid Network over any backbone's stages, with ``p*`` names and feature specs.

Wraps ``torchvision.ops.FeaturePyramidNetwork`` (same parameter names, so torchvision detection
checkpoints map onto it) and adds what it lacks: stage-to-level naming (``c3 -> p3``), specs of
the outputs, and a clear error when the backbone does not return the requested stages.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal, Mapping, Sequence

from torch import Tensor
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

from ..backbones.base import FeatureSpec


class FPN(FeaturePyramidNetwork):
    """Top-down pathway with lateral 1x1 and output 3x3 convolutions (Lin et al., 2017).

    Args:
        in_specs: specs of the backbone stages to fuse, in stride order, e.g.
            ``backbone.feature_specs`` restricted to ``("c3", "c4", "c5")``.
        out_channels: channels of every output level.
        extra_levels: ``"none"``; ``"pool"``: ``p{k+1}`` = max-pool(stride 2) of the last level
            (Faster R-CNN's RPN); ``"p6p7"``: two stride-2 3x3 convs on the last level (RetinaNet).

    Inputs/outputs: ``{"c3": Tensor[N, C3, H/8, W/8], ...}`` ->
    ``{"p3": Tensor[N, out_channels, H/8, W/8], ...}``; ``feature_specs`` describes the outputs.

    Example:
        >>> fpn = FPN(backbone.feature_specs, out_channels=64, extra_levels="pool")
        >>> pyramid = fpn(backbone(images))
    """

    def __init__(
        self,
        in_specs: Mapping[str, FeatureSpec],
        out_channels: int = 256,
        extra_levels: Literal["none", "p6p7", "pool"] = "none",
    ) -> None:
        if not in_specs:
            raise ValueError("FPN needs at least one input stage")
        names = list(in_specs)
        strides = [s.stride for s in in_specs.values()]
        if strides != sorted(strides):
            raise ValueError(f"FPN inputs must be ordered by stride, got {dict(zip(names, strides))}")
        extra = {
            "none": None,
            "pool": LastLevelMaxPool(),
            "p6p7": LastLevelP6P7(out_channels, out_channels),
        }[extra_levels]
        super().__init__([s.channels for s in in_specs.values()], out_channels, extra_blocks=extra)
        self.in_features: tuple[str, ...] = tuple(names)
        levels = [int(n[1:]) for n in names]
        self.feature_specs: dict[str, FeatureSpec] = {
            f"p{k}": FeatureSpec(out_channels, s) for k, s in zip(levels, strides)
        }
        for i in range({"none": 0, "pool": 1, "p6p7": 2}[extra_levels]):
            self.feature_specs[f"p{levels[-1] + i + 1}"] = FeatureSpec(out_channels, strides[-1] * 2 ** (i + 1))

    def forward(self, features: Mapping[str, Tensor]) -> "OrderedDict[str, Tensor]":
        """Fuse ``features[in_features]`` into the pyramid described by ``feature_specs``."""
        missing = [n for n in self.in_features if n not in features]
        if missing:
            raise KeyError(
                f"FPN expects backbone stages {list(self.in_features)} but got {list(features)}; "
                f"set the backbone's out_features to include {missing}"
            )
        inputs = OrderedDict((n, features[n]) for n in self.in_features)
        outputs = super().forward(inputs)
        return OrderedDict(zip(self.feature_specs, outputs.values()))


def build_fpn(
    backbone_specs: Mapping[str, FeatureSpec],
    in_features: Sequence[str],
    out_channels: int,
    extra_levels: Literal["none", "p6p7", "pool"] = "none",
) -> FPN:
    """Build an FPN on ``in_features`` of a backbone, checking the stages exist."""
    missing = [n for n in in_features if n not in backbone_specs]
    if missing:
        raise ValueError(
            f"FPN in_features {list(in_features)}: the backbone returns only {list(backbone_specs)}"
        )
    return FPN({n: backbone_specs[n] for n in in_features}, out_channels, extra_levels)
