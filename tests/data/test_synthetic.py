"""Tests for the synthetic shapes dataset (detseg.data.synthetic)."""

import json

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from detseg.data import synthetic
from detseg.data.synthetic import (
    CLASS_NAMES,
    SHAPE_KINDS,
    ShapesConfig,
    ShapesDataset,
    classification_label,
    generate_sample,
    write_coco,
)

# Non-square so that an H/W swap anywhere shows up.
CFG = ShapesConfig(num_images=12, image_size=(80, 112), max_size=40, seed=3)


def _samples(cfg, n=None):
    return [generate_sample(cfg, i) for i in range(cfg.num_images if n is None else n)]


def _assert_equal_samples(a, b):
    for name in ("image", "boxes", "labels", "masks", "semantic"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_determinism_and_variety():
    a, b = generate_sample(CFG, 5), generate_sample(CFG, 5)
    _assert_equal_samples(a, b)
    assert not np.array_equal(a.image, generate_sample(CFG, 6).image)
    other_seed = ShapesConfig(num_images=12, image_size=(80, 112), max_size=40, seed=4)
    assert not np.array_equal(a.image, generate_sample(other_seed, 5).image)
    # seed + index must not alias (image 1 of seed 3 vs image 0 of seed 4).
    assert not np.array_equal(generate_sample(CFG, 1).image, generate_sample(other_seed, 0).image)


def test_dataset_matches_generate_sample():
    ds = ShapesDataset(CFG)
    assert len(ds) == CFG.num_images
    assert ds.class_names == CLASS_NAMES and ds.num_classes == 3
    _assert_equal_samples(ds[4], generate_sample(CFG, 4))
    _assert_equal_samples(ds[-1], generate_sample(CFG, CFG.num_images - 1))
    with pytest.raises(IndexError):
        ds[CFG.num_images]
    assert list(ShapesDataset(CFG, transform=lambda s: len(s.labels))) == [
        len(s.labels) for s in _samples(CFG)
    ]


@pytest.mark.parametrize(
    "cfg",
    [
        CFG,
        ShapesConfig(num_images=10, image_size=(64, 64), min_size=12, max_size=32, max_objects=6),
        ShapesConfig(num_images=6, image_size=(72, 96), classes=SHAPE_KINDS, max_objects=5),
    ],
    ids=["default", "crowded64", "extra_classes"],
)
def test_sample_invariants(cfg):
    height, width = cfg.image_size
    total = 0
    for s in _samples(cfg):
        n = len(s.labels)
        total += n
        assert s.image.shape == (height, width, 3) and s.image.dtype == np.uint8
        assert s.boxes.shape == (n, 4) and s.boxes.dtype == np.float32
        assert s.labels.shape == (n,) and s.labels.dtype == np.int64
        assert s.masks.shape == (n, height, width) and s.masks.dtype == bool
        assert s.semantic.shape == (height, width) and s.semantic.dtype == np.uint8
        assert ((s.labels >= 0) & (s.labels < cfg.num_classes)).all()
        x1, y1, x2, y2 = s.boxes.T
        assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 <= width).all() and (y2 <= height).all()
        assert (x2 > x1).all() and (y2 > y1).all()
        for box, mask in zip(s.boxes, s.masks):
            ys, xs = np.nonzero(mask)
            assert mask.sum() >= cfg.min_visible_pixels
            np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        # Visible parts are disjoint, and the semantic map is their labelled union.
        assert (s.masks.sum(axis=0) <= 1).all()
        expected = np.zeros((height, width), np.uint8)
        for label, mask in zip(s.labels, s.masks):
            expected[mask] = label + 1
        np.testing.assert_array_equal(s.semantic, expected)
    assert total >= cfg.num_images  # sanity: not silently generating empty images


def test_occlusion_keeps_enough_visible(monkeypatch):
    """Occlusion happens on crowded images, and never hides more than the allowed fraction."""
    created = []

    class RecordingInstance(synthetic._Instance):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            created.append(self)

    monkeypatch.setattr(synthetic, "_Instance", RecordingInstance)
    cfg = ShapesConfig(num_images=20, image_size=(64, 64), min_size=24, max_size=40, max_objects=6)
    num_occluded = 0
    for index in range(cfg.num_images):
        created.clear()
        s = generate_sample(cfg, index)
        assert len(created) == len(s.labels)
        for inst, mask in zip(created, s.masks):
            np.testing.assert_array_equal(inst.visible, mask)
            visible, full = inst.visible.sum(), inst.full.sum()
            assert visible >= cfg.min_visible_fraction * full and visible >= cfg.min_visible_pixels
            num_occluded += bool(visible < full)
        if len(created):
            np.testing.assert_array_equal(created[-1].visible, created[-1].full)  # top shape
    assert num_occluded > 0


def test_negative_fraction():
    cfg = ShapesConfig(num_images=5, image_size=(48, 48), max_size=24, negative_fraction=1.0)
    for s in _samples(cfg):
        assert len(s.labels) == 0 and s.masks.shape == (0, 48, 48) and s.boxes.shape == (0, 4)
        assert not s.semantic.any()
        assert s.image.std() > 5  # still a textured background
    with pytest.raises(ValueError, match="no objects"):
        classification_label(generate_sample(cfg, 0))


def test_classification_label():
    single = ShapesConfig(num_images=30, image_size=(64, 64), min_objects=1, max_objects=1,
                          max_size=40)
    labels = []
    for s in _samples(single):
        assert len(s.labels) == 1
        labels.append(classification_label(s))
        assert labels[-1] == s.labels[0]
    assert set(labels) == {0, 1, 2}
    multi = next(s for s in _samples(CFG) if len(s.labels) > 1)
    largest = int(np.argmax(multi.masks.sum(axis=(1, 2))))
    assert classification_label(multi) == multi.labels[largest]


def test_config_validation():
    with pytest.raises(ValueError, match="min_objects"):
        ShapesConfig(min_objects=3, max_objects=2)
    with pytest.raises(ValueError, match="classes"):
        ShapesConfig(classes=("circle", "hexagon"))
    with pytest.raises(ValueError, match="negative_fraction"):
        ShapesConfig(negative_fraction=1.5)
    cfg = ShapesConfig(image_size=[64, 96], classes=["triangle", "circle"])  # YAML lists
    assert cfg.image_size == (64, 96) and cfg.classes == ("triangle", "circle")
    assert set(np.concatenate([s.labels for s in _samples(cfg, 8)])) <= {0, 1}


# pycocotools' decode passes copy=False to np.array, which numpy 2 warns about (not our code).
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
def test_write_coco_round_trip(tmp_path):
    cfg = ShapesConfig(num_images=8, image_size=(56, 72), max_size=28, negative_fraction=0.3,
                       seed=1)
    ann_path = write_coco(cfg, tmp_path)
    assert ann_path == tmp_path / "annotations.json"
    raw = json.loads(ann_path.read_text())
    assert [c["id"] for c in raw["categories"]] == [1, 2, 3]
    assert [c["name"] for c in raw["categories"]] == list(CLASS_NAMES)
    coco = COCO(str(ann_path))
    assert len(coco.getImgIds()) == cfg.num_images
    num_negative = 0
    for index in range(cfg.num_images):
        s = generate_sample(cfg, index)
        info = raw["images"][index]
        assert (info["height"], info["width"]) == cfg.image_size
        image = cv2.imread(str(tmp_path / "images" / info["file_name"]), cv2.IMREAD_COLOR)
        np.testing.assert_array_equal(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), s.image)
        semantic = cv2.imread(str(tmp_path / "masks" / info["file_name"]), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(semantic, s.semantic)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[info["id"]]))
        assert len(anns) == len(s.labels)
        num_negative += len(anns) == 0
        for ann, box, label, mask in zip(anns, s.boxes, s.labels, s.masks):
            np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), mask)
            x1, y1, x2, y2 = box.tolist()
            assert ann["bbox"] == [x1, y1, x2 - x1, y2 - y1]
            assert ann["category_id"] == label + 1
            assert ann["area"] == mask.sum() and ann["iscrowd"] == 0
    assert 0 < num_negative < cfg.num_images
