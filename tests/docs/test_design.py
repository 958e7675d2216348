"""Each design-idea function of detseg.docs.design against numbers computed by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from detseg.backbones.build import build_backbone
from detseg.docs import design
from detseg.docs.design import ReceptiveField, receptive_field


# ---- receptive field calculator -------------------------------------------------------------
def _stack(kind: str, pool: type[nn.Module] = nn.MaxPool2d) -> nn.Sequential:
    if kind == "plain":
        return nn.Sequential(*(nn.Conv2d(1, 1, 3, padding=1) for _ in range(3)))
    if kind == "pooled":
        return nn.Sequential(
            nn.Conv2d(1, 1, 3, padding=1), nn.ReLU(), pool(2),
            nn.Conv2d(1, 1, 3, padding=1), pool(2),
            nn.Conv2d(1, 1, 3, padding=1),
        )
    return nn.Sequential(*(nn.Conv2d(1, 1, 3, padding=d, dilation=d) for d in (1, 2, 4)))


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("plain", ReceptiveField(1 + 2 * 3, 1)),
        ("pooled", ReceptiveField(1 + 2 + 1 + 2 * 2 + 1 * 2 + 2 * 4, 4)),  # 18
        ("dilated", ReceptiveField(1 + 2 * (1 + 2 + 4), 1)),  # 15
    ],
)
def test_receptive_field_by_hand(kind, expected):
    assert receptive_field([_stack(kind)]) == expected


@pytest.mark.parametrize("kind", ["plain", "pooled", "dilated"])
def test_receptive_field_matches_gradient_support(kind):
    # With positive weights and average pools the network is linear and every input pixel in
    # the receptive field reaches the centre output, so the gradient's support is the field.
    net = _stack(kind, pool=nn.AvgPool2d)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    x = torch.ones(1, 1, 64, 64, requires_grad=True)
    y = net(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    rows = (x.grad[0, 0].abs().sum(1) > 0).nonzero()
    assert int(rows.max() - rows.min() + 1) == receptive_field([net]).size


def test_receptive_field_ignores_non_spatial_layers_and_rejects_transposed():
    layers = [nn.Conv2d(1, 1, 5), nn.BatchNorm2d(1), nn.ReLU(), nn.MaxPool2d(3, stride=2)]
    assert receptive_field(layers) == ReceptiveField(5 + 2, 2)
    with pytest.raises(ValueError, match="transposed"):
        receptive_field([nn.ConvTranspose2d(1, 1, 4, stride=2)])


# ---- design ideas -----------------------------------------------------------------------------
def test_stacked_convs():
    c, size = 8, 10
    two, five, three, seven = design.stacked_convs(channels=c, size=size)
    assert (two.params, five.params) == (2 * 3 * 3 * c * c, 5 * 5 * c * c)
    assert (three.params, seven.params) == (3 * 3 * 3 * c * c, 7 * 7 * c * c)
    assert two.receptive_field.size == five.receptive_field.size == 5
    assert three.receptive_field.size == seven.receptive_field.size == 7
    for row in (two, five, three, seven):  # "same" padding: MACs = weights x positions
        assert row.macs == row.params * size * size
        assert row.output_shape == (c, size, size)


def test_inception_bottleneck_inception3a():
    naive, reduced, detseg_module = design.inception_bottleneck(size=28)
    naive_w = 192 * 64 + 192 * 128 * 9 + 192 * 32 * 25
    reduced_w = 192 * 64 + 192 * 96 + 96 * 128 * 9 + 192 * 16 + 16 * 32 * 25 + 192 * 32
    assert (naive.params, naive.macs) == (naive_w, naive_w * 28 * 28) == (387072, 303464448)
    assert (reduced.params, reduced.macs) == (reduced_w, reduced_w * 28 * 28)
    assert (naive.output_shape, reduced.output_shape) == ((416, 28, 28), (256, 28, 28))
    # detseg/torchvision: the "5x5" branch is 3x3, and every conv has a BN (2 params/channel)
    detseg_w = reduced_w - 16 * 32 * (25 - 9)
    assert detseg_module.macs == detseg_w * 28 * 28
    assert detseg_module.params == detseg_w + 2 * (64 + 96 + 128 + 16 + 32 + 32)
    assert detseg_module.output_shape == (256, 28, 28)


def test_stem_costs():
    google, vgg = design.stem_costs()
    g_w = [7 * 7 * 3 * 64, 64 * 64, 3 * 3 * 64 * 192]
    assert google.params == sum(g_w) + 2 * (64 + 64 + 192)
    assert google.macs == g_w[0] * 112**2 + (g_w[1] + g_w[2]) * 56**2 == 477675520
    assert google.output_shape == (192, 28, 28)
    convs = [(3, 64, 224), (64, 64, 224), (64, 128, 112), (128, 128, 112),
             (128, 256, 56), (256, 256, 56), (256, 256, 56)]
    assert vgg.params == sum(9 * a * b + b for a, b, _ in convs)
    assert vgg.macs == sum(9 * a * b * s * s for a, b, s in convs) == 9335144448
    assert vgg.output_shape == (256, 28, 28)
    assert google.receptive_field == ReceptiveField(1 + 6 + 2 * 2 + 2 * 4 + 2 * 4, 8)


def test_classifier_heads():
    fc, gap = design.classifier_heads(num_classes=1000)
    assert fc.params == 25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    assert fc.macs == 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    assert (gap.params, gap.macs) == (512 * 1000 + 1000, 512 * 1000)
    assert fc.output_shape == gap.output_shape == (1000,)


def test_densenet121_channels():
    table = design.densenet_channels("densenet121")
    assert (table.growth_rate, table.bottleneck_channels, table.compression) == (32, 128, 0.5)
    got = [(r.name, r.num_layers, r.in_channels, r.out_channels, r.size) for r in table.rows]
    expected, c, size = [], 64, 56
    for i, layers in enumerate((6, 12, 24, 16)):
        if i:
            expected.append((f"transition{i}", 0, c, c // 2, (size // 2, size // 2)))
            c, size = c // 2, size // 2
        expected.append((f"denseblock{i + 1}", layers, c, c + 32 * layers, (size, size)))
        c += 32 * layers
    assert got == expected


def test_residual_shortcuts():
    r18 = {b.name: b for b in design.residual_shortcuts("resnet18")}
    assert [n for n, b in r18.items() if not b.identity] == ["layer2.0", "layer3.0", "layer4.0"]
    b = r18["layer2.0"]
    assert (b.in_channels, b.out_channels, b.stride) == (64, 128, 2)
    assert b.shortcut_params == b.projection_params == 64 * 128 + 2 * 128
    assert b.branch_params == 9 * 64 * 128 + 9 * 128 * 128 + 2 * (2 * 128)
    b = r18["layer2.1"]
    assert (b.shortcut_params, b.projection_params) == (0, 128 * 128 + 2 * 128)
    r50 = {b.name: b for b in design.residual_shortcuts("resnet50")}
    assert len(r50) == 16 and sum(not b.identity for b in r50.values()) == 4
    b = r50["layer1.0"]  # stride 1, but 64 -> 256 channels needs a projection
    assert (b.stride, b.shortcut_params) == (1, 64 * 256 + 2 * 256)
    assert b.branch_params == 64 * 64 + 9 * 64 * 64 + 64 * 256 + 2 * (64 + 64 + 256)


def test_dilation_vs_pooling():
    c = 4
    plain, pooled, dilated = design.dilation_vs_pooling(channels=c, size=32)
    assert plain.params == pooled.params == dilated.params == 3 * (9 * c * c + c)
    assert [r.receptive_field for r in (plain, pooled, dilated)] == [
        ReceptiveField(7, 1), ReceptiveField(18, 4), ReceptiveField(15, 1)
    ]
    assert (plain.output_shape, pooled.output_shape, dilated.output_shape) == (
        (c, 32, 32), (c, 8, 8), (c, 32, 32)
    )
    assert dilated.macs == plain.macs == 3 * 9 * c * c * 32 * 32


def test_transposed_conv_sizes():
    rows = design.transposed_conv_sizes()
    assert [(r.in_size, r.out_size) for r in rows] == [
        (7, 14), (14, 28), (28, 224), (7, 224), (7, 256)
    ]
    for r in rows:
        assert r.out_size == r.formula_size == (r.in_size - 1) * r.stride - 2 * r.padding + r.kernel


# ---- whole backbones --------------------------------------------------------------------------
def test_build_for_counting_matches_a_normal_build():
    fast = design.build_for_counting("resnet18", num_classes=10, width=0.25)
    normal = build_backbone("resnet18", num_classes=10, width=0.25)
    fast_state, normal_state = fast.state_dict(), normal.state_dict()
    assert {k: v.shape for k, v in fast_state.items()} == {
        k: v.shape for k, v in normal_state.items()
    }
    assert all(v.device.type == "cpu" and not v.any() for v in fast_state.values())


def test_backbone_costs_lenet5_by_hand():
    costs = design.backbone_costs("lenet5")
    assert costs.input_size == 32
    c1, c2, head = costs.stages
    assert (c1.name, c1.output_shape, c1.stride) == ("c1", (6, 16, 16), 2)
    assert (c1.params, c1.macs) == (3 * 6 * 25 + 6, 3 * 6 * 25 * 32 * 32)
    assert (c2.params, c2.macs) == (6 * 16 * 25 + 16, 6 * 16 * 25 * 16 * 16)
    fc = [(400, 120), (120, 84), (84, 1000)]
    assert head.params == costs.fc_params == sum(a * b + b for a, b in fc)
    assert head.macs == sum(a * b for a, b in fc)
    assert costs.conv_params == c1.params + c2.params and costs.other_params == 0
    assert costs.params == sum(s.params for s in costs.stages)
    assert costs.macs == sum(s.macs for s in costs.stages)


def test_backbone_costs_published_figures():
    # torchvision's documented sizes: resnet18 11,689,512 params / 1.81 GMACs; googlenet
    # (inference network, no auxiliary heads) 6,624,904 params / 1.50 GMACs
    r18 = design.backbone_costs("resnet18")
    assert r18.params == 11689512 and round(r18.macs / 1e9, 2) == 1.81
    assert [s.output_shape for s in r18.stages][:5] == [
        (64, 112, 112), (64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7)
    ]
    assert r18.macs == sum(s.macs for s in r18.stages)
    assert r18.params == sum(s.params for s in r18.stages)
    google = design.backbone_costs("googlenet", aux_logits=False)
    assert google.params == 6624904 and round(google.macs / 1e9, 2) == 1.50
