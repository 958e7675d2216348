"""tools/infer.py: video streamed end to end, folders with a corrupt file, API == CLI json,
COCO category ids from the checkpoint (coco128), segmenter outputs, help texts."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from detseg.checkpoint_io import save_checkpoint
from detseg.cli import infer
from detseg.config import load_config, to_dict
from detseg.config.schema import AugmentConfig
from detseg.data.coco import CocoDataset
from detseg.data.synthetic import ShapesConfig, generate_sample
from detseg.inference import Predictor
from detseg.models import build_model
from detseg.structures.instances import Detections

REPO = Path(__file__).resolve().parents[2]


class BrightBox(nn.Module):
    """Detects the bright square of each image (input frame), label 0, score 0.8."""

    task, with_masks = "detection", False

    def predict(self, images, image_sizes=None):
        out = []
        for img in images:
            ys, xs = (img[0] > 200).nonzero(as_tuple=True)
            if len(xs) == 0:
                out.append(Detections.empty())
                continue
            box = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32)
            out.append(Detections(box, torch.tensor([0.8]), torch.tensor([0])))
        return out


def frame(i: int, h=72, w=96) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[20:40, 5 + i * 3: 25 + i * 3] = 255
    return img


def options(**kw):
    base = dict(batch_size=4, quiet=True, no_save=False, tile=None)
    return argparse.Namespace(**{**base, **kw})


@pytest.fixture
def predictor():
    return Predictor(BrightBox(), ["square"], AugmentConfig(image_size=64), device="cpu")


def test_video_is_streamed_with_fps_size_and_frame_count_kept(tmp_path, predictor):
    src = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (96, 72))
    for i in range(10):
        writer.write(frame(i))
    writer.release()
    out = tmp_path / "out"
    out.mkdir()
    tally = infer.Tally()
    assert infer.run_video(predictor, str(src), out, options(), tally) == 10
    video = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 10 and video.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    assert (int(video.get(cv2.CAP_PROP_FRAME_WIDTH)), int(video.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (96, 72)
    lines = [json.loads(line) for line in (out / "clip.jsonl").read_text().splitlines()]
    assert [d["frame"] for d in lines] == list(range(10)) and tally.detections["square"] == 10
    assert lines[3]["detections"][0]["box"][0] == pytest.approx(14, abs=1.5)  # the square moves 3 px a frame


def test_folder_with_corrupt_file_is_reported_and_skipped(tmp_path, predictor, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), frame(i))
    (folder / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "out"
    out.mkdir()
    assert infer.run_images(predictor, infer.list_images(str(folder)), out, options(), infer.Tally()) == 3
    assert "broken.jpg" in capsys.readouterr().err
    results = json.loads((out / "predictions.json").read_text())
    images = json.loads((out / "images.json").read_text())
    assert len(images) == 3 and {r["image_id"] for r in results} == {1, 2, 3}
    assert sorted(p.name for p in out.glob("*.jpg")) == ["0.jpg", "1.jpg", "2.jpg"]
    # the Python API gives the boxes the CLI wrote
    api = predictor(str(folder / "1.png"))[0]
    cli = next(r for r in results if r["image_id"] == next(i["id"] for i in images if i["file_name"].endswith("1.png")))
    x1, y1, x2, y2 = api.boxes[0].tolist()
    assert cli["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=0.01)


def test_unreadable_sources_and_checkpoints_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "x.pt").write_text("nope")
    assert infer.main(["--checkpoint", str(tmp_path / "x.pt"), "--source", "a.jpg"]) == 2
    assert "x.pt" in capsys.readouterr().err
    predictor = Predictor(BrightBox(), ["square"], AugmentConfig(image_size=64), device="cpu")
    with pytest.raises(OSError, match="cannot open video source"):
        infer.run_video(predictor, str(tmp_path / "missing.mp4"), tmp_path, options(), infer.Tally())


@pytest.mark.parametrize("given, passed", [([], {}), (["--score", "0.6"], {"score_thresh": 0.6})])
def test_score_is_passed_on_only_when_given_so_an_exported_files_own_threshold_holds(monkeypatch, capsys, given,
                                                                                     passed):
    seen = {}

    def from_checkpoint(path, **kwargs):
        seen.update(kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(infer.Predictor, "from_checkpoint", from_checkpoint)
    assert infer.main(["--checkpoint", "m.onnx", "--source", "a.jpg", *given]) == 2
    assert {k: v for k, v in seen.items() if k == "score_thresh"} == passed


# ------------------------------------------------------------------ checkpoints built cheaply


def save_tiny_checkpoint(path: Path, config: Path, overrides: list[str], class_names, category_ids=None) -> Path:
    """A checkpoint as tools/train.py writes it (random weights): model, config, class table."""
    cfg = load_config(config, overrides)
    state = {"model": build_model(cfg.model).state_dict(), "config": to_dict(cfg), "class_names": list(class_names)}
    if category_ids is not None:
        state["category_ids"] = list(category_ids)
    save_checkpoint(state, path)
    return path


def shapes_folder(path: Path, n: int = 2) -> Path:
    path.mkdir()
    cfg = ShapesConfig(num_images=n, image_size=(64, 80), max_objects=3, seed=5)
    for i in range(n):
        cv2.imwrite(str(path / f"{i}.png"), cv2.cvtColor(generate_sample(cfg, i).image, cv2.COLOR_RGB2BGR))
    return path


@pytest.mark.coco128
def test_coco128_results_carry_the_datasets_own_category_ids(repo, tmp_path):
    root = repo.parent / "shared" / "data" / "coco128"
    ann = root / "annotations" / "instances.json"
    json_ids = sorted(c["id"] for c in json.loads(ann.read_text())["categories"])
    assert json_ids[-1] == 90 and len(json_ids) == 80  # ids 1..90 with gaps
    dataset = CocoDataset(ann, root / "images", with_masks=False)  # the class table train_loop saves
    ckpt = save_tiny_checkpoint(tmp_path / "coco.pt", repo / "configs/yolo_coco.yaml",
                                ["model.backbone.width=0.25", "model.yolo.score_thresh=0.0", "data.augment.image_size=64"],
                                dataset.class_names, dataset.category_ids)
    folder = tmp_path / "images"
    folder.mkdir()
    for f in sorted((root / "images").glob("*.jpg"))[:3]:
        (folder / f.name).symlink_to(f)
    out = tmp_path / "out"
    assert infer.main(["--checkpoint", str(ckpt), "--source", str(folder), "--out", str(out), "--score", "0",
                       "--device", "cpu", "--quiet", "--no-save"]) == 0
    entries = json.loads((out / "predictions.json").read_text())
    assert entries and {e["category_id"] for e in entries} <= set(json_ids)
    predictor = Predictor.from_checkpoint(ckpt, device="cpu", score_thresh=0.0)
    assert predictor.category_ids == tuple(json_ids)  # label k -> the k-th sorted category id
    names = list(predictor.class_names)
    assert json_ids[names.index("stop sign")] == 13 and json_ids[names.index("toothbrush")] == 90
    labels_seen = set()
    for image in json.loads((out / "images.json").read_text()):
        result = predictor(image["file_name"])[0]
        mine = sorted(e["category_id"] for e in entries if e["image_id"] == image["id"])
        assert mine == sorted(json_ids[k] for k in result.labels.tolist())
        labels_seen |= set(result.labels.tolist())
    assert max(labels_seen) >= 11  # labels past the first gap (id 12) were written, so the mapping was exercised


def test_checkpoint_without_category_ids_falls_back_to_1_to_k_and_says_so_once(repo, tmp_path, caplog):
    ckpt = save_tiny_checkpoint(tmp_path / "old.pt", repo / "configs/yolo_shapes.yaml",
                                ["model.backbone.width=0.25", "model.yolo.score_thresh=0.0", "data.augment.image_size=64"],
                                ["circle", "rectangle", "triangle"])
    out = tmp_path / "out"
    assert infer.main(["--checkpoint", str(ckpt), "--source", str(shapes_folder(tmp_path / "imgs")), "--out", str(out),
                       "--score", "0", "--device", "cpu", "--quiet", "--no-save"]) == 0
    warnings = [r for r in caplog.records if "category-id table" in r.getMessage()]
    assert len(warnings) == 1 and "old.pt" in warnings[0].getMessage()
    entries = json.loads((out / "predictions.json").read_text())
    assert entries and {e["category_id"] for e in entries} <= {1, 2, 3}


# ------------------------------------------------------------------ segmenters


class GreyLevels(nn.Module):
    """Segmenter: class 1 ("b", value 2) where the input is white, class 0 ("a", value 1) where grey."""

    task, with_masks, num_classes = "segmentation", False, 2

    def predict(self, images, image_sizes=None):
        red = images[:, 0].long()
        return torch.where(red > 200, 2, torch.where(red > 60, 1, 0))


def two_squares(shift: int = 0) -> np.ndarray:
    """64x64: white 16x16 square (256 px, class b) and grey 16x12 rectangle (192 px, class a)."""
    img = np.zeros((64, 64, 3), np.uint8)
    img[8:24, 8 + shift: 24 + shift] = 255
    img[40:56, 40:52] = 128
    return img


@pytest.fixture
def segmenter():
    return Predictor(GreyLevels(), ["a", "b"], AugmentConfig(image_size=64), device="cpu")


def test_segmenter_on_images_writes_label_maps_areas_overlays_and_a_pixel_summary(tmp_path, segmenter):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), two_squares())
    out = tmp_path / "out"
    out.mkdir()
    tally = infer.Tally()
    assert infer.run_images(segmenter, infer.list_images(str(folder)), out, options(), tally) == 2
    label_map = cv2.imread(str(out / "masks" / "0.png"), cv2.IMREAD_UNCHANGED)
    want = np.zeros((64, 64), np.uint8)
    want[8:24, 8:24], want[40:56, 40:52] = 2, 1  # 0 background, k + 1 class k
    assert label_map.dtype == np.uint8 and np.array_equal(label_map, want)
    seg = json.loads((out / "segmentation.json").read_text())
    assert seg["label_values"] == {"1": "a", "2": "b"}
    assert [e["areas"] for e in seg["images"]] == [{"a": 192, "b": 256}] * 2
    assert (out / seg["images"][1]["label_map"]).is_file()
    assert not (out / "predictions.json").exists() and len(json.loads((out / "images.json").read_text())) == 2
    overlay = cv2.imread(str(out / "0.jpg"))
    assert overlay.shape == (64, 64, 3)
    summary = tally.summary()
    assert "detections" not in summary and "8,192 pixels" in summary
    assert "b 6.25%" in summary and "a 4.69%" in summary and "background 89.06%" in summary


def test_segmenter_without_classes_and_no_save_still_writes_label_maps(tmp_path, segmenter):
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "dark.png"), np.zeros((40, 50, 3), np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    tally = infer.Tally()
    assert infer.run_images(segmenter, infer.list_images(str(folder)), out, options(no_save=True), tally) == 1
    assert not list(out.glob("*.jpg"))
    assert cv2.imread(str(out / "masks" / "dark.png"), cv2.IMREAD_UNCHANGED).max() == 0
    assert tally.summary() == "classes: none (all 2,000 pixels background)"


def test_label_maps_of_more_than_254_classes_are_16_bit(tmp_path):
    values = np.array([[0, 1], [254, 300]])
    infer.save_label_map(tmp_path / "m.png", values, num_classes=300)
    back = cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and np.array_equal(back, values)


def test_segmenter_on_video_writes_the_overlay_video_and_class_areas_per_frame(tmp_path, segmenter):
    src = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 64))
    for i in range(6):
        writer.write(two_squares(shift=2 * i))
    writer.release()
    out = tmp_path / "out"
    out.mkdir()
    tally = infer.Tally()
    assert infer.run_video(segmenter, str(src), out, options(), tally) == 6
    video = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    lines = [json.loads(line) for line in (out / "clip.jsonl").read_text().splitlines()]
    assert [d["frame"] for d in lines] == list(range(6)) and all("detections" not in d for d in lines)
    assert all((d["height"], d["width"]) == (64, 64) for d in lines)
    for d in lines:  # lossy video: the squares' edges may blur by a pixel
        assert d["areas"]["b"] == pytest.approx(256, abs=40) and d["areas"]["a"] == pytest.approx(192, abs=40)
    assert "pixels" in tally.summary() and "b " in tally.summary()


def test_real_segmentation_checkpoint_through_the_cli(repo, tmp_path, capsys):
    ckpt = save_tiny_checkpoint(tmp_path / "fcn.pt", repo / "configs/fcn8s_shapes.yaml",
                                ["model.backbone.width=0.125"], ["circle", "rectangle", "triangle"], [1, 2, 3])
    out = tmp_path / "out"
    assert infer.main(["--checkpoint", str(ckpt), "--source", str(shapes_folder(tmp_path / "imgs")), "--out", str(out),
                       "--device", "cpu", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "2 images" in printed and "pixels" in printed and "detections" not in printed
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["0.png", "1.png"]
    assert cv2.imread(str(out / "masks" / "0.png"), cv2.IMREAD_UNCHANGED).shape == (64, 80)
    assert (out / "0.jpg").is_file() and (out / "segmentation.json").is_file()


# ------------------------------------------------------------------ help


def load_tool(name: str):
    if name == "infer":
        return infer
    tool_spec = importlib.util.spec_from_file_location(f"_detseg_tool_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(tool_spec)
    tool_spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["infer", "make_shapes"])
def test_every_option_has_help_and_the_help_has_examples(name):
    parser = load_tool(name).build_parser()
    undocumented = [a.option_strings for a in parser._actions if not (a.help or "").strip()]
    assert not undocumented
    text = parser.format_help()
    assert "examples:" in text and f"python tools/{name}.py --" in text.split("examples:")[1]
