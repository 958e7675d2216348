"""tools/convert.py, tools/check_dataset.py and detseg.data.report, on a tiny generated COCO set.

The tools are called in-process through ``main([...])`` (a subprocess per call would cost more
than the work); a tool module is loaded from its file since ``tools/`` is not a package.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from detseg.data.coco import CocoDataset
from detseg.data.mask_folder import MaskFolderDataset
from detseg.data.report import DatasetReport, check_dataset
from detseg.data.sample import (
    DatasetError,
    DetectionDataset,
    ImageReadError,
    Sample,
)
from detseg.data.synthetic import CLASS_NAMES, ShapesConfig, write_coco
from detseg.data.voc import VOCDataset
from detseg.data.yolo import YOLODataset

REPO = Path(__file__).resolve().parents[2]
COCO128 = REPO.parent / "shared" / "data" / "coco128"

# Non-square, so an H/W swap shows; seed 7 gives 5 images with objects and 1 negative.
CFG = ShapesConfig(num_images=6, image_size=(48, 64), min_size=8, max_size=24, seed=7, negative_fraction=0.2)


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f"_detseg_tool_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


convert = _tool("convert")
check = _tool("check_dataset")


@pytest.fixture(scope="module")
def coco_src(tmp_path_factory):
    """``(images_dir, annotations.json)`` of the generated set; never modified by tests."""
    root = tmp_path_factory.mktemp("shapes")
    ann = write_coco(CFG, root)
    return root / "images", ann


def _copy_src(coco_src, dest: Path) -> tuple[Path, Path, dict]:
    """A modifiable copy of the generated set: ``(images_dir, ann_file, parsed json)``."""
    images, ann = coco_src
    shutil.copytree(images, dest / "images")
    shutil.copy(ann, dest / "annotations.json")
    return dest / "images", dest / "annotations.json", json.loads(ann.read_text())


def _coco_args(images, ann, *extra):
    return ["--images", str(images), "--annotations", str(ann), *extra]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


# ----------------------------------------------------------------------------- convert


def test_round_trip_coco_voc_yolo_coco_keeps_boxes_and_labels(coco_src, tmp_path, capsys):
    images, ann = coco_src
    original = CocoDataset(ann, images, with_masks=False)
    n_instances = sum(len(original.load(i).labels) for i in range(len(original)))

    assert convert.main(["--from", "coco", *_coco_args(images, ann), "--to", "voc",
                         "--out", str(tmp_path / "voc"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"{n_instances} of {n_instances} instances" in out and "read it back with: --from voc" in out
    classes = tmp_path / "voc" / "classes.txt"
    assert classes.read_text().split() == list(CLASS_NAMES)

    assert convert.main(["--from", "voc", "--root", str(tmp_path / "voc"), "--class-names", str(classes),
                         "--to", "yolo", "--out", str(tmp_path / "yolo"), "--quiet"]) == 0
    assert "changed or left out:\n  - nothing" in capsys.readouterr().out
    assert convert.main(["--from", "yolo", "--data-yaml", str(tmp_path / "yolo" / "data.yaml"),
                         "--to", "coco", "--out", str(tmp_path / "coco"), "--out-split", "val", "--quiet"]) == 0
    capsys.readouterr()

    final = CocoDataset(tmp_path / "coco" / "annotations" / "instances_val.json",
                        tmp_path / "coco" / "images" / "val", with_masks=False)
    assert final.class_names == original.class_names == CLASS_NAMES
    assert final.category_ids == original.category_ids and len(final) == len(original) == CFG.num_images
    for i in range(len(original)):
        a, b = original.load(i), final.load(i)
        np.testing.assert_array_equal(b.labels, a.labels)
        np.testing.assert_allclose(b.boxes, a.boxes, atol=1e-3)  # pixels; the YOLO leg is normalised
        np.testing.assert_array_equal(b.image, a.image)  # PNG all the way: lossless
    assert final.image_ids == list(range(1, CFG.num_images + 1))

    # The intermediate datasets pass the checker too, read with the arguments the summary printed.
    assert check.main(["--format", "voc", "--root", str(tmp_path / "voc"), "--class-names",
                       ",".join(CLASS_NAMES), "--quiet"]) == 0
    assert check.main(["--format", "yolo", "--data-yaml", str(tmp_path / "yolo" / "data.yaml"), "--quiet"]) == 0
    assert f"instances: {n_instances} (0 crowd/ignore)" in capsys.readouterr().out


def test_crowd_is_difficult_in_voc_and_left_out_of_yolo(coco_src, tmp_path, capsys):
    images, ann, data = _copy_src(coco_src, tmp_path / "src")
    data["annotations"][0]["iscrowd"] = 1
    ann.write_text(json.dumps(data))
    crowd_label = data["annotations"][0]["category_id"] - 1
    total = len(data["annotations"])

    assert convert.main(["--from", "coco", *_coco_args(images, ann), "--to", "yolo",
                         "--out", str(tmp_path / "yolo"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"{total - 1} of {total} instances" in out
    assert "1 crowd/difficult instances left out: YOLO has no ignore regions" in out
    yolo = YOLODataset(tmp_path / "yolo" / "data.yaml")
    assert sum(len(yolo.load(i).labels) for i in range(len(yolo))) == total - 1

    assert convert.main(["--from", "coco", *_coco_args(images, ann), "--to", "voc",
                         "--out", str(tmp_path / "voc"), "--quiet"]) == 0
    assert "1 crowd instances written as <difficult>1</difficult>" in capsys.readouterr().out
    voc = VOCDataset(tmp_path / "voc", class_names=CLASS_NAMES)
    samples = [voc.load(i) for i in range(len(voc))]
    crowd = [int(lab) for s in samples for lab, c in zip(s.labels, s.iscrowd) if c]
    assert crowd == [crowd_label]


def test_convert_to_masks_paints_the_semantic_map(coco_src, tmp_path, capsys):
    images, ann = coco_src
    out = tmp_path / "m"
    assert convert.main(["--from", "coco", *_coco_args(images, ann), "--to", "masks", "--out", str(out),
                         "--quiet"]) == 0
    assert "a mask folder has no boxes" in capsys.readouterr().out
    ds = MaskFolderDataset(out / "images" / "train", out / "masks" / "train",
                           class_names=(out / "classes.txt").read_text().split())
    for i in range(len(ds)):  # write_coco of the generator also wrote its semantic maps
        expected = cv2.imread(str(images.parent / "masks" / f"{i:06d}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(ds.load(i).semantic, expected)


def test_convert_refuses_bad_requests(coco_src, tmp_path, capsys):
    images, ann = coco_src
    voc = tmp_path / "voc"
    assert convert.main(["--from", "coco", *_coco_args(images, ann), "--to", "voc", "--out", str(voc),
                         "--quiet"]) == 0
    capsys.readouterr()
    # the same split again: nothing is overwritten
    assert convert.main(["--from", "coco", *_coco_args(images, ann), "--to", "voc", "--out", str(voc),
                         "--quiet"]) == 2
    assert str(voc / "ImageSets" / "Main" / "train.txt") in _error_line(capsys)
    # VOC boxes cannot become label maps
    assert convert.main(["--from", "voc", "--root", str(voc), "--class-names", ",".join(CLASS_NAMES),
                         "--to", "masks", "--out", str(tmp_path / "m"), "--quiet"]) == 2
    assert "needs instance masks" in _error_line(capsys)
    # VOC names outside the default 20 classes: the error names the XML and says what to pass
    assert convert.main(["--from", "voc", "--root", str(voc), "--to", "yolo", "--out", str(tmp_path / "y"),
                         "--quiet"]) == 2
    err = _error_line(capsys)
    assert str(voc / "Annotations") in err and "--class-names" in err
    # missing source files name the file
    missing = tmp_path / "nope.json"
    assert convert.main(["--from", "coco", *_coco_args(images, missing), "--to", "yolo",
                         "--out", str(tmp_path / "y"), "--quiet"]) == 2
    assert str(missing) in _error_line(capsys)
    # argument shape errors are argparse's (exit 2, usage on stderr)
    for argv in (["--from", "coco", "--images", str(images), "--to", "voc", "--out", "x"],
                 ["--from", "yolo", "--data-yaml", "d.yaml", "--root", "r", "--to", "voc", "--out", "x"],
                 ["--from", "coco", *_coco_args(images, ann), "--to", "tfrecord", "--out", "x"]):
        with pytest.raises(SystemExit) as exc:
            convert.main(argv)
        assert exc.value.code == 2
    capsys.readouterr()


# ----------------------------------------------------------------------------- check_dataset


def test_check_dataset_counts_a_good_set(coco_src, tmp_path, capsys):
    images, ann = coco_src
    data = json.loads(ann.read_text())
    per_class = np.bincount([a["category_id"] - 1 for a in data["annotations"]], minlength=3).tolist()
    labelled = {a["image_id"] for a in data["annotations"]}

    report_path = tmp_path / "report.json"
    assert check.main(["--format", "coco", *_coco_args(images, ann), "--json", str(report_path)]) == 0
    out = capsys.readouterr().out
    assert "result: OK" in out and f"images: {CFG.num_images}, size 48x64" in out
    report = json.loads(report_path.read_text())
    assert report["ok"] and report["num_images"] == CFG.num_images
    assert [c["instances"] for c in report["classes"]] == per_class
    assert [c["name"] for c in report["classes"]] == list(CLASS_NAMES)
    assert report["num_crowd"] == 0 and report["images_without_labels"] == CFG.num_images - len(labelled)
    assert report["images_with_labels"] == len(labelled) and report["images_without_labels"] >= 1
    assert not any(report["problems"].values()) and report["fatal"] == []
    assert report["build_counts"] == {"empty_images": 1}


def test_check_dataset_reports_a_broken_set(coco_src, tmp_path, capsys):
    images, ann, data = _copy_src(coco_src, tmp_path)
    height, width = CFG.image_size
    # image 2 (id 3) is corrupt; a box of another image sticks out on the right; one has zero width
    (images / "000002.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    partly = next(a for a in data["annotations"] if a["image_id"] != 3)
    partly["bbox"][0] = width - partly["bbox"][2] / 2
    data["annotations"].append({**data["annotations"][0], "id": 1000, "bbox": [5.0, 5.0, 0.0, 10.0]})
    ann.write_text(json.dumps(data))

    report_path = tmp_path / "report.json"
    assert check.main(["--format", "coco", *_coco_args(images, ann), "--json", str(report_path), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "result: FAILED: 1 unreadable images" in out
    assert f"{images / '000002.png'}" in out and "corrupt or not an image" in out
    assert f"annotation {partly['id']}: box xyxy" in out and f"in a {height}x{width} (HxW) image" in out
    report = json.loads(report_path.read_text())
    assert not report["ok"] and report["fatal"] == ["unreadable_images"]
    assert report["problems"]["unreadable_images"] == 1
    assert report["problems"]["boxes_partly_outside"] == 1
    assert report["problems"]["boxes_fully_outside"] == report["problems"]["degenerate_boxes"] == 0
    assert report["problems"]["degenerate_annotations"] == 1  # dropped by the reader at build time
    assert "annotation 1000: bbox [5.0, 5.0, 0.0, 10.0]" in report["examples"]["degenerate_annotations"][0]
    assert report["num_images"] == CFG.num_images - 1 and report["skipped_images"] == 1

    # convert stops at the corrupt image, naming it
    assert convert.main(["--from", "coco", *_coco_args(images, ann), "--to", "yolo",
                         "--out", str(tmp_path / "y"), "--quiet"]) == 2
    err = _error_line(capsys)
    assert str(images / "000002.png") in err and "check_dataset" in err

    # a deleted image is found when the dataset is built; the check goes on and names it
    (images / "000004.png").unlink()
    assert check.main(["--format", "coco", *_coco_args(images, ann), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert f"{images / '000004.png'}: image file not found (image 5 of {ann})" in out
    assert "result: FAILED: 1 missing images, 1 unreadable images" in out


@pytest.mark.parametrize("breakage, expected", [
    ("unknown_category", "unknown category_id 99"),
    ("malformed_json", "malformed JSON at line"),
])
def test_check_dataset_build_errors_exit_2_naming_the_file(coco_src, tmp_path, capsys, breakage, expected):
    images, ann, data = _copy_src(coco_src, tmp_path)
    if breakage == "unknown_category":  # a fatal problem: reported (exit 1), not a read error
        data["annotations"][0]["category_id"] = 99
        ann.write_text(json.dumps(data, indent=1))
        assert check.main(["--format", "coco", *_coco_args(images, ann), "--quiet"]) == 1
        assert f"{ann}: annotation 1: {expected}" in capsys.readouterr().out
    else:
        ann.write_text(json.dumps(data, indent=1)[:-40])
        assert check.main(["--format", "coco", *_coco_args(images, ann), "--quiet"]) == 2
        err = _error_line(capsys)
        assert str(ann) in err and expected in err
    # convert reads the same way
    assert convert.main(["--from", "coco", *_coco_args(images, ann), "--to", "yolo",
                         "--out", str(tmp_path / "y"), "--quiet"]) == 2
    assert str(ann) in _error_line(capsys)
    assert not (tmp_path / "y").exists()


class _Handmade(DetectionDataset):
    """Per-image problems a reader would not let through, to test check_dataset itself."""

    class_names = ("a", "b")

    def __init__(self, root: Path):
        super().__init__()
        self.root = root
        self.counts["something_dropped"] = 3

    def __len__(self):
        return 6

    def load(self, index):
        image = np.zeros((20, 30, 3), np.uint8)
        boxes, labels, crowd = [[1, 1, 5, 5]], [0], [False]
        if index == 0:
            return Sample(image=image, boxes=[[1, 1, 5, 5], [0, 0, 2, 2]], labels=[0, 7], file_name="zero.png")
        if index == 1:
            raise ImageReadError(f"image file not found: {self.root / 'gone.png'}")
        if index == 2:
            raise DatasetError("two.png: decoded image is 10x10 but the json says 20x30")
        if index == 3:
            boxes, labels, crowd = [[40, 1, 50, 5], [5, 5, 5, 9], [np.nan, 0, 1, 1], [-3, 2, 4, 6]], [1, 1, 1, 1], \
                [True, False, False, False]
        if index == 4:
            boxes, labels, crowd = [[2, 2, 8, 8]], [1], [True]
        if index == 5:
            boxes, labels, crowd = [], [], []
        return Sample(image=image, boxes=boxes, labels=labels, iscrowd=crowd, file_name=f"img{index}.png")


def test_check_dataset_function_collects_every_problem_without_stopping(tmp_path):
    report = check_dataset(_Handmade(tmp_path), progress=False)
    assert isinstance(report, DatasetReport) and not report.ok
    assert report.num_images == 6 and report.images_with_labels == 3 and report.images_without_labels == 1
    assert report.crowd_only_images == 1
    assert {k: n for k, n in report.problems.items() if n} == {
        "unreadable_images": 1, "load_errors": 1, "labels_out_of_range": 1, "non_finite_boxes": 1,
        "degenerate_boxes": 1, "boxes_partly_outside": 1, "boxes_fully_outside": 1,
    }
    assert report.instances_per_class == [1, 5] and report.crowd_per_class == [0, 2]
    assert report.images_per_class == [1, 2]
    assert report.build_counts == {"something_dropped": 3}
    assert "gone.png" in report.examples["unreadable_images"][0]
    assert report.examples["boxes_fully_outside"] == ["img3.png: box xyxy [40, 1, 50, 5] in a 20x30 (HxW) image"]
    text = report.format()
    assert "result: FAILED" in text and "labels outside" in text and "something_dropped" in text
    d = report.to_dict()
    assert json.loads(json.dumps(d)) == d and d["ok"] is False and d["num_instances"] == 6


def test_check_dataset_after_a_file_vanishes_and_with_a_progress_bar(coco_src, tmp_path, capsys):
    images, ann, _ = _copy_src(coco_src, tmp_path)
    ds = CocoDataset(ann, images, with_masks=False)
    (images / "000001.png").unlink()  # gone between build and check
    report = check_dataset(ds, progress=True)
    assert not report.ok and report.problems["unreadable_images"] == 1
    assert "image file not found" in report.examples["unreadable_images"][0]
    assert "checking images" in capsys.readouterr().err
    assert not check_dataset(_Empty(), progress=False).ok  # nothing to train on


class _Empty(DetectionDataset):
    class_names = ("a",)

    def __len__(self):
        return 0

    def load(self, index):
        raise IndexError(index)


@pytest.mark.coco128
def test_check_dataset_on_coco128(capsys):
    code = check.main(["--format", "coco", "--images", str(COCO128 / "images"),
                       "--annotations", str(COCO128 / "annotations" / "instances.json"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "images: 128, sizes" in out and "instances: 939 (10 crowd/ignore) in 71 of 80 classes" in out
    assert "result: OK" in out
