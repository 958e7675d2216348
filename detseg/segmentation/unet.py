"""U-Net (Ronneberger, Fischer & Brox, 2015) and a U-Net decoder over any detseg backbone.

Shape shorthand: N images, C = K + 1 classes (background first), H x W input, D the depth
(number of 2x poolings), F the base channel count.

Classic U-Net: ``D`` times (conv3x3-conv3x3, max-pool 2x2) down, a bottleneck conv-conv, then
``D`` times (transposed conv 2x2 stride 2 halving channels, concatenate the encoder map of the
same level, conv-conv) up, and a 1x1 classifier. The paper's unpadded ("valid") convolutions and
centre crops are replaced by "same" convolutions; each skip is still matched by padding or
cropping the upsampled map to the encoder map's size, so the network itself accepts any size
(odd sizes included), and the model additionally pads its input to ``2 ** D`` by default so no
pixel is ever shifted. Batch norm after each conv (``use_bn``) is the common modern addition.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones.base import Backbone
from ..structures.instances import num_with_background
from .base import SemanticSegmenter


def double_conv(in_channels: int, out_channels: int, use_bn: bool = True) -> nn.Sequential:
    """Two 3x3 "same" convs, each followed by (BN and) ReLU."""
    layers: list[nn.Module] = []
    for cin in (in_channels, out_channels):
        layers.append(nn.Conv2d(cin, out_channels, 3, padding=1, bias=not use_bn))
        if use_bn:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def match_size(x: Tensor, ref: Tensor) -> Tensor:
    """Pad (bottom/right, zeros) or crop ``x`` Tensor[N, C, h, w] to ``ref``'s spatial size."""
    dh, dw = ref.shape[-2] - x.shape[-2], ref.shape[-1] - x.shape[-1]
    if dh or dw:
        x = F.pad(x, (0, dw, 0, dh))  # negative padding crops
    return x


class UNet(SemanticSegmenter):
    """The classic encoder-decoder U-Net with skip concatenation.

    Args:
        num_classes: K foreground classes (K + 1 output channels).
        base_channels: F, channels of the first level; level ``i`` has ``F * 2**i``.
        depth: D, number of down/up steps (the paper: 4, F = 64).
        use_bn: batch norm after every conv.
        size_divisibility: model input padding (default ``2 ** depth``; 1 relies on the
            decoder's pad/crop alone).
        criterion: the loss module.

    Example:
        >>> model = UNet(num_classes=3, base_channels=8, depth=3)
        >>> model.logits(torch.zeros(2, 3, 61, 75, dtype=torch.uint8)).shape
        torch.Size([2, 4, 61, 75])
    """

    def __init__(self, num_classes: int, *, base_channels: int = 64, depth: int = 4, use_bn: bool = True,
                 size_divisibility: int | None = None, criterion: nn.Module | None = None) -> None:
        if depth < 1 or base_channels < 1:
            raise ValueError(f"UNet needs depth >= 1 and base_channels >= 1, got {depth}, {base_channels}")
        super().__init__(num_classes, criterion=criterion,
                         size_divisibility=2 ** depth if size_divisibility is None else size_divisibility)
        widths = [base_channels * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([double_conv(3, widths[0], use_bn)] + [
            double_conv(widths[i - 1], widths[i], use_bn) for i in range(1, depth + 1)])
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth)))
        self.merge = nn.ModuleList(double_conv(2 * widths[i], widths[i], use_bn) for i in reversed(range(depth)))
        self.classifier = nn.Conv2d(widths[0], num_with_background(num_classes), 1)

    def forward_logits(self, x: Tensor) -> Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()                                   # bottleneck, stride 2**D
        for up, merge in zip(self.up, self.merge):
            skip = skips.pop()
            x = merge(torch.cat([skip, match_size(up(x), skip)], dim=1))
        return self.classifier(x)


class BackboneUNet(SemanticSegmenter):
    """A U-Net decoder over any detseg backbone used as encoder (smp's ``Unet(encoder)`` idea).

    From the deepest stage up, each decoder step resizes the running map to the next shallower
    stage (bilinear interpolation to that stage's exact size, so stages at equal strides, e.g. a
    dilated backbone, and odd sizes both work), concatenates it and applies conv-conv with that
    stage's channel count (at most ``max_decoder_channels``). The classifier runs at the
    shallowest stage and its logits are interpolated bilinearly to the input size.

    Args:
        backbone: any detseg backbone; every stage in its ``out_features`` is a skip.
        num_classes: K foreground classes.
        max_decoder_channels: cap on decoder channels per step.
        use_bn: batch norm in the decoder convs.
        criterion: the loss module.

    Example:
        >>> model = BackboneUNet(build_backbone("resnet18", width=0.25), num_classes=3)
        >>> model.logits(torch.zeros(1, 3, 65, 47, dtype=torch.uint8)).shape
        torch.Size([1, 4, 65, 47])
    """

    def __init__(self, backbone: Backbone, num_classes: int, *, max_decoder_channels: int = 256,
                 use_bn: bool = True, criterion: nn.Module | None = None) -> None:
        specs = backbone.feature_specs
        super().__init__(num_classes, criterion=criterion, size_divisibility=max(s.stride for s in specs.values()))
        self.backbone = backbone
        self.in_features = tuple(specs)
        channels = [specs[n].channels for n in self.in_features]
        out = [min(c, max_decoder_channels) for c in channels]
        # step j merges stage len-2-j (shallower) into the running map of width out[len-1-j]
        self.reduce = nn.Conv2d(channels[-1], out[-1], 1) if out[-1] != channels[-1] else nn.Identity()
        self.merge = nn.ModuleList(
            double_conv(out[i + 1] + channels[i], out[i], use_bn) for i in reversed(range(len(channels) - 1)))
        self.classifier = nn.Conv2d(out[0], num_with_background(num_classes), 1)

    def forward_logits(self, x: Tensor) -> Tensor:
        feats = self.backbone(x)
        maps: Sequence[Tensor] = [feats[n] for n in self.in_features]
        y = self.reduce(maps[-1])
        for merge, skip in zip(self.merge, reversed(maps[:-1])):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = merge(torch.cat([y, skip], dim=1))
        return F.interpolate(self.classifier(y), size=x.shape[-2:], mode="bilinear", align_corners=False)
