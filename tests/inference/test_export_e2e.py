"""Real checkpoints end to end: tools/infer.py's json equals the Python API, ONNX/TorchScript export."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from detseg.config import load_config
from detseg.data.synthetic import ShapesConfig, generate_sample
from detseg.engine.checkpoint import new_run_dir
from detseg.engine.train_loop import train
from detseg.inference import Predictor
from detseg.inference.export import ExportError, check_export, export
from detseg.models import build_model

TINY = {
    "yolo_shapes": ["model.backbone.width=0.25", "model.yolo.scale=nano"],
    "fcn8s_shapes": ["model.backbone.width=0.125"],
}


@pytest.fixture(scope="module")
def checkpoints(repo, tmp_path_factory):
    """One short epoch of a YOLO and an FCN-8s on 64-px shapes: real best.pt files."""
    out = {}
    for name, extra in TINY.items():
        cfg = load_config(repo / f"configs/{name}.yaml", extra + [
            "train.epochs=1", "train.device=cpu", "data.num_train=32", "data.num_val=8", "data.image_size=64",
            "data.augment.image_size=64", "data.batch_size=8"])
        run = new_run_dir(tmp_path_factory.mktemp("runs"), name)
        train(cfg, run, quiet=True)
        out[name] = run / "best.pt"
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("images")
    cfg = ShapesConfig(num_images=3, image_size=(80, 100), max_objects=3, seed=7)
    for i in range(3):
        cv2.imwrite(str(path / f"{i}.png"), cv2.cvtColor(generate_sample(cfg, i).image, cv2.COLOR_RGB2BGR))
    return path


def test_cli_json_equals_python_api(repo, checkpoints, folder, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "tools/infer.py", "--checkpoint", str(checkpoints["yolo_shapes"]),
                           "--source", str(folder), "--out", str(out), "--score", "0.01", "--device", "cpu"],
                          cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    entries = json.loads((out / "predictions.json").read_text())
    ids = {img["file_name"]: img["id"] for img in json.loads((out / "images.json").read_text())}
    assert len(ids) == 3
    predictor = Predictor.from_checkpoint(checkpoints["yolo_shapes"], device="cpu", score_threshold=0.01)
    for file_name, image_id in ids.items():
        result = predictor([file_name])[0]
        mine = [e for e in entries if e["image_id"] == image_id]
        assert len(mine) == len(result.boxes)
        got = np.array([e["bbox"] for e in mine], np.float32).reshape(-1, 4)
        want = result.boxes.copy()
        want[:, 2:] -= want[:, :2]  # COCO xywh
        np.testing.assert_allclose(got, want, atol=1e-2)
        assert [e["score"] for e in mine] == pytest.approx(result.scores.tolist(), abs=1e-4)


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_pytorch(repo, checkpoints, tmp_path, name, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnx")
    out = tmp_path / f"model.{fmt}"
    proc = subprocess.run([sys.executable, "tools/export.py", "--checkpoint", str(checkpoints[name]),
                           "--format", fmt, "--out", str(out)], cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "matches PyTorch" in proc.stdout and out.exists()
    # another batch size and image size than the exported example
    model = Predictor.from_checkpoint(checkpoints[name], device="cpu").model
    images = torch.rand(3, 3, 96, 128, generator=torch.Generator().manual_seed(3))
    assert check_export(model, out, images) < 1e-3
    if fmt == "onnx":
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
        assert json.loads(meta["class_names"]) == ["circle", "rectangle", "triangle"]


def test_two_stage_export_is_refused_clearly(repo, tmp_path):
    model = build_model(load_config(repo / "configs/faster_rcnn_shapes.yaml", ["model.backbone.width=0.125"]).model)
    with pytest.raises(ExportError, match="two-stage"):
        export(model, tmp_path / "x.onnx")
