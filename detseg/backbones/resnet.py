"""ResNet-18/34/50/101 (He et al., 2015, "Deep Residual Learning for Image Recognition").

A residual block learns a correction ``F(x)`` added to its input: ``y = relu(F(x) + shortcut(x))``.
The shortcut is the **identity** when shape is kept and a **projection** (1x1 conv + BN, strided
like the block) when the block changes channels or resolution. Two residual branches:

* :class:`BasicBlock` (ResNet-18/34): 3x3 -> 3x3, output channels = ``planes``;
* :class:`Bottleneck` (ResNet-50/101): 1x1 reduce -> 3x3 -> 1x1 expand, output channels =
  ``4 * planes``, so the costly 3x3 runs on 4x fewer channels. As in torchvision ("ResNet v1.5")
  the stride sits on the 3x3 conv, not on the first 1x1 as in the paper.

Module names mirror ``torchvision.models.resnet*`` so torchvision state dicts load strictly.

Shape shorthand: N images, H x W input size, C = channels after ``width`` scaling.

Stages (strides at ``output_stride=32``; channels at ``width=1``, BasicBlock / Bottleneck):

====  ====================  ======  =============
name  modules               stride  channels
====  ====================  ======  =============
c1    conv1, bn1, relu      2       64
c2    maxpool, layer1       4       64 / 256
c3    layer2                8       128 / 512
c4    layer3                16      256 / 1024
c5    layer4                32      512 / 2048
====  ====================  ======  =============
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import Tensor, nn

from .base import Backbone, FeatureSpec, check_builder_args, scale_channels

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50", "resnet101"]


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 conv without bias (BN follows); ``padding = dilation`` keeps size at stride 1."""
    return nn.Conv2d(
        in_channels, out_channels, kernel_size=3, stride=stride, padding=dilation,
        dilation=dilation, bias=False,
    )


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 conv without bias (BN follows)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Residual block ``relu(bn2(conv3x3(relu(bn1(conv3x3(x))))) + shortcut(x))``.

    Args:
        in_channels: channels of the input ``x``.
        planes: channels of both 3x3 convs and of the output (``expansion = 1``).
        stride: stride of ``conv1`` (and of the projection shortcut); 2 halves H and W.
        dilation: dilation of the 3x3 convs that run after the (replaced) stride.
        first_dilation: dilation of ``conv1``, the conv that carries the stride; it differs from
            ``dilation`` only in the first block of a dilated layer. Default: ``dilation``.
        downsample: projection shortcut (``conv1x1 + BN``) when channels or stride change;
            ``None`` means the identity shortcut.

    Shapes: Tensor[N, in_channels, h, w] -> Tensor[N, planes, ceil(h / stride), ceil(w / stride)].
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        first_dilation: int | None = None,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, planes, stride, first_dilation or dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def last_bn(self) -> nn.BatchNorm2d:
        """The BN that ends the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn2

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """Residual block 1x1 (reduce to ``planes``) -> 3x3 -> 1x1 (expand to ``4 * planes``).

    Args:
        in_channels: channels of the input ``x``.
        planes: channels of the inner 1x1 and 3x3 convs; the output has ``4 * planes``.
        stride: stride of the 3x3 ``conv2`` (and of the projection shortcut).
        dilation: dilation of ``conv2``, the only 3x3 conv.
        first_dilation: overrides ``dilation`` in the first block of a dilated layer, where
            ``conv2`` carried the stride that dilation replaced (torchvision uses the previous
            layer's dilation there). Default: ``dilation``.
        downsample: projection shortcut, or ``None`` for the identity.

    Shapes: Tensor[N, in_channels, h, w] -> Tensor[N, 4 * planes, ceil(h / s), ceil(w / s)],
    s = ``stride``.
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        first_dilation: int | None = None,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, first_dilation or dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def last_bn(self) -> nn.BatchNorm2d:
        """The BN that ends the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


def _make_layer(
    block: type[BasicBlock] | type[Bottleneck],
    in_channels: int,
    planes: int,
    num_blocks: int,
    stride: int,
    dilation: int,
    previous_dilation: int,
) -> nn.Sequential:
    """One ResNet layer: only its first block strides and may need a projection shortcut.

    Args:
        stride: stride of the first block (1 when it was traded for dilation).
        dilation: dilation of every 3x3 conv after the (traded) stride.
        previous_dilation: dilation of the first block's strided conv (the previous layer's).
    """
    out_channels = planes * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels)
        )
    blocks = [block(in_channels, planes, stride, dilation, previous_dilation, downsample)]
    blocks += [block(out_channels, planes, dilation=dilation) for _ in range(1, num_blocks)]
    return nn.Sequential(*blocks)


class ResNet(Backbone):
    """ResNet backbone: a 7x7 stem, a 3x3 max pool, then four layers of residual blocks.

    ``layer1`` keeps the resolution; ``layer2..4`` each halve it in their first block and double
    ``planes``. With ``output_stride`` 16 (or 8) the stride of ``layer4`` (and ``layer3``) is
    replaced by dilation 2 (and 4) so deeper stages keep resolution without changing any
    weight's shape (torchvision's ``replace_stride_with_dilation``; DeepLab-style segmentation).

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: number of blocks in ``layer1..4``, e.g. ``(3, 4, 6, 3)``.
        num_classes: K outputs of the ``fc`` head; ``None`` builds no head (feature extractor).
        width: channel multiplier applied to every channel count (``0.125``: tiny test models).
        output_stride: 32, 16 or 8, the stride of ``c5``.
        zero_init_residual: start each residual branch's last BN at gamma 0, so every block
            starts as the identity (Goyal et al., 2017); helps training from scratch.

    Inputs: ``images: Tensor[N, 3, H, W]``, float, ImageNet mean/std normalised.

    Outputs:
        ``forward``: ordered dict ``{stage: Tensor[N, C_s, ceil(H / s), ceil(W / s)]}`` for
        ``out_features`` (s = the stage's stride in ``feature_specs``);
        ``classify``: logits ``Tensor[N, K]``.

    Raises:
        ValueError: unsupported ``output_stride``, ``width <= 0`` or ``num_classes < 1``.

    Example:
        >>> model = resnet50(width=0.125, output_stride=16)
        >>> {k: (s.channels, s.stride) for k, s in model.feature_specs.items()}["c5"]
        (256, 16)
        >>> model(torch.zeros(1, 3, 64, 64))["c5"].shape
        torch.Size([1, 256, 4, 4])
    """

    #: output_stride -> which of layer2..4 trade their stride for dilation
    _DILATE = {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        *,
        num_classes: int | None = None,
        width: float = 1.0,
        output_stride: int = 32,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        check_builder_args("ResNet", num_classes, width, output_stride, tuple(self._DILATE))
        self.num_classes = num_classes
        channels = scale_channels(64, width)
        self.conv1 = nn.Conv2d(3, channels, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        specs = {"c1": FeatureSpec(channels, 2)}
        stride, dilation = 4, 1
        dilate = (False,) + self._DILATE[output_stride]
        for i, num_blocks in enumerate(layers):
            layer_stride, previous_dilation = (1 if i == 0 else 2), dilation
            if dilate[i]:
                # keep the receptive field the stride would give: later convs dilate by it
                dilation, layer_stride = dilation * layer_stride, 1
            stride *= layer_stride
            planes = scale_channels(64 * 2**i, width)
            layer = _make_layer(
                block, channels, planes, num_blocks, layer_stride, dilation, previous_dilation
            )
            self.add_module(f"layer{i + 1}", layer)
            channels = planes * block.expansion
            specs[f"c{i + 2}"] = FeatureSpec(channels, stride)
        self.stage_specs = specs
        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(channels, num_classes)
        self._init_weights(zero_init_residual)
        self.set_out_features(None)

    def _init_weights(self, zero_init_residual: bool) -> None:
        """torchvision's init: He (fan-out) convs, BN gamma 1 / beta 0, default Linear init."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn().weight)

    def stage_modules(self) -> "OrderedDict[str, list[nn.Module]]":
        """``c1``: stem conv/BN/ReLU; ``c2``: max pool + ``layer1``; ``c3..c5``: ``layer2..4``."""
        return OrderedDict(
            c1=[self.conv1, self.bn1, self.relu],
            c2=[self.maxpool, self.layer1],
            c3=[self.layer2],
            c4=[self.layer3],
            c5=[self.layer4],
        )

    def forward_head(self, last: Tensor) -> Tensor:
        """Global average pool + ``fc``: Tensor[N, C5, h, w] -> logits Tensor[N, K]."""
        return self.fc(torch.flatten(self.avgpool(last), 1))


def resnet18(
    *, num_classes: int | None = None, width: float = 1.0, output_stride: int = 32,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-18: BasicBlock x (2, 2, 2, 2); c2..c5 channels 64/128/256/512 (at ``width=1``).

    Args: see :class:`ResNet`.
    """
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes=num_classes, width=width,
                  output_stride=output_stride, zero_init_residual=zero_init_residual)


def resnet34(
    *, num_classes: int | None = None, width: float = 1.0, output_stride: int = 32,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-34: BasicBlock x (3, 4, 6, 3); c2..c5 channels 64/128/256/512.

    Args: see :class:`ResNet`.
    """
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes=num_classes, width=width,
                  output_stride=output_stride, zero_init_residual=zero_init_residual)


def resnet50(
    *, num_classes: int | None = None, width: float = 1.0, output_stride: int = 32,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-50: Bottleneck x (3, 4, 6, 3); c2..c5 channels 256/512/1024/2048.

    Args: see :class:`ResNet`.
    """
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes=num_classes, width=width,
                  output_stride=output_stride, zero_init_residual=zero_init_residual)


def resnet101(
    *, num_classes: int | None = None, width: float = 1.0, output_stride: int = 32,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-101: Bottleneck x (3, 4, 23, 3); c2..c5 channels 256/512/1024/2048.

    Args: see :class:`ResNet`.
    """
    return ResNet(Bottleneck, (3, 4, 23, 3), num_classes=num_classes, width=width,
                  output_stride=output_stride, zero_init_residual=zero_init_residual)
