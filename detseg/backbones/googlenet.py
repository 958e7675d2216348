"""GoogLeNet / Inception v1 (Szegedy et al., 2014), with torchvision's module names and shapes.

The Inception module runs 1x1, 3x3 and "5x5" convs and a max-pool side by side and concatenates
them; cheap 1x1 *bottleneck* convs in front of the expensive spatial convs (and after the pool)
keep the cost down. torchvision's ``googlenet-*.pth`` loads with ``strict=True``.

Shape shorthand: N images, H x W input size, K classes.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Backbone, FeatureSpec, check_builder_args, scale_channels


class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm (eps 0.001, as in the TF-ported weights) + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **conv_kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """Four parallel branches concatenated on channels; spatial size is unchanged.

    ``branch1``: 1x1 conv. ``branch2``: 1x1 reduce -> 3x3. ``branch3``: 1x1 reduce -> "5x5".
    ``branch4``: 3x3/1 max-pool -> 1x1 projection.

    What the 1x1 bottleneck buys: the spatial convs see few channels. In ``inception3a`` (192 in)
    the 5x5 branch costs 192*16 + 16*32*25 = 16k multiply-adds per pixel instead of
    192*32*25 = 154k, and the 3x3 branch 129k instead of 221k; the pool projection stops the
    concatenation from growing by ``in_channels`` every module. This is what let the network be
    22 layers deep with ~7M parameters (VGG-16: 138M).

    torchvision quirk, kept for weight compatibility: ``branch3`` uses a 3x3 conv where the paper
    has 5x5 (pytorch/vision#906); the ported ImageNet weights have 3x3 shapes.

    Args:
        in_channels: C_in.
        ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj: branch widths, as in the paper's
            Table 1 ("#1x1", "#3x3 reduce", "#3x3", "#5x5 reduce", "#5x5", "pool proj").

    Shapes: Tensor[N, C_in, h, w] -> Tensor[N, ch1x1 + ch3x3 + ch5x5 + pool_proj, h, w].
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
    ) -> None:
        super().__init__()
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1),  # paper: 5x5, see docstring
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier on a stride-16 map (training-time deep supervision).

    Adaptive 4x4 average pool -> 1x1 conv (128) -> FC 2048 -> 1024 -> ReLU -> dropout -> FC K.

    Shapes: Tensor[N, C, h, w] -> logits Tensor[N, K].
    """

    def __init__(
        self, in_channels: int, num_classes: int, width: float = 1.0, dropout: float = 0.7
    ) -> None:
        super().__init__()
        channels, hidden = scale_channels(128, width), scale_channels(1024, width)
        self.conv = BasicConv2d(in_channels, channels, kernel_size=1)
        self.fc1 = nn.Linear(channels * 4 * 4, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, (4, 4))), 1)
        return self.fc2(self.dropout(F.relu(self.fc1(x), inplace=True)))


class _TransformInput(nn.Module):
    """ImageNet mean/std-normalised input -> the [-1, 1] range the TF-ported weights expect."""

    def forward(self, x: Tensor) -> Tensor:
        # same arithmetic as torchvision's GoogLeNet._transform_input, for bit-exact parity
        return torch.cat(
            [
                x[:, 0:1] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5,
                x[:, 1:2] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5,
                x[:, 2:3] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5,
            ],
            1,
        )


class GoogLeNet(Backbone):
    """GoogLeNet feature extractor with optional main and auxiliary classifier heads.

    Stages (width 1). Pools use ``ceil_mode``, so maps are ``ceil(H / stride)`` or one cell
    off (224 -> 112, 56, 28, 14, 7):

    ===== ========================================= ======== ======
    stage modules                                   channels stride
    ===== ========================================= ======== ======
    c1    conv1 (7x7/2)                             64       2
    c2    maxpool1, conv2 (1x1), conv3 (3x3)        192      4
    c3    maxpool2, inception3a, inception3b        480      8
    c4    maxpool3, inception4a .. inception4e      832      16
    c5    maxpool4, inception5a, inception5b        1024     32
    ===== ========================================= ======== ======

    Heads (``num_classes`` given): ``avgpool`` (global) + ``dropout`` + ``fc``; with
    ``aux_logits`` also ``aux1`` (on inception4a) and ``aux2`` (on inception4d), computed only
    by :meth:`classify_with_aux` in training mode. The paper weights their losses by 0.3.

    Args:
        num_classes: K; ``None``: feature extractor only, no head modules (and no aux heads).
        width: channel multiplier for every conv and the aux FC hidden size (1024).
        output_stride: only 32.
        aux_logits: build the two auxiliary classifiers (ignored without ``num_classes``).
        transform_input: rescale ImageNet mean/std-normalised input to [-1, 1] first.
            torchvision's pretrained GoogLeNet weights expect this (its builder turns it on
            when loading them): set ``True`` with those weights, leave ``False`` from scratch.
        dropout: dropout before ``fc``.
        dropout_aux: dropout inside the auxiliary classifiers.

    Example:
        >>> model = googlenet(width=0.125, num_classes=5).train()
        >>> logits, aux = model.classify_with_aux(torch.zeros(2, 3, 64, 64))
        >>> logits.shape, [a.shape for a in aux]
        (torch.Size([2, 5]), [torch.Size([2, 5]), torch.Size([2, 5])])
    """

    def __init__(
        self,
        *,
        num_classes: int | None = None,
        width: float = 1.0,
        output_stride: int = 32,
        aux_logits: bool = True,
        transform_input: bool = False,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
    ) -> None:
        super().__init__()
        check_builder_args(type(self).__name__, num_classes, width, output_stride, (32,))

        def inception(in_channels: int, *branch_channels: int) -> Inception:
            return Inception(in_channels, *(scale_channels(c, width) for c in branch_channels))

        self.transform_input = transform_input
        self.input_transform = _TransformInput() if transform_input else nn.Identity()
        stem, stem_out = scale_channels(64, width), scale_channels(192, width)
        self.conv1 = BasicConv2d(3, stem, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(stem, stem, kernel_size=1)
        self.conv3 = BasicConv2d(stem, stem_out, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = inception(stem_out, 64, 96, 128, 16, 32, 32)
        self.inception3b = inception(self.inception3a.out_channels, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = inception(self.inception3b.out_channels, 192, 96, 208, 16, 48, 64)
        self.inception4b = inception(self.inception4a.out_channels, 160, 112, 224, 24, 64, 64)
        self.inception4c = inception(self.inception4b.out_channels, 128, 128, 256, 24, 64, 64)
        self.inception4d = inception(self.inception4c.out_channels, 112, 144, 288, 32, 64, 64)
        self.inception4e = inception(self.inception4d.out_channels, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = inception(self.inception4e.out_channels, 256, 160, 320, 32, 128, 128)
        self.inception5b = inception(self.inception5a.out_channels, 384, 192, 384, 48, 128, 128)
        self.stage_specs = {
            "c1": FeatureSpec(stem, 2),
            "c2": FeatureSpec(stem_out, 4),
            "c3": FeatureSpec(self.inception3b.out_channels, 8),
            "c4": FeatureSpec(self.inception4e.out_channels, 16),
            "c5": FeatureSpec(self.inception5b.out_channels, 32),
        }

        self.num_classes = num_classes
        self.aux_logits = aux_logits and num_classes is not None
        if num_classes is not None:
            if aux_logits:
                self.aux1 = InceptionAux(
                    self.inception4a.out_channels, num_classes, width, dropout=dropout_aux
                )
                self.aux2 = InceptionAux(
                    self.inception4d.out_channels, num_classes, width, dropout=dropout_aux
                )
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.dropout = nn.Dropout(p=dropout)
            self.fc = nn.Linear(self.inception5b.out_channels, num_classes)
        self._init_weights()
        self.set_out_features(None)

    def _init_weights(self) -> None:
        # torchvision's GoogLeNet initialisation (init_weights=True)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def stage_modules(self) -> "OrderedDict[str, list[nn.Module]]":
        return OrderedDict(
            c1=[self.input_transform, self.conv1],
            c2=[self.maxpool1, self.conv2, self.conv3],
            c3=[self.maxpool2, self.inception3a, self.inception3b],
            c4=[
                self.maxpool3,
                self.inception4a,
                self.inception4b,
                self.inception4c,
                self.inception4d,
                self.inception4e,
            ],
            c5=[self.maxpool4, self.inception5a, self.inception5b],
        )

    def forward_head(self, last: Tensor) -> Tensor:
        """Tensor[N, 1024, h, w] -> logits Tensor[N, K] (global average pool, dropout, fc)."""
        return self.fc(self.dropout(torch.flatten(self.avgpool(last), 1)))

    def classify_with_aux(self, images: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Main logits plus the auxiliary logits.

        Args:
            images: Tensor[N, 3, H, W], float, mean/std-normalised.

        Returns:
            ``(logits, [aux1_logits, aux2_logits])``, each Tensor[N, K]. The aux list is empty
            in eval mode or when built with ``aux_logits=False``.
        """
        if self.num_classes is None:
            return super().classify_with_aux(images)  # raises the "no classifier head" error
        self.check_input(images)
        taps: dict[int, nn.Module] = {}
        if self.training and self.aux_logits:
            taps = {id(self.inception4a): self.aux1, id(self.inception4d): self.aux2}
        aux: list[Tensor] = []
        x = images
        for modules in self.stage_modules().values():
            for module in modules:
                x = module(x)
                if id(module) in taps:
                    aux.append(taps[id(module)](x))
        return self.forward_head(x), aux


def googlenet(
    *, num_classes: int | None = None, width: float = 1.0, output_stride: int = 32, **options
) -> GoogLeNet:
    """GoogLeNet (Inception v1). Options: ``aux_logits``, ``transform_input``, ``dropout``,
    ``dropout_aux``. See :class:`GoogLeNet`."""
    return GoogLeNet(num_classes=num_classes, width=width, output_stride=output_stride, **options)
