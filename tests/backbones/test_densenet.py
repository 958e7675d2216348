"""DenseNet backbones: stage contract, torchvision parity (keys, parameter counts, logits)."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torchvision

from detseg.backbones.densenet import densenet121, densenet169, densenet201
from detseg.backbones.weights import load_torchvision_weights

BUILDERS = {"densenet121": densenet121, "densenet169": densenet169, "densenet201": densenet201}
STRIDES = (2, 4, 8, 16, 32)

#: c1..c5 channels at width=1 (torchvision) and at width=0.125 (k = 4, 8 stem channels)
FULL_CHANNELS = {
    "densenet121": (64, 256, 512, 1024, 1024),
    "densenet169": (64, 256, 512, 1280, 1664),
    "densenet201": (64, 256, 512, 1792, 1920),
}
TINY_CHANNELS = {
    "densenet121": (8, 32, 64, 128, 128),
    "densenet169": (8, 32, 64, 160, 208),
    "densenet201": (8, 32, 64, 224, 240),
}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_tiny_forward_matches_feature_specs(name):
    torch.manual_seed(0)
    model = BUILDERS[name](width=0.125, num_classes=5)
    specs = model.feature_specs
    assert list(specs) == ["c1", "c2", "c3", "c4", "c5"]
    assert tuple(s.channels for s in specs.values()) == TINY_CHANNELS[name]
    assert tuple(s.stride for s in specs.values()) == STRIDES
    x = torch.randn(2, 3, 67, 75)
    out = model(x)
    assert list(out) == list(specs)
    for stage, spec in specs.items():
        n, c, h, w = out[stage].shape
        assert (n, c) == (2, spec.channels), stage
        # 2x2 average pools floor odd sizes: one less than ceil(H / stride) is allowed
        assert 0 <= math.ceil(67 / spec.stride) - h <= 1, stage
        assert 0 <= math.ceil(75 / spec.stride) - w <= 1, stage
    assert (out["c5"] >= 0).all()  # c5 ends with the final ReLU
    assert model.classify(x).shape == (2, 5)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_stages_cover_every_parameter_once(name):
    model = BUILDERS[name](width=0.125)  # no head: every parameter belongs to a stage
    staged = [p for mods in model.stage_modules().values() for m in mods for p in m.parameters()]
    assert len({id(p) for p in staged}) == len(staged) == len(list(model.parameters()))


def test_width_scales_growth_rate_not_bottleneck_or_compression():
    model = densenet121(width=0.125)
    layer = model.features.denseblock2.denselayer3
    assert layer.conv2.out_channels == 4  # k = 32 * 0.125
    assert layer.conv1.out_channels == 16  # bn_size 4 * k
    assert layer.conv1.in_channels == 32 // 2 + 2 * 4  # transition1 output + 2 layers
    transition = model.features.transition1
    assert transition.conv.out_channels == transition.conv.in_channels // 2


@pytest.mark.parametrize("name", list(BUILDERS))
def test_state_dict_and_parameter_count_match_torchvision(name):
    tv = getattr(torchvision.models, name)(weights=None)
    ours = BUILDERS[name](num_classes=1000)
    tv_shapes = {k: v.shape for k, v in tv.state_dict().items()}
    assert {k: v.shape for k, v in ours.state_dict().items()} == tv_shapes
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in tv.parameters())
    assert tuple(s.channels for s in ours.stage_specs.values()) == FULL_CHANNELS[name]
    headless = BUILDERS[name]()
    assert set(headless.state_dict()) == {k for k in tv_shapes if not k.startswith("classifier.")}
    assert not hasattr(headless, "classifier")


def test_densenet121_logits_and_c5_match_torchvision(saved_weights):
    tv, path = saved_weights("densenet121")
    ours = densenet121(num_classes=1000)
    assert load_torchvision_weights(ours, path) == []
    ours.eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = tv(x)
        torch.testing.assert_close(ours.classify(x), expected, atol=1e-5, rtol=1e-5)
        assert expected.std() > 0.1  # randomized BN keeps logits far from trivial
        # c5 is torchvision's `features` output plus the ReLU its forward() applies
        small = x[..., :96, :96]
        c5 = torch.relu(tv.features(small))
        torch.testing.assert_close(ours(small)["c5"], c5, atol=1e-5, rtol=1e-5)
    # a feature extractor loads the same file, dropping only the head
    dropped = load_torchvision_weights(densenet121(), path)
    assert sorted(dropped) == ["classifier.bias", "classifier.weight"]


@pytest.mark.parametrize("output_stride", [8, 16])
def test_only_output_stride_32(output_stride):
    with pytest.raises(ValueError, match=r"DenseNet supports output_stride in \[32\]"):
        densenet121(width=0.125, output_stride=output_stride)


def test_wrong_architecture_file_names_missing_keys(saved_weights):
    _, path = saved_weights("densenet121")
    missing = r"missing \d+: features\.denseblock3\.denselayer25\.[^\n]*right architecture"
    with pytest.raises(ValueError, match=missing):
        load_torchvision_weights(densenet169(), path)


def test_published_old_style_keys_are_renamed(tmp_path):
    """torchvision's downloadable DenseNet files say ``norm.1``; they load like ``norm1``."""
    source = densenet121(width=0.125, num_classes=3)
    old = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))(\d)", r"\1.\2", k): v
           for k, v in source.state_dict().items()}
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    path = tmp_path / "old.pth"
    torch.save(old, path)
    target = densenet121(width=0.125, num_classes=3)
    load_torchvision_weights(target, path)
    for k, v in source.state_dict().items():
        assert torch.equal(target.state_dict()[k], v), k
