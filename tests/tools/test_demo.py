"""tools/demo.py: trains the detector and the segmenter and saves their pictures; --draw only draws."""

import subprocess
import sys

import cv2
import pytest


@pytest.fixture(scope="module")
def quick_demo(repo, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run([sys.executable, "tools/demo.py", "--quick", "--out", str(out),
                           "model.backbone.width=0.125", "train.device=cpu"],
                          cwd=repo, capture_output=True, text=True, timeout=600)
    return out, proc


def test_demo_quick_saves_pictures(quick_demo):
    out, proc = quick_demo
    assert proc.returncode == 0, proc.stderr[-2000:]
    for picture in ("detections.png", "segmentation.png"):
        image = cv2.imread(str(out / picture))
        assert image is not None and image.shape == (256, 512, 3)  # 2 x 4 tiles of 128 px
        assert f"saved: {out / picture}" in proc.stdout
    assert "mAP50=" in proc.stdout and "miou=" in proc.stdout


def test_demo_draw_only_and_bad_checkpoint(repo, quick_demo, tmp_path):
    ckpt = next(quick_demo[0].glob("fcn8s_shapes*/best.pt"))
    proc = subprocess.run([sys.executable, "tools/demo.py", "--draw", str(ckpt), "--out", str(tmp_path)],
                          cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert cv2.imread(str(tmp_path / f"{ckpt.parent.name}.png")).shape == (256, 512, 3)
    proc = subprocess.run([sys.executable, "tools/demo.py", "--draw", str(tmp_path / "nope.pt")],
                          cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.startswith("error:")
