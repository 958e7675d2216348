"""ResNet backbones: stage contract, torchvision parity (keys, parameters, logits), dilation."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

from detseg.backbones.base import FeatureSpec
from detseg.backbones.resnet import resnet18, resnet34, resnet50, resnet101
from detseg.backbones.weights import load_torchvision_weights

BUILDERS = {
    "resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50, "resnet101": resnet101
}

#: c1..c5 channels at width=0.125 (stem 8; planes 8/16/32/64, x4 for Bottleneck)
TINY_CHANNELS = {
    "resnet18": (8, 8, 16, 32, 64),
    "resnet34": (8, 8, 16, 32, 64),
    "resnet50": (8, 32, 64, 128, 256),
    "resnet101": (8, 32, 64, 128, 256),
}


def torchvision_layer4(tv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
        x = getattr(tv, name)(x)
    return x


@pytest.mark.parametrize("name", list(BUILDERS))
def test_tiny_forward_matches_feature_specs(name):
    torch.manual_seed(0)
    model = BUILDERS[name](width=0.125, num_classes=5)
    x = torch.randn(2, 3, 67, 75)
    expected = {
        f"c{i + 1}": FeatureSpec(ch, 2 ** (i + 1)) for i, ch in enumerate(TINY_CHANNELS[name])
    }
    assert model.feature_specs == expected
    out = model(x)
    assert list(out) == list(expected)
    for stage, spec in expected.items():
        h, w = math.ceil(67 / spec.stride), math.ceil(75 / spec.stride)
        assert out[stage].shape == (2, spec.channels, h, w), stage
    assert model.classify(x).shape == (2, 5)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_stages_cover_every_parameter_once(name):
    model = BUILDERS[name](width=0.125)  # no head: every parameter belongs to a stage
    staged = [p for mods in model.stage_modules().values() for m in mods for p in m.parameters()]
    assert len({id(p) for p in staged}) == len(staged) == len(list(model.parameters()))


@pytest.mark.parametrize("name", list(BUILDERS))
def test_state_dict_and_parameter_count_match_torchvision(name):
    tv = getattr(torchvision.models, name)(weights=None)
    ours = BUILDERS[name](num_classes=1000)
    tv_shapes = {k: v.shape for k, v in tv.state_dict().items()}
    assert {k: v.shape for k, v in ours.state_dict().items()} == tv_shapes
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in tv.parameters())
    # feature extractor: same keys without the head, and no head modules at all
    headless = BUILDERS[name]()
    assert set(headless.state_dict()) == {k for k in tv_shapes if not k.startswith("fc.")}
    assert not hasattr(headless, "fc")
    with pytest.raises(RuntimeError, match="num_classes"):
        headless.classify(torch.zeros(1, 3, 32, 32))


@pytest.mark.parametrize("name, size", [("resnet18", 96), ("resnet50", 224)])
def test_logits_match_torchvision(saved_weights, name, size):
    tv, path = saved_weights(name)
    ours = BUILDERS[name](num_classes=1000)
    assert load_torchvision_weights(ours, path) == []
    ours.eval()
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = tv(x)
        torch.testing.assert_close(ours.classify(x), expected, atol=1e-5, rtol=1e-5)
        assert expected.std() > 0.1  # randomized BN keeps logits far from trivial


def test_headless_load_drops_fc_and_matches_layer4(saved_weights):
    tv, path = saved_weights("resnet18")
    ours = resnet18()
    assert sorted(load_torchvision_weights(ours, path)) == ["fc.bias", "fc.weight"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x)["c5"], torchvision_layer4(tv, x))


@pytest.mark.parametrize("output_stride", [16, 8])
def test_dilation_matches_torchvision(saved_weights, output_stride):
    dilate = [False, output_stride == 8, True]
    tv, path = saved_weights("resnet50", replace_stride_with_dilation=dilate)
    ours = resnet50(output_stride=output_stride)
    load_torchvision_weights(ours, path)  # same keys and shapes as the undilated model
    strides = {k: s.stride for k, s in ours.stage_specs.items()}
    assert strides == {"c1": 2, "c2": 4, "c3": 8, "c4": min(16, output_stride), "c5": output_stride}
    x = torch.randn(1, 3, 48, 56)
    with torch.no_grad():
        c5 = ours.eval()(x)["c5"]
        torch.testing.assert_close(c5, torchvision_layer4(tv, x), atol=1e-5, rtol=1e-5)
    assert c5.shape[-2:] == (math.ceil(48 / output_stride), math.ceil(56 / output_stride))


@pytest.mark.parametrize("output_stride", [16, 8])
@pytest.mark.parametrize("name", list(BUILDERS))
def test_dilated_tiny_shapes(name, output_stride):
    # torchvision's BasicBlock refuses dilation; ours dilates every 3x3 conv after the stride
    model = BUILDERS[name](width=0.125, output_stride=output_stride)
    out = model(torch.randn(2, 3, 67, 75))
    for stage, spec in model.feature_specs.items():
        assert spec.stride == min(2 ** int(stage[1]), output_stride)
        h, w = math.ceil(67 / spec.stride), math.ceil(75 / spec.stride)
        assert out[stage].shape == (2, spec.channels, h, w), stage
    assert model.layer4[-1].conv2.dilation == (32 // output_stride,) * 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"output_stride": 4}, r"output_stride in \[32, 16, 8\], got 4"),
        ({"output_stride": 64}, r"output_stride in \[32, 16, 8\], got 64"),
        ({"width": 0.0}, "width must be > 0"),
        ({"num_classes": 0}, "num_classes must be >= 1"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        resnet18(**kwargs)


def test_wrong_architecture_file_names_missing_keys(saved_weights):
    _, path = saved_weights("resnet18")
    with pytest.raises(ValueError, match=r"missing \d+: layer1\.2\.[^\n]*right architecture"):
        load_torchvision_weights(resnet34(), path)


@pytest.mark.parametrize("name, last_bn", [("resnet18", "bn2"), ("resnet50", "bn3")])
def test_zero_init_residual(name, last_bn):
    model = BUILDERS[name](width=0.125, zero_init_residual=True)
    blocks = [b for i in range(1, 5) for b in model.get_submodule(f"layer{i}")]
    assert all(getattr(b, last_bn).weight.abs().sum() == 0 for b in blocks)
    assert all(b.bn1.weight.abs().sum() > 0 for b in blocks)
    assert BUILDERS[name](width=0.125).layer1[0].get_submodule(last_bn).weight.abs().sum() > 0
