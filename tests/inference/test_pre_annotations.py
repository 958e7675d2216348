"""Predictions written as a dataset (``tools/infer.py --save-format``) and read back by detseg's readers.

The round trip runs a tiny random-weight Mask R-CNN (seeded: about 100 detections an image
between scores 0.26 and 0.5, each with a mask) through ``tools/infer.py`` and compares what
each reader gives back with the Python API's predictions on the same files.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from detseg.checkpoint_io import save_checkpoint
from detseg.cli import check_dataset
from detseg.config import load_config, to_dict
from detseg.config.schema import AugmentConfig
from detseg.data.coco import CocoDataset
from detseg.data.sample import Sample, sanitize_boxes
from detseg.data.synthetic import ShapesConfig, generate_sample
from detseg.data.voc import VOCDataset
from detseg.data.yolo import YOLODataset
from detseg.cli import infer
from detseg.inference import Predictor, Result
from detseg.inference.pre_annotations import FORMATS, MARKER, PredictionDataset, unique_stems
from detseg.models import build_model

REPO = Path(__file__).resolve().parents[2]

CLASSES = ["circle", "rectangle", "triangle"]
SAVE_SCORE = 0.3


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, Path]:
    """``(checkpoint, image folder)``: a seeded tiny Mask R-CNN and three 64x80 shapes images, one a JPEG."""
    root = tmp_path_factory.mktemp("pre")
    cfg = load_config(REPO / "configs/mask_rcnn_shapes.yaml",
                      ["model.backbone.width=0.125", "data.augment.image_size=64"])
    torch.manual_seed(0)
    save_checkpoint({"model": build_model(cfg.model).state_dict(), "config": to_dict(cfg), "class_names": CLASSES,
                     "category_ids": [1, 2, 5]}, root / "mask_rcnn.pt")
    images = root / "images"
    images.mkdir()
    shapes = ShapesConfig(num_images=3, image_size=(64, 80), max_objects=3, seed=5)
    for i, name in enumerate(["a.png", "b.jpg", "c.png"]):
        cv2.imwrite(str(images / name), cv2.cvtColor(generate_sample(shapes, i).image, cv2.COLOR_RGB2BGR))
    return root / "mask_rcnn.pt", images


def read_back(fmt: str, path: Path):
    """The written dataset, read by detseg's own reader of ``fmt``."""
    if fmt == "coco":
        return CocoDataset(path, path.parent.parent / "images", with_masks=True)
    if fmt == "yolo":
        return YOLODataset(path, "train")
    return VOCDataset(path, "train", class_names=(path / "classes.txt").read_text().split())


@pytest.mark.parametrize("fmt", FORMATS)
def test_predictions_written_by_infer_read_back_the_same(fmt, source, tmp_path, capsys):
    checkpoint, images = source
    out = tmp_path / "out"
    assert infer.main(["--checkpoint", str(checkpoint), "--source", str(images), "--out", str(out), "--score", "0",
                       "--save-format", fmt, "--save-score", str(SAVE_SCORE), "--device", "cpu", "--quiet",
                       "--no-save"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith(f"dataset ({fmt})"))
    path = Path(line.split(": ")[1])
    dataset = read_back(fmt, path)
    assert dataset.class_names == tuple(CLASSES) and len(dataset) == 3

    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", score_thresh=0.0)
    kept = dropped = 0
    for i in range(len(dataset)):
        sample = dataset.load(i)
        name = Path(sample.file_name).name
        assert name in ("a.png", "b.jpg", "c.png")  # the images keep their names and their pixels
        result = predictor(str(images / name))[0]
        assert np.array_equal(sample.image, result.image)
        confident = result.scores >= SAVE_SCORE
        want = sanitize_boxes(Sample(result.image, result.boxes[confident], result.labels[confident],
                                     masks=result.masks[confident]))
        kept, dropped = kept + len(want.labels), dropped + int((~confident).sum())
        assert np.array_equal(sample.labels, want.labels)
        if fmt == "voc":  # VOC stores whole pixels
            assert np.abs(sample.boxes - want.boxes).max(initial=0) <= 0.5 + 1e-4
        else:
            np.testing.assert_allclose(sample.boxes, want.boxes, atol=1e-3)
        if fmt == "coco":
            assert np.array_equal(sample.masks, want.masks)
    assert kept >= 10 and dropped >= 10  # both sides of --save-score were exercised
    command = line.split("check it with: python tools/check_dataset.py ")[1].split()
    assert check_dataset.main([*command, "--quiet"]) == 0  # the labelling loop's check


def result(image: np.ndarray, boxes, scores, labels) -> Result:
    return Result(image, tuple(CLASSES), np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32),
                  np.asarray(labels, np.int64))


def test_names_clipping_thresholds_and_empty_images(tmp_path):
    """Shared stems, names the YOLO writer uses for its own files, boxes out of the image, low scores."""
    files = []
    for folder, name in [("x", "000001.png"), ("x", "000000.png"), ("x", "same.png"), ("y", "same.png")]:
        (tmp_path / folder).mkdir(exist_ok=True)
        files.append(tmp_path / folder / name)
        cv2.imwrite(str(files[-1]), np.full((40, 50, 3), 30 * len(files), np.uint8))
    image = np.zeros((40, 50, 3), np.uint8)
    dataset = PredictionDataset(CLASSES, min_score=0.5)
    dataset.add(files[0], result(image, [[10, 10, 20, 20], [40, 30, 70, 60]], [0.9, 0.6], [0, 2]))
    dataset.add(files[1], result(image, [[5, 5, 15, 15]], [0.4], [1]))       # below --save-score: no objects
    dataset.add(files[2], result(image, [[60, 0, 70, 10]], [0.9], [1]))      # outside the image: dropped
    dataset.add(files[3], result(image, [[1.5, 2.25, 30, 31]], [0.7], [1]))
    assert unique_stems(files) == ["000001", "000000", "same", "same_2"]
    back = YOLODataset(dataset.write("yolo", tmp_path / "yolo"), "train")
    by_stem = {Path(back.load(i).file_name).stem: back.load(i) for i in range(len(back))}
    assert sorted(by_stem) == ["000000", "000001", "same", "same_2"]
    first = by_stem["000001"]
    assert first.image[0, 0, 0] == 30  # its own pixels, not those of the image the writer numbered 000001
    np.testing.assert_allclose(first.boxes, [[10, 10, 20, 20], [40, 30, 50, 40]], atol=1e-3)  # clipped to 50x40
    assert by_stem["000000"].num_instances == 0 and by_stem["same"].num_instances == 0
    np.testing.assert_allclose(by_stem["same_2"].boxes, [[1.5, 2.25, 30, 31]], atol=1e-3)


def test_a_folder_it_wrote_is_replaced_and_any_other_refused(tmp_path):
    path = tmp_path / "img.png"
    cv2.imwrite(str(path), np.zeros((20, 20, 3), np.uint8))
    dataset = PredictionDataset(CLASSES, min_score=0.5)
    dataset.add(path, result(np.zeros((20, 20, 3), np.uint8), [[2, 2, 8, 8]], [0.9], [0]))
    out = tmp_path / "voc"
    dataset.write("voc", out)
    (out / "Annotations" / "stale.xml").write_text("<annotation/>")
    dataset.write("voc", out)
    assert (out / MARKER).is_file() and not (out / "Annotations" / "stale.xml").exists()
    assert sorted(p.name for p in (out / "Annotations").iterdir()) == ["img.xml"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not written by detseg"):
        dataset.write("coco", mine)
    assert (mine / "notes.txt").read_text() == "keep me"


class Segmenter(nn.Module):
    task, with_masks, num_classes = "segmentation", False, 3

    def predict(self, images, image_sizes=None):
        return images[:, 0].long() * 0


def test_segmenters_low_thresholds_and_videos_are_refused(source, tmp_path, capsys):
    segmenter = Predictor(Segmenter(), CLASSES, AugmentConfig(image_size=64), device="cpu")
    with pytest.raises(ValueError, match="detectors only"):
        PredictionDataset.for_predictor(segmenter, 0.5)
    checkpoint, images = source
    common = ["--checkpoint", str(checkpoint), "--out", str(tmp_path), "--device", "cpu", "--quiet", "--no-save",
              "--save-format", "coco"]
    assert infer.main([*common, "--source", str(images), "--score", "0.4", "--save-score", "0.3"]) == 2
    assert "below the predictor's 0.4 (--score)" in capsys.readouterr().err
    assert infer.main([*common, "--source", str(tmp_path / "clip.mp4")]) == 2
    assert "extract the video's frames" in capsys.readouterr().err
    assert not (tmp_path / "coco").exists()
