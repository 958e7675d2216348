"""DeepLab-v3 (Chen et al., 2017): a dilated backbone plus Atrous Spatial Pyramid Pooling.

Shape shorthand: N images, C = K + 1 classes, H x W padded input, s the backbone's output stride
(8 or 16, reached by trading ResNet/VGG strides for dilation: ``build_backbone(...,
output_stride=s)``), A the ASPP channels.

ASPP on the last stage (stride s): a 1x1 conv, three 3x3 convs with atrous rates ``rates``
(6, 12, 18 at s = 16; doubled at s = 8, as in the paper) and image-level pooling (global
average -> 1x1 conv -> broadcast back), concatenated and projected to A by 1x1 conv + BN + ReLU
+ dropout; then a 3x3 conv + BN + ReLU and the 1x1 classifier (torchvision's ``DeepLabHead``
layout), and bilinear upsampling of the logits to the input size.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones.base import Backbone
from ..structures.instances import num_with_background
from .base import SemanticSegmenter


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=dilation * (kernel_size // 2),
                  dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class ImagePooling(nn.Module):
    """Image-level features: global average pool -> 1x1 conv -> ReLU, broadcast to the map size.

    No batch norm here, unlike the paper: on a [N, A, 1, 1] tensor BN sees N values per channel
    and fails outright in training with batch size 1 (a known torchvision DeepLab pitfall); a
    biased conv keeps the branch usable at any batch size.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[N, Cin, h, w] -> Tensor[N, A, h, w] (constant over h, w)."""
        y = F.relu(self.conv(x.mean(dim=(2, 3), keepdim=True)))
        return y.expand(-1, -1, x.shape[-2], x.shape[-1])


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling.

    Args:
        in_channels: channels of the input map.
        out_channels: A, channels of every branch and of the output.
        rates: dilation rates of the 3x3 branches.
        dropout: dropout after the projection (0.1 in DeepLab-v3's released code, 0.5 in
            torchvision).

    Shapes: Tensor[N, in_channels, h, w] -> Tensor[N, A, h, w].
    """

    def __init__(self, in_channels: int, out_channels: int = 256, rates: Sequence[int] = (6, 12, 18),
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(in_channels, out_channels, 1)]
            + [conv_bn_relu(in_channels, out_channels, 3, dilation=r) for r in rates]
            + [ImagePooling(in_channels, out_channels)])
        self.project = nn.Sequential(conv_bn_relu(out_channels * len(self.branches), out_channels, 1),
                                     nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        return self.project(torch.cat([b(x) for b in self.branches], dim=1))


class DeepLabV3(SemanticSegmenter):
    """DeepLab-v3: dilated backbone (output stride 8/16) + ASPP head + bilinear upsampling.

    Args:
        backbone: a detseg backbone built with ``output_stride`` 8 or 16; its last
            ``out_features`` stage feeds the head.
        num_classes: K foreground classes (K + 1 output channels).
        aspp_channels: A.
        rates: atrous rates at output stride 16; ``None`` = (6, 12, 18) scaled by 16 / s.
        dropout: dropout after the ASPP projection.
        criterion: the loss module.

    Example:
        >>> bb = build_backbone("resnet50", out_features=("c5",), output_stride=16, width=0.125)
        >>> model = DeepLabV3(bb, num_classes=3, aspp_channels=32)
        >>> model.predict(torch.zeros(1, 3, 63, 97, dtype=torch.uint8)).shape
        torch.Size([1, 63, 97])
    """

    def __init__(self, backbone: Backbone, num_classes: int, *, aspp_channels: int = 256,
                 rates: Sequence[int] | None = None, dropout: float = 0.1,
                 criterion: nn.Module | None = None) -> None:
        specs = backbone.feature_specs
        stride = max(s.stride for s in specs.values())
        super().__init__(num_classes, criterion=criterion, size_divisibility=stride)
        self.backbone = backbone
        self.in_feature = list(specs)[-1]
        spec = specs[self.in_feature]
        if rates is None:
            rates = tuple(max(1, r * 16 // spec.stride) for r in (6, 12, 18))
        self.rates = tuple(rates)
        self.aspp = ASPP(spec.channels, aspp_channels, self.rates, dropout)
        self.head = conv_bn_relu(aspp_channels, aspp_channels, 3)
        self.classifier = nn.Conv2d(aspp_channels, num_with_background(num_classes), 1)

    def forward_logits(self, x: Tensor) -> Tensor:
        feats = self.backbone(x)[self.in_feature]
        logits = self.classifier(self.head(self.aspp(feats)))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
