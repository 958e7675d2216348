"""Fully Convolutional Networks (Long, Shelhamer & Darrell, 2015): FCN-32s, FCN-16s and FCN-8s.

Shape shorthand: N images, C = K + 1 classes (background first), Hs x Ws the padded input
(a multiple of 32), c3/c4/c5 backbone stages at strides 8/16/32.

The architecture as in the paper, on any detseg backbone (VGG-16 gives the original network:
``c3``/``c4``/``c5`` are pool3/pool4/pool5):

* a 1x1 convolution scores the classes on ``c5`` (optionally after a 3x3 conv block standing in
  for the converted fc6/fc7 layers, ``head_channels > 0``);
* **FCN-32s** upsamples those scores x32 with a transposed convolution fixed to bilinear
  interpolation;
* **FCN-16s** upsamples them x2 with a *learned* transposed convolution initialised to bilinear,
  adds a 1x1 score of ``c4`` (pool4) and upsamples the sum x16;
* **FCN-8s** does the same once more with ``c3`` (pool3) and upsamples x8.

Two deliberate differences from the Caffe original, for any input size without magic numbers:
the input is padded to a multiple of 32 and the logits cropped back (instead of the 100-pixel
first-layer padding and ``Crop`` layers), so every skip aligns exactly; and the skip scorers are
initialised to zero, so FCN-8s starts as FCN-32s (the paper's staged training, in one run).

This is *not* torchvision's ``fcn_resnet50``, which is a dilated ResNet (output stride 8) with
a 3x3 2048->512 conv head and bilinear interpolation, and no skips or transposed convolutions.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones.base import Backbone
from .base import SemanticSegmenter

FCNVariant = Literal["32s", "16s", "8s"]
#: variant -> how many stages, from the deepest, are fused (c5; c5+c4; c5+c4+c3)
_NUM_STAGES = {"32s": 1, "16s": 2, "8s": 3}


def bilinear_kernel(channels: int, factor: int) -> Tensor:
    """Weights Tensor[channels, 1, k, k] making a depthwise transposed conv a bilinear upsampler.

    With kernel ``k = 2 * factor - factor % 2``, stride ``factor`` and padding
    ``ceil((factor - 1) / 2)`` the output pixel ``o`` receives ``1 - |x - i|`` of input pixel
    ``i``, where ``x = (o + 0.5) / factor - 0.5`` is its source coordinate: exactly
    ``F.interpolate(mode="bilinear", align_corners=False)`` wherever ``0 <= x <= size - 1``.
    Only the outer ``factor // 2`` output rows/columns differ: interpolation replicates the
    edge there, the transposed conv fades to zero padding.
    """
    size = 2 * factor - factor % 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float64)
    filt = 1 - (og - center).abs() / factor
    kernel = (filt[:, None] * filt[None, :]).float()
    return kernel.expand(channels, 1, size, size).clone()


class BilinearUpsample(nn.ConvTranspose2d):
    """Depthwise ``ConvTranspose2d`` upsampling by an integer factor, initialised to bilinear.

    Args:
        channels: channels in and out (each upsampled on its own: ``groups=channels``).
        factor: integer scale; output size is exactly ``factor *`` input size.
        learnable: ``False`` fixes the weights to bilinear (FCN's final upsampling layer). The
            fixed layer keeps its kernel as a non-persistent buffer (not in checkpoints: it
            cannot change) and computes the *identical* result as bilinear interpolation of
            the input extended by one zero pixel on each side, cropped back: a 64 x 64
            depthwise transposed conv (x32) is many times slower than that on CPU and GPU.

    Shapes: Tensor[N, channels, h, w] -> Tensor[N, channels, factor * h, factor * w].
    """

    def __init__(self, channels: int, factor: int, *, learnable: bool = True) -> None:
        if factor < 1:
            raise ValueError(f"upsampling factor must be >= 1, got {factor}")
        size = 2 * factor - factor % 2
        super().__init__(channels, channels, size, stride=factor, padding=factor // 2,
                         groups=channels, bias=False)
        self.factor = factor
        self.learnable = learnable
        kernel = bilinear_kernel(channels, factor)
        if learnable:
            with torch.no_grad():
                self.weight.copy_(kernel)
        else:
            del self.weight
            self.register_buffer("weight", kernel, persistent=False)

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if self.learnable:
            return super().forward(x, output_size)
        # transposed conv with a bilinear kernel == interpolation that sees zeros outside the
        # input (weights 1 - |x - i| with no edge clamping): pad one zero, interpolate, crop
        f = self.factor
        h, w = x.shape[-2:]
        up = F.interpolate(F.pad(x, (1, 1, 1, 1)), size=((h + 2) * f, (w + 2) * f), mode="bilinear",
                           align_corners=False)
        return up[..., f: f + h * f, f: f + w * f]


class FCN(SemanticSegmenter):
    """FCN-32s / 16s / 8s over a backbone's stride-32 (and stride-16/8) features.

    Args:
        backbone: a detseg backbone whose ``out_features`` end with the stages to fuse, each at
            half the stride of the next: ``(c5,)`` for 32s, ``(c4, c5)`` for 16s, ``(c3, c4,
            c5)`` for 8s (extra earlier stages are ignored). Not dilated.
        num_classes: K foreground classes (K + 1 output channels, background first).
        variant: ``"32s"``, ``"16s"`` or ``"8s"``.
        head_channels: channels of a 3x3 conv + BN + ReLU block on the last stage before the
            1x1 classifier (the role of VGG's fc6/fc7); 0 = the 1x1 classifier alone.
        dropout: dropout before the classifier (the paper's 0.5 after fc6/fc7).
        criterion: the loss module (default cross-entropy ignoring 255).

    Inputs/outputs: see :class:`SemanticSegmenter`; ``logits(images)`` is Tensor[N, K + 1, H, W].

    Example:
        >>> bb = build_backbone("vgg16", out_features=("c3", "c4", "c5"), width=0.125)
        >>> model = FCN(bb, num_classes=3, variant="8s")
        >>> model.predict(torch.zeros(1, 3, 67, 93, dtype=torch.uint8)).shape
        torch.Size([1, 67, 93])
    """

    def __init__(self, backbone: Backbone, num_classes: int, *, variant: FCNVariant = "8s",
                 head_channels: int = 0, dropout: float = 0.0, criterion: nn.Module | None = None) -> None:
        if variant not in _NUM_STAGES:
            raise ValueError(f"FCN variant must be one of {list(_NUM_STAGES)}, got {variant!r}")
        specs = backbone.feature_specs
        names = list(specs)[-_NUM_STAGES[variant]:]
        if len(names) < _NUM_STAGES[variant]:
            raise ValueError(f"FCN-{variant} fuses {_NUM_STAGES[variant]} stages but the backbone returns "
                             f"only {list(specs)}; set its out_features to e.g. ('c3', 'c4', 'c5')")
        strides = [specs[n].stride for n in names]
        if any(b != 2 * a for a, b in zip(strides, strides[1:])):
            raise ValueError(f"FCN skips need each stage at half the stride of the next, got "
                             f"{dict(zip(names, strides))}; use an undilated backbone (output_stride=32)")
        super().__init__(num_classes, criterion=criterion, size_divisibility=strides[-1])
        self.variant = variant
        self.backbone = backbone
        self.in_features = tuple(names)
        c = num_classes + 1
        last = specs[names[-1]].channels
        if head_channels > 0:
            self.head = nn.Sequential(
                nn.Conv2d(last, head_channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(head_channels), nn.ReLU(inplace=True), nn.Dropout2d(dropout))
            last = head_channels
        else:
            self.head = nn.Dropout2d(dropout)
        self.score = nn.Conv2d(last, c, 1)
        # skips from deep to shallow: a learned x2 upsampling of the running scores + a 1x1 score
        self.skip_features = tuple(reversed(names[:-1]))
        self.skip_scores = nn.ModuleList(nn.Conv2d(specs[n].channels, c, 1) for n in self.skip_features)
        self.skip_ups = nn.ModuleList(BilinearUpsample(c, 2) for _ in self.skip_features)
        for conv in self.skip_scores:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        self.upsample = BilinearUpsample(c, strides[0], learnable=False)

    def forward_logits(self, x: Tensor) -> Tensor:
        feats = self.backbone(x)
        scores = self.score(self.head(feats[self.in_features[-1]]))     # [N, C, Hs/32, Ws/32]
        for name, up, skip in zip(self.skip_features, self.skip_ups, self.skip_scores):
            scores = up(scores) + skip(feats[name])                     # stride halves each step
        return self.upsample(scores)
