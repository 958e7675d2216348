"""build_backbone: name lookup, options, pretrained loading, stage and BN freezing, outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from detseg.backbones.build import BACKBONES, build_backbone

NAMES = list(BACKBONES)


def images(n: int = 2, h: int = 67, w: int = 75) -> torch.Tensor:
    return torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(1))


def test_unknown_name_lists_the_options():
    with pytest.raises(KeyError, match=r"unknown backbone 'resnet5'.*resnet50.*densenet121"):
        build_backbone("resnet5")


@pytest.mark.parametrize("name", NAMES)
def test_every_backbone_builds_with_its_feature_specs(name):
    model = build_backbone(name, width=0.125, num_classes=3)
    out = model(images())
    assert list(out) == list(model.feature_specs) == list(model.stage_specs)
    assert {k: v.shape[:2] for k, v in out.items()} == {
        k: (2, s.channels) for k, s in model.feature_specs.items()
    }
    assert model.classify(images()).shape == (2, 3)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_is_a_type_error(name):
    with pytest.raises(TypeError, match="no_such_option"):
        build_backbone(name, width=0.125, no_such_option=True)


def test_builder_options_are_passed_through():
    model = build_backbone("resnet50", width=0.125, zero_init_residual=True)
    assert model.layer2[0].bn3.weight.abs().sum() == 0


@pytest.mark.parametrize("name", NAMES)
def test_frozen_stages_freeze_parameters_and_keep_bn_in_eval(name):
    torch.manual_seed(0)
    model = build_backbone(name, width=0.125, num_classes=3, frozen_stages=2)
    stages = model.stage_modules()
    model.train()  # must not put frozen BN back into training mode
    bns = {
        stage: [m for mod in modules for m in mod.modules() if isinstance(m, nn.BatchNorm2d)]
        for stage, modules in stages.items()
    }
    saved = {id(bn): bn.running_mean.clone() for stage_bns in bns.values() for bn in stage_bns}
    model(images())
    for i, (stage, modules) in enumerate(stages.items()):
        is_frozen = i < 2
        assert all(p.requires_grad != is_frozen for m in modules for p in m.parameters()), stage
        for bn in bns[stage]:
            assert bn.training != is_frozen, stage
            # a training-mode forward updates the statistics of free BN only
            assert torch.equal(bn.running_mean, saved[id(bn)]) == is_frozen, stage
    head = [p for n, p in model.named_parameters() if n.startswith(("fc.", "classifier."))]
    assert head and all(p.requires_grad for p in head)


def test_frozen_stages_out_of_range():
    with pytest.raises(ValueError, match=r"frozen_stages must be in \[0, 5\], got 6"):
        build_backbone("resnet18", width=0.125, frozen_stages=6)


@pytest.mark.parametrize("name", NAMES)
def test_freeze_bn_replaces_batchnorm_and_keeps_eval_outputs(name, saved_weights):
    torch.manual_seed(0)
    # with a weights file GoogLeNet defaults to torchvision's input transform (tested in test_googlenet)
    options = {"transform_input": True} if name == "googlenet" else {}
    reference, path = saved_weights(BACKBONES[name](width=0.125, **options))
    model = build_backbone(name, width=0.125, pretrained_path=path, freeze_bn=True)
    num_bn = sum(isinstance(m, nn.BatchNorm2d) for m in reference.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in model.modules()) == num_bn
    x = images()
    with torch.no_grad():
        expected, out = reference.eval()(x), model.eval()(x)
    assert list(out) == list(expected)
    for stage, value in expected.items():
        # FrozenBatchNorm2d folds BN into x * scale + shift, which rounds differently from
        # F.batch_norm; through 100 layers that reaches ~1e-6 of the activations' scale
        scale = value.abs().max().item()
        torch.testing.assert_close(out[stage], value, atol=1e-5 * scale, rtol=1e-5)


def test_pretrained_torchvision_file_then_frozen_bn_holds_its_statistics(saved_weights):
    tv, path = saved_weights("resnet18")
    model = build_backbone(
        "resnet18", pretrained_path=path, freeze_bn=True, frozen_stages=1, out_features=["c5"]
    )
    for name in ("bn1", "layer1.0.bn1", "layer3.1.bn2", "layer4.0.downsample.1"):
        ours, theirs = model.get_submodule(name), tv.get_submodule(name)
        assert isinstance(ours, FrozenBatchNorm2d), name
        for stat in ("weight", "bias", "running_mean", "running_var"):
            assert torch.equal(getattr(ours, stat), getattr(theirs, stat)), (name, stat)
    # frozen BN ignores train mode: training-mode features equal torchvision's eval features
    x = images(1, 64, 64)
    with torch.no_grad():
        c5 = model.train()(x)["c5"]
        tv.eval()
        expected = x
        for layer in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            expected = tv.get_submodule(layer)(expected)
    torch.testing.assert_close(c5, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_out_features_selects_and_orders_stages(name):
    stages = list(BACKBONES[name](width=0.125).stage_specs)
    wanted = (stages[-1], stages[0])  # given out of order
    model = build_backbone(name, width=0.125, out_features=wanted)
    assert model.out_features == (stages[0], stages[-1])
    assert list(model.feature_specs) == [stages[0], stages[-1]]
    out = model(images())
    assert list(out) == [stages[0], stages[-1]]
    assert [v.shape[1] for v in out.values()] == [s.channels for s in model.feature_specs.values()]


def test_forward_stops_at_the_last_requested_stage():
    model = build_backbone("resnet18", width=0.125, out_features=("c2",))
    calls = []
    model.layer2.register_forward_hook(lambda *args: calls.append(1))
    assert list(model(images())) == ["c2"]
    assert not calls


@pytest.mark.parametrize("out_features", [("c6",), ("c3", "p3"), ()])
def test_bad_out_features_name_the_valid_stages(out_features):
    with pytest.raises(ValueError, match=r"ResNet has stages \['c1', 'c2', 'c3', 'c4', 'c5'\]"):
        build_backbone("resnet18", width=0.125, out_features=out_features)
