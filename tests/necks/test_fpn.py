from collections import OrderedDict

import pytest
import torch
from torchvision.ops import FeaturePyramidNetwork

from detseg.backbones.base import FeatureSpec
from detseg.necks.fpn import FPN, build_fpn

SPECS = OrderedDict(c3=FeatureSpec(16, 8), c4=FeatureSpec(32, 16), c5=FeatureSpec(64, 32))


def features(h=67, w=75, n=2):
    """Backbone-like maps for an odd input size (ceil division, as a ResNet gives)."""
    return OrderedDict(
        (k, torch.randn(n, s.channels, -(-h // s.stride), -(-w // s.stride))) for k, s in SPECS.items()
    )


@pytest.mark.parametrize(
    "extra, levels",
    [("none", ["p3", "p4", "p5"]), ("pool", ["p3", "p4", "p5", "p6"]), ("p6p7", ["p3", "p4", "p5", "p6", "p7"])],
)
def test_levels_match_specs(extra, levels):
    fpn = FPN(SPECS, out_channels=24, extra_levels=extra)
    out = fpn(features())
    assert list(out) == levels == list(fpn.feature_specs)
    for name, x in out.items():
        spec = fpn.feature_specs[name]
        assert x.shape[1] == spec.channels == 24
        assert x.shape[-2:] == (-(-67 // spec.stride), -(-75 // spec.stride))


def test_same_numbers_as_torchvision_fpn():
    torch.manual_seed(0)
    ours = FPN(SPECS, out_channels=8)
    ref = FeaturePyramidNetwork([16, 32, 64], 8)
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = features()
    expected = ref(OrderedDict((str(i), v) for i, v in enumerate(x.values())))
    for a, b in zip(ours(x).values(), expected.values()):
        torch.testing.assert_close(a, b)


def test_missing_stage_is_a_clear_error():
    fpn = FPN(SPECS, out_channels=8)
    x = features()
    del x["c3"]
    with pytest.raises(KeyError, match=r"expects backbone stages \['c3', 'c4', 'c5'\].*include \['c3'\]"):
        fpn(x)
    with pytest.raises(ValueError, match="returns only"):
        build_fpn(SPECS, ("c2", "c3"), 8)
    with pytest.raises(ValueError, match="ordered by stride"):
        FPN(OrderedDict(c5=SPECS["c5"], c3=SPECS["c3"]), 8)


def test_gradients_reach_every_input():
    fpn = FPN(SPECS, out_channels=8, extra_levels="p6p7")
    x = OrderedDict((k, v.requires_grad_()) for k, v in features().items())
    sum(v.sum() for v in fpn(x).values()).backward()
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in x.values())
