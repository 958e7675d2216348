"""Predictor: preprocessing, mapping back to the original image, filtering, tiles, threads,
category-id tables, segmenter areas and pictures."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

from detseg.config.schema import AugmentConfig
from detseg.inference import Predictor
from detseg.structures.instances import Detections
from detseg.utils.visualize import overlay_semantic


class CentreBox(nn.Module):
    """Finds one 'object': the box of the bright pixels of each input image (input frame)."""

    task, with_masks = "detection", False

    def __init__(self):
        super().__init__()
        self.seen_sizes = []

    def predict(self, images, image_sizes=None):
        out = []
        for img, size in zip(images, image_sizes):
            self.seen_sizes.append(tuple(size))
            ys, xs = (img[0] > 200).nonzero(as_tuple=True)
            if len(xs) == 0:
                out.append(Detections.empty())
                continue
            box = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32)
            out.append(Detections(torch.cat([box, box]), torch.tensor([0.9, 0.2]), torch.tensor([1, 0])))
        return out


class Threshold(nn.Module):
    task, with_masks, num_classes = "segmentation", False, 2

    def predict(self, images, image_sizes=None):
        return (images[:, 0] > 200).long() * 2  # class 1 (label value 2) where bright

    def logits(self, images):
        """Label 2 where bright, else 0, as logits (what sliding-window inference averages)."""
        bright = (images[:, 0] > 200).float()
        return torch.stack([1 - bright, torch.zeros_like(bright), bright], 1) * 10


def image_with_square(h=48, w=96, box=(60, 10, 80, 30)):
    img = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = 255
    return img


def test_boxes_come_back_in_original_pixels_and_filters_apply():
    model = CentreBox()
    predictor = Predictor(model, ["a", "b"], AugmentConfig(image_size=64, resize="letterbox"), device="cpu",
                          score_thresh=0.5)
    result = predictor(image_with_square())[0]
    assert model.seen_sizes == [(64, 64)]
    np.testing.assert_allclose(result.boxes, [[60, 10, 80, 30]], atol=1.0)
    assert result.names == ["b"] and result.scores.tolist() == pytest.approx([0.9])
    assert result.to_coco(7)[0]["bbox"] == pytest.approx([60, 10, 20, 20], abs=1.0)
    only_a = Predictor(model, ["a", "b"], AugmentConfig(image_size=64), device="cpu", score_thresh=0.0, classes=[0])
    assert only_a(image_with_square())[0].labels.tolist() == [0]
    assert result.plot().shape == (48, 96, 3)


def test_segmentation_maps_come_back_at_original_size():
    predictor = Predictor(Threshold(), ["a", "b"], AugmentConfig(image_size=64), device="cpu")
    result = predictor(image_with_square())[0]
    assert result.semantic.shape == (48, 96)
    assert result.semantic[20, 70] == 2 and result.semantic[5, 5] == 0
    assert abs(int((result.semantic == 2).sum()) - 400) <= 60


def test_tiles_find_small_objects_and_merge_duplicates():
    big = np.zeros((300, 300, 3), np.uint8)
    big[140:150, 140:150] = 255  # lies in several overlapping tiles
    predictor = Predictor(CentreBox(), ["a", "b"], AugmentConfig(image_size=128), device="cpu", score_thresh=0.5)
    result = predictor.predict_tiled(big, tile=128, overlap=0.25)
    assert len(result.boxes) == 1
    np.testing.assert_allclose(result.boxes[0], [140, 140, 150, 150], atol=1.5)


def test_segmentation_tiles_keep_full_resolution():
    big = np.zeros((300, 400, 3), np.uint8)
    big[140:142, 200:203] = 255  # a 2 x 3 px object: gone once 400 px shrink to 64
    predictor = Predictor(Threshold(), ["a", "b"], AugmentConfig(image_size=64), device="cpu")
    assert (predictor(big)[0].semantic == 2).sum() < 6
    result = predictor.predict_tiled(big, tile=128, overlap=0.25)
    assert result.semantic.shape == (300, 400)
    assert np.array_equal(np.argwhere(result.semantic == 2), np.argwhere(big[..., 0] == 255))


def test_threads_share_one_predictor_safely():
    predictor = Predictor(CentreBox(), ["a", "b"], AugmentConfig(image_size=64), device="cpu", score_thresh=0.5)
    results = []

    def work():
        results.extend(predictor([image_with_square()] * 3))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 12 and all(r.names == ["b"] for r in results)


def test_bad_inputs_are_clear():
    with pytest.raises(ValueError, match="detection or segmentation model"):
        Predictor(nn.Linear(1, 1), ["a"], AugmentConfig(), device="cpu")
    predictor = Predictor(CentreBox(), ["a", "b"], AugmentConfig(image_size=64), device="cpu")
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        predictor(np.zeros((10, 10), np.uint8))
    with pytest.raises(OSError, match="missing.jpg"):
        predictor("missing.jpg")


class Brighter(nn.Module):
    """Class 1 (value 2) / one instance mask where the (resized) input's red is above 100.

    100, not 127: INTER_AREA's 96 -> 64 shrink gives the square's edges 170 and its corner 113.
    """

    num_classes = 2

    def __init__(self, task):
        super().__init__()
        self.task, self.with_masks = task, task == "detection"

    def predict(self, images, image_sizes=None):
        bright = images[:, 0] > 100
        if self.task == "segmentation":
            return bright.long() * 2
        return [Detections(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([0.9]), torch.tensor([1]), masks=m[None])
                for m in bright]


@pytest.mark.parametrize("task", ["segmentation", "detection"])
def test_maps_and_masks_come_back_without_a_half_pixel_shift(task):
    """96 px -> 64 px input (x2/3): the square [31, 61) is [21, 41) there; back at 96 px, sampling at
    pixel centres (nearest-exact) gives [31, 61) again, plain nearest [32, 62)."""
    image = np.zeros((96, 96, 3), np.uint8)
    image[31:61, 31:61] = 255
    predictor = Predictor(Brighter(task), ["a", "b"], AugmentConfig(image_size=64), device="cpu")
    result = predictor(image)[0]
    got = result.semantic == 2 if task == "segmentation" else result.masks[0]
    assert got.shape == (96, 96)
    np.testing.assert_array_equal(np.argwhere(got), np.argwhere(image[..., 0] == 255))


def test_coco_results_use_the_category_id_table():
    image = image_with_square()
    default = Predictor(CentreBox(), ["a", "b"], AugmentConfig(image_size=64), device="cpu", score_thresh=0.5)
    assert default.category_ids == (1, 2) and default(image)[0].to_coco(1)[0]["category_id"] == 2
    coco = Predictor(CentreBox(), ["a", "b"], AugmentConfig(image_size=64), device="cpu", score_thresh=0.5,
                     category_ids=[3, 13])
    result = coco(image)[0]
    assert result.labels.tolist() == [1] and result.to_coco(1)[0]["category_id"] == 13
    assert result.to_coco(1, category_ids=[7, 8])[0]["category_id"] == 8  # an explicit table wins
    assert coco.predict_tiled(image, tile=32).to_coco(1)[0]["category_id"] == 13
    with pytest.raises(ValueError, match="2 distinct category ids"):
        Predictor(CentreBox(), ["a", "b"], AugmentConfig(image_size=64), device="cpu", category_ids=[5, 5])


def test_segmentation_results_give_areas_and_a_picture_with_a_key():
    image = image_with_square()  # 20 x 20 bright square: 400 px of class "b"
    result = Predictor(Threshold(), ["a", "b"], AugmentConfig(image_size=48), device="cpu")(image)[0]
    assert result.areas == {"b": 400}
    assert result.to_dict() == {"source": "", "height": 48, "width": 96, "areas": {"b": 400}}
    picture = result.plot()
    plain = overlay_semantic(image, result.semantic)
    assert not np.array_equal(picture[:10, :20], plain[:10, :20])  # the key, top left
    assert np.array_equal(picture[30:, 40:], plain[30:, 40:])  # the rest as overlay_semantic draws it
    empty = Predictor(Threshold(), ["a", "b"], AugmentConfig(image_size=48), device="cpu")(np.zeros((48, 96, 3), np.uint8))[0]
    assert empty.areas == {} and np.array_equal(empty.plot(), empty.image)  # nothing found: no key
