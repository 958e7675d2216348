"""The design ideas of the classic CNNs, as numbers computed on real layers.

Lecture notes make claims such as "two stacked 3x3 convolutions see as far as one 5x5 with fewer
parameters" or "GoogLeNet's 1x1 bottlenecks cut the cost of an inception module". Each function
here builds the layers in question (``nn.Conv2d`` & co., or the module taken from a detseg
backbone), runs them through :func:`detseg.utils.summary.summarize` and returns the numbers, so
``tools/make_docs.py`` can print them in ``docs/architectures.md`` and
``tests/docs/test_design.py`` can check them against hand-computed values.

Conventions are those of :mod:`detseg.utils.summary`: ``params`` are parameter elements (weights,
biases, BatchNorm affine terms), ``macs`` are multiply-accumulates of convolutions and linear
layers (bias adds ignored), activation memory is float32 for one image.

Shape shorthand: C channels, H x W spatial size, k kernel size, s stride, p padding, d dilation.

Example:
    >>> two_3x3, one_5x5 = stacked_convs(channels=64)[:2]
    >>> two_3x3.params, one_5x5.params, two_3x3.receptive_field.size
    (73728, 102400, 5)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..backbones.build import build_backbone
from ..backbones.densenet import DenseBlock, Transition
from ..backbones.resnet import BasicBlock, Bottleneck
from ..utils.summary import conv_transpose_output_size, summarize

__all__ = [
    "BackboneCosts",
    "Cost",
    "DenseNetRow",
    "DenseNetTable",
    "ReceptiveField",
    "ShortcutRow",
    "StageCost",
    "UpsampleRow",
    "backbone_costs",
    "build_for_counting",
    "classifier_heads",
    "densenet_channels",
    "dilation_vs_pooling",
    "inception_bottleneck",
    "receptive_field",
    "residual_shortcuts",
    "stacked_convs",
    "stem_costs",
    "transposed_conv_sizes",
]


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one output cell of a chain of layers, along one axis.

    Attributes:
        size: input pixels one output cell sees, ``1 + sum_l (k_l - 1) * d_l * prod_{m<l} s_m``.
        stride: input pixels between neighbouring output cells, ``prod_l s_l``.
    """

    size: int
    stride: int


@dataclass(frozen=True)
class Cost:
    """What one variant of a design costs, measured on one image.

    Attributes:
        name: short label for tables.
        params: parameter elements of the layers.
        macs: multiply-accumulates of one forward pass (conv/linear, bias ignored).
        output_shape: ``(C, H, W)`` or ``(K,)`` of the output, batch dimension dropped.
        activation_bytes: float32 memory of all layer outputs (in-place ReLUs excluded).
        receptive_field: for chains of convs/pools, else ``None``.
    """

    name: str
    params: int
    macs: int
    output_shape: tuple[int, ...]
    activation_bytes: int
    receptive_field: ReceptiveField | None = None


@dataclass(frozen=True)
class DenseNetRow:
    """Channels entering and leaving one dense block or transition.

    Attributes:
        name: module name, e.g. ``"denseblock1"`` or ``"transition1"``.
        num_layers: dense layers in the block (0 for a transition).
        in_channels: channels entering the module.
        out_channels: channels leaving it.
        size: ``(H, W)`` of the output map.
    """

    name: str
    num_layers: int
    in_channels: int
    out_channels: int
    size: tuple[int, int]


@dataclass(frozen=True)
class DenseNetTable:
    """Growth rate, compression and per-module channels of one DenseNet.

    Attributes:
        growth_rate: ``k``, the channels each dense layer adds (read from its 3x3 conv).
        bottleneck_channels: width of the 1x1 conv inside each dense layer (``4k``).
        compression: ``theta``, transition output / input channels.
        rows: blocks and transitions in execution order.
    """

    growth_rate: int
    bottleneck_channels: int
    compression: float
    rows: list[DenseNetRow]


@dataclass(frozen=True)
class ShortcutRow:
    """One residual block: what its branch and its shortcut cost.

    Attributes:
        name: block name, e.g. ``"layer2.0"``.
        in_channels, out_channels: channels entering and leaving the block.
        stride: the block's stride (2 in the first block of ``layer2..4``).
        branch_params: parameters of the residual branch ``F(x)`` (convs and BNs).
        shortcut_params: parameters of the shortcut: 0 for the identity, 1x1 conv + BN for a
            projection.
        projection_params: what a 1x1 conv + BN projection costs in this block (equal to
            ``shortcut_params`` where the block has one): the price of "option C" of the
            ResNet paper, projections everywhere.
    """

    name: str
    in_channels: int
    out_channels: int
    stride: int
    branch_params: int
    shortcut_params: int
    projection_params: int

    @property
    def identity(self) -> bool:
        return self.shortcut_params == 0


@dataclass(frozen=True)
class UpsampleRow:
    """One transposed convolution used for FCN-style upsampling.

    Attributes:
        name: what it is used for.
        in_size: input side length.
        kernel, stride, padding: the ``ConvTranspose2d`` arguments.
        out_size: output side length measured by running the layer.
        formula_size: ``(in - 1) * s - 2p + k``, from
            :func:`detseg.utils.summary.conv_transpose_output_size`.
    """

    name: str
    in_size: int
    kernel: int
    stride: int
    padding: int
    out_size: int
    formula_size: int


# ---- helpers ----------------------------------------------------------------------------------
def build_for_counting(name: str, **kwargs) -> nn.Module:
    """Build a registered backbone fast, with all parameters and buffers set to zero.

    Counting needs shapes, not values: the model is built on the ``meta`` device (no weight
    initialisation, which takes seconds for VGG's 100M+ FC weights), then given real, zeroed
    CPU storage, so it can run a forward pass. Zeroes rather than uninitialised memory, so no
    NaNs or denormals slow the pass down.

    Args:
        name: a key of :data:`detseg.backbones.build.BACKBONES`.
        **kwargs: passed to :func:`detseg.backbones.build.build_backbone`.
    """
    with torch.device("meta"):
        model = build_backbone(name, **kwargs)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            tensor.zero_()
    return model.eval()


def _leaves(layers: Iterable[nn.Module]) -> list[nn.Module]:
    out: list[nn.Module] = []
    for layer in layers:
        children = list(layer.children())
        out.extend(_leaves(children) if children else [layer])
    return out


def _first(value: int | Sequence[int]) -> int:
    return int(value if isinstance(value, int) else value[0])


def receptive_field(layers: Iterable[nn.Module]) -> ReceptiveField:
    """Receptive field of a *chain* of layers (no branches), along the first spatial axis.

    Containers are flattened in registration order (the execution order of ``nn.Sequential``);
    leaves without a ``kernel_size`` (ReLU, BatchNorm, dropout) do not change it.

    Args:
        layers: convolutions and pools (``Conv*d``, ``MaxPool*d``, ``AvgPool*d``) and
            containers of them.

    Returns:
        :class:`ReceptiveField`: each layer grows the field by ``(k - 1) * d * j`` where ``j`` is
        the product of the strides before it.

    Example:
        >>> dilated = [nn.Conv2d(1, 1, 3, padding=d, dilation=d) for d in (1, 2, 4)]
        >>> receptive_field(dilated)
        ReceptiveField(size=15, stride=1)
    """
    size, jump = 1, 1
    for layer in _leaves(layers):
        if not hasattr(layer, "kernel_size"):
            continue
        if getattr(layer, "transposed", False):
            raise ValueError("receptive_field handles convolutions and pools, not transposed convs")
        kernel = _first(layer.kernel_size)
        dilation = _first(getattr(layer, "dilation", 1))
        stride = _first(layer.stride if layer.stride is not None else kernel)
        size += (kernel - 1) * dilation * jump
        jump *= stride
    return ReceptiveField(size, jump)


def _cost(
    name: str, module: nn.Module, input_size: Sequence[int], *, with_rf: bool = False
) -> Cost:
    # the last row is not always the output (a concatenation is no leaf), so hook the module
    shapes: list[tuple[int, ...]] = []
    handle = module.register_forward_hook(lambda m, a, out: shapes.append(tuple(out.shape[1:])))
    try:
        summary = summarize(module, tuple(input_size))
    finally:
        handle.remove()
    return Cost(
        name=name,
        params=summary.total_params,
        macs=summary.total_macs,
        output_shape=shapes[-1],
        activation_bytes=summary.activation_bytes,
        receptive_field=receptive_field([module]) if with_rf else None,
    )


class _Concat(nn.Module):
    """Run branches side by side on one input and concatenate them on channels."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches], 1)


# ---- design ideas -----------------------------------------------------------------------------
def stacked_convs(channels: int = 64, size: int = 56) -> list[Cost]:
    """Stacks of 3x3 convolutions against one large kernel with the same receptive field (VGG).

    Rows: two 3x3 vs one 5x5, then three 3x3 vs one 7x7; all C -> C channels, "same" padding,
    no bias (a BN would follow), so weights are ``n * 9 C^2`` against ``k^2 C^2``. The stacks
    also put a ReLU between the convs (more non-linearity for fewer weights).

    Args:
        channels: C.
        size: H = W of the input map (56: VGG's stage-3 resolution at 224).
    """
    rows = []
    for n, k in ((2, 5), (3, 7)):
        stack: list[nn.Module] = []
        for _ in range(n):
            stack += [nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.ReLU(True)]
        single = nn.Conv2d(channels, channels, k, padding=k // 2, bias=False)
        shape = (channels, size, size)
        rows.append(_cost(f"{n} x 3x3", nn.Sequential(*stack[:-1]), shape, with_rf=True))
        rows.append(_cost(f"1 x {k}x{k}", single, shape, with_rf=True))
    return rows


def inception_bottleneck(size: int = 28) -> list[Cost]:
    """GoogLeNet's ``inception3a`` with and without its 1x1 reductions.

    Branch widths are read from detseg's ``googlenet().inception3a`` (192 channels in; 1x1: 64;
    3x3 reduce 96 -> 3x3 128; 5x5 reduce 16 -> 5x5 32; pool proj 32). Rows:

    * ``naive``: the paper's Fig. 2a, the same 1x1/3x3/5x5 convs straight on the 192 input
      channels and a bare 3x3 max pool, whose 192 channels join the output;
    * ``with 1x1 reductions``: the paper's Fig. 2b (the 5x5 branch really 5x5);
    * ``detseg inception3a``: the module as built, with BN, where the "5x5" branch is 3x3 as in
      torchvision's port (pytorch/vision#906).

    Convs in the first two rows have no bias, as in the BN module. ``size`` is H = W of the
    input (28 at 224).
    """
    module = build_for_counting("googlenet").inception3a
    c_in = module.branch1.conv.in_channels
    ch1 = module.branch1.conv.out_channels
    red3, ch3 = module.branch2[0].conv.out_channels, module.branch2[1].conv.out_channels
    red5, ch5 = module.branch3[0].conv.out_channels, module.branch3[1].conv.out_channels
    proj = module.branch4[1].conv.out_channels

    def conv(c1: int, c2: int, k: int) -> nn.Conv2d:
        return nn.Conv2d(c1, c2, k, padding=k // 2, bias=False)

    def pool() -> nn.MaxPool2d:
        return nn.MaxPool2d(3, stride=1, padding=1)

    naive = _Concat(conv(c_in, ch1, 1), conv(c_in, ch3, 3), conv(c_in, ch5, 5), pool())
    reduced = _Concat(
        conv(c_in, ch1, 1),
        nn.Sequential(conv(c_in, red3, 1), conv(red3, ch3, 3)),
        nn.Sequential(conv(c_in, red5, 1), conv(red5, ch5, 5)),
        nn.Sequential(pool(), conv(c_in, proj, 1)),
    )
    shape = (c_in, size, size)
    return [
        _cost("naive", naive, shape),
        _cost("with 1x1 reductions", reduced, shape),
        _cost("detseg inception3a", module, shape),
    ]


def stem_costs(size: int = 224) -> list[Cost]:
    """GoogLeNet's stem against VGG-16's first three stages, both from 224x224 down to 28x28.

    GoogLeNet: ``conv1`` 7x7/2, max pool, ``conv2`` 1x1, ``conv3`` 3x3, max pool (192 x 28 x 28).
    VGG-16: stages ``c1..c3``, seven 3x3 convs and three max pools (256 x 28 x 28). Both are taken
    from the detseg backbones.
    """
    google = build_for_counting("googlenet")
    stages = google.stage_modules()
    stem = nn.Sequential(*stages["c1"], *stages["c2"], stages["c3"][0])
    vgg = build_for_counting("vgg16")
    vgg_stages = vgg.stage_modules()
    first = nn.Sequential(*vgg_stages["c1"], *vgg_stages["c2"], *vgg_stages["c3"])
    shape = (3, size, size)
    return [
        _cost("GoogLeNet stem", stem, shape, with_rf=True),
        _cost("VGG-16 c1..c3", first, shape, with_rf=True),
    ]


def classifier_heads(num_classes: int = 1000) -> list[Cost]:
    """VGG-16's fully connected head against global average pooling, on VGG-16's 512 x 7 x 7.

    Rows: detseg's ``vgg16`` head (7x7 adaptive pool, FC 25088 -> 4096 -> 4096 -> K); global
    average pooling + one FC 512 -> K (as GoogLeNet, ResNet and DenseNet do).
    """
    vgg = build_for_counting("vgg16", num_classes=num_classes)
    channels = vgg.stage_specs["c5"].channels
    fc_head = nn.Sequential(vgg.avgpool, nn.Flatten(), vgg.classifier)
    gap_head = nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)
    )
    shape = (channels, 7, 7)
    return [
        _cost("VGG-16 FC head", fc_head, shape),
        _cost("global average pool + FC", gap_head, shape),
    ]


def densenet_channels(name: str = "densenet121", size: int = 224) -> DenseNetTable:
    """Channels entering and leaving each dense block and transition, measured by a forward pass.

    A block of L layers on C channels leaves ``C + L * k``; a transition keeps
    ``floor(theta * C)`` and halves H and W.
    """
    model = build_for_counting(name)
    rows: list[DenseNetRow] = []

    def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
        num_layers = len(list(module.children())) if isinstance(module, DenseBlock) else 0
        rows.append(
            DenseNetRow(
                names[module],
                num_layers,
                args[0].shape[1],
                output.shape[1],
                tuple(output.shape[2:]),
            )
        )

    names = {
        m: n.split(".")[-1]
        for n, m in model.named_modules()
        if isinstance(m, (DenseBlock, Transition))
    }
    handles = [m.register_forward_hook(hook) for m in names]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    finally:
        for handle in handles:
            handle.remove()
    first_layer = next(m for m in model.modules() if isinstance(m, DenseBlock)).denselayer1
    transition = next(r for r in rows if r.num_layers == 0)
    return DenseNetTable(
        growth_rate=first_layer.conv2.out_channels,
        bottleneck_channels=first_layer.conv1.out_channels,
        compression=transition.out_channels / transition.in_channels,
        rows=rows,
    )


def residual_shortcuts(name: str = "resnet50") -> list[ShortcutRow]:
    """Every residual block of a ResNet: branch parameters, shortcut parameters, and what a
    projection shortcut (1x1 conv + BN, strided like the block) would cost there."""
    model = build_for_counting(name)
    rows = []
    for block_name, block in model.named_modules():
        if not isinstance(block, (BasicBlock, Bottleneck)):
            continue
        first = block.conv1
        last = block.last_bn()
        in_channels, out_channels = first.in_channels, last.num_features
        shortcut = block.downsample
        shortcut_params = sum(p.numel() for p in shortcut.parameters()) if shortcut else 0
        branch_params = sum(p.numel() for p in block.parameters()) - shortcut_params
        projection = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=block.stride, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        rows.append(
            ShortcutRow(
                name=block_name,
                in_channels=in_channels,
                out_channels=out_channels,
                stride=block.stride,
                branch_params=branch_params,
                shortcut_params=shortcut_params,
                projection_params=sum(p.numel() for p in projection.parameters()),
            )
        )
    return rows


def dilation_vs_pooling(channels: int = 64, size: int = 64) -> list[Cost]:
    """Three 3x3 convs: plain, with 2x2 max pools between them, and dilated by 1, 2, 4.

    All three stacks have the same weights (``3 * 9 C^2`` plus biases). Pooling grows the
    receptive field but shrinks the map; dilation grows it as fast and keeps the resolution
    (the idea behind dilated/atrous segmentation heads).

    Args:
        channels: C, in and out of every conv.
        size: H = W of the input.
    """

    def conv(dilation: int = 1) -> nn.Conv2d:
        return nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)

    plain = nn.Sequential(conv(), nn.ReLU(True), conv(), nn.ReLU(True), conv())
    pooled = nn.Sequential(
        conv(), nn.ReLU(True), nn.MaxPool2d(2),
        conv(), nn.ReLU(True), nn.MaxPool2d(2),
        conv(),
    )
    dilated = nn.Sequential(conv(1), nn.ReLU(True), conv(2), nn.ReLU(True), conv(4))
    shape = (channels, size, size)
    return [
        _cost("3x3 x 3", plain, shape, with_rf=True),
        _cost("3x3, pool, 3x3, pool, 3x3", pooled, shape, with_rf=True),
        _cost("3x3 dilation 1, 2, 4", dilated, shape, with_rf=True),
    ]


def transposed_conv_sizes(channels: int = 21) -> list[UpsampleRow]:
    """Output sizes of the transposed convolutions FCN uses to upsample class scores.

    ``ConvTranspose2d(k=2s, stride=s, padding=s/2)`` maps n to exactly ``s * n``; the original
    Caffe FCN used ``padding=0`` and cropped ``s/2`` pixels from each side afterwards. Each row
    runs a real layer (``channels`` in and out, 21 = Pascal VOC classes) and records the formula
    value too, so a test can hold them equal.
    """
    specs = [
        ("x2 (FCN-16s/8s, stride 32 -> 16)", 7, 4, 2, 1),
        ("x2 (FCN-8s, stride 16 -> 8)", 14, 4, 2, 1),
        ("x8 (FCN-8s, stride 8 -> 1)", 28, 16, 8, 4),
        ("x32 (FCN-32s, stride 32 -> 1)", 7, 64, 32, 16),
        ("x32 without padding, then crop 16 per side (Caffe FCN)", 7, 64, 32, 0),
    ]
    rows = []
    for name, n, k, s, p in specs:
        layer = nn.ConvTranspose2d(channels, channels, k, stride=s, padding=p, bias=False)
        with torch.no_grad():
            out = layer(torch.zeros(1, channels, n, n))
        rows.append(
            UpsampleRow(name, n, k, s, p, out.shape[-1], conv_transpose_output_size(n, k, s, p))
        )
    return rows


# ---- whole backbones --------------------------------------------------------------------------
@dataclass(frozen=True)
class StageCost:
    """One stage of a backbone (or its classifier head) measured in a classification pass.

    Attributes:
        name: ``c1..c5`` or ``"head"``.
        channels, stride: from the backbone's ``stage_specs`` (0 for the head).
        output_shape: measured ``(C, H, W)`` of the stage output (``(K,)`` for the head).
        params: parameters of the stage's modules.
        macs: multiply-accumulates of the stage's layers.
        activation_bytes: float32 memory of the stage's layer outputs.
    """

    name: str
    channels: int
    stride: int
    output_shape: tuple[int, ...]
    params: int
    macs: int
    activation_bytes: int


@dataclass(frozen=True)
class BackboneCosts:
    """Size and cost of one backbone as an image classifier, per stage and in total.

    Attributes:
        name: registry name.
        input_size: H = W of the image.
        params, macs, flops, activation_bytes: totals of :func:`~detseg.utils.summary.summarize`.
        fc_params, conv_params, other_params: parameters owned by ``nn.Linear``, by
            convolutions, and by everything else (BatchNorm affine terms).
        stages: ``c*`` stages in order, then ``head``.
    """

    name: str
    input_size: int
    params: int
    macs: int
    flops: int
    activation_bytes: int
    fc_params: int
    conv_params: int
    other_params: int
    stages: list[StageCost]


def backbone_costs(
    name: str, *, input_size: int | None = None, num_classes: int = 1000, **options
) -> BackboneCosts:
    """Count a registered backbone with its classifier head on one square image.

    Each layer row of the summary is assigned to the stage whose module contains it (by
    qualified name); rows outside every stage (pooling and FC layers of the head) form
    ``head``. Stage outputs are recorded by hooks, and their channels are checked against
    ``stage_specs``.

    Args:
        name: a key of :data:`detseg.backbones.build.BACKBONES`.
        input_size: H = W; default 224, or 32 for ``lenet5`` (its native input).
        num_classes: K of the classifier head.
        **options: builder options, e.g. ``aux_logits=False`` for GoogLeNet.

    Raises:
        RuntimeError: a stage's measured channels differ from its ``stage_specs`` entry.
    """
    size = input_size or (32 if name == "lenet5" else 224)
    model = build_for_counting(name, num_classes=num_classes, **options)
    module_names = {module: n for n, module in model.named_modules()}
    stages = model.stage_modules()
    prefixes = {stage: [module_names[m] for m in modules] for stage, modules in stages.items()}
    shapes: dict[str, tuple[int, ...]] = {}

    def record(stage: str):
        def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
            shapes[stage] = tuple(output.shape[1:])

        return hook

    handles = [modules[-1].register_forward_hook(record(s)) for s, modules in stages.items()]
    try:
        summary = summarize(model, (3, size, size), forward=model.classify)
    finally:
        for handle in handles:
            handle.remove()

    def stage_of(row_name: str) -> str:
        for stage, names in prefixes.items():
            if any(row_name == n or row_name.startswith(n + ".") for n in names):
                return stage
        return "head"

    macs: dict[str, int] = dict.fromkeys([*stages, "head"], 0)
    memory = dict(macs)
    for layer in summary.layers:
        stage = stage_of(layer.name)
        macs[stage] += layer.macs
        memory[stage] += layer.activation_bytes
    rows = []
    for stage, modules in stages.items():
        spec = model.stage_specs[stage]
        if shapes[stage][0] != spec.channels:
            raise RuntimeError(
                f"{name} stage {stage}: stage_specs says {spec.channels} channels, "
                f"the forward pass gave {shapes[stage][0]}"
            )
        params = {id(p): p.numel() for m in modules for p in m.parameters()}
        rows.append(
            StageCost(
                stage, spec.channels, spec.stride, shapes[stage], sum(params.values()),
                macs[stage], memory[stage],
            )
        )
    head_params = summary.total_params - sum(r.params for r in rows)
    rows.append(StageCost("head", 0, 0, (num_classes,), head_params, macs["head"], memory["head"]))

    by_type = summary.params_by_type()
    fc = by_type.get("Linear", 0)
    conv = sum(n for t, n in by_type.items() if t.startswith("Conv"))
    return BackboneCosts(
        name=name,
        input_size=size,
        params=summary.total_params,
        macs=summary.total_macs,
        flops=summary.total_flops,
        activation_bytes=summary.activation_bytes,
        fc_params=fc,
        conv_params=conv,
        other_params=summary.total_params - fc - conv,
        stages=rows,
    )


@dataclass
class ConfigCost:
    """What a shipped config builds: model, task, input size, parameters, dense-part FLOPs.

    Attributes:
        counted: which forward pass ``flops`` counts (see :func:`config_costs`).
        input_size: the side ``S`` of the square ``S x S`` input the FLOPs are counted on.
    """

    config: str
    arch: str
    task: str
    backbone: str
    input_size: int
    params: int
    flops: int
    counted: str


def _dense_part(model: nn.Module, warp_size: int) -> tuple[Callable[[Tensor], Any], str, int | None]:
    """The forward pass whose cost does not depend on the data, and what it is."""
    if hasattr(model, "raw_outputs"):
        return model.raw_outputs, "whole network before NMS", None
    if hasattr(model, "logits"):
        return model.logits, "whole network", None
    if hasattr(model, "rpn"):
        def trunk_and_rpn(x: Tensor):
            features = model.extract(x)
            return model.rpn.head([features[k] for k in model.rpn_features])
        return trunk_and_rpn, "backbone + neck + RPN head (RoI heads scale with the proposals)", None
    if hasattr(model, "roi_heads") and model.backbone is not None:
        return model.extract, "backbone + neck (RoI heads scale with the proposals)", None
    if hasattr(model, "roi_heads"):
        return model.roi_heads.box_head, f"one warped {warp_size} px region (R-CNN runs it per region)", warp_size
    return (lambda x: model.backbone.classify(model.normalize(x))), "whole network", None


def config_costs(path: str | Path) -> ConfigCost:
    """Build the model of a config (zero weights, no data) and count it at the config's input size.

    ``flops`` counts the dense part only (:func:`_dense_part`): detectors' post-processing and
    the second stage of two-stage detectors depend on how many boxes there are.
    """
    import yaml

    from ..config import ExperimentConfig, from_dict
    from ..models import build_model

    raw = yaml.safe_load(Path(path).read_text())
    for split in ("train", "val"):  # data locations are not needed to count a model
        raw.get("data", {}).pop(split, None)
    cfg = from_dict(ExperimentConfig, raw, source=str(path))
    with torch.device("meta"):
        model = build_model(cfg.model)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            tensor.zero_()
    model.eval()
    forward, counted, size = _dense_part(model, cfg.model.two_stage.warp_size)
    task = getattr(model, "task", "classification")
    size = size or (cfg.data.image_size if task == "classification" else cfg.data.augment.image_size)
    s = summarize(model, (3, size, size), forward=forward)
    b = cfg.model.backbone
    backbone = b.name if b.width == 1 else f"{b.name} x{b.width:g}"
    if cfg.model.arch == "unet":
        backbone = "own encoder"
    return ConfigCost(Path(path).name, cfg.model.arch, task, backbone, size, s.total_params, s.total_flops, counted)
