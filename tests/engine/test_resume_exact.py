"""Ctrl-C (a real SIGINT) anywhere in a detector's epoch, then --resume: bit-identical to a straight run.

A detector with augmentation is the hard case: augmentation draws random numbers while batches
are loaded, the RPN/RoI samplers while the loss is computed, and the signal can land in either.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from detseg.checkpoint_io import load_checkpoint
from detseg.config import load_config
from detseg.data.synthetic import ShapesDetection
from detseg.engine.checkpoint import new_run_dir
from detseg.engine.train_loop import train

TINY_FRCNN = [
    "model.backbone.width=0.125", "model.neck.out_channels=16", "model.two_stage.roi_heads.representation_size=32",
    "data.image_size=64", "data.augment.image_size=64", "data.num_train=24", "data.num_val=8", "data.batch_size=4",
    "data.augment.scale_jitter=[0.7,1.3]", "data.augment.color_jitter=0.2", "train.epochs=3", "train.warmup_iters=0",
    "train.device=cpu", "train.deterministic=true", "eval.metric=val/loss", "eval.mode=min",
]


def assert_same_run(a_dir, b_dir):
    a, b = load_checkpoint(a_dir / "last.pt"), load_checkpoint(b_dir / "last.pt")
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert repr(a["log"]["rows"]) == repr(b["log"]["rows"])  # repr: nan metrics compare equal


@pytest.fixture(scope="module")
def straight(tmp_path_factory, repo):
    """The uninterrupted runs the interrupted ones must reproduce, by number of loader workers."""
    runs = {}
    for workers in (0, 2):
        cfg = load_config(repo / "configs/faster_rcnn_shapes.yaml", TINY_FRCNN + [f"data.num_workers={workers}"])
        runs[workers] = new_run_dir(tmp_path_factory.mktemp("straight"), f"w{workers}")
        train(cfg, runs[workers], quiet=True)
    return runs


@pytest.mark.parametrize("workers,call", [(0, 9), (0, 15), (2, 10)], ids=["load-epoch1", "load-epoch2", "workers"])
def test_sigint_while_loading_a_batch_then_resume_is_exact(tmp_path, repo, monkeypatch, straight, workers, call):
    """The signal arrives while image ``call`` (counted over the run) is read, in the main process
    (no workers) or from a worker process (which sends it to the main one, as a terminal would)."""
    cfg = load_config(repo / "configs/faster_rcnn_shapes.yaml", TINY_FRCNN + [f"data.num_workers={workers}"])
    run = new_run_dir(tmp_path, "run")
    original, calls, main_pid = ShapesDetection.load, {"n": 0}, os.getpid()

    def load(self, index):
        calls["n"] += 1
        if calls["n"] == call:
            os.kill(main_pid, signal.SIGINT)
        return original(self, index)

    with monkeypatch.context() as m:
        m.setattr(ShapesDetection, "load", load)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, run, quiet=True)
    saved = load_checkpoint(run / "last.pt")
    assert saved["log"]["iteration"] < 18  # stopped before the end of the run
    train(cfg, run, quiet=True, resume=run / "last.pt")
    assert_same_run(straight[workers], run)


def test_ctrl_c_of_train_cli_then_resume_is_bit_identical(tmp_path, repo, straight):
    """tools/train.py gets SIGINT at whatever point it has reached shortly after epoch 1."""
    cmd = [sys.executable, "tools/train.py", "configs/faster_rcnn_shapes.yaml", "--quiet", "--out", str(tmp_path / "run"),
           *TINY_FRCNN, "data.num_workers=0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same kernels as the in-process straight run
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("epoch 1/3"):
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    assert "stopping after this batch" in err and "Traceback" not in err
    resumed = subprocess.run([sys.executable, "tools/train.py", "--resume", str(tmp_path / "run" / "last.pt"), "--quiet"],
                             cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_run(straight[0], tmp_path / "run")
