"""The internal sample format, image reading, box sanitising, skipping corrupt images, collate."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch

from detseg.data.collate import collate, pad_images
from detseg.data.sample import (
    DatasetError, DetectionDataset, ImageReadError, SafeDataset, Sample, check_class_names,
    read_image, sanitize_boxes,
)
from detseg.structures import Normalize
from detseg.structures.instances import Batch


def make_sample(h=20, w=30, boxes=((1, 2, 10, 12),), labels=(0,), **kw) -> Sample:
    return Sample(np.zeros((h, w, 3), np.uint8), np.array(boxes, np.float32), np.array(labels), **kw)


def test_read_image_is_rgb_and_names_bad_files(tmp_path):
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    assert read_image(tmp_path / "red.png")[0, 0].tolist() == [255, 0, 0]
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((4, 5), 7, np.uint8))
    assert read_image(tmp_path / "grey.png").shape == (4, 5, 3)
    with pytest.raises(ImageReadError, match="not found: .*missing.jpg"):
        read_image(tmp_path / "missing.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ImageReadError, match="corrupt.*bad.jpg"):
        read_image(tmp_path / "bad.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.png"):
        read_image(tmp_path / "empty.png")


def test_sample_defaults_and_validate():
    s = Sample(np.zeros((8, 9, 3), np.uint8))
    assert s.boxes.shape == (0, 4) and s.labels.dtype == np.int64 and s.iscrowd.shape == (0,)
    assert s.orig_size == (8, 9)
    s.validate(num_classes=3)
    with pytest.raises(DatasetError, match=r"a\.jpg: labels \[5\] outside \[0, 3\)"):
        make_sample(labels=(5,), file_name="a.jpg").validate(num_classes=3)
    with pytest.raises(DatasetError, match="b.jpg: masks"):
        make_sample(masks=np.zeros((1, 5, 5), bool), file_name="b.jpg").validate()
    with pytest.raises(DatasetError, match="non-finite"):
        make_sample(boxes=((0, 0, np.nan, 3),)).validate()


def test_sanitize_clips_and_drops_with_masks_and_counts():
    masks = np.zeros((3, 20, 30), bool)
    masks[0, 0, 0] = masks[1, 1, 1] = masks[2, 2, 2] = True
    s = make_sample(boxes=((-5, 2, 10, 40), (3, 3, 3, 9), (4, 4, 8, 8)), labels=(0, 1, 2),
                    masks=masks, iscrowd=(False, True, False))
    counts: dict[str, int] = {}
    out = sanitize_boxes(s, counts)
    assert out.boxes.tolist() == [[0, 2, 10, 20], [4, 4, 8, 8]]
    assert out.labels.tolist() == [0, 2] and out.iscrowd.tolist() == [False, False]
    assert out.masks[1, 2, 2] and out.masks.shape == (2, 20, 30)
    assert counts == {"clipped_boxes": 1, "dropped_boxes": 1}
    assert s.boxes.shape == (3, 4)  # input untouched


class _Files(DetectionDataset):
    class_names = ("a",)

    def __init__(self, paths):
        super().__init__()
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def load(self, index):
        return Sample(read_image(self.paths[index]), file_name=str(self.paths[index]))


def test_safe_dataset_skips_corrupt_images_and_stops_when_most_are_bad(tmp_path, caplog):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.zeros((4, 4, 3), np.uint8))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    ds = SafeDataset(_Files([good, bad] + [good] * 20), max_bad_fraction=0.1)
    with caplog.at_level(logging.WARNING):
        items = [ds[i] for i in range(len(ds))]
    assert items[1] is None and all(isinstance(x, Sample) for i, x in enumerate(items) if i != 1)
    assert "bad.png" in caplog.text and len(ds.bad) == 1
    assert ds.class_names == ("a",)  # attributes of the wrapped dataset stay reachable
    mostly_bad = SafeDataset(_Files([bad] * 25), max_bad_fraction=0.5)
    with pytest.raises(DatasetError, match=r"20 of 20 images could not be read.*bad.png"):
        for i in range(25):
            mostly_bad[i]


def test_dataset_index_errors_and_negative_index(tmp_path):
    cv2.imwrite(str(tmp_path / "x.png"), np.zeros((4, 4, 3), np.uint8))
    ds = _Files([tmp_path / "x.png"])
    assert ds[-1].file_name.endswith("x.png")
    with pytest.raises(IndexError, match="out of range for _Files"):
        ds[1]


def test_check_class_names():
    assert check_class_names(["a", "b"], "x") == ("a", "b")
    with pytest.raises(DatasetError, match=r"data.yaml: duplicate class names \['a'\]"):
        check_class_names(["a", "a"], "data.yaml")


def test_collate_pads_to_32_keeps_sizes_and_counts_skips():
    sem = np.ones((20, 30), np.uint8)
    batch = collate([make_sample(semantic=sem, image_id=7), None, make_sample(h=40, w=33, boxes=(), labels=())])
    assert isinstance(batch, Batch) and len(batch) == 2 and batch.skipped == 1
    assert batch.images.shape == (2, 3, 64, 64) and batch.images.dtype == torch.uint8
    assert batch.image_sizes == [(20, 30), (40, 33)]
    t0, t1 = batch.targets
    assert t0.image_id == 7 and t0.boxes.tolist() == [[1, 2, 10, 12]] and t0.labels.dtype == torch.int64
    assert t0.semantic.shape == (64, 64) and t0.semantic[19, 29] == 1 and t0.semantic[20, 0] == 255
    assert t1.boxes.shape == (0, 4) and len(t1) == 0
    with pytest.raises(ValueError, match="all 2 images of a batch were unreadable"):
        collate([None, None])


def test_pad_images_and_batch_to_and_crowd_filter():
    x = pad_images([torch.ones(3, 5, 7, dtype=torch.uint8)], size_divisibility=1)
    assert x.shape == (1, 3, 5, 7)
    # keep-ratio batches: the smaller image is padded with the mean colour, ~0 once normalised
    x = pad_images([torch.zeros(3, 40, 64, dtype=torch.uint8), torch.zeros(3, 64, 40, dtype=torch.uint8)])
    assert x[0, :, 40:].flatten(1).unique(dim=1).tolist() == [[124], [116], [104]]
    assert Normalize()(x)[0, :, 40:].abs().max() < 0.01
    batch = collate([make_sample(boxes=((1, 1, 4, 4), (2, 2, 9, 9)), labels=(0, 1), iscrowd=(True, False))])
    moved = batch.to("cpu")
    assert moved.targets[0].without_crowd().labels.tolist() == [1]
    assert set(moved.targets[0].to_dict()) == {"boxes", "labels", "iscrowd"}


def test_detections_views_and_selection():
    from detseg.structures.instances import Detections

    det = Detections(torch.tensor([[1.0, 2, 4, 8], [0, 0, 2, 2]]), torch.tensor([0.9, 0.3]),
                     torch.tensor([2, 0]), image_id=5)
    assert det.xywh.tolist() == [[1, 2, 3, 6], [0, 0, 2, 2]]
    top = det[det.scores > 0.5]
    assert len(top) == 1 and top.labels.tolist() == [2] and top.image_id == 5
    assert len(Detections.empty(3)) == 0 and Detections.empty(3).boxes.shape == (0, 4)
