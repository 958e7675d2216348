"""tools/check_dataset.py: the format found from the path, every problem in one report, exit codes.

The tool is called in-process through ``main([...])``; datasets are small ones written here or
damaged copies (in ``tmp_path``) of ../shared/data.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from detseg.data.coco import CocoDataset
from detseg.data.mask_folder import write_mask_folder
from detseg.data.synthetic import ShapesConfig, write_coco
from detseg.data.voc import write_voc
from detseg.data.yolo import write_yolo
from detseg.evaluation import CocoEvaluator

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
CFG = ShapesConfig(num_images=4, image_size=(32, 40), min_size=8, max_size=16, seed=5)
NAMES = ("--class-names", "circle,rectangle,triangle")


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f"_detseg_tool_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = _tool("check_dataset")
convert = _tool("convert")


def _run(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = check.main([*map(str, argv), "--quiet"])
    except SystemExit as exc:  # argparse errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    """A COCO set in the layout root/annotations.json + root/images/ (never modified)."""
    root = tmp_path_factory.mktemp("shapes")
    write_coco(CFG, root)
    return root


def _copy(shapes: Path, dest: Path) -> tuple[Path, dict]:
    shutil.copytree(shapes, dest)
    return dest / "annotations.json", json.loads((dest / "annotations.json").read_text())


# ------------------------------------------------------------------------------ format from the path


def test_coco_json_alone_finds_its_image_folder(shapes, capsys):
    code, out, _ = _run(capsys, shapes / "annotations.json")
    assert code == 0, out
    assert f"images: {shapes / 'images'} (guessed from" in out and "result: OK" in out
    code, out, _ = _run(capsys, "--format", "coco", "--images", shapes / "images", "--annotations",
                        shapes / "annotations.json")  # the old flags still work
    assert code == 0 and "CocoDataset(" in out
    code, out, _ = _run(capsys, shapes / "annotations.json", "--images", shapes / "images")
    assert code == 0 and "guessed" not in out


@pytest.mark.coco128
def test_coco128_folder_is_found_as_coco(capsys):
    code, out, _ = _run(capsys, SHARED / "coco128")
    assert code == 0, out
    assert f"images: {SHARED / 'coco128' / 'images'} (guessed" in out
    assert "instances: 939 (10 crowd/ignore) in 71 of 80 classes" in out and "result: OK" in out


def test_voc_root_yolo_yaml_and_mask_folders_are_found(shapes, tmp_path, capsys):
    source = CocoDataset(shapes / "annotations.json", shapes / "images")
    write_voc(source, tmp_path / "voc")
    code, out, _ = _run(capsys, tmp_path / "voc", *NAMES)
    assert code == 0 and "VOCDataset(" in out, out
    data_yaml = write_yolo(source, tmp_path / "yolo")
    for path in (data_yaml, tmp_path / "yolo"):  # the yaml, or the folder holding it
        code, out, _ = _run(capsys, path)
        assert code == 0 and "YOLODataset(" in out, out
    write_mask_folder(source, tmp_path / "m" / "images", tmp_path / "m" / "masks")
    for argv in ([tmp_path / "m" / "images", tmp_path / "m" / "masks"], [tmp_path / "m"],
                 ["--format", "masks", "--images", tmp_path / "m" / "images", "--masks", tmp_path / "m" / "masks"]):
        code, out, _ = _run(capsys, *argv, *NAMES)
        assert code == 0 and "MaskFolderDataset(" in out and "label maps: 3 of 3 classes present" in out, out
        assert "mask stored values (0 background, k + 1 class k (1..3), 255 ignore):" in out


def test_paths_that_name_no_dataset_exit_2(shapes, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "two").mkdir()
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / "two" / name).write_text("names: [a]\n")
    for argv, expected in [
        ([tmp_path / "empty"], "cannot tell the dataset format"),
        ([tmp_path / "notes.txt"], "expected a COCO json"),
        ([tmp_path / "two"], "holds several datasets"),
        ([tmp_path / "nothing.json"], "not found"),
        ([shapes / "annotations.json", shapes / "images", "--annotations", shapes / "annotations.json"],
         "would name it again"),
        (["--format", "voc", "--root", tmp_path, "--data-yaml", "d.yaml"], "not used by --format voc"),
        ([], "name the dataset"),
    ]:
        code, out, err = _run(capsys, *argv)
        assert code == 2 and expected in err, (argv, err)


def test_unreadable_files_exit_2_naming_them(shapes, tmp_path, capsys):
    ann, data = _copy(shapes, tmp_path / "c")
    ann.write_text(json.dumps(data, indent=1)[:-30])
    code, _, err = _run(capsys, ann)
    assert code == 2 and f"{ann}:" in err and "malformed JSON at line" in err and err.count("\n") == 1
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("names: [a, b\nval: x\n")
    code, _, err = _run(capsys, bad_yaml)
    assert code == 2 and "bad.yaml:" in err and "malformed YAML" in err


# ------------------------------------------------------------------------------ one report, every problem


def test_damaged_coco_reports_everything_with_ids(shapes, tmp_path, capsys):
    ann, data = _copy(shapes, tmp_path / "c")
    anns = data["annotations"]
    anns[0]["category_id"] = 99
    anns[1]["bbox"] = [1, 2, "x", 4]
    anns[2]["id"] = anns[3]["id"]
    anns[4]["id"] = 0
    data["images"][1]["height"] = 31  # json disagrees with the file
    (tmp_path / "c" / "images" / data["images"][2]["file_name"]).unlink()
    ann.write_text(json.dumps(data))
    report = tmp_path / "report.json"
    code, out, _ = _run(capsys, ann, "--json", report)
    assert code == 1
    assert f"{ann}: annotation 1: unknown category_id 99" in out
    assert f"{ann}: annotation 2: bbox must be 4 finite numbers" in out
    assert f"{ann}: annotation id {anns[3]['id']} is used by 2 annotations" in out
    assert f"says 31x40 for image {data['images'][1]['id']}" in out
    assert f"{data['images'][2]['file_name']}: image file not found" in out
    assert "RLE size [32, 40] differs from the image size [31, 40]" in out  # its masks disagree too
    assert "result: FAILED: 1 missing images, 1 size mismatch, 1 unknown classes, 1 invalid boxes, " in out
    got = json.loads(report.read_text())
    assert got["fatal"] == ["invalid_boxes", "invalid_segmentations", "missing_images", "size_mismatch",
                            "unknown_classes"]
    assert got["problems"]["duplicate_annotation_ids"] == got["problems"]["annotation_id_zero"] == 1
    assert "annotation id 0: pycocotools takes a detection matched to it for a false positive" in out
    assert got["skipped_images"] == 2


def test_duplicate_annotation_ids_pass_the_check_and_convert_renumbers_them(shapes, tmp_path, capsys):
    ann, data = _copy(shapes, tmp_path / "c")
    data["annotations"][1]["id"] = data["annotations"][0]["id"]
    ann.write_text(json.dumps(data))
    code, out, _ = _run(capsys, ann)
    assert code == 0 and "duplicate annotation ids (COCO evaluation refuses the file)       1" in out
    with pytest.raises(ValueError, match="annotation ids are used more than once"):
        CocoEvaluator(ann)
    # the fix the messages name: a COCO -> COCO conversion numbers annotations 1..N
    assert convert.main(["--from", "coco", "--images", str(tmp_path / "c" / "images"), "--annotations", str(ann),
                         "--to", "coco", "--out", str(tmp_path / "fixed"), "--quiet"]) == 0
    capsys.readouterr()
    fixed = tmp_path / "fixed" / "annotations" / "instances_train.json"
    ids = [a["id"] for a in json.loads(fixed.read_text())["annotations"]]
    assert ids == list(range(1, len(data["annotations"]) + 1))
    CocoEvaluator(fixed)  # accepted


def test_voc_problems_and_the_class_names_hint(shapes, tmp_path, capsys):
    root = tmp_path / "voc"
    write_voc(CocoDataset(shapes / "annotations.json", shapes / "images"), root)
    xml = root / "Annotations" / "train_000000.xml"
    xml.write_text(xml.read_text().replace("<xmin>", "<xmin>x", 1))
    (root / "Annotations" / "train_000001.xml").write_text("<annotation><object>")
    code, out, _ = _run(capsys, root)  # default: the 20 VOC classes, which these are not
    assert code == 1
    assert "objects of an unknown class" in out and "unknown class name 'circle'" in out
    assert "train_000001.xml:1:" in out and "malformed XML" in out
    assert "hint: pass --class-names a,b,c" in out
    code, out, _ = _run(capsys, root, *NAMES)
    assert code == 1 and "<xmin> is not a finite number: 'x" in out and "unknown class" not in out


def test_yolo_lines_are_named_by_file_and_line(tmp_path, capsys):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for stem, text in {"a": "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2\n", "b": "3 0.5 0.5 0.2 0.2\n0 2 0.5 0.2 0.2\n"}.items():
        cv2.imwrite(str(images / f"{stem}.png"), np.zeros((10, 10, 3), np.uint8))
        (labels / f"{stem}.txt").write_text(text)
    (tmp_path / "data.yaml").write_text(yaml.safe_dump({"path": ".", "train": "images", "names": ["a", "b"]}))
    code, out, _ = _run(capsys, tmp_path / "data.yaml")
    assert code == 1
    assert f"{labels / 'a.txt'}:2: expected 5 columns" in out
    assert f"{labels / 'b.txt'}:1: class id 3 is not an integer in [0, 2)" in out
    assert f"{labels / 'b.txt'}:2: coordinates must be normalised" in out
    assert "instances: 1 (0 crowd/ignore)" in out  # the one good line


def test_mask_folder_without_class_names_says_what_it_holds(tmp_path, capsys):
    mask = np.zeros((4, 4), np.uint8)
    mask[0] = 255
    (tmp_path / "img").mkdir()
    (tmp_path / "masks").mkdir()
    for stem in "ab":
        cv2.imwrite(str(tmp_path / "img" / f"{stem}.png"), np.zeros((4, 4, 3), np.uint8))
        cv2.imwrite(str(tmp_path / "masks" / f"{stem}.png"), mask)
    code, _, err = _run(capsys, tmp_path / "img", tmp_path / "masks")
    assert code == 2 and "needs class names" in err and "its masks hold values [0, 255]" in err
    code, out, _ = _run(capsys, tmp_path / "img", tmp_path / "masks", "--class-names", "cell")
    assert code == 1 and "hold only values [0, 255], none of them a class" in out
    code, out, _ = _run(capsys, tmp_path / "img", tmp_path / "masks", "--mask-values", "0:background,255:cell")
    assert code == 0 and "255: 2 masks, 25.0% of pixels -> cell" in out
    code, _, err = _run(capsys, tmp_path / "img", tmp_path / "masks", "--mask-values", "0=cell")
    assert code == 2 and "expected VALUE:MEANING" in err


@pytest.mark.isbi2012
def test_isbi_0_255_masks_checked_with_mask_values(capsys):
    isbi = SHARED / "isbi2012_membrane"
    code, out, _ = _run(capsys, isbi / "images", isbi / "labels", "--mask-values", "0:membrane,255:cell")
    assert code == 0, out
    assert "images: 30, size 512x512" in out and "label maps: 2 of 2 classes present" in out
    assert "    0: 30 masks, 22.0% of pixels -> membrane" in out
    assert "  255: 30 masks, 78.0% of pixels -> cell" in out
    code, out, _ = _run(capsys, isbi, "--class-names", "cell")  # default rule: 255 is ignore
    assert code == 1 and f"{isbi / 'labels' / '00.png'} and the other masks hold only values [0, 255]" in out


def test_truncated_images_and_boxes_reading_drops_are_reported_by_file_and_line(tmp_path, capsys):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for stem, text in {"a": "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0 0.2\n", "b": "1 0.5 0.5 0.2 0.2\n"}.items():
        cv2.imwrite(str(images / f"{stem}.png"), np.full((10, 20, 3), 70, np.uint8))
        (labels / f"{stem}.txt").write_text(text)
    data = (images / "b.png").read_bytes()
    (images / "b.png").write_bytes(data[: len(data) // 2])  # an interrupted copy: the header still reads
    (tmp_path / "data.yaml").write_text(yaml.safe_dump({"path": ".", "train": "images", "names": ["a", "b"]}))
    code, out, _ = _run(capsys, tmp_path / "data.yaml")
    assert code == 1 and "result: FAILED: 1 unreadable images" in out
    assert f"{images / 'b.png'}: truncated or corrupt image (no PNG end marker" in out
    assert re.search(r"boxes of zero or negative width/height \(dropped\) +1\n", out)
    assert f"{images / 'a.png'}: a.txt:2: box xyxy [10, 4, 10, 6] in a 10x20 (HxW) image" in out
