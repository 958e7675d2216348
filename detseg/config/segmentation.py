"""Typed configuration of the semantic segmentation heads (YAML: ``model.segmentation``).

The architecture is chosen by ``model.arch`` (``fcn32s``, ``fcn16s``, ``fcn8s``, ``unet``,
``unet_backbone``, ``deeplabv3``); the encoder of the backbone-based ones by ``model.backbone``
(DeepLab needs ``model.backbone.output_stride`` 8 or 16). Each section below is read only by the
architectures it names; a config lists only what differs from these defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FCNConfig:
    """FCN-32s/16s/8s head (``fcn*`` archs).

    Attributes:
        head_channels: channels of a 3x3 conv + BN + ReLU block on ``c5`` before the 1x1
            classifier (standing in for VGG's fc6/fc7); 0 = the 1x1 classifier alone.
        fc_channels: the paper's head instead: VGG's fc6/fc7 as a 7x7 and a 1x1 convolution of
            this width (4096 in the paper), each + ReLU + dropout. With a VGG backbone and
            ``model.backbone.pretrained``, they start from the file's ImageNet fc6/fc7 weights.
        dropout: dropout before the classifier (after fc6 and fc7 with ``fc_channels``).
    """

    head_channels: int = 0
    fc_channels: int = 0
    dropout: float = 0.0


@dataclass
class UNetConfig:
    """U-Net (``unet``: classic encoder; ``unet_backbone``: ``model.backbone`` as encoder).

    Attributes:
        base_channels: channels of the first level of the classic U-Net (64 in the paper).
        depth: number of 2x down/up steps of the classic U-Net (4 in the paper).
        use_bn: batch norm after every conv.
        max_decoder_channels: cap on decoder channels of ``unet_backbone``.
    """

    base_channels: int = 64
    depth: int = 4
    use_bn: bool = True
    max_decoder_channels: int = 256


@dataclass
class ASPPConfig:
    """DeepLab-v3 ASPP head (``deeplabv3``).

    Attributes:
        channels: channels of every ASPP branch and of the head.
        rates: atrous rates of the 3x3 branches; ``None`` = (6, 12, 18) at output stride 16,
            doubled at 8.
        dropout: dropout after the ASPP projection.
    """

    channels: int = 256
    rates: tuple[int, ...] | None = None
    dropout: float = 0.1


@dataclass
class SegLossConfig:
    """Pixel loss of every segmentation model.

    Attributes:
        class_weights: K + 1 cross-entropy weights (background first); ``None`` = equal.
        dice_weight: weight of an added soft Dice term (``loss_dice``); 0 = cross-entropy only.
        ignore_index: label-map value that is ignored (crowd, unlabelled, batch padding).
    """

    class_weights: tuple[float, ...] | None = None
    dice_weight: float = 0.0
    ignore_index: int = 255


@dataclass
class SegmentationConfig:
    """All semantic segmentation settings, one section per head plus the loss."""

    fcn: FCNConfig = field(default_factory=FCNConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    aspp: ASPPConfig = field(default_factory=ASPPConfig)
    loss: SegLossConfig = field(default_factory=SegLossConfig)

    def __post_init__(self) -> None:
        problems = []
        if self.fcn.head_channels < 0 or self.fcn.fc_channels < 0:
            problems.append(f"fcn.head_channels and fcn.fc_channels must be >= 0, got "
                            f"{self.fcn.head_channels}, {self.fcn.fc_channels}")
        if self.fcn.head_channels and self.fcn.fc_channels:
            problems.append("set fcn.head_channels (a 3x3 block) or fcn.fc_channels (VGG's fc6/fc7), not both")
        if self.unet.depth < 1 or self.unet.base_channels < 1:
            problems.append(f"unet.depth and unet.base_channels must be >= 1, got "
                            f"{self.unet.depth}, {self.unet.base_channels}")
        if self.aspp.rates is not None and any(r < 1 for r in self.aspp.rates):
            problems.append(f"aspp.rates must be >= 1, got {self.aspp.rates}")
        for name, p in (("fcn.dropout", self.fcn.dropout), ("aspp.dropout", self.aspp.dropout)):
            if not 0 <= p < 1:
                problems.append(f"{name} must be in [0, 1), got {p}")
        if self.loss.dice_weight < 0:
            problems.append(f"loss.dice_weight must be >= 0, got {self.loss.dice_weight}")
        if problems:
            raise ValueError("invalid SegmentationConfig: " + "; ".join(problems))
