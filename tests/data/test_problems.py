"""Readers collect every problem of their files in one pass (``strict=False``) or raise one error
listing them (``strict=True``, training): damaged coco128 copies, small written VOC / YOLO / mask
sets, and the ISBI 2012 membrane masks saved as 0/255."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from detseg.config import load_config
from detseg.config.io import ConfigError
from detseg.data.build import build_datasets
from detseg.data.coco import CocoDataset
from detseg.data.mask_folder import MaskFolderDataset
from detseg.data.report import check_dataset
from detseg.data.sample import PROBLEM_KINDS, DatasetError, ProblemLog, image_size
from detseg.data.voc import VOCDataset
from detseg.data.yolo import YOLODataset

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
COCO128 = SHARED / "coco128"
ISBI = SHARED / "isbi2012_membrane"


def _png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def _found(dataset) -> dict[str, int]:
    return dict(dataset.problems.counts)


# ------------------------------------------------------------------------------ the collector


def test_problem_log_counts_summarises_and_raises_only_when_strict():
    log = ProblemLog(strict=False)
    log.add("degenerate_annotations", "a.json: annotation 3: bbox [1, 1, 0, 2]")
    log.raise_if_fatal("a.json")  # only warnings so far
    for i in range(7):
        log.add("missing_images", f"img{i}.png: image file not found")
    log.add("mask_values", "m.png: value 7 (in 4 masks) is not allowed", count=4)
    log.raise_if_fatal("a.json")  # not strict: kept for the report
    assert log.counts == {"degenerate_annotations": 1, "missing_images": 7, "mask_values": 4}
    assert log.fatal == {"missing_images": 7, "mask_values": 4}
    text = log.summary("a.json")
    assert text.startswith("a.json: 7 image files missing, 4 masks with values that are neither")
    assert "e.g. img0.png: image file not found; img1.png" in text and "\n" not in text
    assert text.endswith("(and 3 more: tools/check_dataset.py lists them all)")  # 8 texts, 5 shown
    log.strict = True
    with pytest.raises(DatasetError, match="a.json: 7 image files missing"):
        log.raise_if_fatal("a.json")
    with pytest.raises(KeyError, match="unknown problem kind"):
        log.add("typo", "x")
    assert all(isinstance(text, str) and isinstance(fatal, bool) for text, fatal in PROBLEM_KINDS.values())


def test_image_size_reads_headers_and_names_bad_files(tmp_path):
    path = _png(tmp_path / "a.png", np.zeros((7, 9, 3), np.uint8))
    assert image_size(path) == (7, 9)
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    with pytest.raises(OSError, match=r"b\.png: cannot read the image header \(corrupt or not an image"):
        image_size(tmp_path / "b.png")
    with pytest.raises(OSError, match=r"image file not found: .*c\.png"):
        image_size(tmp_path / "c.png")


# ------------------------------------------------------------------------------ COCO (coco128)


def _damaged_coco128(tmp: Path) -> tuple[Path, Path, dict]:
    """13 coco128 images (12 first + 257, with a crowd RLE) linked, one kind of damage each.

    Returns ``(json, image folder, {what: id})`` for the assertions.
    """
    data = json.loads((COCO128 / "annotations" / "instances.json").read_text())
    images = data["images"][:12] + [i for i in data["images"] if i["id"] == 257]
    ids = {i["id"] for i in images}
    anns = [a for a in data["annotations"] if a["image_id"] in ids]
    folder = tmp / "images"
    folder.mkdir()
    for img in images:
        (folder / img["file_name"]).symlink_to(COCO128 / "images" / img["file_name"])
    im = {k: images[k] for k in range(6)}
    (folder / im[0]["file_name"]).unlink()  # missing file
    (folder / im[1]["file_name"]).unlink()
    (folder / im[1]["file_name"]).write_bytes(b"\xff\xd8 not a jpeg")  # undecodable
    im[2]["width"] += 8  # json size disagrees with the file
    del im[3]["file_name"]  # invalid image entry
    kept = {img["id"]: img for img in images[4:12]}
    mine = [a for a in anns if a["image_id"] in kept and not a["iscrowd"]]
    mine[0]["category_id"] = 12  # a gap in COCO's ids
    mine[1]["bbox"] = mine[1]["bbox"][:3]
    mine[2]["bbox"][2] = 0.0  # degenerate: dropped, reported
    mine[3]["id"] = mine[4]["id"]  # duplicate annotation id
    mine[5]["segmentation"] = [[1.0, 2.0, 3.0, 4.0]]  # no polygon with 3 points
    mine[6]["segmentation"] = mine[6]["segmentation"] + [[5.0, 5.0]]  # one bad part: dropped, reported
    mine[7]["image_id"] = 424242
    crowd = next(a for a in anns if a["iscrowd"])
    crowd["segmentation"]["size"] = [10, 10]  # RLE of the wrong size
    x, y, w, h = mine[8]["bbox"]
    mine[8]["bbox"] = [kept[mine[8]["image_id"]]["width"] - w / 2, y, w, h]  # sticks out
    path = tmp / "instances.json"
    path.write_text(json.dumps({**data, "images": images, "annotations": anns}))
    marks = {"missing": im[0]["file_name"], "corrupt": im[1]["file_name"], "resized": im[2]["id"],
             "resized_hw": f"{im[2]['height']}x{im[2]['width']}",
             "no_name": im[3]["id"], "unknown_cat": mine[0]["id"], "bad_box": mine[1]["id"],
             "degenerate": mine[2]["id"], "dup": mine[4]["id"], "bad_polygon": mine[5]["id"],
             "short_part": mine[6]["id"], "orphan": mine[7]["id"], "crowd": crowd["id"], "outside": mine[8]["id"]}
    return path, folder, marks


@pytest.mark.coco128
def test_damaged_coco128_every_problem_in_one_pass(tmp_path):
    ann, folder, mark = _damaged_coco128(tmp_path)
    ds = CocoDataset(ann, folder, strict=False, check_image_sizes=True)
    assert _found(ds) == {
        "invalid_images": 1, "unknown_classes": 1, "invalid_boxes": 1, "degenerate_annotations": 1,
        "invalid_polygons": 1, "invalid_segmentations": 2, "unknown_image_ids": 1, "duplicate_annotation_ids": 1,
        "missing_images": 1, "unreadable_images": 1, "size_mismatch": 1,
        "boxes_partly_outside": 1,  # found from the json's width, before any image is decoded
    }
    ex = {k: " | ".join(v) for k, v in ds.problems.examples.items()}
    assert f"{ann}: image {mark['no_name']} has no 'file_name'" in ex["invalid_images"]
    assert f"annotation {mark['unknown_cat']}: unknown category_id 12" in ex["unknown_classes"]
    assert f"annotation {mark['bad_box']}: bbox must be 4 finite numbers" in ex["invalid_boxes"]
    assert f"annotation {mark['bad_polygon']}: no polygon with at least 3 points" in ex["invalid_segmentations"]
    assert f"annotation {mark['crowd']}: RLE size [10, 10] differs" in ex["invalid_segmentations"]
    assert f"annotation {mark['short_part']}: 1 polygon(s)" in ex["invalid_polygons"]
    assert f"annotation {mark['orphan']}: image_id 424242" in ex["unknown_image_ids"]
    assert f"annotation id {mark['dup']} is used by 2 annotations" in ex["duplicate_annotation_ids"]
    assert f"{folder / mark['missing']}: image file not found" in ex["missing_images"]
    assert f"{folder / mark['corrupt']}" in ex["unreadable_images"]
    assert f"{ann} says {mark['resized_hw']} for image {mark['resized']}" in ex["size_mismatch"]
    # The four bad images are left out, the rest kept with their good annotations.
    assert len(ds) == 9 and ds.problems.skipped_images == 4
    report = check_dataset(ds, progress=False)
    assert report.problems["boxes_partly_outside"] == 1  # once: decoding does not count it again
    assert f"annotation {mark['outside']}: box xyxy" in report.examples["boxes_partly_outside"][0]
    assert report.fatal_problems.keys() == {"invalid_images", "unknown_classes", "invalid_boxes",
                                            "invalid_segmentations", "unknown_image_ids", "missing_images",
                                            "unreadable_images", "size_mismatch"}

    # Training builds the same reader strictly: one error, one line, the same problems.
    with pytest.raises(DatasetError) as info:
        CocoDataset(ann, folder)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{ann}: 1 image files missing, ")
    assert "invalid image entries" in message and "malformed polygons or RLE masks" in message
    assert "size_mismatch" not in message and "duplicate annotation ids" not in message  # not fatal / not read


@pytest.mark.coco128
def test_coco_size_rule_is_the_same_from_headers_and_from_decoding(tmp_path):
    data = json.loads((COCO128 / "annotations" / "instances.json").read_text())
    first = data["images"][0]
    first["height"] -= 2
    data["images"] = [first]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] == first["id"]]
    ann = tmp_path / "one.json"
    ann.write_text(json.dumps(data))
    checked = CocoDataset(ann, COCO128 / "images", with_masks=False, strict=False, check_image_sizes=True)
    assert len(checked) == 0 and checked.problems.counts == {"size_mismatch": 1}
    trained = CocoDataset(ann, COCO128 / "images", with_masks=False)  # no header pass when training
    with pytest.raises(DatasetError) as info:
        trained.load(0)
    assert info.value.kind == "size_mismatch"
    assert str(info.value) == checked.problems.examples["size_mismatch"][0]


# ------------------------------------------------------------------------------ VOC


def _xml(filename: str, objects: str) -> str:
    return f"<annotation><filename>{filename}</filename>{objects}</annotation>"


def _obj(name="dog", box=(1, 1, 5, 5), difficult="0") -> str:
    tags = "".join(f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
    return f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>{tags}</bndbox></object>"


def _voc_with_problems(root: Path) -> Path:
    """Six images listed (one twice); each but ``good`` has one kind of problem."""
    files = {
        "good": _xml("good.png", _obj() + _obj("cat", (2, 2, 9, 9))),
        "mixed": _xml("mixed.png", _obj("unicorn") + _obj("dog", (9, 1, 5, 5)) + _obj("dog", ("one", 1, 5, 5))
                      + _obj("cat", difficult="2") + "<object><name>cat</name></object>" + _obj("cat")),
        "broken": "<annotation>\n<object>\n</annotation>\n",
        "noimage": _xml("noimage.png", _obj()),
    }
    (root / "Annotations").mkdir(parents=True)
    for stem, text in files.items():
        (root / "Annotations" / f"{stem}.xml").write_text(text)
        if stem != "noimage":
            _png(root / "JPEGImages" / f"{stem}.png", np.full((12, 16, 3), 80, np.uint8))
    split = root / "ImageSets" / "Main" / "train.txt"
    split.parent.mkdir(parents=True)
    split.write_text("good\nmixed\nbroken\nnoimage\nnoxml\ngood\n")
    return root


def test_voc_every_problem_in_one_pass(tmp_path):
    root = _voc_with_problems(tmp_path)
    ds = VOCDataset(root, strict=False)
    assert _found(ds) == {"duplicate_images": 1, "unknown_classes": 1, "invalid_boxes": 3,
                          "invalid_annotations": 1, "malformed_files": 1, "missing_images": 1,
                          "missing_annotation_files": 1}
    ex = {k: " | ".join(v) for k, v in ds.problems.examples.items()}
    xml = root / "Annotations" / "mixed.xml"
    assert f"{xml}: object 0 has unknown class name 'unicorn'" in ex["unknown_classes"]
    assert f"{xml}: object 1 (dog): degenerate box xmin=9" in ex["invalid_boxes"]
    assert f"{xml}: object 2 (dog): <xmin> is not a finite number: 'one'" in ex["invalid_boxes"]
    assert f"{xml}: object 4 (cat): missing <bndbox>" in ex["invalid_boxes"]
    assert f"{xml}: object 3 (cat): <difficult> must be 0 or 1" in ex["invalid_annotations"]
    assert f"{root / 'Annotations' / 'broken.xml'}:3:" in ex["malformed_files"]
    assert "train.txt:6: image id 'good' listed again" in ex["duplicate_images"]
    assert f"{root / 'JPEGImages' / 'noimage.png'}: image file not found" in ex["missing_images"]
    assert f"{root / 'Annotations' / 'noxml.xml'}: annotation XML file not found" in ex["missing_annotation_files"]
    # good and mixed are kept; of mixed, only its last object (5) is valid
    assert ds.ids == ["good", "mixed"] and ds.problems.skipped_images == 3
    assert ds.instance_names(1) == ["mixed.xml object 5"] and ds.load(1).labels.tolist() == [7]
    with pytest.raises(DatasetError) as info:
        VOCDataset(root)
    assert "\n" not in str(info.value) and str(info.value).startswith(f"{root / 'ImageSets/Main/train.txt'}: ")


# ------------------------------------------------------------------------------ YOLO


def _yolo_with_problems(root: Path) -> Path:
    labels = {
        "a": "0 0.5 0.5 0.5 0.5\n",
        "b": ("0 0.5 0.5 0.5 0.5\n"      # 1: fine
              "1 0.5 0.5 0.2\n"          # 2: wrong column count
              "0 0.5 x 0.2 0.2\n"         # 3: not a number
              "0 0.5 0.5 1.5 0.2\n"       # 4: outside [0, 1]
              "7 0.5 0.5 0.2 0.2\n"       # 5: class out of range
              "2 0.25 0.5 0.5 0.5\n"),    # 6: fine
        "c": None,                        # listed, but no image file
    }
    for stem, text in labels.items():
        if stem != "c":
            _png(root / "images" / "val" / f"{stem}.png", np.full((20, 40, 3), 50, np.uint8))
        path = root / "labels" / "val" / f"{stem}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text or "")
    _png(root / "images" / "val" / "d.png", np.zeros((20, 40, 3), np.uint8))
    (root / "labels" / "val" / "d.txt").write_bytes(b"\xff\xfe\x00binary")
    (root / "val.txt").write_text("".join(f"./images/val/{s}.png\n" for s in "abcd"))
    (root / "data.yaml").write_text(yaml.safe_dump({"path": ".", "val": "val.txt", "names": ["cat", "dog", "bird"]}))
    return root / "data.yaml"


def test_yolo_every_problem_in_one_pass(tmp_path):
    data_yaml = _yolo_with_problems(tmp_path)
    ds = YOLODataset(data_yaml, "val", strict=False)
    b = tmp_path / "labels" / "val" / "b.txt"
    assert _found(ds) == {"malformed_lines": 2, "coords_outside": 1, "unknown_classes": 1, "missing_images": 1,
                          "malformed_files": 1}
    ex = {k: " | ".join(v) for k, v in ds.problems.examples.items()}
    assert f"{b}:2: expected 5 columns" in ex["malformed_lines"]
    assert f"{b}:3: not a finite number: 'x'" in ex["malformed_lines"]
    assert f"{b}:4: coordinates must be normalised" in ex["coords_outside"]
    assert f"{b}:5: class id 7 is not an integer in [0, 3)" in ex["unknown_classes"]
    assert f"{tmp_path / 'images' / 'val' / 'c.png'}: image file not found (listed in" in ex["missing_images"]
    assert f"{tmp_path / 'labels' / 'val' / 'd.txt'}: not a text file" in ex["malformed_files"]
    assert len(ds) == 2 and ds.problems.skipped_images == 2
    assert ds.instance_names(1) == ["b.txt:1", "b.txt:6"] and ds.load(1).labels.tolist() == [0, 2]
    with pytest.raises(DatasetError) as info:
        YOLODataset(data_yaml, "val")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{data_yaml} (split 'val'): 1 image files missing, ")
    assert f"{b}:2: expected 5 columns" in message


# ------------------------------------------------------------------------------ mask folders


def _mask_set(root: Path) -> tuple[Path, Path]:
    """Eight 6x8 pairs for 2 classes, and one kind of problem in each but ``ok``."""
    img, msk = root / "img", root / "mask"
    good = np.zeros((6, 8), np.uint8)
    good[:2] = 1
    good[4:, :2] = 2
    good[5, 7] = 255
    pairs = {"ok": good, "nomask": None, "small": good[:5], "seven": np.where(good == 2, 7, good).astype(np.uint8),
             "colour": cv2.merge([good, good * 0, good]), "corrupt": b"\x89PNG\r\n\x1a\n broken"}
    for stem, mask in pairs.items():
        _png(img / f"{stem}.png", np.zeros((6, 8, 3), np.uint8))
        if isinstance(mask, bytes):
            (msk / f"{stem}.png").write_bytes(mask)
        elif mask is not None:
            _png(msk / f"{stem}.png", mask)
    _png(img / "ok.jpg", np.zeros((6, 8, 3), np.uint8))  # a second image of stem "ok"
    _png(msk / "stray.png", good)  # a mask without image
    return img, msk


def test_mask_folder_every_problem_in_one_pass(tmp_path):
    img, msk = _mask_set(tmp_path)
    ds = MaskFolderDataset(img, msk, class_names=["road", "car"], strict=False)
    assert _found(ds) == {"duplicate_images": 1, "missing_masks": 1, "unpaired_masks": 1, "mask_size_mismatch": 1,
                          "mask_values": 1, "mask_format": 1, "unreadable_images": 1}
    ex = {k: " | ".join(v) for k, v in ds.problems.examples.items()}
    assert f"{img / 'ok.png'}: two images share the stem 'ok'" in ex["duplicate_images"]
    assert f"{msk / 'nomask.png'}: mask not found for image {img / 'nomask.png'}" in ex["missing_masks"]
    assert f"{msk / 'stray.png'}: no image stray.*" in ex["unpaired_masks"]
    assert f"{msk / 'small.png'}: mask size (5, 8) differs from image {img / 'small.png'} size (6, 8)" in ex[
        "mask_size_mismatch"]
    assert (f"{msk / 'seven.png'}: value 7 (in 1 masks) is not allowed by 0 background, k + 1 class k (1..2), "
            "255 ignore") in ex["mask_values"]
    assert f"{msk / 'colour.png'}: colour mask, but no palette" in ex["mask_format"]
    assert f"{msk / 'corrupt.png'}" in ex["unreadable_images"]
    assert [p.name for p in ds.image_paths] == ["ok.jpg"] and ds.problems.skipped_images == 6
    assert ds.value_counts == {0: (2, 2 * 27), 1: (2, 2 * 16), 2: (1, 4), 7: (1, 4), 255: (2, 2)}  # ok and seven
    assert ds[0].semantic[5, 7] == 255
    with pytest.raises(DatasetError) as info:
        MaskFolderDataset(img, msk, class_names=["road", "car"])
    assert "\n" not in str(info.value) and str(info.value).startswith(f"{msk}: 1 unreadable images or masks")


def test_mask_values_map_stored_values_to_classes(tmp_path):
    binary = np.zeros((6, 8), np.uint8)
    binary[2:, 3:] = 255
    _png(tmp_path / "img" / "a.png", np.zeros((6, 8, 3), np.uint8))
    _png(tmp_path / "mask" / "a.png", binary)
    img, msk = tmp_path / "img", tmp_path / "mask"
    # Read by the default rule, 255 is "ignore": nothing to learn, said before training, naming a file.
    with pytest.raises(DatasetError) as info:
        MaskFolderDataset(img, msk, class_names=["cell"])
    message = str(info.value)
    assert "\n" not in message and f"{msk / 'a.png'} and the other masks hold only values [0, 255]" in message
    assert "mask_values" in message and "{0: background, 255: cell}" in message
    ds = MaskFolderDataset(img, msk, class_names=["cell"], mask_values={0: "background", 255: "cell"})
    np.testing.assert_array_equal(ds[0].semantic, (binary > 0).astype(np.uint8))
    two = MaskFolderDataset(img, msk, class_names=["membrane", "cell"], mask_values={"0": "membrane", "255": "cell"})
    np.testing.assert_array_equal(two[0].semantic, np.where(binary > 0, 2, 1))
    assert two.notes()[1:] == ["      0: 1 masks, 58.3% of pixels -> membrane",
                               "    255: 1 masks, 41.7% of pixels -> cell"]
    ignore = MaskFolderDataset(img, msk, class_names=["cell"], mask_values={0: "cell", 255: "ignore"})
    np.testing.assert_array_equal(ignore[0].semantic, np.where(binary > 0, 255, 1))
    with pytest.raises(DatasetError, match=r"a\.png: value 255 \(in 1 masks\) is not allowed by mask_values "
                                           r"\{0: cell\}"):
        MaskFolderDataset(img, msk, class_names=["cell"], mask_values={0: "cell"})
    for bad, message in [({0: "background", 255: "dog"}, "neither a class name"), ({"x": "cell"}, "not an integer"),
                         ({0: "background", 255: "ignore"}, "maps no value to a class"),
                         ({70000: "cell"}, "not a 16-bit")]:
        with pytest.raises(ValueError, match=message):
            MaskFolderDataset(img, msk, class_names=["cell"], mask_values=bad)
    with pytest.raises(ValueError, match="reserved words"):
        MaskFolderDataset(img, msk, class_names=["background", "cell"], mask_values={0: "background", 255: "cell"})
    with pytest.raises(ValueError, match="cannot be combined"):
        MaskFolderDataset(img, msk, class_names=["cell"], mask_values={255: "cell"}, ignore_index=9)


def test_mask_values_in_the_config(tmp_path):
    cfg = load_config(None, ["data.format=masks", "data.mask_values={0: background, 255: cell}"]).data
    assert cfg.mask_values == {"0": "background", "255": "cell"}
    with pytest.raises(ConfigError, match="mask_values keys must be stored pixel values"):
        load_config(None, ["data.mask_values={zero: background}"])
    with pytest.raises(ConfigError, match="leave ignore_index at its default"):
        load_config(None, ["data.mask_values={0: background, 255: cell}", "data.ignore_index=9"])


@pytest.mark.isbi2012
def test_isbi_membrane_0_255_masks_train_as_two_classes():
    # isbi2012_membrane/labels hold 0 = membrane, 255 = cell (its README); both splits read all 30 here.
    overrides = ["data.format=masks", "data.class_names=[membrane, cell]", "data.mask_values={0: membrane, 255: cell}",
                 "data.augment.image_size=64", "data.batch_size=2"]
    overrides += [f"data.{s}.{k}={ISBI / f}" for s in ("train", "val") for k, f in (("images", "images"),
                                                                                     ("masks", "labels"))]
    train, val = build_datasets(load_config(None, overrides).data, "segmentation")
    assert len(train) == len(val) == 30 and train.class_names == ("membrane", "cell")
    assert train.value_counts[0][0] == train.value_counts[255][0] == 30  # both values in every mask
    sample = train.load(0)
    raw = cv2.imread(str(ISBI / "labels" / "00.png"), cv2.IMREAD_UNCHANGED)
    assert sample.semantic.shape == raw.shape == (512, 512)
    np.testing.assert_array_equal(sample.semantic, np.where(raw == 255, 2, 1))  # no pixel is background/ignore
    assert 0.7 < (sample.semantic == 2).mean() < 0.85  # cell interior, ~78 % of pixels
    assert set(np.unique(train[0].semantic).tolist()) <= {1, 2}  # after the resize too
    # Without the mapping, the default rule makes 255 "ignore": refused before training, naming a file.
    with pytest.raises(DatasetError, match=r"00\.png and the other masks hold only values \[0, 255\]"):
        build_datasets(load_config(None, overrides[:1] + ["data.class_names=[cell]"] + overrides[3:]).data,
                       "segmentation")


def test_no_class_pixels_is_not_reported_for_folders_without_usable_masks(tmp_path):
    _png(tmp_path / "img" / "a.png", np.zeros((6, 8, 3), np.uint8))
    _png(tmp_path / "mask" / "a.png", np.full((6, 8), 9, np.uint8))
    ds = MaskFolderDataset(tmp_path / "img", tmp_path / "mask", class_names=["x"], strict=False)
    assert _found(ds) == {"mask_values": 1} and len(ds) == 0
    assert os.path.basename(ds.problems.examples["mask_values"][0]).startswith("a.png: value 9")
