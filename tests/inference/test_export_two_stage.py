"""Faster and Mask R-CNN in ONNX: tools/export.py writes the whole detector (NMS, RoIAlign, top-k
in the graph) with the dynamo exporter, and tools/infer.py on that file gives the checkpoint's
detections (same counts, boxes within 1 px, scores within 1e-3, masks alike), a blank image
included; a graph with nothing to detect returns empty outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict

import cv2
import numpy as np
import pytest
import torch

from detseg.config import load_config
from detseg.config.schema import AugmentConfig
from detseg.data.synthetic import ShapesConfig, generate_sample
from detseg.engine.checkpoint import new_run_dir
from detseg.engine.train_loop import train
from detseg.inference import Predictor
from detseg.inference.export import ExportError, OnnxModel, export, export_metadata, read_metadata
from detseg.models import build_model

pytest.importorskip("onnxscript")

NAMES = ("faster_rcnn_shapes", "mask_rcnn_shapes")


@pytest.fixture(scope="module")
def exported(repo, tmp_path_factory):
    """One short epoch of each shapes config (real best.pt files), exported by tools/export.py."""
    out = {}
    for name in NAMES:
        cfg = load_config(repo / f"configs/{name}.yaml", [
            "train.epochs=1", "train.device=cpu", "data.num_train=32", "data.num_val=8", "data.batch_size=8"])
        run = new_run_dir(tmp_path_factory.mktemp("runs"), name)
        train(cfg, run, quiet=True)
        onnx_path = run / "model.onnx"
        proc = subprocess.run([sys.executable, "tools/export.py", "--checkpoint", str(run / "best.pt"),
                               "--out", str(onnx_path)], cwd=repo, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        out[name] = (run / "best.pt", onnx_path, proc.stdout)
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three shapes scenes (two sizes) and a blank grey image."""
    path = tmp_path_factory.mktemp("images")
    for i, size in enumerate([(128, 128), (128, 128), (96, 150)]):
        image = generate_sample(ShapesConfig(num_images=3, image_size=size, max_objects=4, seed=5), i).image
        cv2.imwrite(str(path / f"{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(path / "blank.png"), np.full((100, 140, 3), 128, np.uint8))
    return path


def infer(repo, checkpoint, folder, out) -> dict[str, list[dict]]:
    """tools/infer.py's predictions.json, grouped by file name."""
    proc = subprocess.run([sys.executable, "tools/infer.py", "--checkpoint", str(checkpoint), "--source", str(folder),
                           "--out", str(out), "--score", "0.1", "--device", "cpu", "--quiet"],
                          cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    names = {img["id"]: img["file_name"] for img in json.loads((out / "images.json").read_text())}
    grouped = defaultdict(list)
    for entry in json.loads((out / "predictions.json").read_text()):
        grouped[names[entry["image_id"]]].append(entry)
    assert (out / "blank.jpg").is_file() and (out / "0.jpg").is_file()  # the drawn pictures too
    return {name: grouped[name] for name in names.values()}


@pytest.mark.parametrize("name", NAMES)
def test_export_says_which_exporter_and_checks_the_file(exported, name):
    _, onnx_path, stdout = exported[name]
    assert "exported with the dynamo exporter" in stdout
    assert "matches PyTorch" in stdout and "batch 1" in stdout
    meta = read_metadata(onnx_path)
    assert meta["exporter"] == "dynamo" and meta["arch"] == "two_stage" and meta["batch"] == 1
    assert meta["class_names"] == ["circle", "rectangle", "triangle"] and meta["category_ids"] == [1, 2, 3]
    assert meta["resize"] == "letterbox" and meta["image_size"] == 128 and meta["score_threshold"] == 0.25
    assert meta["outputs"] == (["boxes", "scores", "labels", "masks"] if name.startswith("mask") else
                               ["boxes", "scores", "labels"])


@pytest.mark.parametrize("name", NAMES)
def test_infer_on_the_onnx_file_gives_the_checkpoints_detections(repo, exported, folder, tmp_path, name):
    checkpoint, onnx_path, _ = exported[name]
    want = infer(repo, checkpoint, folder, tmp_path / "pt")
    got = infer(repo, onnx_path, folder, tmp_path / "onnx")
    assert set(want) == set(got) and len(want) == 4
    assert sum(len(v) for v in want.values()) > 0, "the tiny model should find something to compare"
    for file_name in want:
        w, g = want[file_name], got[file_name]
        assert len(w) == len(g), file_name
        for a in w:  # the same detection, wherever near-equal scores put it in the list
            close = [b for b in g if b["category_id"] == a["category_id"] and abs(b["score"] - a["score"]) <= 1e-3
                     and np.abs(np.subtract(b["bbox"], a["bbox"])).max() <= 1.0]
            assert close, f"{file_name}: {a} not found in the ONNX results"


def test_mask_rcnn_onnx_masks_equal_the_checkpoints(exported, folder):
    checkpoint, onnx_path, _ = exported["mask_rcnn_shapes"]
    files = sorted(str(p) for p in folder.iterdir())
    want = Predictor.from_checkpoint(checkpoint, device="cpu", score_thresh=0.1)(files)
    got = Predictor.from_checkpoint(onnx_path, device="cpu", score_thresh=0.1)(files)
    assert sum(len(w.boxes) for w in want) > 0 and [len(w.boxes) for w in want] == [len(g.boxes) for g in got]
    for w, g in zip(want, got):
        assert w.masks.shape == g.masks.shape and w.masks.shape[1:] == w.image.shape[:2]
        order = [int(np.argmin(np.abs(g.boxes - b).max(1) + 10 * (g.labels != k))) for b, k in zip(w.boxes, w.labels)]
        for i, j in enumerate(order):
            union = (w.masks[i] | g.masks[j]).sum()
            assert union == 0 or (w.masks[i] & g.masks[j]).sum() / union > 0.98


def test_graph_with_nothing_to_detect_returns_empty_outputs(repo, tmp_path):
    """No proposal passes the RPN threshold: every count downstream is 0, masks included."""
    cfg = load_config(repo / "configs/mask_rcnn_shapes.yaml", ["model.backbone.width=0.125"])
    model = build_model(cfg.model).eval()
    model.rpn.score_thresh = 1.01
    meta = export_metadata(model, ["circle", "rectangle", "triangle"], AugmentConfig(image_size=96))
    path = export(model, tmp_path / "empty.onnx", image_size=(96, 96), exporter="dynamo", metadata=meta).path
    runtime = OnnxModel(path)
    for h, w in [(96, 96), (130, 70)]:
        boxes, scores, labels, masks = runtime.run(torch.full((1, 3, h, w), 0.5))
        assert boxes.shape == (0, 4) and scores.shape == (0,) and labels.shape == (0,) and masks.shape == (0, 28, 28)
        assert labels.dtype == np.int64
    det = runtime.predict(torch.full((1, 3, 96, 128), 128, dtype=torch.uint8), [(90, 120)])[0]
    assert len(det) == 0 and det.masks.shape == (0, 90, 120)


def test_files_without_detseg_metadata_are_refused(tmp_path):
    from onnx import TensorProto, helper, save

    path = tmp_path / "plain.onnx"
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 8, 8])
    save(helper.make_model(helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "plain",
                                             [image], [out])), str(path))
    with pytest.raises(ValueError, match="no detseg metadata"):
        Predictor.from_checkpoint(path)


def test_torchscript_is_refused_for_two_stage_detectors(repo, tmp_path):
    model = build_model(load_config(repo / "configs/faster_rcnn_shapes.yaml", ["model.backbone.width=0.125"]).model)
    with pytest.raises(ExportError, match="ONNX only"):
        export(model.eval(), tmp_path / "x.torchscript", format="torchscript", image_size=(128, 128))


def test_export_outputs_is_predict_for_one_image(repo):
    """The exported function and predict() share their code: identical results in PyTorch."""
    torch.manual_seed(0)
    model = build_model(load_config(repo / "configs/mask_rcnn_shapes.yaml", []).model).eval()
    model.roi_heads.box_predictor.cls_score.weight.data *= 20  # confident random scores: many detections
    image = torch.rand(1, 3, 100, 150)
    padded = torch.nn.functional.pad(image, (0, 10, 0, 28))  # to 128 x 160, as the data loader pads
    with torch.no_grad():
        boxes, scores, labels, masks = model.export_outputs(image)
        want = model.predict(padded, [(100, 150)])[0]
    assert len(boxes) == len(want.boxes) > 0
    torch.testing.assert_close(boxes, want.boxes)
    torch.testing.assert_close(scores, want.scores)
    assert torch.equal(labels, want.labels) and masks.shape == (len(boxes), 28, 28)
