"""Drawn predictions: colours per class, masks blended, nothing drawn below the threshold."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detseg.utils.visualize import class_color, draw_detections, overlay_semantic


def test_boxes_masks_and_threshold():
    image = np.zeros((60, 80, 3), np.uint8)
    masks = np.zeros((2, 60, 80), bool)
    masks[0, 35:45, 10:20] = True
    masks[1, 10:20, 55:65] = True
    out = draw_detections(image, torch.tensor([[5.0, 30, 40, 55], [50, 5, 70, 25]]), torch.tensor([1, 0]),
                          scores=torch.tensor([0.9, 0.1]), masks=masks, class_names=["a", "b"], score_thresh=0.5)
    assert image.sum() == 0  # input untouched
    assert tuple(out[45, 5]) == class_color(1)  # left edge of the kept box
    assert out[15, 60].sum() == 0 and out[5, 50].sum() == 0  # the low-score box and mask: not drawn
    assert (out[40, 15] > 0).any()  # the kept mask is blended
    truth = draw_detections(image, [[50, 5, 70, 25]], [0], masks=masks[1:])
    assert (truth[15, 60] > 0).any()  # ground truth (no scores) is always drawn


def test_empty_detections_and_bad_image():
    image = np.full((10, 10, 3), 7, np.uint8)
    assert np.array_equal(draw_detections(image, np.zeros((0, 4)), np.zeros(0)), image)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        draw_detections(image.astype(np.float32), [], [])


def test_semantic_overlay_keeps_background_and_ignore():
    image = np.full((4, 4, 3), 100, np.uint8)
    labels = np.array([[0, 1, 2, 255]] * 4)
    out = overlay_semantic(image, labels, alpha=1.0)
    assert tuple(out[0, 0]) == (100, 100, 100) and tuple(out[0, 3]) == (100, 100, 100)
    assert tuple(out[0, 1]) == class_color(0) and tuple(out[0, 2]) == class_color(1)
    with pytest.raises(ValueError, match="does not match"):
        overlay_semantic(image, labels[:2])
