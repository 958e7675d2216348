"""CocoDataset and write_coco: real coco128 data, and small broken/edited copies of synthetic data."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from detseg.data.coco import CocoDataset, semantic_map, write_coco
from detseg.data.sample import (
    IGNORE_INDEX, DatasetError, DetectionDataset, ImageReadError, SafeDataset, Sample,
)
from detseg.data.synthetic import ShapesConfig
from detseg.data.synthetic import write_coco as write_shapes

COCO128 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "coco128"
COCO128_ANN = COCO128 / "annotations" / "instances.json"
COCO128_IMAGES = COCO128 / "images"


# ------------------------------------------------------------------------------------ helpers

@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory) -> Path:
    """A pristine 6-image synthetic COCO set (written once); tests edit copies of its json."""
    out = tmp_path_factory.mktemp("shapes")
    cfg = ShapesConfig(num_images=6, image_size=(40, 48), min_objects=1, max_objects=3,
                       min_size=8, max_size=20, seed=3)
    write_shapes(cfg, out)
    return out


def _json(shapes_dir: Path) -> dict:
    return json.loads((shapes_dir / "annotations.json").read_text())


def _write(tmp_path: Path, coco: dict, name: str = "edited.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(coco, indent=1))
    return path


def _mask_box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE: run lengths in column-major order, starting with a run of zeros."""
    flat = mask.T.reshape(-1).astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0] + runs
    return {"size": list(mask.shape), "counts": runs}


# ------------------------------------------------------------------------------------ coco128

@pytest.fixture(scope="module")
def coco128() -> CocoDataset:
    return CocoDataset(COCO128_ANN, COCO128_IMAGES, with_semantic=True)


@pytest.mark.coco128
def test_coco128_counts_and_categories(coco128):
    ds = CocoDataset(COCO128_ANN, COCO128_IMAGES, with_masks=False)
    assert len(ds) == 128 and len(coco128) == 128
    assert ds.num_classes == 80 and len(ds.class_names) == 80
    assert ds.class_names[0] == "person" and ds.category_ids[:3] == [1, 2, 3]
    assert ds.category_ids == sorted(ds.category_ids) and ds.category_ids[-1] == 90
    for label, cid in enumerate(ds.category_ids):
        assert ds.label_of(cid) == label and ds.category_id_of(label) == cid
    with pytest.raises(KeyError, match="12"):
        ds.label_of(12)  # a gap in COCO's ids
    with pytest.raises(IndexError):
        ds.category_id_of(80)
    # Decoding all 128 images also checks every json height/width against the real file.
    num_instances = num_crowd = 0
    present = set()
    for i in range(len(ds)):
        s = ds.load(i)
        num_instances += s.num_instances
        num_crowd += int(s.iscrowd.sum())
        present |= set(s.labels.tolist())
        assert s.masks is None and s.semantic is None
    assert (num_instances, num_crowd, len(present)) == (939, 10, 71)
    assert ds.counts["degenerate_annotations"] == 0 and ds.counts["empty_images"] == 2
    assert len(CocoDataset(COCO128_ANN, COCO128_IMAGES, with_masks=False, keep_empty=False)) == 126


@pytest.mark.coco128
@pytest.mark.parametrize("index", [0, 7, 63])
def test_coco128_load_images_boxes_masks(coco128, index):
    s = coco128[index]
    s.validate(coco128.num_classes)
    info = coco128.image_info(index)
    h, w = s.image.shape[:2]
    assert s.image.dtype == np.uint8 and s.image.shape == (info["height"], info["width"], 3)
    assert s.orig_size == (h, w) and s.image_id == info["image_id"] == coco128.image_ids[index]
    assert Path(s.file_name) == COCO128_IMAGES / f"{s.image_id:012d}.jpg"
    assert s.num_instances == info["num_instances"] > 0
    assert (s.boxes[:, :2] >= 0).all() and (s.boxes[:, 2] <= w).all() and (s.boxes[:, 3] <= h).all()
    assert (s.boxes[:, 2:] > s.boxes[:, :2]).all()
    assert s.masks.shape == (s.num_instances, h, w) and s.masks.dtype == bool
    # RGB, not BGR: the channel means match a direct decode with the channels reversed.
    bgr = cv2.imread(s.file_name)
    assert np.array_equal(s.image, bgr[..., ::-1])
    for mask, box in zip(s.masks, s.boxes):
        assert mask.any()
        if (box[2] - box[0]) * (box[3] - box[1]) > 32 * 32:
            assert _iou(_mask_box(mask), box) > 0.7
    # Semantic map agrees with the instance masks on the pixels that only one instance covers.
    assert s.semantic.shape == (h, w) and s.semantic.dtype == np.uint8
    single = s.masks.sum(0) == 1
    owner = s.masks.argmax(0)
    expected = np.where(s.iscrowd[owner], IGNORE_INDEX, s.labels[owner] + 1)
    assert np.array_equal(s.semantic[single], expected[single])
    assert (s.semantic[~s.masks.any(0)] == 0).all()


@pytest.mark.coco128
def test_coco128_crowd_rle_is_decoded_and_kept(coco128):
    index = coco128.image_ids.index(257)  # one uncompressed-RLE crowd region ("person")
    s = coco128.load(index)
    ann = next(a for a in json.loads(COCO128_ANN.read_text())["annotations"]
               if a["image_id"] == 257 and a["iscrowd"])
    assert isinstance(ann["segmentation"]["counts"], list)
    crowd = np.flatnonzero(s.iscrowd)
    assert len(crowd) == 1
    k = int(crowd[0])
    assert coco128.category_id_of(int(s.labels[k])) == ann["category_id"]
    segm = ann["segmentation"]
    expected = mask_utils.decode(mask_utils.frPyObjects(segm, *segm["size"])).astype(bool)
    assert np.array_equal(s.masks[k], expected)
    assert s.masks[k].sum() == pytest.approx(ann["area"], rel=0.15)  # COCO crowd areas are loose
    assert _iou(_mask_box(s.masks[k]), s.boxes[k]) > 0.95
    others = s.masks[~s.iscrowd].any(0)
    only_crowd = s.masks[k] & ~others
    assert only_crowd.any() and (s.semantic[only_crowd] == IGNORE_INDEX).all()
    # Crowd regions survive __getitem__ (sanitising) too.
    assert coco128[index].iscrowd.sum() == 1


@pytest.mark.coco128
def test_coco128_write_round_trip_reuses_category_ids(coco128, tmp_path):
    class Subset(DetectionDataset):
        """Three coco128 images, one with a crowd RLE; keeps category ids of the source."""

        def __init__(self, source, indices):
            super().__init__()
            self.source, self.indices = source, indices
            self.class_names, self.category_ids = source.class_names, source.category_ids
            self.supercategories = source.supercategories

        def __len__(self):
            return len(self.indices)

        def load(self, index):
            return self.source.load(self.indices[index])

    indices = [0, 5, coco128.image_ids.index(257)]
    out = write_coco(Subset(coco128, indices), tmp_path / "sub" / "instances.json", image_root=COCO128_IMAGES)
    coco = json.loads(out.read_text())
    assert [c["id"] for c in coco["categories"]] == coco128.category_ids
    assert coco["categories"][0]["supercategory"] == "person"
    assert coco["images"][0]["file_name"] == "000000000009.jpg"
    back = CocoDataset(out, COCO128_IMAGES, with_semantic=True)
    assert back.category_ids == coco128.category_ids and back.class_names == coco128.class_names
    for j, i in enumerate(indices):
        a, b = coco128.load(i), back.load(j)
        assert a.image_id == b.image_id
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.labels, b.labels)
        assert np.array_equal(a.iscrowd, b.iscrowd) and np.array_equal(a.masks, b.masks)
        assert np.array_equal(a.semantic, b.semantic)


# ------------------------------------------------------------------------------------ synthetic

def test_synthetic_masks_semantic_and_ids_match_the_generator(shapes_dir):
    ds = CocoDataset(shapes_dir / "annotations.json", shapes_dir / "images", with_semantic=True)
    coco = _json(shapes_dir)
    assert len(ds) == 6 and ds.class_names == ("circle", "rectangle", "triangle")
    assert ds.category_ids == [1, 2, 3] and ds.image_ids == [1, 2, 3, 4, 5, 6]
    for i in range(len(ds)):
        s = ds[i]
        s.validate(ds.num_classes)
        anns = [a for a in coco["annotations"] if a["image_id"] == s.image_id]
        xywh = np.array([a["bbox"] for a in anns], np.float32)
        assert np.array_equal(s.boxes, np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1))
        assert s.labels.tolist() == [a["category_id"] - 1 for a in anns]
        for mask, box in zip(s.masks, s.boxes):  # generator boxes are the masks' exact boxes
            assert np.array_equal(_mask_box(mask), box)
        # The generator wrote its own semantic map (disjoint masks, so no ignore pixels).
        written = cv2.imread(str(shapes_dir / "masks" / Path(s.file_name).name), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(s.semantic, written)


def test_polygon_and_uncompressed_rle_decoding(shapes_dir, tmp_path):
    coco = _json(shapes_dir)
    reference_ds = CocoDataset(shapes_dir / "annotations.json", shapes_dir / "images")
    index = next(i for i in range(len(reference_ds)) if reference_ds.image_info(i)["num_instances"] >= 2)
    reference = reference_ds.load(index)
    first, second = [a for a in coco["annotations"] if a["image_id"] == reference.image_id][:2]
    # Polygon: a rectangle whose corners sit on pixel edges covers columns 4..11, rows 6..13;
    # a polygon part with < 3 points is dropped (pycocotools would read 4 numbers as a box).
    first["segmentation"] = [[4, 6, 12, 6, 12, 14, 4, 14], [1, 1, 2, 2]]
    # Uncompressed RLE (counts as a list), as COCO stores crowd regions.
    second["segmentation"] = _uncompressed_rle(reference.masks[1])
    ds = CocoDataset(_write(tmp_path, coco), shapes_dir / "images")
    s = ds.load(index)
    expected = np.zeros((40, 48), bool)
    expected[6:14, 4:12] = True
    assert np.array_equal(s.masks[0], expected)
    assert np.array_equal(s.masks[1], reference.masks[1])
    assert ds.counts["invalid_polygons"] == 1


def test_semantic_rule_overlaps_and_crowd():
    masks = np.zeros((4, 6, 8), bool)
    masks[0, 0:4, 0:4] = True  # class 0
    masks[1, 2:6, 2:6] = True  # class 1, overlaps class 0 at rows 2-3, cols 2-3
    masks[2, 0:2, 0:2] = True  # class 0 again, inside the first: same class, no conflict
    masks[3, 0:6, 5:8] = True  # crowd: loses to the non-crowd instance at column 5
    s = semantic_map(masks, np.array([0, 1, 0, 2]), np.array([False, False, False, True]))
    assert s.dtype == np.uint8
    assert s[0, 0] == 1 and s[1, 3] == 1 and s[5, 3] == 2
    assert (s[2:4, 2:4] == IGNORE_INDEX).all()
    assert (s[2:6, 5] == 2).all() and (s[:, 6:] == IGNORE_INDEX).all() and s[0, 5] == IGNORE_INDEX
    assert s[5, 0] == 0


def test_with_masks_false_needs_no_segmentation(shapes_dir, tmp_path):
    coco = _json(shapes_dir)
    for ann in coco["annotations"]:
        del ann["segmentation"]
    path = _write(tmp_path, coco)
    with pytest.raises(DatasetError, match=r"annotation 1: no segmentation .*with_masks=False"):
        CocoDataset(path, shapes_dir / "images")
    s = CocoDataset(path, shapes_dir / "images", with_masks=False)[0]
    assert s.masks is None and s.semantic is None and s.num_instances > 0


def test_malformed_json_names_file_and_line(shapes_dir, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "images": [],\n  "annotations": [,]\n}\n')
    with pytest.raises(DatasetError, match=r"broken\.json:3:\d+: malformed JSON at line 3"):
        CocoDataset(path, shapes_dir / "images")
    with pytest.raises(DatasetError, match="annotation file not found: .*nothing.json"):
        CocoDataset(tmp_path / "nothing.json", shapes_dir / "images")


def test_missing_top_level_key_names_file(shapes_dir, tmp_path):
    coco = _json(shapes_dir)
    del coco["categories"]
    with pytest.raises(DatasetError, match=r"edited\.json: not a COCO instances file.*'categories'"):
        CocoDataset(_write(tmp_path, coco), shapes_dir / "images")


def test_unknown_category_or_image_names_annotation(shapes_dir, tmp_path):
    coco = _json(shapes_dir)
    coco["annotations"][2]["category_id"] = 99
    coco["annotations"][4]["image_id"] = 1234
    with pytest.raises(DatasetError) as info:
        CocoDataset(_write(tmp_path, coco), shapes_dir / "images")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'edited.json'}: 1 objects of an unknown class")
    assert "1 annotations of an image id not in 'images'" in message
    assert "annotation 3: unknown category_id 99" in message
    assert "annotation 5: image_id 1234 is not in 'images'" in message


def test_bad_bbox_and_duplicate_ids_are_errors(shapes_dir, tmp_path):
    coco = _json(shapes_dir)
    coco["annotations"][1]["bbox"] = [1, 2, 3]
    with pytest.raises(DatasetError, match=r"annotation 2: bbox must be 4 finite numbers"):
        CocoDataset(_write(tmp_path, coco), shapes_dir / "images")
    coco = _json(shapes_dir)
    coco["images"][1]["id"] = coco["images"][0]["id"]
    with pytest.raises(DatasetError, match="image id 1 appears twice"):
        CocoDataset(_write(tmp_path, coco), shapes_dir / "images")
    coco = _json(shapes_dir)
    coco["annotations"][0]["segmentation"]["size"] = [10, 10]
    with pytest.raises(DatasetError, match=r"annotation 1: RLE size \[10, 10\] differs"):
        CocoDataset(_write(tmp_path, coco), shapes_dir / "images")


def test_missing_image_files_reported_together(shapes_dir, tmp_path):
    coco = _json(shapes_dir)
    coco["images"][1]["file_name"] = "gone_a.png"
    coco["images"][4]["file_name"] = "gone_b.png"
    with pytest.raises(DatasetError) as info:
        CocoDataset(_write(tmp_path, coco), shapes_dir / "images")
    message = str(info.value)
    assert "2 image files missing" in message
    assert str(shapes_dir / "images" / "gone_a.png") in message and "gone_b.png" in message
    with pytest.raises(DatasetError, match="image folder not found"):
        CocoDataset(shapes_dir / "annotations.json", tmp_path / "no_images")


def test_corrupt_image_raises_at_load_and_safe_dataset_skips(shapes_dir, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for p in (shapes_dir / "images").iterdir():
        (images / p.name).write_bytes(p.read_bytes())
    (images / "000002.png").write_bytes(b"\x89PNG truncated")
    ds = CocoDataset(shapes_dir / "annotations.json", images)  # builds: the file exists
    ds.load(0)
    with pytest.raises(ImageReadError, match="000002.png"):
        ds.load(2)
    safe = SafeDataset(ds)
    assert safe[2] is None and safe[1] is not None and len(safe.bad) == 1


def test_image_size_mismatch_names_file(shapes_dir, tmp_path):
    coco = _json(shapes_dir)
    coco["images"][0]["width"] = 50
    for ann in coco["annotations"]:  # keep the RLEs consistent with the (wrong) json size
        if ann["image_id"] == 1:
            ann["segmentation"]["size"] = [40, 50]
    ds = CocoDataset(_write(tmp_path, coco), shapes_dir / "images", with_masks=False)
    with pytest.raises(DatasetError, match=r"000000\.png: image is 40x48 \(HxW\) but .* says 40x50") as info:
        ds.load(0)
    assert info.value.kind == "size_mismatch"


def test_degenerate_annotations_dropped_counted_and_logged_once(shapes_dir, tmp_path, caplog):
    coco = _json(shapes_dir)
    coco["annotations"][0]["bbox"][2] = 0
    coco["annotations"][3]["bbox"][3] = -2.5
    dropped = [coco["annotations"][0], coco["annotations"][3]]
    with caplog.at_level(logging.WARNING, logger="detseg.data.coco"):
        ds = CocoDataset(_write(tmp_path, coco), shapes_dir / "images")
    assert ds.counts["degenerate_annotations"] == 2
    warnings = [r for r in caplog.records if "zero or negative" in r.getMessage()]
    assert len(warnings) == 1 and "2 annotation(s)" in warnings[0].getMessage()
    samples = [ds[i] for i in range(len(ds))]
    assert sum(s.num_instances for s in samples) == len(coco["annotations"]) - 2
    assert all(len(s.masks) == s.num_instances for s in samples)
    by_id = {s.image_id: s for s in samples}
    for ann in dropped:
        x, y = ann["bbox"][:2]
        starts = by_id[ann["image_id"]].boxes[:, :2].tolist()
        assert [x, y] not in starts  # no other box of that image starts at the same corner


def test_keep_empty_and_crowd_only_images(shapes_dir, tmp_path):
    coco = _json(shapes_dir)
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != 2]  # negative
    for a in coco["annotations"]:
        if a["image_id"] == 4:
            a["iscrowd"] = 1  # crowd only: nothing to learn as positives
    path = _write(tmp_path, coco)
    kept = CocoDataset(path, shapes_dir / "images")
    dropped = CocoDataset(path, shapes_dir / "images", keep_empty=False)
    assert len(kept) == 6 and kept.counts["empty_images"] == 2
    assert dropped.image_ids == [1, 3, 5, 6]
    negative = kept[kept.image_ids.index(2)]
    assert negative.num_instances == 0 and negative.boxes.shape == (0, 4)
    assert negative.masks.shape == (0, 40, 48)
    crowd = kept[kept.image_ids.index(4)]
    assert crowd.num_instances > 0 and crowd.iscrowd.all()


def test_write_coco_round_trip_synthetic(shapes_dir, tmp_path):
    source = CocoDataset(shapes_dir / "annotations.json", shapes_dir / "images")
    out = write_coco(source, tmp_path / "copy.json", image_root=shapes_dir / "images")
    coco = json.loads(out.read_text())
    assert coco["images"][0]["file_name"] == "000000.png"
    assert all(isinstance(a["segmentation"]["counts"], str) for a in coco["annotations"])
    back = CocoDataset(out, shapes_dir / "images")
    assert back.image_ids == source.image_ids and back.class_names == source.class_names
    for i in range(len(source)):
        a, b = source.load(i), back.load(i)
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.labels, b.labels)
        assert np.array_equal(a.masks, b.masks) and np.array_equal(a.iscrowd, b.iscrowd)
    # Without image_root: absolute paths, readable with any image_dir.
    absolute = write_coco(source, tmp_path / "abs.json")
    assert Path(json.loads(absolute.read_text())["images"][0]["file_name"]).is_absolute()
    assert len(CocoDataset(absolute, tmp_path)) == 6
    with pytest.raises(DatasetError, match="not under image_root"):
        write_coco(source, tmp_path / "bad.json", image_root=tmp_path)


def test_write_coco_plain_dataset_without_category_ids(tmp_path):
    class TwoImages(DetectionDataset):
        class_names = ("cat", "dog")

        def __init__(self, paths):
            super().__init__()
            self.paths = paths

        def __len__(self):
            return len(self.paths)

        def load(self, index):  # image_id left at its default 0 for both: must be renumbered
            boxes = [[1.5, 2.0, 9.0, 7.25], [0.0, 0.0, 4.0, 4.0]] if index == 0 else []
            return Sample(image=np.zeros((10, 12, 3), np.uint8), boxes=boxes, labels=[1, 0][: len(boxes)],
                          iscrowd=[False, True][: len(boxes)], file_name=str(self.paths[index]))

    paths = []
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), np.zeros((10, 12, 3), np.uint8))
        paths.append(tmp_path / name)
    out = write_coco(TwoImages(paths), tmp_path / "plain.json", image_root=tmp_path)
    coco = json.loads(out.read_text())
    assert [(c["id"], c["name"]) for c in coco["categories"]] == [(1, "cat"), (2, "dog")]
    assert [i["id"] for i in coco["images"]] == [1, 2]
    assert coco["annotations"][0]["bbox"] == [1.5, 2.0, 7.5, 5.25]
    assert [a["iscrowd"] for a in coco["annotations"]] == [0, 1]
    assert "segmentation" not in coco["annotations"][0]
    back = CocoDataset(out, tmp_path, with_masks=False)
    s = back.load(0)
    assert s.boxes.tolist() == [[1.5, 2.0, 9.0, 7.25], [0.0, 0.0, 4.0, 4.0]]
    assert s.labels.tolist() == [1, 0] and s.iscrowd.tolist() == [False, True]
    assert back.load(1).num_instances == 0 and back.category_id_of(1) == 2
