"""docs/tutorials.md: every command in its bash blocks runs, in order, on tiny settings."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: appended to every tools/train.py line: one short epoch of a narrow model on a few images
TINY = ["train.epochs=1", "train.device=cpu", "data.batch_size=4", "data.augment.image_size=64",
        "model.backbone.width=0.125"]


def commands(text: str) -> list[str]:
    """The lines of the ```bash blocks, in order."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def tiny(command: str) -> str:
    args = shlex.split(command)
    if "tools/train.py" in args:
        extra = list(TINY)
        if "model.backbone.width=1.0" in args:  # the fine-tuning tutorial loads a full-width file
            extra.remove("model.backbone.width=0.125")
        args += extra
    if "tools/make_shapes.py" in args:
        i = args.index("--num-images")
        args[i + 1] = str(min(int(args[i + 1]), 16))
    return shlex.join(args)


def test_commands_are_found():
    found = commands((REPO / "docs" / "tutorials.md").read_text())
    assert len(found) >= 15 and all(c.split()[0] in ("python", "torchrun") for c in found)


@pytest.mark.slow
def test_every_tutorial_command_runs(tmp_path):
    for name in ("configs", "tools", "detseg"):
        (tmp_path / name).symlink_to(REPO / name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    for command in commands((REPO / "docs" / "tutorials.md").read_text()):
        proc = subprocess.run(tiny(command), shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}"
    assert (tmp_path / "runs/frcnn/eval/pr_curve.png").is_file()
    assert (tmp_path / "runs/yolo/video/clip.jsonl").is_file()
    assert (tmp_path / "runs/yolo/yolo.onnx").is_file() and (tmp_path / "runs/unet/unet.torchscript").is_file()
