"""Fully Convolutional Networks (Long, Shelhamer & Darrell, 2015): FCN-32s, FCN-16s and FCN-8s.

Shape shorthand: N images, C = K + 1 classes (background first), Hs x Ws the padded input
(a multiple of 32), c3/c4/c5 backbone stages at strides 8/16/32.

The architecture as in the paper, on any detseg backbone (VGG-16 gives the original network:
``c3``/``c4``/``c5`` are pool3/pool4/pool5):

* a 1x1 convolution scores the classes on ``c5``, optionally after the paper's converted fc6/fc7
  (``fc_channels > 0``: a 7x7 and a 1x1 convolution; :func:`convolutionalize_vgg_classifier`
  turns an ImageNet VGG's fully connected weights into theirs) or a lighter 3x3 conv block
  (``head_channels > 0``);
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
from ..structures.instances import num_with_background
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


def convolutionalize_vgg_classifier(state: dict[str, Tensor], channels: int,
                                    source: str = "the state dict") -> dict[str, Tensor]:
    """torchvision VGG ``classifier.0`` / ``classifier.3`` (fc6, fc7) -> 7x7 / 1x1 conv weights.

    fc6 reads the flattened ``[channels, 7, 7]`` pool5 map, so its weight Tensor[F, channels * 49]
    reshapes to Tensor[F, channels, 7, 7]: on a 7x7 map the convolution's centre output equals
    the fully connected layer, and on a larger map it slides, giving a score per position (the
    FCN paper's "convolutionalization"). fc7's Tensor[F, F] becomes Tensor[F, F, 1, 1].

    Returns:
        ``{"fc6.weight", "fc6.bias", "fc7.weight", "fc7.bias"}``.
    """
    keys = ("classifier.0.weight", "classifier.0.bias", "classifier.3.weight", "classifier.3.bias")
    missing = [k for k in keys if k not in state]
    if missing:
        raise ValueError(f"{source} has no VGG fc6/fc7 weights: missing {missing}")
    w6, w7 = state["classifier.0.weight"], state["classifier.3.weight"]
    if w6.dim() != 2 or w6.shape[1] != channels * 49:
        raise ValueError(f"classifier.0.weight in {source} is {tuple(w6.shape)}: expected [F, {channels} * 7 * 7] "
                         f"for a pool5 of {channels} channels")
    return {"fc6.weight": w6.reshape(len(w6), channels, 7, 7), "fc6.bias": state["classifier.0.bias"],
            "fc7.weight": w7.reshape(*w7.shape, 1, 1), "fc7.bias": state["classifier.3.bias"]}


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
        fc_channels: instead, the paper's fc6/fc7 as convolutions of this width: 7x7 (padding 3,
            so the map keeps its size; the paper pads the image by 100 px instead) and 1x1, each
            + ReLU + dropout. Load ImageNet weights with :meth:`load_vgg_classifier`.
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
                 head_channels: int = 0, fc_channels: int = 0, dropout: float = 0.0,
                 criterion: nn.Module | None = None) -> None:
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
        c = num_with_background(num_classes)
        last = specs[names[-1]].channels
        if head_channels > 0 and fc_channels > 0:
            raise ValueError("give head_channels (a 3x3 block) or fc_channels (VGG's fc6/fc7), not both")
        if fc_channels > 0:
            self.head = nn.Sequential(
                nn.Conv2d(last, fc_channels, 7, padding=3), nn.ReLU(inplace=True), nn.Dropout2d(dropout),
                nn.Conv2d(fc_channels, fc_channels, 1), nn.ReLU(inplace=True), nn.Dropout2d(dropout))
            last = fc_channels
        elif head_channels > 0:
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

    def load_vgg_classifier(self, state: dict[str, Tensor], source: str = "the state dict") -> None:
        """Start fc6/fc7 (``fc_channels > 0``) from a torchvision VGG's ``classifier.0/3`` weights.

        Raises:
            ValueError: the model has no fc6/fc7, or the weights do not fit (naming shapes and file).
        """
        if not (isinstance(self.head, nn.Sequential) and self.head[0].kernel_size == (7, 7)):
            raise ValueError("load_vgg_classifier needs the fc6/fc7 head: build the FCN with fc_channels > 0")
        fc6, fc7 = self.head[0], self.head[3]
        converted = convolutionalize_vgg_classifier(state, fc6.in_channels, source)
        for conv, name in ((fc6, "fc6"), (fc7, "fc7")):
            w, b = converted[f"{name}.weight"], converted[f"{name}.bias"]
            if w.shape != conv.weight.shape:
                raise ValueError(f"{name} in {source} is {tuple(w.shape)} as a convolution, the model's is "
                                 f"{tuple(conv.weight.shape)} (fc_channels and the backbone width must match)")
            with torch.no_grad():
                conv.weight.copy_(w)
                conv.bias.copy_(b)

    def forward_logits(self, x: Tensor) -> Tensor:
        feats = self.backbone(x)
        scores = self.score(self.head(feats[self.in_features[-1]]))     # [N, C, Hs/32, Ws/32]
        for name, up, skip in zip(self.skip_features, self.skip_ups, self.skip_scores):
            scores = up(scores) + skip(feats[name])                     # stride halves each step
        return self.upsample(scores)
