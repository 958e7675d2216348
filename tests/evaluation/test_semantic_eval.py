"""SemanticEvaluator: hand-made confusion matrices with known IoUs, ignore index, absent classes."""

from __future__ import annotations

import math

import pytest
import torch

from detseg.evaluation import SemanticEvaluator

# Class 0 background, 1 "cat", 2 "dog"; 255 ignored. Valid pixels (true -> predicted):
#   0->0, 0->1, 1->1, 1->1, 2->2, 2->0  (the two ignored pixels are predicted 2 and 0)
TARGET = torch.tensor([[[0, 0, 1, 1], [2, 2, 255, 255]]])
PRED = torch.tensor([[[0, 1, 1, 1], [2, 0, 2, 0]]])
NAMES = ("background", "cat", "dog")


def test_known_confusion_and_ious():
    ev = SemanticEvaluator(3, NAMES)
    ev.process(PRED, TARGET)
    assert ev.confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]  # rows true, columns predicted
    m = ev.evaluate()
    # IoU = tp / (true + predicted - tp): background 1/(2+2-1), cat 2/(2+3-2), dog 1/(2+1-1)
    assert m["iou/background"] == pytest.approx(1 / 3)
    assert m["iou/cat"] == pytest.approx(2 / 3)
    assert m["iou/dog"] == pytest.approx(1 / 2)
    assert m["miou"] == pytest.approx(0.5)
    assert m["pixel_acc"] == pytest.approx(4 / 6)
    assert m["mean_acc"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)


def test_batches_accumulate_and_logits_are_argmaxed():
    ev = SemanticEvaluator(3, NAMES)
    logits = torch.nn.functional.one_hot(PRED, 3).permute(0, 3, 1, 2).float()  # [N, C, H, W]
    ev.process(logits, TARGET)
    ev.process(PRED, TARGET)
    assert ev.confusion.tolist() == [[2, 2, 0], [0, 4, 0], [2, 0, 2]]
    assert ev.evaluate()["miou"] == pytest.approx(0.5)
    ev.reset()
    assert math.isnan(ev.evaluate()["miou"]) and math.isnan(ev.evaluate()["pixel_acc"])


def test_ignore_index_is_excluded():
    ev = SemanticEvaluator(3, NAMES)
    wild = PRED.clone()
    wild[0, 1, 2:] = torch.tensor([1, 1])  # change only the ignored pixels' predictions
    ev.process(wild, TARGET)
    assert ev.evaluate()["miou"] == pytest.approx(0.5)
    # A custom ignore value; 255 is then an error, not silently dropped.
    ev = SemanticEvaluator(3, NAMES, ignore_index=-1)
    ev.process(PRED, TARGET.masked_fill(TARGET == 255, -1))
    assert ev.evaluate()["pixel_acc"] == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match=r"outside \[0, 3\).*target \[255\]"):
        ev.process(PRED, TARGET)


def test_absent_classes_leave_the_mean():
    ev = SemanticEvaluator(5, NAMES + ("bird", "fish"))
    pred = PRED.clone()
    pred[0, 1, 2] = 4  # an ignored pixel predicted "fish": still absent from the evaluated pixels
    ev.process(pred, TARGET)
    m = ev.evaluate()
    assert math.isnan(m["iou/bird"]) and math.isnan(m["iou/fish"])
    assert m["miou"] == pytest.approx(0.5)  # NaN-safe: the mean of the three present classes
    # A class predicted but never true is present: IoU 0, and it counts in the mean.
    pred[0, 0, 0] = 3
    ev.reset()
    ev.process(pred, TARGET)
    m = ev.evaluate()
    assert m["iou/bird"] == 0.0 and math.isnan(m["iou/fish"])
    assert m["iou/background"] == 0.0  # its one correct pixel is now called "bird"
    assert m["miou"] == pytest.approx((0 + 2 / 3 + 1 / 2 + 0) / 4)


def test_bad_inputs_are_named():
    ev = SemanticEvaluator(3)
    assert ev.class_names == ("background", "1", "2")
    with pytest.raises(ValueError, match="differ"):
        ev.process(PRED[:, :1], TARGET)
    with pytest.raises(ValueError, match="prediction \\[3\\]"):
        ev.process(PRED + 1, TARGET.clamp(max=2))
    with pytest.raises(ValueError, match="background"):
        SemanticEvaluator(3, ("cat", "dog"))


@pytest.mark.gpu
def test_confusion_stays_on_the_device():
    ev = SemanticEvaluator(3, NAMES)
    ev.process(PRED.cuda(), TARGET.cuda())
    assert ev.confusion.device.type == "cuda"
    assert ev.evaluate()["miou"] == pytest.approx(0.5)
