"""Contract, torchvision-compatibility and auxiliary-head tests for GoogLeNet."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision

from detseg.backbones.base import scale_channels
from detseg.backbones.googlenet import GoogLeNet, Inception, googlenet
from detseg.backbones.weights import load_torchvision_weights

CHANNELS = {"c1": 64, "c2": 192, "c3": 480, "c4": 832, "c5": 1024}
HEAD_PREFIXES = ("fc.", "aux1.", "aux2.")
H, W = 67, 75  # odd sizes on purpose
WIDTH = 0.125


def _uninitialised(**kwargs) -> GoogLeNet:
    """Full-size model with uninitialised CPU tensors, for tests that then load a whole file."""
    with torch.device("meta"):
        model = googlenet(**kwargs)
    return model.to_empty(device="cpu")


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory):
    """A torchvision GoogLeNet (random ImageNet-shaped weights, aux heads) and its .pth file.

    Tests that change the model's mode or flags work on a ``copy.deepcopy`` of it.
    """
    torch.manual_seed(0)
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    path = tmp_path_factory.mktemp("googlenet") / "googlenet.pth"
    torch.save(reference.state_dict(), path)
    return reference, path


def test_stage_outputs_match_feature_specs():
    torch.manual_seed(0)
    model = googlenet(width=WIDTH).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, H, W))
    assert list(out) == ["c1", "c2", "c3", "c4", "c5"] == list(model.feature_specs)
    for stage, feat in out.items():
        spec = model.feature_specs[stage]
        assert spec.stride == {"c1": 2, "c2": 4, "c3": 8, "c4": 16, "c5": 32}[stage]
        assert feat.shape[:2] == (2, spec.channels)
        for size, got in zip((H, W), feat.shape[2:]):  # ceil-mode pools: floor .. ceil
            assert size // spec.stride <= got <= -(-size // spec.stride)


@pytest.mark.parametrize("width", [0.125, 0.25, 1.0])
def test_channels_are_the_scaled_branch_sums(width):
    with torch.device("meta"):
        model = googlenet(width=width)
    for stage, channels in CHANNELS.items():
        spec = model.stage_specs[stage]
        if width == 1.0:
            assert spec.channels == channels
        else:  # every branch is rounded separately, so only approximately scaled
            assert abs(spec.channels - channels * width) <= 4
    assert model.inception5b.out_channels == model.stage_specs["c5"].channels


def test_set_out_features_returns_only_those_stages():
    model = googlenet(width=WIDTH)
    model.set_out_features(("c5", "c3"))
    assert list(model(torch.randn(1, 3, H, W))) == ["c3", "c5"]
    assert list(model.feature_specs) == ["c3", "c5"]


@pytest.mark.parametrize("aux_logits", [True, False])
def test_full_size_matches_torchvision_parameters_and_keys(aux_logits):
    with torch.device("meta"):
        ours = googlenet(num_classes=1000, aux_logits=aux_logits)
        reference = torchvision.models.googlenet(
            weights=None, aux_logits=aux_logits, init_weights=True
        )
    theirs = reference.state_dict()
    assert sum(p.numel() for p in ours.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    assert sorted(ours.state_dict()) == sorted(theirs)  # torchvision registers aux1/2 last
    assert all(v.shape == theirs[k].shape for k, v in ours.state_dict().items())


def test_torchvision_keeps_the_3x3_in_the_5x5_branch():
    with torch.device("meta"):
        block = googlenet().inception3a
    assert isinstance(block, Inception)
    assert block.branch3[1].conv.kernel_size == (3, 3)  # pytorch/vision#906, kept for weights
    assert block.branch2[0].conv.kernel_size == (1, 1)  # the bottleneck


@pytest.mark.parametrize(("transform_input", "size"), [(False, 224), (True, 128)])
def test_logits_match_torchvision_after_loading_its_state_dict(
    torchvision_file, transform_input, size
):
    reference, path = torchvision_file
    reference = copy.deepcopy(reference).eval()
    reference.transform_input = transform_input
    ours = _uninitialised(num_classes=1000, transform_input=transform_input).eval()
    assert load_torchvision_weights(ours, path) == []
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        expected = reference(x)
        torch.testing.assert_close(ours.classify(x), expected, atol=1e-5, rtol=0)
        logits, aux = ours.classify_with_aux(x)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)
    assert aux == []


def test_training_mode_aux_logits_match_torchvision(torchvision_file):
    reference, path = torchvision_file
    reference = copy.deepcopy(reference).train()  # batch-norm statistics will change
    ours = _uninitialised(num_classes=1000).train()
    load_torchvision_weights(ours, path)
    x = torch.randn(2, 3, 96, 96)
    torch.manual_seed(1)  # same dropout masks: both draw aux1, aux2, then main dropout
    expected = reference(x)
    torch.manual_seed(1)
    logits, (aux1, aux2) = ours.classify_with_aux(x)
    torch.testing.assert_close(logits, expected.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(aux1, expected.aux_logits1, atol=1e-5, rtol=0)
    torch.testing.assert_close(aux2, expected.aux_logits2, atol=1e-5, rtol=0)


def test_aux_logits_only_in_training():
    model = googlenet(width=WIDTH, num_classes=5).train()
    x = torch.randn(2, 3, H, W)
    logits, aux = model.classify_with_aux(x)
    assert logits.shape == (2, 5)
    assert [a.shape for a in aux] == [(2, 5), (2, 5)]
    (logits.sum() + sum(a.sum() for a in aux)).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.classify(x).shape == (2, 5)  # main logits only, in any mode

    model.eval()
    with torch.no_grad():
        logits, aux = model.classify_with_aux(x)
    assert logits.shape == (2, 5) and aux == []


def test_without_aux_logits_no_aux_heads(torchvision_file):
    _, path = torchvision_file
    model = _uninitialised(num_classes=1000, aux_logits=False).train()
    assert not hasattr(model, "aux1") and not hasattr(model, "aux2")
    dropped = load_torchvision_weights(model, path)
    assert dropped and all(k.startswith(("aux1.", "aux2.")) for k in dropped)
    _, aux = model.classify_with_aux(torch.randn(2, 3, 64, 64))
    assert aux == []


def test_feature_extractor_has_no_head_modules():
    model = googlenet(width=WIDTH)  # aux_logits defaults to True but needs a head
    assert model.num_classes is None and not model.aux_logits
    assert not [k for k in model.state_dict() if k.startswith(HEAD_PREFIXES)]
    with pytest.raises(RuntimeError, match="without a classifier head"):
        model.classify_with_aux(torch.randn(1, 3, H, W))


def test_stages_cover_every_backbone_parameter_once():
    model = googlenet(width=WIDTH, num_classes=3)
    seen = [id(p) for ms in model.stage_modules().values() for m in ms for p in m.parameters()]
    backbone = [id(p) for n, p in model.named_parameters() if not n.startswith(HEAD_PREFIXES)]
    assert sorted(seen) == sorted(backbone)


def test_transform_input_adds_no_state():
    plain, transformed = googlenet(width=WIDTH), googlenet(width=WIDTH, transform_input=True)
    assert list(plain.state_dict()) == list(transformed.state_dict())


def test_unsupported_output_stride():
    with pytest.raises(ValueError, match=r"GoogLeNet supports output_stride in \[32\], got 16"):
        googlenet(output_stride=16)


def test_loading_into_the_wrong_width_gives_readable_error(torchvision_file):
    _, path = torchvision_file
    with pytest.raises(ValueError, match=r"do not fit GoogLeNet \(shape \d+: conv1"):
        load_torchvision_weights(googlenet(width=WIDTH), path)


def test_bad_input_gives_clear_errors():
    model: GoogLeNet = googlenet(width=WIDTH)
    with pytest.raises(ValueError, match=r"Tensor\[N, 3, H, W\], got \(1, 1, 64, 64\)"):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(TypeError, match="torch.uint8"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


def test_aux_hidden_sizes_scale_with_width():
    model = googlenet(width=WIDTH, num_classes=5)
    assert model.aux1.fc1.in_features == scale_channels(128, WIDTH) * 16
    assert model.aux1.fc1.out_features == scale_channels(1024, WIDTH)


def test_pretrained_file_from_a_config_gets_torchvisions_input_transform(torchvision_file, repo):
    """torchvision's weights-loading builder sets transform_input=True; a config naming the file must too."""
    from detseg.config import load_config
    from detseg.models import build_model

    reference, path = torchvision_file
    cfg = load_config(repo / "configs/classifier_resnet18_shapes.yaml",
                      ["model.backbone.name=googlenet", "model.backbone.width=1.0", "model.num_classes=1000",
                       f"model.backbone.pretrained={path}"])
    model = build_model(cfg.model)
    assert model.backbone.transform_input
    assert not build_model(load_config(repo / "configs/classifier_resnet18_shapes.yaml",
                                       ["model.backbone.name=googlenet"]).model).backbone.transform_input
