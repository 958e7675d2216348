"""tools/infer.py: video streamed end to end, folders with a corrupt file, API == CLI json."""

from __future__ import annotations

import argparse
import importlib.util
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from detseg.config.schema import AugmentConfig
from detseg.inference import Predictor
from detseg.structures.instances import Detections

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("_detseg_tool_infer", REPO / "tools" / "infer.py")
infer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(infer)


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
    counts = Counter()
    assert infer.run_video(predictor, str(src), out, options(), counts) == 10
    video = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 10 and video.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    assert (int(video.get(cv2.CAP_PROP_FRAME_WIDTH)), int(video.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (96, 72)
    lines = [json.loads(line) for line in (out / "clip.jsonl").read_text().splitlines()]
    assert [d["frame"] for d in lines] == list(range(10)) and counts["square"] == 10
    assert lines[3]["detections"][0]["box"][0] == pytest.approx(14, abs=1.5)  # the square moves 3 px a frame


def test_folder_with_corrupt_file_is_reported_and_skipped(tmp_path, predictor, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), frame(i))
    (folder / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "out"
    out.mkdir()
    assert infer.run_images(predictor, infer.list_images(str(folder)), out, options(), Counter()) == 3
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
        infer.run_video(predictor, str(tmp_path / "missing.mp4"), tmp_path, options(), Counter())
