"""tools/demo.py: trains the detector and the segmenter and saves their pictures."""

import subprocess
import sys

import cv2


def test_demo_quick_saves_pictures(repo, tmp_path):
    proc = subprocess.run([sys.executable, "tools/demo.py", "--quick", "--out", str(tmp_path),
                           "model.backbone.width=0.125", "train.device=cpu"],
                          cwd=repo, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for picture in ("detections.png", "segmentation.png"):
        image = cv2.imread(str(tmp_path / picture))
        assert image is not None and image.shape == (256, 512, 3)  # 2 x 4 tiles of 128 px
        assert f"saved: {tmp_path / picture}" in proc.stdout
    assert "mAP50=" in proc.stdout and "miou=" in proc.stdout
