"""tools/train.py and tools/eval.py on bad input: one line naming the file (and line or annotation),
exit status 2, before any epoch, for each kind of damage that used to end in a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

COCO128 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "coco128"
TINY = ["--quiet", "train.epochs=1", "train.device=cpu", "model.yolo.scale=nano", "data.augment.image_size=64",
        "data.batch_size=4", "data.num_workers=0"]


def coco_subset(tmp_path: Path, damage) -> tuple[Path, Path, str | None]:
    """8 coco128 images (linked) and their annotations, damaged by ``damage(data, folder)``.

    ``damage`` returns what the error must name, or the json text to write instead (a str
    starting with "{").
    """
    data = json.loads((COCO128 / "annotations/instances.json").read_text())
    images = sorted(data["images"], key=lambda im: im["file_name"])[:8]
    ids = {im["id"] for im in images}
    data = {**data, "images": images, "annotations": [a for a in data["annotations"] if a["image_id"] in ids]}
    folder = tmp_path / "images"
    folder.mkdir()
    for im in images:
        (folder / im["file_name"]).symlink_to(COCO128 / "images" / im["file_name"])
    named = damage(data, folder)
    ann = tmp_path / "instances.json"
    ann.write_text(named if named.startswith("{") else json.dumps(data))
    return ann, folder, None if named.startswith("{") else named


def missing_image(data, folder):
    (folder / data["images"][2]["file_name"]).unlink()
    return data["images"][2]["file_name"]


def nan_box(data, folder):
    data["annotations"][3]["bbox"][2] = float("nan")
    return f"annotation {data['annotations'][3]['id']}"


def unknown_category(data, folder):
    data["annotations"][5]["category_id"] = 999
    return "999"


def malformed_json(data, folder):
    return json.dumps(data)[:5000]


def bad_rle(data, folder):
    data["annotations"][1]["segmentation"] = {"size": [10, 10], "counts": "not an rle"}
    return f"annotation {data['annotations'][1]['id']}"


@pytest.mark.coco128
@pytest.mark.parametrize("damage,config", [(missing_image, "yolo_coco"), (nan_box, "yolo_coco"),
                                           (unknown_category, "yolo_coco"), (malformed_json, "yolo_coco"),
                                           (bad_rle, "mask_rcnn_shapes")])
def test_damaged_coco_is_one_line_before_training(tmp_path, repo, damage, config):
    ann, folder, named = coco_subset(tmp_path, damage)
    extra = ["model.num_classes=null", "model.backbone.width=0.125"] if config != "yolo_coco" else []
    proc = subprocess.run([sys.executable, "tools/train.py", f"configs/{config}.yaml", "--out", str(tmp_path / "run"),
                           *TINY, *extra, "data.format=coco",
                           *[f"data.{s}.{k}={v}" for s in ("train", "val")
                             for k, v in (("images", folder), ("annotations", ann))]],
                          cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert str(ann.name) in proc.stderr or str(folder) in proc.stderr
    assert named is None or named in proc.stderr, proc.stderr
    assert "epoch 1/1" not in proc.stdout and not (tmp_path / "run").exists()


def yolo_set(tmp_path: Path, line: str) -> Path:
    """Two images with one label file each; the second file's line 2 is ``line``."""
    for split in ("train", "val"):
        for i in range(2):
            image = np.random.default_rng(i).integers(0, 255, (48, 64, 3), np.uint8)
            (tmp_path / split / "images").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(tmp_path / split / "images" / f"{i}.png"), image)
            labels = tmp_path / split / "labels"
            labels.mkdir(parents=True, exist_ok=True)
            (labels / f"{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n" + (line + "\n" if i == 1 else ""))
    (tmp_path / "data.yaml").write_text(f"path: {tmp_path}\ntrain: train/images\nval: val/images\nnames: [a, b]\n")
    return tmp_path / "data.yaml"


@pytest.mark.parametrize("line", ["1 0.5 0.5 0.2 0.2 0.7", "1 0.5 1.7 0.2 0.2", "7 0.5 0.5 0.2 0.2"],
                         ids=["six-columns", "out-of-range", "bad-class"])
def test_damaged_yolo_labels_are_one_line_naming_file_and_line(tmp_path, repo, line):
    data = yolo_set(tmp_path, line)
    proc = subprocess.run([sys.executable, "tools/train.py", "configs/yolo_coco.yaml", "--out", str(tmp_path / "run"),
                           *TINY, "model.num_classes=null", "data.format=yolo",
                           *[f"data.{s}.{k}={v}" for s in ("train", "val")
                             for k, v in (("annotations", data), ("split", s))]],
                          cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "1.txt:2" in proc.stderr, proc.stderr
    assert "epoch 1/1" not in proc.stdout


def test_eval_names_a_truncated_checkpoint_and_missing_data_in_one_line(tmp_path, repo):
    run = subprocess.run([sys.executable, "tools/train.py", "configs/classifier_resnet18_shapes.yaml", "--out",
                          str(tmp_path / "run"), "--quiet", "model.backbone.width=0.125", "data.image_size=32",
                          "data.num_train=16", "data.num_val=8", "train.epochs=1", "train.device=cpu"],
                         cwd=repo, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    best = tmp_path / "run" / "best.pt"
    best.write_bytes(best.read_bytes()[:2000])
    proc = subprocess.run([sys.executable, "tools/eval.py", "--checkpoint", str(best)], cwd=repo,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "cannot read checkpoint" in proc.stderr
