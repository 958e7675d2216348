"""Tests for the Pascal VOC, YOLO and mask-folder readers and writers.

(detseg.data.voc, detseg.data.yolo, detseg.data.mask_folder)
"""

import logging

import cv2
import numpy as np
import pytest
import yaml

from detseg.data.mask_folder import MaskFolderDataset, write_mask_folder
from detseg.data.sample import IGNORE_INDEX, DatasetError, DetectionDataset, Sample
from detseg.data.synthetic import CLASS_NAMES, ShapesConfig, generate_sample
from detseg.data.voc import VOC_CLASSES, VOCDataset, write_voc
from detseg.data.yolo import YOLODataset, image_to_label_path, write_yolo

# Non-square so that an H/W swap shows up; seed 7 gives 5 images with objects and 1 negative.
CFG = ShapesConfig(num_images=6, image_size=(48, 64), min_size=8, max_size=24, seed=7,
                   negative_fraction=0.2)
PALETTE = {(0, 0, 0): 0, (255, 0, 0): 1, (0, 255, 0): 2, (0, 0, 255): 3, (255, 255, 255): 255}


class ListDataset(DetectionDataset):
    """A DetectionDataset over a list of samples (the writers' input in these tests)."""

    def __init__(self, samples, class_names=CLASS_NAMES):
        super().__init__()
        self.samples = list(samples)
        self.class_names = tuple(class_names)

    def __len__(self):
        return len(self.samples)

    def load(self, index):
        return self.samples[index]


def _shape_samples():
    out = []
    for i in range(CFG.num_images):
        s = generate_sample(CFG, i)
        out.append(Sample(image=s.image, boxes=s.boxes, labels=s.labels, masks=s.masks,
                          semantic=s.semantic, image_id=i))
    return out


@pytest.fixture(scope="module")
def shapes():
    ds = ListDataset(_shape_samples())
    assert any(s.num_instances == 0 for s in ds.samples) and sum(s.num_instances for s in ds.samples) > 5
    return ds


@pytest.fixture(scope="module")
def voc_root(shapes, tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    write_voc(shapes, root, "train")
    return root


@pytest.fixture(scope="module")
def yolo_yaml(shapes, tmp_path_factory):
    return write_yolo(shapes, tmp_path_factory.mktemp("yolo"), "train")


def _write_png(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def _assert_same_targets(a, b, atol=0.0):
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_allclose(a.boxes, b.boxes, rtol=0, atol=atol)
    np.testing.assert_array_equal(a.labels, b.labels)


# ---------------------------------------------------------------- VOC


def test_voc_round_trip_of_shapes(shapes, voc_root):
    ds = VOCDataset(voc_root, "train", class_names=CLASS_NAMES)
    assert len(ds) == len(shapes) and ds.class_names == CLASS_NAMES
    for i in range(len(ds)):
        got = ds[i]
        got.validate(ds.num_classes)
        _assert_same_targets(got, shapes.load(i))  # integer boxes: exact
        assert got.iscrowd.dtype == bool and not got.iscrowd.any()
        assert got.image_id == i and got.file_name.endswith(f"{i:06d}.png")
    assert ds.counts.get("clipped_boxes", 0) == 0


def _voc_xml(filename, objects, size=(32, 24)):
    objs = "".join(
        f"<object><name>{name}</name><difficult>{difficult}</difficult>"
        f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax>"
        "</bndbox></object>"
        for name, b, difficult in objects
    )
    return (f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width>"
            f"<height>{size[1]}</height><depth>3</depth></size>{objs}</annotation>")


def _make_voc(root, items, split="train"):
    """items: {id: objects}; writes a 32x24 PNG per id and the xml and split files."""
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for image_id, objects in items.items():
        _write_png(root / "JPEGImages" / f"{image_id}.png", np.full((24, 32, 3), 90, np.uint8))
        (root / "Annotations" / f"{image_id}.xml").write_text(_voc_xml(f"{image_id}.png", objects))
    (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in items))
    return root


def test_voc_box_convention_difficult_and_empty(tmp_path):
    root = _make_voc(tmp_path, {
        "a": [(" dog\n", (1, 1, 10, 5), 0), ("cat", (5, 6, 20, 24), 1)],
        "b": [("cat", (3, 3, 4, 4), 1)],
        "c": [],
    })
    ds = VOCDataset(root)
    assert ds.class_names == VOC_CLASSES and ds.ids == ["a", "b", "c"]
    a = ds[0]
    # 1-based inclusive -> 0-based, exclusive far edge: pixels 1..10 are x1=0, x2=10.
    np.testing.assert_array_equal(a.boxes, [[0, 0, 10, 5], [4, 5, 20, 24]])
    assert [ds.class_names[k] for k in a.labels] == ["dog", "cat"]
    np.testing.assert_array_equal(a.iscrowd, [False, True])
    assert ds[2].num_instances == 0 and ds[2].image.shape == (24, 32, 3)

    no_difficult = VOCDataset(root, keep_difficult=False)
    np.testing.assert_array_equal(no_difficult[0].boxes, [[0, 0, 10, 5]])
    assert len(no_difficult) == 3 and no_difficult[1].num_instances == 0
    non_empty = VOCDataset(root, keep_difficult=False, keep_empty=False)
    assert non_empty.ids == ["a"]


def test_write_voc_clips_and_rounds_boxes(tmp_path):
    image = np.zeros((48, 64, 3), np.uint8)
    sample = Sample(image=image, boxes=[[-3, 2.4, 70, 30.6], [10, 10, 10, 20], [5, 5, 9, 9]],
                    labels=[0, 1, 2], iscrowd=[False, False, True])
    write_voc(ListDataset([sample]), tmp_path)
    write_voc(ListDataset([sample, Sample(image=image)]), tmp_path, "val")  # splits share a root
    assert [len(VOCDataset(tmp_path, s, class_names=CLASS_NAMES)) for s in ("train", "val")] == [1, 2]
    got = VOCDataset(tmp_path, class_names=CLASS_NAMES)[0]
    # clipped to the image, zero-width box dropped, crowd kept as difficult
    np.testing.assert_array_equal(got.boxes, [[0, 2, 64, 31], [5, 5, 9, 9]])
    np.testing.assert_array_equal(got.labels, [0, 2])
    np.testing.assert_array_equal(got.iscrowd, [False, True])


VOC_ERRORS = {
    "malformed_xml": ("Annotations/a.xml", "<annotation>\n<object>\n<name>dog</name>\n</annotation>\n",
                      ["a.xml:4:", "malformed XML"]),
    "unknown_class": ("Annotations/a.xml", _voc_xml("a.png", [("unicorn", (1, 1, 5, 5), 0)]),
                      ["a.xml", "'unicorn'", "aeroplane", "tvmonitor"]),
    "degenerate_box": ("Annotations/a.xml", _voc_xml("a.png", [("dog", (9, 1, 5, 5), 0)]),
                       ["a.xml", "object 0 (dog)", "xmin=9"]),
    "not_a_number": ("Annotations/a.xml", _voc_xml("a.png", [("dog", ("one", 1, 5, 5), 0)]),
                     ["a.xml", "<xmin>", "'one'"]),
}


@pytest.mark.parametrize("case", sorted(VOC_ERRORS))
def test_voc_bad_annotations_name_the_file(tmp_path, case):
    root = _make_voc(tmp_path, {"a": [("dog", (1, 1, 5, 5), 0)], "b": []})
    rel, text, expected = VOC_ERRORS[case]
    (root / rel).write_text(text)
    with pytest.raises(DatasetError) as info:
        VOCDataset(root)
    for part in expected:
        assert part in str(info.value)


def test_voc_missing_files(tmp_path):
    root = _make_voc(tmp_path, {f"im{i}": [] for i in range(8)})
    for i in range(7):
        (root / "Annotations" / f"im{i}.xml").unlink()
    with pytest.raises(DatasetError, match=r"7 annotation files missing; e\.g\. .*im0\.xml.*\(and 2 more"):
        VOCDataset(root)
    root = _make_voc(tmp_path / "b", {"x": [], "y": []})
    (root / "JPEGImages" / "y.png").unlink()
    with pytest.raises(DatasetError, match=r"1 image files missing; e\.g\. .*y\.png: image file not found"):
        VOCDataset(root)
    with pytest.raises(DatasetError, match=r"val\.txt.*split files there: \['train'\]"):
        VOCDataset(root, "val")


# ---------------------------------------------------------------- YOLO


def test_yolo_round_trip_of_shapes(shapes, yolo_yaml):
    data = yaml.safe_load(yolo_yaml.read_text())
    assert data["train"] == "images/train" and data["names"] == dict(enumerate(CLASS_NAMES))
    ds = YOLODataset(yolo_yaml, "train")
    assert len(ds) == len(shapes) and ds.class_names == CLASS_NAMES and not ds.with_masks
    for i in range(len(ds)):
        got = ds[i]
        got.validate(ds.num_classes)
        _assert_same_targets(got, shapes.load(i), atol=1e-4)
        assert got.masks is None
    assert ds.counts["missing_label_files"] == 0
    assert len(YOLODataset(yolo_yaml, "train", keep_empty=False)) == len(shapes) - 1


def test_voc_yolo_voc_round_trip(shapes, voc_root, tmp_path):
    voc = VOCDataset(voc_root, class_names=CLASS_NAMES)
    yolo = YOLODataset(write_yolo(voc, tmp_path / "yolo", "val"), "val")
    write_voc(yolo, tmp_path / "voc2", "val")
    back = VOCDataset(tmp_path / "voc2", "val", class_names=CLASS_NAMES)
    assert len(back) == len(shapes)
    for i in range(len(back)):
        _assert_same_targets(yolo[i], shapes.load(i), atol=1e-4)
        _assert_same_targets(back[i], shapes.load(i))  # rounding recovers the exact integers


def test_write_yolo_copies_jpegs_and_drops_crowd(tmp_path):
    jpg = tmp_path / "src.jpg"
    assert cv2.imwrite(str(jpg), np.random.default_rng(0).integers(0, 255, (20, 40, 3), np.uint8))
    sample = Sample(image=cv2.cvtColor(cv2.imread(str(jpg)), cv2.COLOR_BGR2RGB),
                    boxes=[[0, 0, 20, 10], [4, 4, 8, 8]], labels=[1, 0], iscrowd=[False, True],
                    file_name=str(jpg))
    data_yaml = write_yolo(ListDataset([sample]), tmp_path / "out", "train")
    written = tmp_path / "out" / "images" / "train" / "000000.jpg"
    assert written.read_bytes() == jpg.read_bytes()
    assert (tmp_path / "out" / "labels" / "train" / "000000.txt").read_text() == "1 0.25 0.25 0.5 0.5\n"
    write_yolo(ListDataset([sample]), tmp_path / "out", "val")  # second split updates the yaml
    data = yaml.safe_load(data_yaml.read_text())
    assert data["train"] == "images/train" and data["val"] == "images/val"
    with pytest.raises(DatasetError, match="differ"):
        write_yolo(ListDataset([sample], ("a", "b")), tmp_path / "out", "test")


def test_image_to_label_path():
    assert str(image_to_label_path("/d/images/train/images/a.b.jpg")) == "/d/images/train/labels/a.b.txt"
    assert str(image_to_label_path("/d/pics/a.png")) == "/d/pics/a.txt"


def _make_yolo(root, labels, names=("cat", "dog", "bird"), size=(20, 40), extra=None):
    """labels: {stem: label text or None (no file)}; images are HxW = size, listed in val.txt."""
    for stem, text in labels.items():
        _write_png(root / "images" / "val" / f"{stem}.png", np.full((*size, 3), 50, np.uint8))
        if text is not None:
            path = root / "labels" / "val" / f"{stem}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    (root / "val.txt").write_text("".join(f"./images/val/{s}.png\n" for s in labels))
    data = {"path": ".", "val": "val.txt", "names": dict(enumerate(names)), **(extra or {})}
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root / "data.yaml"


def test_yolo_hand_written_labels(tmp_path):
    data_yaml = _make_yolo(tmp_path, {
        "a": "1 0.5 0.5 0.5 0.5\n\n0 0.125 0.25 0.25 0.5\n",
        "b": None,  # no label file: a negative image
        "c": "",
    })
    ds = YOLODataset(data_yaml, "val")
    assert ds.class_names == ("cat", "dog", "bird") and len(ds) == 3
    a = ds[0]  # image is 20 high, 40 wide
    np.testing.assert_allclose(a.boxes, [[10, 5, 30, 15], [0, 0, 10, 10]], atol=1e-5)
    np.testing.assert_array_equal(a.labels, [1, 0])
    assert ds[1].num_instances == 0 and ds[2].num_instances == 0
    assert ds.counts["missing_label_files"] == 1
    assert len(YOLODataset(data_yaml, "val", keep_empty=False)) == 1


def test_yolo_segment_lines(tmp_path, caplog):
    square = "2 0.25 0.25 0.75 0.25 0.75 0.75 0.25 0.75\n"  # 20x10 px square on a 40x20 image
    data_yaml = _make_yolo(tmp_path, {"a": square + "0 0 0 0.5 0 0.5 0.5\n", "b": None})
    ds = YOLODataset(data_yaml, "val")
    assert ds.with_masks
    a = ds[0]
    a.validate(ds.num_classes)
    np.testing.assert_allclose(a.boxes, [[10, 5, 30, 15], [0, 0, 20, 10]], atol=1e-5)
    assert a.masks.shape == (2, 20, 40) and a.masks.dtype == bool
    assert abs(int(a.masks[0].sum()) - 200) <= 40 and a.masks[0, 10, 20] and not a.masks[0, 2, 2]
    assert ds[1].masks.shape == (0, 20, 40)

    mixed = _make_yolo(tmp_path / "mixed", {"a": square + "1 0.5 0.5 0.2 0.2\n"})
    with caplog.at_level(logging.WARNING):
        ds = YOLODataset(mixed, "val")
    assert not ds.with_masks and ds[0].masks is None and "mixes 1 box lines" in caplog.text
    np.testing.assert_allclose(ds[0].boxes[0], [10, 5, 30, 15], atol=1e-5)


YOLO_BAD_LINES = {
    "too_few_columns": ("0 0.5 0.5 0.2", "expected 5 columns"),
    "six_columns": ("0 0.1 0.1 0.2 0.2 0.3", "got 6"),
    "not_a_number": ("0 0.5 x 0.2 0.2", "not a finite number: 'x'"),
    "nan": ("0 0.5 nan 0.2 0.2", "not a finite number: 'nan'"),
    "outside_unit_square": ("0 0.5 0.5 1.2 0.2", "normalised to [0, 1]"),
    "pixel_polygon": ("0 10 10 30 10 30 15", "normalised to [0, 1]"),
    "class_out_of_range": ("3 0.5 0.5 0.2 0.2", "class id 3 is not an integer in [0, 3)"),
    "negative_class": ("-1 0.5 0.5 0.2 0.2", "class id -1"),
    "fractional_class": ("0.5 0.5 0.5 0.2 0.2", "class id 0.5"),
}


@pytest.mark.parametrize("case", sorted(YOLO_BAD_LINES))
def test_yolo_bad_line_names_file_and_line(tmp_path, case):
    line, expected = YOLO_BAD_LINES[case]
    data_yaml = _make_yolo(tmp_path, {"a": "1 0.5 0.5 0.5 0.5\n", "b": f"1 0.5 0.5 0.5 0.5\n{line}\n"})
    with pytest.raises(DatasetError) as info:
        YOLODataset(data_yaml, "val")
    assert f"{tmp_path / 'labels' / 'val' / 'b.txt'}:2:" in str(info.value)
    assert expected in str(info.value)


def test_yolo_tolerates_round_off_outside_unit_square(tmp_path):
    data_yaml = _make_yolo(tmp_path, {"a": "0 0.5 0.5 1.0004 0.5\n"})
    ds = YOLODataset(data_yaml, "val")
    np.testing.assert_allclose(ds[0].boxes, [[0, 5, 40, 15]], atol=1e-5)  # clipped


def test_yolo_bad_yaml(tmp_path):
    labels = {"a": "0 0.5 0.5 0.2 0.2\n"}
    with pytest.raises(DatasetError, match=r"no 'train' entry; splits given: \['val'\]"):
        YOLODataset(_make_yolo(tmp_path / "1", labels), "train")
    with pytest.raises(DatasetError, match=r"ids must be 0\.\.1 without gaps"):
        YOLODataset(_make_yolo(tmp_path / "2", labels, extra={"names": {0: "a", 2: "b"}}), "val")
    with pytest.raises(DatasetError, match="nc=5 but 'names' lists 3"):
        YOLODataset(_make_yolo(tmp_path / "3", labels, extra={"nc": 5}), "val")
    with pytest.raises(DatasetError, match="duplicate class names"):
        YOLODataset(_make_yolo(tmp_path / "4", labels, names=("a", "a")), "val")
    bad = tmp_path / "bad.yaml"
    bad.write_text("path: .\nnames: [a, b\nval: x\n")
    with pytest.raises(DatasetError, match=r"bad\.yaml:\d+: malformed YAML"):
        YOLODataset(bad, "val")
    data_yaml = _make_yolo(tmp_path / "5", labels)
    (tmp_path / "5" / "images" / "val" / "a.png").unlink()
    with pytest.raises(DatasetError, match=r"1 image files missing; e\.g\. .*a\.png: .*listed in .*val\.txt"):
        YOLODataset(data_yaml, "val")
    (tmp_path / "5" / "data.yaml").write_text(yaml.safe_dump({"val": "nowhere", "names": ["a"]}))
    with pytest.raises(DatasetError, match="neither an image folder"):
        YOLODataset(data_yaml, "val")


# ---------------------------------------------------------------- mask folders


def test_mask_folder_round_trip_index_and_palette(shapes, tmp_path):
    masks = write_mask_folder(shapes, tmp_path / "img", tmp_path / "idx")
    assert cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED).ndim == 2
    ds = MaskFolderDataset(tmp_path / "img", tmp_path / "idx", class_names=CLASS_NAMES)
    write_mask_folder(shapes, tmp_path / "img", tmp_path / "rgb", palette=PALETTE)
    assert cv2.imread(str(tmp_path / "rgb" / "000000.png"), cv2.IMREAD_UNCHANGED).shape == (48, 64, 3)
    rgb = MaskFolderDataset(tmp_path / "img", tmp_path / "rgb", class_names=CLASS_NAMES, palette=PALETTE)
    assert len(ds) == len(rgb) == len(shapes)
    for i in range(len(ds)):
        for got in (ds[i], rgb[i]):
            got.validate(len(CLASS_NAMES))
            np.testing.assert_array_equal(got.semantic, shapes.load(i).semantic)
            np.testing.assert_array_equal(got.image, shapes.load(i).image)
            assert got.num_instances == 0 and got.semantic.dtype == np.uint8
    assert rgb.counts["unknown_colour_pixels"] == 0


def test_mask_folder_from_instance_masks_and_without(shapes, tmp_path):
    s = shapes.load(0)
    crowd = Sample(image=s.image, boxes=s.boxes, labels=s.labels, masks=s.masks, iscrowd=[True, False])
    write_mask_folder(ListDataset([crowd]), tmp_path / "i", tmp_path / "m")
    got = MaskFolderDataset(tmp_path / "i", tmp_path / "m", class_names=CLASS_NAMES)[0].semantic
    assert (got[s.masks[0]] == IGNORE_INDEX).all() and (got[s.masks[1]] == s.labels[1] + 1).all()
    with pytest.raises(DatasetError, match="neither a semantic map nor instance masks"):
        write_mask_folder(ListDataset([Sample(image=s.image)]), tmp_path / "i2", tmp_path / "m2")


def _mask_pair(root, stem, mask, size=(6, 8)):
    _write_png(root / "img" / f"{stem}.png", np.zeros((*size, 3), np.uint8))
    if mask is not None:
        path = root / "mask" / f"{stem}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), mask)


def test_mask_folder_ignore_values(tmp_path):
    index = np.zeros((6, 8), np.uint8)
    index[0], index[1, :3], index[2, :2] = 255, 3, 9
    _mask_pair(tmp_path, "a", index)
    # 255 is not the ignore value of these files: found when the dataset is built, before training
    with pytest.raises(DatasetError, match=r"a\.png: value 255 \(in 1 masks\) is not allowed by 0 background, "
                                           r"k \+ 1 class k \(1\.\.3\), 9 ignore"):
        MaskFolderDataset(tmp_path / "img", tmp_path / "mask", class_names=CLASS_NAMES, ignore_index=9)
    index[0] = 0
    _mask_pair(tmp_path, "a", index)
    ds = MaskFolderDataset(tmp_path / "img", tmp_path / "mask", class_names=CLASS_NAMES, ignore_index=9)
    got = ds[0].semantic
    assert (got[2, :2] == IGNORE_INDEX).all() and (got[1, :3] == 3).all() and got.sum() == 2 * 255 + 9
    assert ds.value_counts == {0: (1, 48 - 5), 3: (1, 3), 9: (1, 2)}
    with pytest.raises(DatasetError, match=r"a\.png: value 9 \(in 1 masks\) is not allowed by 0 background"):
        MaskFolderDataset(tmp_path / "img", tmp_path / "mask", class_names=CLASS_NAMES)
    index[2, :2] = 255
    _mask_pair(tmp_path, "a", index.astype(np.uint16))  # 16-bit index maps are fine too
    default = MaskFolderDataset(tmp_path / "img", tmp_path / "mask", class_names=CLASS_NAMES)
    np.testing.assert_array_equal(default[0].semantic, index)
    # load applies the same rule to a file changed after the build
    index[3, 0] = 7
    _mask_pair(tmp_path, "a", index)
    with pytest.raises(DatasetError, match=r"a\.png: label values \[7\] are not allowed by 0 background") as info:
        default[0]
    assert info.value.kind == "mask_values"
    with pytest.raises(ValueError, match="ignore_index"):
        MaskFolderDataset(tmp_path / "img", tmp_path / "mask", class_names=CLASS_NAMES, ignore_index=2)


def test_mask_folder_palette_unknown_colours(tmp_path, caplog):
    colour = np.zeros((6, 8, 3), np.uint8)  # RGB
    colour[0] = (255, 0, 0)
    colour[1, :2] = (0, 0, 255)
    colour[2, :3] = (10, 20, 30)  # not in the palette
    colour[3, :1] = (255, 255, 255)
    _mask_pair(tmp_path, "a", cv2.cvtColor(colour, cv2.COLOR_RGB2BGR))
    ds = MaskFolderDataset(tmp_path / "img", tmp_path / "mask", class_names=CLASS_NAMES, palette=PALETTE)
    with caplog.at_level(logging.WARNING):
        got = ds[0].semantic
    expected = np.zeros((6, 8), np.uint8)
    expected[0], expected[1, :2], expected[2, :3], expected[3, :1] = 1, 3, 255, 255
    np.testing.assert_array_equal(got, expected)
    assert ds.counts["unknown_colour_pixels"] == 3 and "[10, 20, 30]" in caplog.text
    with pytest.raises(DatasetError, match=r"1 masks of the wrong kind .*a\.png: colour mask, but no palette"):
        MaskFolderDataset(tmp_path / "img", tmp_path / "mask", class_names=CLASS_NAMES)
    _mask_pair(tmp_path, "a", np.zeros((6, 8), np.uint8))
    with pytest.raises(DatasetError, match=r"a\.png: single-channel mask, but a palette") as info:
        ds[0]
    assert info.value.kind == "mask_format"
    with pytest.raises(ValueError, match="palette maps"):
        MaskFolderDataset(tmp_path / "img", tmp_path / "mask", class_names=CLASS_NAMES,
                          palette={(1, 2, 3): 7})


def test_mask_folder_missing_masks_and_size_mismatch(tmp_path):
    one_class = np.zeros((6, 8), np.uint8)
    one_class[0, 0] = 1
    _mask_pair(tmp_path, "a", one_class)
    for stem in "bcdefgh":
        _mask_pair(tmp_path, stem, None)
    expected = r"7 images without a mask; e\.g\. .*mask/b\.png: mask not found for image .*img/b\.png.*\(and 2 more"
    with pytest.raises(DatasetError, match=expected):
        MaskFolderDataset(tmp_path / "img", tmp_path / "mask", class_names=CLASS_NAMES)
    _mask_pair(tmp_path / "two", "a", one_class[:5])
    with pytest.raises(DatasetError, match=r"a\.png: mask size \(5, 8\) differs from image .*\(6, 8\)"):
        MaskFolderDataset(tmp_path / "two" / "img", tmp_path / "two" / "mask", class_names=CLASS_NAMES)
    _mask_pair(tmp_path / "two", "a", one_class)
    ds = MaskFolderDataset(tmp_path / "two" / "img", tmp_path / "two" / "mask", class_names=CLASS_NAMES)
    _mask_pair(tmp_path / "two", "a", one_class[:5])  # changed after the build: load finds it
    with pytest.raises(DatasetError, match=r"a\.png: mask size \(5, 8\) differs from image") as info:
        ds[0]
    assert info.value.kind == "mask_size_mismatch"
