"""Real checkpoints end to end: tools/infer.py's json equals the Python API; ONNX/TorchScript export, and
exported ONNX files run by tools/infer.py with the checkpoint's outputs (pictures, json, label maps, video lines)."""

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
from detseg.inference.export import check_export, read_metadata

TINY = {
    "yolo_shapes": ["model.backbone.width=0.25", "model.yolo.scale=nano"],
    "fcn8s_shapes": ["model.backbone.width=0.125"],
}


@pytest.fixture(scope="module")
def checkpoints(repo, tmp_path_factory):
    """One short epoch of a YOLO and an FCN-8s on 64-px shapes: real best.pt files.

    One epoch leaves YOLO's class scores at their prior (~3e-4, below its 0.001 threshold), so its
    class biases are raised by 6: boxes with scores of 0.05 to 0.5, as a trained model reports.
    """
    out = {}
    for name, extra in TINY.items():
        cfg = load_config(repo / f"configs/{name}.yaml", extra + [
            "train.epochs=1", "train.device=cpu", "data.num_train=32", "data.num_val=8", "data.image_size=64",
            "data.augment.image_size=64", "data.batch_size=8"])
        run = new_run_dir(tmp_path_factory.mktemp("runs"), name)
        train(cfg, run, quiet=True)
        out[name] = run / "best.pt"
        if name == "yolo_shapes":
            state = torch.load(out[name], map_location="cpu", weights_only=False)
            weights = state.get("ema") or state["model"]
            for key in [k for k in weights if k.startswith("head.cls_towers.") and k.endswith(".2.bias")]:
                weights[key] += 6.0
            torch.save(state, out[name])
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
    predictor = Predictor.from_checkpoint(checkpoints["yolo_shapes"], device="cpu", score_thresh=0.01)
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
                           "--format", fmt, "--out", str(out), "--score", "0.4"],
                          cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "matches PyTorch" in proc.stdout and out.exists()
    assert ("dynamo exporter" if fmt == "onnx" else "torch.jit.trace") in proc.stdout
    # another batch size and image sizes than the exported example, one not a multiple of 32
    model = Predictor.from_checkpoint(checkpoints[name], device="cpu").model
    g = torch.Generator().manual_seed(3)
    images = [torch.rand(3, 3, 96, 128, generator=g), torch.rand(1, 3, 75, 101, generator=g)]
    assert check_export(model, out, images).max_difference < 1e-3
    meta = read_metadata(out)
    assert meta["class_names"] == ["circle", "rectangle", "triangle"] and meta["category_ids"] == [1, 2, 3]
    assert meta["image_size"] == 64 and meta["resize"] == "letterbox" and meta["score_threshold"] == 0.4
    if fmt == "onnx":  # the file's threshold is the Predictor's (and tools/infer.py's) default
        assert Predictor.from_checkpoint(out).score_thresh == pytest.approx(0.4)
    if name == "yolo_shapes":
        assert set(meta["postprocess"]) == {"score_thresh", "nms_iou", "pre_nms_top_n", "max_det"}


@pytest.fixture(scope="module")
def onnx_files(repo, checkpoints, tmp_path_factory):
    out = {}
    for name, ckpt in checkpoints.items():
        out[name] = tmp_path_factory.mktemp("onnx") / f"{name}.onnx"
        proc = subprocess.run([sys.executable, "tools/export.py", "--checkpoint", str(ckpt), "--out", str(out[name])],
                              cwd=repo, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    return out


def infer(repo, checkpoint, source, out, *extra):
    proc = subprocess.run([sys.executable, "tools/infer.py", "--checkpoint", str(checkpoint), "--source", str(source),
                           "--out", str(out), "--device", "cpu", "--quiet", *extra],
                          cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_yolo_onnx_file_gives_the_checkpoints_json_pictures_and_video_lines(repo, checkpoints, onnx_files, folder,
                                                                            tmp_path):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (100, 80))
    for i in range(3):
        writer.write(cv2.imread(str(folder / f"{i}.png")))
    writer.release()
    runs = {}
    for kind, path in (("pt", checkpoints["yolo_shapes"]), ("onnx", onnx_files["yolo_shapes"])):
        infer(repo, path, folder, tmp_path / kind, "--score", "0.05")
        infer(repo, path, video, tmp_path / f"{kind}_video", "--score", "0.05")
        lines = (tmp_path / f"{kind}_video" / "clip.jsonl").read_text().splitlines()
        runs[kind] = json.loads((tmp_path / kind / "predictions.json").read_text()), [json.loads(x) for x in lines]
        assert sorted(p.name for p in (tmp_path / kind).glob("*.jpg")) == ["0.jpg", "1.jpg", "2.jpg"]
        assert (tmp_path / f"{kind}_video" / "clip.mp4").is_file()
    (want, want_lines), (got, got_lines) = runs["pt"], runs["onnx"]
    assert len(want) > 0
    for image_id in {e["image_id"] for e in want + got}:
        assert_same([(e["category_id"], e["score"], e["bbox"]) for e in want if e["image_id"] == image_id],
                    [(e["category_id"], e["score"], e["bbox"]) for e in got if e["image_id"] == image_id])
    assert len(want_lines) == len(got_lines) == 3
    for a, b in zip(want_lines, got_lines):
        assert_same([(d["name"], d["score"], d["box"]) for d in a["detections"]],
                    [(d["name"], d["score"], d["box"]) for d in b["detections"]])


def assert_same(want: list, got: list) -> None:
    """The same (class, score, box) detections, boxes within 1 px and scores within 1e-3, in any
    order (equal scores are listed in either order)."""
    assert len(want) == len(got)
    free = list(got)
    for label, score, box in want:
        close = [d for d in free if d[0] == label and abs(d[1] - score) <= 1e-3
                 and np.abs(np.subtract(d[2], box)).max() <= 1.0]
        assert close, f"{(label, score, box)} not found"
        free.remove(close[0])


def test_segmenter_onnx_file_gives_the_checkpoints_label_maps(repo, checkpoints, onnx_files, folder, tmp_path):
    for kind, path in (("pt", checkpoints["fcn8s_shapes"]), ("onnx", onnx_files["fcn8s_shapes"])):
        infer(repo, path, folder, tmp_path / kind)
    for i in range(3):
        want = cv2.imread(str(tmp_path / "pt" / "masks" / f"{i}.png"), cv2.IMREAD_UNCHANGED)
        got = cv2.imread(str(tmp_path / "onnx" / "masks" / f"{i}.png"), cv2.IMREAD_UNCHANGED)
        assert want.shape == got.shape == (80, 100) and (want == got).mean() > 0.999
    # tiles: sliding-window probabilities through the file
    image = cv2.cvtColor(cv2.imread(str(folder / "0.png")), cv2.COLOR_BGR2RGB)
    want = Predictor.from_checkpoint(checkpoints["fcn8s_shapes"], device="cpu").predict_tiled(image, tile=48)
    got = Predictor.from_checkpoint(onnx_files["fcn8s_shapes"], device="cpu").predict_tiled(image, tile=48)
    assert (want.semantic == got.semantic).mean() > 0.999
