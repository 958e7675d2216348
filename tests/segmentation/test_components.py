"""Transposed-conv bilinear initialisation, the loss (ignore index, weights, Dice) and the metric."""

import pytest
import torch
import torch.nn.functional as F

from detseg.evaluation import SemanticEvaluator
from detseg.segmentation import BilinearUpsample, SegmentationLoss, dice_loss


@pytest.mark.parametrize("factor", [2, 3, 8, 32])
def test_transposed_conv_starts_as_exact_bilinear_upsampling(factor):
    """Equal to F.interpolate(bilinear, align_corners=False) wherever the source coordinate
    x = (o + 0.5) / f - 0.5 lies inside the input, i.e. all but the outer f // 2 rows/columns."""
    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, 6, dtype=torch.float64)
    up = BilinearUpsample(5, factor).double()
    ours = up(x)
    ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert ours.shape == ref.shape == (2, 5, 7 * factor, 6 * factor)
    b = factor // 2
    inner = (..., slice(b, 7 * factor - b), slice(b, 6 * factor - b))
    torch.testing.assert_close(ours[inner], ref[inner], rtol=0, atol=1e-6)
    if factor > 1:  # the border is where zero padding and edge replication differ
        assert not torch.allclose(ours, ref)
    assert up.weight.requires_grad
    # the fixed (final) upsampler computes the very same transposed convolution, faster
    fixed = BilinearUpsample(5, factor, learnable=False).double()
    assert not fixed.weight.requires_grad and "weight" not in fixed.state_dict()
    torch.testing.assert_close(fixed(x), ours, rtol=0, atol=1e-6)
    torch.testing.assert_close(fixed(x), F.conv_transpose2d(x, fixed.weight, stride=factor, padding=factor // 2,
                                                            groups=5), rtol=0, atol=1e-6)


def test_ignored_pixels_change_nothing_in_the_loss():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 9, 11, requires_grad=True)
    target = torch.randint(0, 4, (2, 9, 11))
    target[:, :3] = 255
    criterion = SegmentationLoss(4, dice_weight=1.0)
    losses = criterion(logits, target)
    valid = target != 255
    manual = F.cross_entropy(logits.permute(0, 2, 3, 1)[valid], target[valid])
    torch.testing.assert_close(losses["loss_seg"], manual)
    sum(losses.values()).backward()
    assert logits.grad[:, :, :3].abs().max() == 0  # no gradient from ignored pixels
    scrambled = logits.detach().clone()
    scrambled[:, :, :3] = torch.randn_like(scrambled[:, :, :3]) * 100
    again = criterion(scrambled, target)
    for k in losses:
        torch.testing.assert_close(again[k], losses[k].detach())


def test_class_weights():
    torch.manual_seed(1)
    logits = torch.randn(1, 3, 6, 6)
    target = torch.randint(0, 3, (1, 6, 6))
    w = torch.tensor([0.2, 1.0, 3.0])
    got = SegmentationLoss(3, class_weights=tuple(w.tolist()))(logits, target)["loss_seg"]
    nll = -logits.log_softmax(1).gather(1, target[:, None])[:, 0]
    torch.testing.assert_close(got, (w[target] * nll).sum() / w[target].sum())
    # weight 0 on a class = its pixels ignored
    zero = SegmentationLoss(3, class_weights=(0.0, 1.0, 1.0))(logits, target)["loss_seg"]
    masked = target.clone()
    masked[target == 0] = 255
    torch.testing.assert_close(zero, SegmentationLoss(3)(logits, masked)["loss_seg"])
    with pytest.raises(ValueError, match=">= 0"):
        SegmentationLoss(3, class_weights=(-1.0, 1.0, 1.0))


def test_dice_term():
    target = torch.randint(0, 3, (2, 8, 8))
    perfect = F.one_hot(target, 3).permute(0, 3, 1, 2).float() * 50
    assert dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    wrong = F.one_hot((target + 1) % 3, 3).permute(0, 3, 1, 2).float() * 50
    assert dice_loss(wrong, target).item() > 0.9
    assert "loss_dice" not in SegmentationLoss(3)(perfect, target)
    losses = SegmentationLoss(3, dice_weight=0.5)(wrong, target)
    assert losses["loss_dice"].item() == pytest.approx(0.5 * dice_loss(wrong, target).item())


def test_ignore_index_respected_by_the_metric():
    pred = torch.randint(0, 4, (2, 10, 10))
    target = pred.clone()
    target[:, 5:] = 255
    pred[:, 5:] = (pred[:, 5:] + 1) % 4  # wrong everywhere the target is ignored
    ev = SemanticEvaluator(4)
    ev.process(pred, target)
    m = ev.evaluate()
    assert m["miou"] == 1.0 and m["pixel_acc"] == 1.0
