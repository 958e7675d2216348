"""AlexNet (Krizhevsky et al., 2012), torchvision's single-GPU "one weird trick" variant.

Layers live in one ``features`` Sequential with torchvision's indices, so torchvision's
``alexnet-owt-*.pth`` loads with ``strict=True``. Stage cut points are the three max-pools.

Shape shorthand: N images, H x W input size, K classes.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from .base import Backbone, FeatureSpec, check_builder_args, scale_channels

#: stage -> [start, end) indices into ``features``
_STAGE_SLICES = {"c2": (0, 2), "c3": (2, 5), "c4": (5, 12), "c5": (12, 13)}


class AlexNet(Backbone):
    """AlexNet feature extractor with an optional torchvision-style classifier head.

    There is no ``c1``: the first conv (11x11, stride 4) goes straight to stride 4.

    ===== =================================== ======== ======
    stage modules (``features`` indices)      channels stride
    ===== =================================== ======== ======
    c2    conv1 11x11/4 + ReLU (0-1)          64       4
    c3    pool1 + conv2 5x5 + ReLU (2-4)      192      8
    c4    pool2 + conv3..5 3x3 + ReLUs (5-11) 256      16
    c5    pool3 (12)                          256      32
    ===== =================================== ======== ======

    The unpadded 11x11 conv and 3x3/2 pools shave cells off the borders, so maps are up to one
    cell smaller than ``H / stride`` (224 -> 55, 27, 13, 6); inputs must be at least 63x63.

    Args:
        num_classes: K; builds ``avgpool`` (6x6) + ``classifier`` (Dropout-FC-ReLU x2, FC).
            ``None``: feature extractor only, no head modules.
        width: channel multiplier for every conv and the FC hidden size (4096).
        output_stride: only 32 (AlexNet is not dilated).
        dropout: dropout probability in the classifier.

    Example:
        >>> model = alexnet(width=0.25)
        >>> [(k, s.channels, s.stride) for k, s in model.feature_specs.items()][0]
        ('c2', 16, 4)
    """

    def __init__(
        self,
        *,
        num_classes: int | None = None,
        width: float = 1.0,
        output_stride: int = 32,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        check_builder_args(type(self).__name__, num_classes, width, output_stride, (32,))
        c1, c2, c3, c4, c5 = (scale_channels(c, width) for c in (64, 192, 384, 256, 256))
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.stage_specs = {
            "c2": FeatureSpec(c1, 4),
            "c3": FeatureSpec(c2, 8),
            "c4": FeatureSpec(c5, 16),
            "c5": FeatureSpec(c5, 32),
        }
        self.num_classes = num_classes
        if num_classes is not None:
            hidden = scale_channels(4096, width)
            self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
            self.classifier = nn.Sequential(
                nn.Dropout(p=dropout),
                nn.Linear(c5 * 6 * 6, hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(p=dropout),
                nn.Linear(hidden, hidden),
                nn.ReLU(inplace=True),
                nn.Linear(hidden, num_classes),
            )
        self.set_out_features(None)

    def stage_modules(self) -> "OrderedDict[str, list[nn.Module]]":
        return OrderedDict(
            (name, [self.features[i] for i in range(start, end)])
            for name, (start, end) in _STAGE_SLICES.items()
        )

    def forward_head(self, last: Tensor) -> Tensor:
        """Tensor[N, C5, h, w] -> logits Tensor[N, K] (adaptive 6x6 pool, three FC layers)."""
        return self.classifier(torch.flatten(self.avgpool(last), 1))


def alexnet(
    *, num_classes: int | None = None, width: float = 1.0, output_stride: int = 32, **options
) -> AlexNet:
    """AlexNet with stages ``c2..c5``. See :class:`AlexNet` for stages and options."""
    return AlexNet(num_classes=num_classes, width=width, output_stride=output_stride, **options)
