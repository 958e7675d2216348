"""Before epoch 1: ``build_datasets`` reads every image header, applies ``data.bad_samples`` and
reports the boxes reading drops or clips (detseg.data.preflight), on damaged coco128 copies and
small written VOC / YOLO / mask sets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from detseg.config import load_config
from detseg.config.io import ConfigError
from detseg.data.build import build_datasets
from detseg.data.preflight import BAD_SAMPLES_FILE, preflight
from detseg.data.report import check_dataset, open_dataset
from detseg.data.sample import DatasetError, ImageReadError, box_changes, image_size, read_image_sizes

COCO128 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "coco128"


def _cfg(*overrides):
    return load_config(None, ["data.augment.image_size=64", "data.batch_size=2", *overrides]).data


def _splits(**paths) -> list[str]:
    """The same files for ``data.train`` and ``data.val``."""
    return [f"data.{s}.{k}={v}" for s in ("train", "val") for k, v in paths.items()]


def _png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def _truncate(path: Path) -> None:
    """Cut a file in half, as an interrupted copy leaves it (the header still reads)."""
    data = path.read_bytes()
    if path.is_symlink():
        path.unlink()
    path.write_bytes(data[: len(data) // 2])


# ------------------------------------------------------------------------------ the pieces


def test_image_size_finds_truncated_files_and_accepts_trailing_bytes(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8)
    for suffix in (".png", ".jpg"):
        path = _png(tmp_path / f"a{suffix}", image)
        assert image_size(path) == (40, 60)
        path.write_bytes(path.read_bytes() + b"\0" * 50)  # bytes after the end marker: fine
        assert image_size(path) == (40, 60)
        _truncate(path)
        with pytest.raises(ImageReadError, match=rf"a\{suffix}: truncated or corrupt image \(no (PNG|JPEG) end marker"):
            image_size(path)
    sizes = read_image_sizes([tmp_path / "a.png", tmp_path / "gone.png", _png(tmp_path / "b.png", image[:7])])
    assert isinstance(sizes[0], ImageReadError) and "image file not found" in str(sizes[1]) and sizes[2] == (7, 60)


def test_box_changes_is_the_rule_of_sanitize_boxes():
    boxes = np.array([[1, 1, 5, 5],          # inside
                      [-3, 2, 4, 6],         # partly outside: clipped
                      [40, 1, 50, 5],        # right of a 30-wide image: dropped
                      [5, 5, 5, 9],          # zero width: dropped
                      [0, 0, 30.0005, 20],   # round-off: neither
                      [np.nan, 0, 1, 1]], np.float32)
    found = {k: np.flatnonzero(v).tolist() for k, v in box_changes(boxes, 20, 30).items()}
    assert found == {"degenerate_boxes": [3], "boxes_fully_outside": [2], "boxes_partly_outside": [1]}


# ------------------------------------------------------------------------------ COCO (coco128)


def _damaged_coco128(tmp: Path, n: int = 12) -> tuple[Path, Path, dict]:
    """``n`` coco128 images (linked) with one damage each in the first five: a json width that
    disagrees with the file, a deleted file, a truncated file, a box fully and a box partly
    outside its image. Returns ``(json, image folder, {what: file name or annotation id})``."""
    data = json.loads((COCO128 / "annotations" / "instances.json").read_text())
    with_boxes = {a["image_id"] for a in data["annotations"] if not a["iscrowd"]}
    images = [i for i in data["images"] if i["id"] in with_boxes][:n]
    anns = [a for a in data["annotations"] if a["image_id"] in {i["id"] for i in images}]
    folder = tmp / "images"
    folder.mkdir()
    for img in images:
        (folder / img["file_name"]).symlink_to(COCO128 / "images" / img["file_name"])
    images[0]["width"] += 8
    (folder / images[1]["file_name"]).unlink()
    _truncate(folder / images[2]["file_name"])
    fully = next(a for a in anns if a["image_id"] == images[3]["id"] and not a["iscrowd"])
    fully["bbox"][0] = images[3]["width"] + 10.0
    partly = next(a for a in anns if a["image_id"] == images[4]["id"] and not a["iscrowd"])
    partly["bbox"][0] = images[4]["width"] - partly["bbox"][2] / 2
    path = tmp / "instances.json"
    path.write_text(json.dumps({**data, "images": images, "annotations": anns}))
    marks = {"resized": images[0]["file_name"], "deleted": images[1]["file_name"],
             "truncated": images[2]["file_name"], "fully": fully["id"], "fully_file": images[3]["file_name"],
             "partly": partly["id"], "partly_file": images[4]["file_name"]}
    return path, folder, marks


@pytest.mark.coco128
def test_coco_bad_images_stop_the_build_in_one_line_naming_them(tmp_path, capsys):
    ann, folder, mark = _damaged_coco128(tmp_path)
    with pytest.raises(DatasetError) as info:
        build_datasets(_cfg("data.format=coco", *_splits(images=folder, annotations=ann)), "detection")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"data.train and data.val: {ann}: 1 image files missing, "
                                                      "1 unreadable images or masks")
    assert "1 images whose size differs from the annotation's height/width" in message
    for name in (mark["resized"], mark["deleted"], mark["truncated"]):
        assert str(folder / name) in message
    assert "truncated" in message and message.endswith("(data.bad_samples=skip trains without these images)")
    assert "[data]" not in capsys.readouterr().out  # nothing printed: the run stops here


@pytest.mark.coco128
def test_coco_skip_policy_leaves_bad_images_out_and_reports_every_change(tmp_path, capsys):
    ann, folder, mark = _damaged_coco128(tmp_path)
    cfg = _cfg("data.format=coco", "data.bad_samples=skip", *_splits(images=folder, annotations=ann))
    train, val = build_datasets(cfg, "detection", report_dir=tmp_path / "run")
    assert len(train) == len(val) == 12 - 3
    out = capsys.readouterr().out.splitlines()
    left = [line for line in out if "left out" in line]
    assert len(left) == 2 and left[0].startswith("[data] train: left out 3 of 12 images (data.bad_samples=skip): "
                                                 "1 image files missing, 1 unreadable images or masks")
    assert f"{mark['deleted']}: image file not found" in left[0]
    assert left[0].endswith(f"full list: {tmp_path / 'run' / BAD_SAMPLES_FILE}")
    listed = (tmp_path / "run" / BAD_SAMPLES_FILE).read_text().splitlines()
    assert len(listed) == 6 and sum(line.startswith("data.val: ") for line in listed) == 3
    for name in (mark["resized"], mark["deleted"], mark["truncated"]):
        assert sum(str(folder / name) in line for line in listed) == 2
    boxes = [line for line in out if "boxes" in line]
    assert len(boxes) == 2 and boxes[0].startswith("[data] train: 1 boxes partly outside their image (clipped), e.g. "
                                                   f"{mark['partly_file']}: annotation {mark['partly']}: box xyxy")
    fully = f"1 boxes fully outside their image (dropped), e.g. {mark['fully_file']}: annotation {mark['fully']}"
    assert fully in boxes[0]
    assert boxes[1].startswith("[data] val: 1 boxes partly")
    assert "tools/eval.py scores the COCO json as it is" in boxes[1]
    # what was said is what loading does: the outside box is in the file, not in the sample
    index = next(i for i in range(len(train)) if train.instance_names(i).count(f"annotation {mark['fully']}"))
    assert len(train.load(index).boxes) == len(train[index].boxes) + 1


@pytest.mark.coco128
def test_skip_does_not_cover_annotation_errors(tmp_path):
    ann, folder, _ = _damaged_coco128(tmp_path)
    data = json.loads(ann.read_text())
    data["annotations"][0]["category_id"] = 999
    ann.write_text(json.dumps(data))
    cfg = _cfg("data.format=coco", "data.bad_samples=skip", *_splits(images=folder, annotations=ann))
    with pytest.raises(DatasetError) as info:
        build_datasets(cfg, "detection")
    message = str(info.value)
    assert f"annotation {data['annotations'][0]['id']}: unknown category_id 999" in message
    assert "image files missing" not in message and message.endswith("fix these annotations)")


def test_bad_samples_is_a_checked_config_key():
    assert _cfg().bad_samples == "error"
    with pytest.raises(ConfigError, match="bad_samples"):
        _cfg("data.bad_samples=ignore")


# ------------------------------------------------------------------------------ VOC


def _obj(name: str, box: tuple) -> str:
    tags = "".join(f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
    return f"<object><name>{name}</name><difficult>0</difficult><bndbox>{tags}</bndbox></object>"


def _voc(root: Path) -> Path:
    """Five 12x16 images: ``ok``, ``resized`` (its <size> says 12x20), ``cut`` (truncated PNG),
    ``outside`` (object 1 partly, object 2 fully outside)."""
    objects = {"ok": [("dog", (1, 1, 5, 5))], "resized": [("dog", (1, 1, 5, 5))], "cut": [("cat", (2, 2, 9, 9))],
               "outside": [("dog", (1, 1, 5, 5)), ("cat", (10, 2, 30, 9)), ("cat", (20, 2, 30, 9))],
               "ok2": [("cat", (3, 3, 8, 8))]}
    for stem, objs in objects.items():
        width = 20 if stem == "resized" else 16
        xml = (f"<annotation><filename>{stem}.png</filename><size><width>{width}</width><height>12</height>"
               f"<depth>3</depth></size>{''.join(_obj(*o) for o in objs)}</annotation>")
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{stem}.xml").write_text(xml)
        _png(root / "JPEGImages" / f"{stem}.png", np.full((12, 16, 3), 90, np.uint8))
    _truncate(root / "JPEGImages" / "cut.png")
    for split in ("train", "val"):
        (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{s}\n" for s in objects))
    return root


def test_voc_both_policies(tmp_path, capsys):
    root = _voc(tmp_path / "voc")
    opts = ["data.format=voc", "data.class_names=[cat, dog]", *_splits(root=root)]
    with pytest.raises(DatasetError) as info:
        build_datasets(_cfg(*opts), "detection")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"data.train: {root / 'ImageSets/Main/train.txt'}: ")
    assert " | data.val: " in message and "1 unreadable images or masks" in message
    assert f"{root / 'JPEGImages/resized.png'}: image is 12x16 (HxW) but {root / 'Annotations/resized.xml'} says " \
           "12x20 in <size>" in message
    train, val = build_datasets(_cfg(*opts, "data.bad_samples=skip"), "detection", report_dir=tmp_path / "run")
    assert train.ids == val.ids == ["ok", "outside", "ok2"]
    out = capsys.readouterr().out
    assert "[data] train: left out 2 of 5 images (data.bad_samples=skip): 1 unreadable images" in out
    assert "e.g. outside.png: outside.xml object 2: box xyxy [19, 1, 30, 9] in a 12x16 (HxW) image" in out
    assert "1 boxes partly outside their image (clipped), e.g. outside.png: outside.xml object 1" in out
    assert "tools/eval.py" not in out  # VOC validation scores the samples as read
    assert len((tmp_path / "run" / BAD_SAMPLES_FILE).read_text().splitlines()) == 4


# ------------------------------------------------------------------------------ YOLO


def test_yolo_both_policies(tmp_path, capsys):
    labels = {"a": "0 0.5 0.5 0.5 0.5\n", "b": "1 0.5 0.5 0.5 0.5\n0 0.5 0.5 0 0.2\n0 0.9 0.5 0.2002 0.2\n",
              "c": "0 0.5 0.5 0.5 0.5\n", "d": "1 0.3 0.3 0.2 0.2\n"}
    for stem, text in labels.items():
        _png(tmp_path / "images" / f"{stem}.png", np.full((20, 40, 3), 60, np.uint8))
        (tmp_path / "labels").mkdir(exist_ok=True)
        (tmp_path / "labels" / f"{stem}.txt").write_text(text)
    _truncate(tmp_path / "images" / "c.png")
    data_yaml = tmp_path / "data.yaml"
    data_yaml.write_text(yaml.safe_dump({"path": ".", "train": "images", "val": "images", "names": ["cat", "dog"]}))
    opts = ["data.format=yolo", *_splits(annotations=data_yaml)]
    with pytest.raises(DatasetError) as info:
        build_datasets(_cfg(*opts), "detection")
    assert "\n" not in str(info.value) and f"{tmp_path / 'images' / 'c.png'}" in str(info.value)
    assert str(info.value).startswith(f"data.train: {data_yaml} (split 'train'): 1 unreadable images")
    train, _ = build_datasets(_cfg(*opts, "data.bad_samples=skip"), "detection")
    assert len(train) == 3
    out = capsys.readouterr().out
    assert "[data] train: left out 1 of 4 images" in out and "full list: " in out
    assert "1 boxes of zero or negative width/height (dropped), e.g. b.png: b.txt:2: box xyxy" in out
    assert "1 boxes partly outside their image (clipped), e.g. b.png: b.txt:3: box xyxy" in out
    listed = Path(out.split("full list: ")[1].split()[0])
    why = f"{tmp_path / 'images' / 'c.png'}: truncated or corrupt image (no PNG end marker, and decoding fails: " \
          "image file is truncated)"
    assert listed.read_text() == f"data.train: {why}\ndata.val: {why}\n"
    listed.unlink()


# ------------------------------------------------------------------------------ mask folders


def test_mask_folder_both_policies(tmp_path, capsys):
    good = np.zeros((6, 8), np.uint8)
    good[:3] = 1
    for stem, mask in {"a": good, "b": np.where(good == 1, 7, 0).astype(np.uint8), "c": good[:5], "d": good}.items():
        _png(tmp_path / "img" / f"{stem}.png", np.zeros((6, 8, 3), np.uint8))
        _png(tmp_path / "mask" / f"{stem}.png", mask)
    opts = ["data.format=masks", "data.class_names=[road]", *_splits(images=tmp_path / "img", masks=tmp_path / "mask")]
    with pytest.raises(DatasetError) as info:
        build_datasets(_cfg(*opts), "segmentation")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"data.train and data.val: {tmp_path / 'mask'}: ")
    assert "1 masks whose size differs from their image, 1 masks with values that are neither" in message
    assert f"{tmp_path / 'mask' / 'b.png'}: value 7" in message and f"{tmp_path / 'mask' / 'c.png'}" in message
    train, val = build_datasets(_cfg(*opts, "data.bad_samples=skip"), "segmentation", report_dir=tmp_path)
    assert [p.name for p in train.image_paths] == ["a.png", "d.png"] and len(val) == 2
    assert "[data] val: left out 2 of 4 images" in capsys.readouterr().out
    listed = (tmp_path / BAD_SAMPLES_FILE).read_text()
    assert f"data.train: {tmp_path / 'mask' / 'b.png'}: values [7] are not allowed by 0 background" in listed
    for stem in "ad":
        _png(tmp_path / "mask" / f"{stem}.png", good[:4])
    with pytest.raises(DatasetError, match=r"^data\.train: every image was left out: .*: 3 masks whose size differs"):
        build_datasets(_cfg(*opts, "data.bad_samples=skip"), "segmentation")


# ------------------------------------------------------------------------------ one code path with the checker


def test_checker_reports_what_training_is_told(tmp_path):
    root = _voc(tmp_path / "voc")
    checked = open_dataset("voc", root=root, class_names=["cat", "dog"], strict=False)
    report = check_dataset(checked, progress=False)
    assert report.problems["unreadable_images"] == report.problems["size_mismatch"] == 1
    assert report.problems["boxes_fully_outside"] == report.problems["boxes_partly_outside"] == 1  # not twice
    lines = preflight({"train": checked}, "skip", verbose=False)
    for kind in ("boxes_fully_outside", "boxes_partly_outside"):
        example = report.examples[kind][0]
        assert example.endswith("(HxW) image") and example.split("/")[-1] in lines[-1]
    with pytest.raises(ValueError, match="data.bad_samples must be one of"):
        preflight({"train": checked}, "ignore")


# ------------------------------------------------------------------------------ through tools/train.py


@pytest.mark.coco128
def test_train_cli_stops_before_epoch_1_or_trains_without_the_bad_images(tmp_path, repo):
    ann, folder, mark = _damaged_coco128(tmp_path, n=8)
    args = [sys.executable, "tools/train.py", "configs/yolo_coco.yaml", "--quiet", "train.epochs=1", "train.device=cpu",
            "model.yolo.scale=nano", "data.augment.image_size=64", "data.batch_size=4", "data.num_workers=0",
            *_splits(images=folder, annotations=ann)]
    proc = subprocess.run([*args, "--out", str(tmp_path / "stopped")], cwd=repo, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: data.train and data.val: ")
    assert str(folder / mark["truncated"]) in proc.stderr and "epoch " not in proc.stdout
    assert not (tmp_path / "stopped").exists()
    proc = subprocess.run([*args, "--out", str(tmp_path / "run"), "data.bad_samples=skip"], cwd=repo,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert out.index("[data] train: left out 3 of 8 images") < out.index("[data] train: 1 boxes partly outside") \
        < out.index("epoch 1/1")
    listed = Path(out.split("full list: ")[1].split()[0])
    assert len(listed.read_text().splitlines()) == 6
    listed.unlink()
