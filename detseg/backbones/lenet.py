"""LeNet-5 (LeCun et al., 1998), modernised just enough to run on RGB images of any size.

Deviations from the original (32x32 grey digits, unpadded 5x5 convs, tanh, average-pool
"subsampling"): RGB input, 5x5 convs padded by 2 so the strides are exact for any input size,
ReLU and max-pooling (what LeNet-style nets use today), and an adaptive 5x5 average pool before the
classifier so it accepts any input size. torchvision has no LeNet, so nothing is loaded into it;
module names follow the AlexNet/VGG convention (``features`` + ``classifier``).

Shape shorthand: N images, H x W input size, K classes.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from .base import Backbone, FeatureSpec, check_builder_args, scale_channels

_STAGE_SLICES = {"c1": (0, 3), "c2": (3, 6)}


class LeNet5(Backbone):
    """LeNet-5: two conv-ReLU-pool stages and a three-layer classifier.

    Only two stages exist; maps are exactly ``floor(H / stride) x floor(W / stride)``:

    ===== ============================================= ======== ======
    stage modules (``features`` indices)                channels stride
    ===== ============================================= ======== ======
    c1    C1 conv 5x5 pad 2 + ReLU + 2x2 max-pool (0-2) 6        2
    c2    C3 conv 5x5 pad 2 + ReLU + 2x2 max-pool (3-5) 16       4
    ===== ============================================= ======== ======

    Head (``num_classes`` given): ``avgpool`` to 5x5, then ``classifier`` = FC 400 -> 120 (the
    paper's C5), ReLU, FC 120 -> 84 (F6), ReLU, FC 84 -> K (output layer).

    Args:
        num_classes: K; ``None``: feature extractor only, no head modules.
        width: multiplier for the conv channels and the FC hidden sizes (120, 84).
        output_stride: only 32, meaning "not dilated" (the deepest stage has stride 4).

    Example:
        >>> model = lenet5(num_classes=10)
        >>> model.classify(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self, *, num_classes: int | None = None, width: float = 1.0, output_stride: int = 32
    ) -> None:
        super().__init__()
        check_builder_args(type(self).__name__, num_classes, width, output_stride, (32,))
        c1, c2 = scale_channels(6, width), scale_channels(16, width)
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.stage_specs = {"c1": FeatureSpec(c1, 2), "c2": FeatureSpec(c2, 4)}
        self.num_classes = num_classes
        if num_classes is not None:
            f5, f6 = scale_channels(120, width), scale_channels(84, width)
            self.avgpool = nn.AdaptiveAvgPool2d((5, 5))
            self.classifier = nn.Sequential(
                nn.Linear(c2 * 5 * 5, f5),
                nn.ReLU(inplace=True),
                nn.Linear(f5, f6),
                nn.ReLU(inplace=True),
                nn.Linear(f6, num_classes),
            )
        self.set_out_features(None)

    def stage_modules(self) -> "OrderedDict[str, list[nn.Module]]":
        return OrderedDict(
            (name, [self.features[i] for i in range(start, end)])
            for name, (start, end) in _STAGE_SLICES.items()
        )

    def forward_head(self, last: Tensor) -> Tensor:
        """Tensor[N, C2, h, w] -> logits Tensor[N, K] (adaptive 5x5 pool, three FC layers)."""
        return self.classifier(torch.flatten(self.avgpool(last), 1))


def lenet5(
    *, num_classes: int | None = None, width: float = 1.0, output_stride: int = 32, **options
) -> LeNet5:
    """LeNet-5 with stages ``c1``, ``c2``. See :class:`LeNet5`."""
    return LeNet5(num_classes=num_classes, width=width, output_stride=output_stride, **options)
