"""VGG (Simonyan & Zisserman, 2014): plain stacks of 3x3 convs, one max-pool per stage.

Layers live in one ``features`` Sequential with torchvision's indices, so torchvision's ImageNet
``vgg*.pth`` files load with ``strict=True``. Stage cut points are the five max-pools.

Shape shorthand: N images, H x W input size, K classes.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import Tensor, nn

from .base import Backbone, FeatureSpec, check_builder_args, scale_channels

#: conv output channels per block (block k ends with max-pool k); the paper's configs A/B/D/E
_CONFIGS: dict[str, tuple[tuple[int, ...], ...]] = {
    "A": ((64,), (128,), (256, 256), (512, 512), (512, 512)),  # VGG-11
    "B": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),  # VGG-13
    "D": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),  # VGG-16
    "E": ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),  # VGG-19
}
_OUTPUT_STRIDES = (8, 16, 32)


class VGG(Backbone):
    """VGG feature extractor with an optional torchvision-style classifier head.

    Stages (width 1, ``output_stride=32``); every conv is 3x3 "same", every pool 2x2 stride 2,
    so a stage's map is exactly ``floor(H / stride) x floor(W / stride)``:

    ===== ===================== ======== ======
    stage modules               channels stride
    ===== ===================== ======== ======
    c1    block 1 convs + pool1 64       2
    c2    block 2 convs + pool2 128      4
    c3    block 3 convs + pool3 256      8
    c4    block 4 convs + pool4 512      16
    c5    block 5 convs + pool5 512      32
    ===== ===================== ======== ======

    ``output_stride=16`` replaces pool5 by ``nn.Identity`` (c5 = conv5_3 at stride 16, the
    Faster R-CNN feature); ``output_stride=8`` also drops pool4 and dilates the block-5 convs by 2
    so their receptive field matches the pretrained one (DeepLab-v1). Replacements sit at the
    same ``features`` index, so the state-dict keys never change; ``stage_specs`` records the
    true strides (c4/c5: 16/16 or 8/8).

    Args:
        blocks: conv output channels per block, five blocks (see ``_CONFIGS``).
        batch_norm: BatchNorm2d after every conv (the ``*_bn`` variants).
        num_classes: K; builds ``avgpool`` (7x7) + ``classifier`` (FC-ReLU-Dropout x2, FC).
            ``None``: feature extractor only, no head modules.
        width: channel multiplier for every conv and the FC hidden size (4096).
        output_stride: 32, 16 or 8.
        dropout: dropout probability in the classifier.

    Example:
        >>> model = vgg16(width=0.125, output_stride=16)
        >>> {k: (s.channels, s.stride) for k, s in model.feature_specs.items()}["c5"]
        (64, 16)
        >>> model(torch.zeros(1, 3, 64, 64))["c5"].shape
        torch.Size([1, 64, 4, 4])
    """

    def __init__(
        self,
        blocks: Sequence[Sequence[int]],
        *,
        batch_norm: bool = False,
        num_classes: int | None = None,
        width: float = 1.0,
        output_stride: int = 32,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        check_builder_args(type(self).__name__, num_classes, width, output_stride, _OUTPUT_STRIDES)
        layers: list[nn.Module] = []
        self._stage_slices: dict[str, tuple[int, int]] = {}
        self.stage_specs = {}
        in_channels, stride, dilation = 3, 1, 1
        for k, block in enumerate(blocks, start=1):
            start = len(layers)
            for channels in block:
                out_channels = scale_channels(channels, width)
                layers.append(
                    nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation)
                )
                if batch_norm:
                    layers.append(nn.BatchNorm2d(out_channels))
                layers.append(nn.ReLU(inplace=True))
                in_channels = out_channels
            if stride * 2 <= output_stride:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                stride *= 2
            else:  # keep the index (and all later keys) where torchvision has the pool
                layers.append(nn.Identity())
                dilation *= 2
            self._stage_slices[f"c{k}"] = (start, len(layers))
            self.stage_specs[f"c{k}"] = FeatureSpec(in_channels, stride)
        self.features = nn.Sequential(*layers)

        self.num_classes = num_classes
        if num_classes is not None:
            hidden = scale_channels(4096, width)
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(in_channels * 7 * 7, hidden),
                nn.ReLU(True),
                nn.Dropout(p=dropout),
                nn.Linear(hidden, hidden),
                nn.ReLU(True),
                nn.Dropout(p=dropout),
                nn.Linear(hidden, num_classes),
            )
        self._init_weights()
        self.set_out_features(None)

    def _init_weights(self) -> None:
        # torchvision's VGG initialisation (He init for convs, small Gaussian for FC layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def stage_modules(self) -> "OrderedDict[str, list[nn.Module]]":
        return OrderedDict(
            (name, [self.features[i] for i in range(start, end)])
            for name, (start, end) in self._stage_slices.items()
        )

    def forward_head(self, last: Tensor) -> Tensor:
        """Tensor[N, C5, h, w] -> logits Tensor[N, K] (adaptive 7x7 pool, three FC layers)."""
        return self.classifier(torch.flatten(self.avgpool(last), 1))


def _vgg(
    config: str,
    batch_norm: bool,
    num_classes: int | None,
    width: float,
    output_stride: int,
    options: dict,
) -> VGG:
    return VGG(
        _CONFIGS[config],
        batch_norm=batch_norm,
        num_classes=num_classes,
        width=width,
        output_stride=output_stride,
        **options,
    )


def vgg11(
    *, num_classes: int | None = None, width: float = 1.0, output_stride: int = 32, **options
) -> VGG:
    """VGG-11 (config A: 8 convs). See :class:`VGG` for stages and options."""
    return _vgg("A", False, num_classes, width, output_stride, options)


def vgg11_bn(
    *, num_classes: int | None = None, width: float = 1.0, output_stride: int = 32, **options
) -> VGG:
    """VGG-11 with batch norm. See :class:`VGG`."""
    return _vgg("A", True, num_classes, width, output_stride, options)


def vgg13(
    *, num_classes: int | None = None, width: float = 1.0, output_stride: int = 32, **options
) -> VGG:
    """VGG-13 (config B: 10 convs). See :class:`VGG`."""
    return _vgg("B", False, num_classes, width, output_stride, options)


def vgg13_bn(
    *, num_classes: int | None = None, width: float = 1.0, output_stride: int = 32, **options
) -> VGG:
    """VGG-13 with batch norm. See :class:`VGG`."""
    return _vgg("B", True, num_classes, width, output_stride, options)


def vgg16(
    *, num_classes: int | None = None, width: float = 1.0, output_stride: int = 32, **options
) -> VGG:
    """VGG-16 (config D: 13 convs), the SSD / Faster R-CNN / FCN backbone. See :class:`VGG`."""
    return _vgg("D", False, num_classes, width, output_stride, options)


def vgg16_bn(
    *, num_classes: int | None = None, width: float = 1.0, output_stride: int = 32, **options
) -> VGG:
    """VGG-16 with batch norm. See :class:`VGG`."""
    return _vgg("D", True, num_classes, width, output_stride, options)


def vgg19(
    *, num_classes: int | None = None, width: float = 1.0, output_stride: int = 32, **options
) -> VGG:
    """VGG-19 (config E: 16 convs). See :class:`VGG`."""
    return _vgg("E", False, num_classes, width, output_stride, options)


def vgg19_bn(
    *, num_classes: int | None = None, width: float = 1.0, output_stride: int = 32, **options
) -> VGG:
    """VGG-19 with batch norm. See :class:`VGG`."""
    return _vgg("E", True, num_classes, width, output_stride, options)
