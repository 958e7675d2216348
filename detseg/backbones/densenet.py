"""DenseNet-BC 121/169/201 (Huang et al., 2017, "Densely Connected Convolutional Networks").

Inside a dense block every layer sees the concatenation of all earlier feature maps of the
block, ``x_l = H_l([x_0, x_1, ..., x_{l-1}])``, and adds only ``k`` new channels (the **growth
rate**). A block of L layers on C input channels thus outputs ``C + L * k`` channels. The "BC"
variant used by torchvision and here has

* a **bottleneck** layer ``H_l`` = BN-ReLU-1x1 conv (``4k`` channels)-BN-ReLU-3x3 conv (``k``),
  so the 3x3 conv reads ``4k`` channels however wide the concatenation has grown;
* a **transition** between blocks = BN-ReLU-1x1 conv compressing channels by ``theta = 0.5``,
  then a 2x2 average pool halving H and W.

Module names mirror ``torchvision.models.densenet*`` (new-style keys such as
``denselayer1.norm1``) so torchvision state dicts load strictly.

Shape shorthand: N images, H x W input size, k growth rate, C channels after ``width`` scaling.

Stages (``width=1``; channels of DenseNet-121 / 169 / 201):

====  ====================================  ======  =================
name  modules                               stride  channels
====  ====================================  ======  =================
c1    conv0, norm0, relu0                   2       64
c2    pool0, denseblock1                    4       256
c3    transition1, denseblock2              8       512
c4    transition2, denseblock3              16      1024 / 1280 / 1792
c5    transition3, denseblock4, norm5, relu 32      1024 / 1664 / 1920
====  ====================================  ======  =================

``c2..c4`` are raw block outputs (the next transition starts with BN-ReLU); ``c5`` ends with
``norm5`` and the ReLU that torchvision applies in ``forward`` outside ``features``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import Tensor, nn

from .base import Backbone, FeatureSpec, check_builder_args, scale_channels

__all__ = ["DenseLayer", "DenseBlock", "Transition", "DenseNet",
           "densenet121", "densenet169", "densenet201"]

#: channels of the 1x1 bottleneck conv are BN_SIZE * growth rate
BN_SIZE = 4
#: transitions keep floor(COMPRESSION * channels) channels (theta in the paper)
COMPRESSION = 0.5


class DenseLayer(nn.Module):
    """Bottleneck layer ``H_l``: BN-ReLU-1x1 conv (4k)-BN-ReLU-3x3 conv (k).

    Args:
        in_channels: channels of the concatenated input ``[x_0, ..., x_{l-1}]``.
        growth_rate: ``k``, the channels this layer adds.

    Shapes: Tensor[N, in_channels, h, w] -> new features Tensor[N, k, h, w] (not concatenated).
    """

    def __init__(self, in_channels: int, growth_rate: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, BN_SIZE * growth_rate, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm2d(BN_SIZE * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(
            BN_SIZE * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(out)))


class DenseBlock(nn.Module):
    """``num_layers`` dense layers (``denselayer1..L``), each fed all earlier outputs.

    Args:
        num_layers: L.
        in_channels: C, channels of the block input ``x_0``.
        growth_rate: k.

    Shapes: Tensor[N, C, h, w] -> Tensor[N, C + L * k, h, w] (input and all new features).
    """

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(in_channels + i * growth_rate, growth_rate)
            self.add_module(f"denselayer{i + 1}", layer)
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.children():
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv (compress channels) then 2x2 average pool (stride 2).

    Shapes: Tensor[N, C_in, h, w] -> Tensor[N, C_out, floor(h / 2), floor(w / 2)].
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(Backbone):
    """DenseNet-BC backbone: 7x7 stem + max pool, four dense blocks joined by transitions.

    Args:
        block_config: layers per dense block, e.g. ``(6, 12, 24, 16)`` for DenseNet-121.
        growth_rate: k at ``width=1`` (32 for torchvision's 121/169/201).
        num_init_features: stem channels at ``width=1`` (64).
        num_classes: K outputs of the ``classifier`` head; ``None`` builds no head.
        width: channel multiplier, applied to ``growth_rate`` and ``num_init_features`` (the
            bottleneck factor 4 and compression 0.5 stay), so every channel count scales.
        output_stride: only 32 (average-pool transitions have no dilated form).

    Inputs: ``images: Tensor[N, 3, H, W]``, float, ImageNet mean/std normalised.

    Outputs:
        ``forward``: ordered dict ``{stage: Tensor[N, C_s, ~H / s, ~W / s]}`` for
        ``out_features``; sizes are ``ceil`` through ``pool0`` (stride 4) and then ``floor``
        (the 2x2 average pools), so they can be one less than ``ceil(H / s)``;
        ``classify``: logits ``Tensor[N, K]``.

    Raises:
        ValueError: ``output_stride`` other than 32, ``width <= 0`` or ``num_classes < 1``.

    Example:
        >>> model = densenet121(width=0.125)
        >>> {k: s.channels for k, s in model.feature_specs.items()}
        {'c1': 8, 'c2': 32, 'c3': 64, 'c4': 128, 'c5': 128}
        >>> model(torch.zeros(1, 3, 64, 64))["c5"].shape
        torch.Size([1, 128, 2, 2])
    """

    def __init__(
        self,
        block_config: Sequence[int],
        *,
        growth_rate: int = 32,
        num_init_features: int = 64,
        num_classes: int | None = None,
        width: float = 1.0,
        output_stride: int = 32,
    ) -> None:
        super().__init__()
        # average-pool transitions have no dilated form, so no output_stride 16 / 8
        check_builder_args("DenseNet", num_classes, width, output_stride, (32,))
        self.num_classes = num_classes
        growth_rate = scale_channels(growth_rate, width)
        channels = scale_channels(num_init_features, width)
        self.features = nn.Sequential(OrderedDict(
            conv0=nn.Conv2d(3, channels, kernel_size=7, stride=2, padding=3, bias=False),
            norm0=nn.BatchNorm2d(channels),
            relu0=nn.ReLU(inplace=True),
            pool0=nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        ))
        specs = {"c1": FeatureSpec(channels, 2)}
        for i, num_layers in enumerate(block_config):
            if i > 0:
                out_channels = int(channels * COMPRESSION)
                self.features.add_module(f"transition{i}", Transition(channels, out_channels))
                channels = out_channels
            block = DenseBlock(num_layers, channels, growth_rate)
            self.features.add_module(f"denseblock{i + 1}", block)
            channels = block.out_channels
            specs[f"c{i + 2}"] = FeatureSpec(channels, 2 ** (i + 2))
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        # torchvision applies this ReLU in forward(), outside `features`; as a module here (it
        # has no state, so state-dict keys are unchanged) it can be listed in stage c5
        self.relu5 = nn.ReLU(inplace=True)
        self.stage_specs = specs
        if num_classes is not None:
            self.classifier = nn.Linear(channels, num_classes)
        self._init_weights()
        self.set_out_features(None)

    def _init_weights(self) -> None:
        """torchvision's init: He (fan-in) convs, BN gamma 1 / beta 0, Linear bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def stage_modules(self) -> "OrderedDict[str, list[nn.Module]]":
        """Cut after each dense block; ``c5`` adds ``norm5`` and the final ReLU."""
        f = self.features
        return OrderedDict(
            c1=[f.conv0, f.norm0, f.relu0],
            c2=[f.pool0, f.denseblock1],
            c3=[f.transition1, f.denseblock2],
            c4=[f.transition2, f.denseblock3],
            c5=[f.transition3, f.denseblock4, f.norm5, self.relu5],
        )

    def forward_head(self, last: Tensor) -> Tensor:
        """Global average pool + ``classifier``: Tensor[N, C5, h, w] -> logits Tensor[N, K]."""
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(last, 1), 1))


def densenet121(
    *, num_classes: int | None = None, width: float = 1.0, output_stride: int = 32
) -> DenseNet:
    """DenseNet-121: k = 32, blocks (6, 12, 24, 16), c5 = 1024 channels.

    Args: see :class:`DenseNet`.
    """
    return DenseNet(
        (6, 12, 24, 16), num_classes=num_classes, width=width, output_stride=output_stride
    )


def densenet169(
    *, num_classes: int | None = None, width: float = 1.0, output_stride: int = 32
) -> DenseNet:
    """DenseNet-169: k = 32, blocks (6, 12, 32, 32), c5 = 1664 channels.

    Args: see :class:`DenseNet`.
    """
    return DenseNet(
        (6, 12, 32, 32), num_classes=num_classes, width=width, output_stride=output_stride
    )


def densenet201(
    *, num_classes: int | None = None, width: float = 1.0, output_stride: int = 32
) -> DenseNet:
    """DenseNet-201: k = 32, blocks (6, 12, 48, 32), c5 = 1920 channels.

    Args: see :class:`DenseNet`.
    """
    return DenseNet(
        (6, 12, 48, 32), num_classes=num_classes, width=width, output_stride=output_stride
    )
