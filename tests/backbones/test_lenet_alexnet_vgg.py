"""Contract, torchvision-compatibility and dilation tests for LeNet-5, AlexNet and VGG."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from detseg.backbones.alexnet import alexnet
from detseg.backbones.base import scale_channels
from detseg.backbones.lenet import lenet5
from detseg.backbones.vgg import (
    vgg11,
    vgg11_bn,
    vgg13,
    vgg13_bn,
    vgg16,
    vgg16_bn,
    vgg19,
    vgg19_bn,
)
from detseg.backbones.weights import load_torchvision_weights

VGGS = {
    "vgg11": vgg11,
    "vgg11_bn": vgg11_bn,
    "vgg13": vgg13,
    "vgg13_bn": vgg13_bn,
    "vgg16": vgg16,
    "vgg16_bn": vgg16_bn,
    "vgg19": vgg19,
    "vgg19_bn": vgg19_bn,
}
BUILDERS = {"lenet5": lenet5, "alexnet": alexnet, **VGGS}
STAGES = {"lenet5": ("c1", "c2"), "alexnet": ("c2", "c3", "c4", "c5")}  # VGG: c1..c5
#: stage -> channels at width 1
CHANNELS = {
    "lenet5": {"c1": 6, "c2": 16},
    "alexnet": {"c2": 64, "c3": 192, "c4": 256, "c5": 256},
    "vgg": {"c1": 64, "c2": 128, "c3": 256, "c4": 512, "c5": 512},
}
HEAD_PREFIXES = ("avgpool", "classifier")
H, W = 67, 75  # odd sizes on purpose
WIDTH = 0.125


def _family(name: str) -> str:
    return "vgg" if name.startswith("vgg") else name


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _uninitialised(builder, **kwargs) -> nn.Module:
    """Full-size model with uninitialised CPU tensors (skips ~1 s of init per 100M parameters);
    only for models whose whole state dict is then loaded strictly."""
    with torch.device("meta"):
        model = builder(**kwargs)
    return model.to_empty(device="cpu")


@pytest.mark.parametrize("name", BUILDERS)
def test_stage_outputs_match_feature_specs(name):
    torch.manual_seed(0)
    model = BUILDERS[name](width=WIDTH).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, H, W))

    assert tuple(out) == STAGES.get(name, ("c1", "c2", "c3", "c4", "c5"))
    assert tuple(out) == tuple(model.feature_specs)
    for stage, feat in out.items():
        spec = model.feature_specs[stage]
        assert spec.channels == scale_channels(CHANNELS[_family(name)][stage], WIDTH)
        assert spec.stride == {"c1": 2, "c2": 4, "c3": 8, "c4": 16, "c5": 32}[stage]
        assert feat.shape[:2] == (2, spec.channels)
        if name == "alexnet":  # unpadded 11x11 conv and 3x3/2 pools lose up to one border cell
            assert H // spec.stride - 1 <= feat.shape[2] <= H // spec.stride
            assert W // spec.stride - 1 <= feat.shape[3] <= W // spec.stride
        else:  # "same" convs and 2x2/2 pools: exact
            assert feat.shape[2:] == (H // spec.stride, W // spec.stride)


@pytest.mark.parametrize("name", ["alexnet", "vgg11_bn", "vgg16"])
def test_set_out_features_returns_only_those_stages(name):
    model = BUILDERS[name](width=WIDTH)
    model.set_out_features(("c5", "c3"))  # order given does not matter; stage order does
    out = model(torch.randn(1, 3, H, W))
    assert list(out) == ["c3", "c5"]
    assert list(model.feature_specs) == ["c3", "c5"]


def test_lenet_has_only_two_stages():
    model = lenet5()
    with pytest.raises(ValueError, match=r"has stages \['c1', 'c2'\]"):
        model.set_out_features(("c3",))


@pytest.mark.parametrize("name", BUILDERS)
def test_stages_cover_every_backbone_parameter_once(name):
    model = BUILDERS[name](width=WIDTH, num_classes=3)
    seen: list[int] = []
    for modules in model.stage_modules().values():
        for module in modules:
            seen += [id(p) for p in module.parameters()]
    backbone = [id(p) for n, p in model.named_parameters() if not n.startswith(HEAD_PREFIXES)]
    assert sorted(seen) == sorted(backbone)


@pytest.mark.parametrize("name", BUILDERS)
def test_no_head_modules_without_num_classes(name):
    model = BUILDERS[name](width=WIDTH)
    assert model.num_classes is None
    assert not [k for k in model.state_dict() if k.startswith(HEAD_PREFIXES)]
    with pytest.raises(RuntimeError, match="without a classifier head"):
        model.classify(torch.randn(1, 3, H, W))


@pytest.mark.parametrize("name", BUILDERS)
def test_classify_gives_logits_and_gradients(name):
    model = BUILDERS[name](width=WIDTH, num_classes=7)
    logits = model.classify(torch.randn(2, 3, H, W))
    assert logits.shape == (2, 7)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "fc", "hidden"),
    [("lenet5", 0, 120), ("lenet5", 2, 84), ("alexnet", 1, 4096), ("vgg16", 0, 4096)],
)
def test_width_scales_classifier_hidden_sizes(name, fc, hidden):
    model = BUILDERS[name](width=WIDTH, num_classes=5)
    assert model.classifier[fc].out_features == scale_channels(hidden, WIDTH)


@pytest.mark.parametrize("name", ["alexnet", *VGGS])
def test_full_size_matches_torchvision_parameters_and_keys(name):
    with torch.device("meta"):  # shapes only: no 100M-parameter allocation or init
        ours = BUILDERS[name](num_classes=1000)
        reference = getattr(torchvision.models, name)(weights=None)
    assert _num_params(ours) == _num_params(reference)
    theirs = reference.state_dict()
    assert list(ours.state_dict()) == list(theirs)
    assert all(v.shape == theirs[k].shape for k, v in ours.state_dict().items())


@pytest.mark.parametrize(("name", "size"), [("vgg16", 224), ("vgg11_bn", 64), ("alexnet", 127)])
def test_logits_match_torchvision_after_loading_its_state_dict(name, size, tmp_path):
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None).eval()
    path = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), path)
    ours = _uninitialised(BUILDERS[name], num_classes=1000).eval()
    assert load_torchvision_weights(ours, path) == []
    path.unlink()  # ~0.5 GB; pytest keeps the last three runs' tmp dirs
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours.classify(x), reference(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("output_stride", "strides"), [(16, (2, 4, 8, 16, 16)), (8, (2, 4, 8, 8, 8))]
)
@pytest.mark.parametrize("name", ["vgg11", "vgg16_bn"])
def test_vgg_output_stride_keeps_keys_and_records_true_strides(name, output_stride, strides):
    model = VGGS[name](width=WIDTH, output_stride=output_stride, num_classes=4)
    plain = VGGS[name](width=WIDTH, num_classes=4)
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in plain.state_dict().items()
    }
    assert tuple(s.stride for s in model.feature_specs.values()) == strides
    out = model(torch.randn(1, 3, H, W))
    for stage, feat in out.items():
        stride = model.feature_specs[stage].stride
        assert feat.shape[2:] == (H // stride, W // stride)
    assert model.classify(torch.randn(1, 3, H, W)).shape == (1, 4)

    block5_convs = [m for m in model.stage_modules()["c5"] if isinstance(m, nn.Conv2d)]
    assert all(c.dilation == ((2, 2) if output_stride == 8 else (1, 1)) for c in block5_convs)
    assert all(c.padding == c.dilation for c in block5_convs)


@pytest.mark.parametrize(("name", "output_stride"), [("lenet5", 16), ("alexnet", 8), ("vgg16", 4)])
def test_unsupported_output_stride_says_what_is_supported(name, output_stride):
    supported = r"\[32\]" if name in ("lenet5", "alexnet") else r"\[8, 16, 32\]"
    with pytest.raises(ValueError, match=f"supports output_stride in {supported}"):
        BUILDERS[name](output_stride=output_stride)


@pytest.mark.parametrize("kwargs", [{"width": 0}, {"num_classes": 0}])
def test_invalid_width_or_num_classes(kwargs):
    with pytest.raises(ValueError, match="width|num_classes"):
        vgg11(**kwargs)


def test_loading_wrong_shapes_gives_readable_error(tmp_path):
    path = tmp_path / "vgg11_w025.pth"
    torch.save(vgg11(width=0.25).state_dict(), path)
    fits = r"do not fit VGG \(shape \d+: features\.0\.weight"
    with pytest.raises(ValueError, match=fits):
        load_torchvision_weights(vgg11(width=WIDTH), path)

    torch.save(alexnet(width=WIDTH).state_dict(), path)
    with pytest.raises(ValueError, match=r"missing(.|\n)*unexpected"):
        load_torchvision_weights(vgg16(width=WIDTH), path)


def test_head_keys_are_dropped_for_feature_extractor_or_other_classes(tmp_path):
    path = tmp_path / "vgg11_k10.pth"
    torch.save(vgg11(width=WIDTH, num_classes=10).state_dict(), path)
    assert set(load_torchvision_weights(vgg11(width=WIDTH), path)) == {
        f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")
    }
    assert load_torchvision_weights(vgg11(width=WIDTH, num_classes=3), path) == [
        "classifier.6.weight",
        "classifier.6.bias",
    ]


def test_bad_input_gives_clear_errors():
    model = vgg11(width=WIDTH)
    with pytest.raises(ValueError, match=r"Tensor\[N, 3, H, W\], got \(3, 64, 64\)"):
        model(torch.randn(3, 64, 64))
    with pytest.raises(TypeError, match="torch.uint8"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


def test_freeze_stages_uses_the_stage_cut_points():
    model = vgg11_bn(width=WIDTH)
    model.freeze_stages(2)
    model.train()
    for stage, modules in model.stage_modules().items():
        frozen = stage in ("c1", "c2")
        for module in modules:
            assert all(p.requires_grad != frozen for p in module.parameters())
            if isinstance(module, nn.BatchNorm2d):
                assert module.training != frozen
