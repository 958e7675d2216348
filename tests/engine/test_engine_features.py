"""Resume, Ctrl-C, early stopping, accumulation, schedules, EMA, self-healing precision, DDP."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from detseg.classification import ImageClassifier
from detseg.config import TrainConfig, load_config
from detseg.data.sampler import EpochSampler
from detseg.engine.checkpoint import load_checkpoint, new_run_dir
from detseg.engine.precision import NonFiniteLossError, Precision
from detseg.engine.train_loop import lr_factor, train

TINY = [
    "model.backbone.width=0.125", "data.image_size=32", "data.num_train=48", "data.num_val=16",
    "data.batch_size=8", "train.device=cpu", "train.deterministic=true",
]


def tiny(repo, *overrides):
    return load_config(repo / "configs/classifier_resnet18_shapes.yaml", TINY + list(overrides))


def interrupt_at(monkeypatch, iteration: int):
    """Make the training-mode loss raise KeyboardInterrupt (as Ctrl-C would) at ``iteration``."""
    calls = {"n": 0}
    original = ImageClassifier.loss

    def loss(self, images, labels):
        if self.training:
            calls["n"] += 1
            if calls["n"] == iteration + 1:
                raise KeyboardInterrupt
        return original(self, images, labels)

    monkeypatch.setattr(ImageClassifier, "loss", loss)


@pytest.mark.parametrize("stop_at,accumulate", [(12, 1), (15, 1), (15, 2)],
                         ids=["epoch-boundary", "mid-epoch", "mid-epoch-accumulating"])
def test_ctrl_c_then_resume_equals_straight_run_bitwise(tmp_path, repo, monkeypatch, stop_at, accumulate):
    """6 iterations per epoch: stop at the start of epoch 3 or inside it, resume, finish 4 epochs.

    While accumulating over 2 batches, the interruption at batch 3 of the epoch falls between
    optimiser steps: the checkpoint also holds batch 2's gradients, and the resume starts at batch 3.
    """
    cfg = tiny(repo, "train.epochs=4", "train.ema_decay=0.9", f"train.accumulate={accumulate}")
    straight = new_run_dir(tmp_path, "straight")
    train(cfg, straight, quiet=True)
    run = new_run_dir(tmp_path, "resumed")
    with monkeypatch.context() as m:
        interrupt_at(m, stop_at)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, run, quiet=True)
    saved = load_checkpoint(run / "last.pt")
    assert (saved["epoch"], saved["log"]["batches_done"]) == (2, stop_at - 12)
    assert (saved["grads"] is not None) == (accumulate == 2)
    train(cfg, run, quiet=True, resume=run / "last.pt")
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(run / "last.pt")
    for key in ("model", "ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), (key, name)
    assert a["log"]["rows"] == b["log"]["rows"]  # train/loss of the resumed epoch included
    assert [r["epoch"] for r in b["log"]["rows"]] == [1, 2, 3, 4]


def test_ema_is_saved_and_differs_from_raw_weights(tmp_path, repo):
    run = new_run_dir(tmp_path, "ema")
    train(tiny(repo, "train.epochs=1", "train.ema_decay=0.5"), run, quiet=True)
    state = load_checkpoint(run / "last.pt")
    name = "backbone.fc.weight"
    assert not torch.equal(state["model"][name], state["ema"][name])


def test_early_stopping_after_patience(tmp_path, repo, capsys):
    # val/loss can only be "improved" by being lower; mode=max on a loss stops right away
    run = new_run_dir(tmp_path, "es")
    train(tiny(repo, "train.epochs=6", "eval.metric=val/loss", "eval.mode=max", "eval.patience=1",
               "train.lr=1e-6"), run, quiet=True)
    out = capsys.readouterr().out
    rows = load_checkpoint(run / "last.pt")["log"]["rows"]
    assert len(rows) < 6 and "early stop" in out


def test_accumulation_prints_effective_batch_and_scaled_lr(tmp_path, repo, capsys):
    train(tiny(repo, "train.epochs=1", "train.accumulate=3", "train.lr_scaling=linear",
               "train.base_batch_size=12", "train.lr=0.01"), new_run_dir(tmp_path, "acc"), quiet=True)
    out = capsys.readouterr().out
    assert "effective batch 24 (8 x 3 accumulation x 1 process), lr 0.02 (linear scaling of 0.01 from batch 12)" in out


def test_schedules():
    step = lr_factor(TrainConfig(epochs=4, schedule="step", milestones=(2, 3), gamma=0.1), steps_per_epoch=10)
    assert [round(step(i), 6) for i in (0, 19, 20, 30)] == [1.0, 1.0, 0.1, 0.01]
    poly = lr_factor(TrainConfig(epochs=1, schedule="poly", power=1.0), steps_per_epoch=10)
    assert poly(5) == pytest.approx(0.5)
    cos = lr_factor(TrainConfig(epochs=1, schedule="cosine", warmup_iters=4), steps_per_epoch=20)
    assert cos(0) == pytest.approx(0.001) and cos(4) == pytest.approx(1.0) and cos(20) == pytest.approx(0.01)


def test_mixed_precision_falls_back_to_fp32_after_repeated_nonfinite_steps(capsys):
    precision = Precision("off", torch.device("cpu"), max_nonfinite=2)
    precision.dtype = torch.bfloat16  # as on a bf16 GPU
    nan = {"loss_cls": torch.tensor(float("nan"))}
    assert not precision.check_loss(nan, "iteration 1") and precision.name == "bf16"
    assert not precision.check_loss(nan, "iteration 2")
    assert precision.name == "fp32" and "switching this run to fp32" in capsys.readouterr().out
    with pytest.raises(NonFiniteLossError, match=r"iteration 3: \{'loss_cls': nan\}"):
        precision.check_loss(nan, "iteration 3")
    skipping = Precision("off", torch.device("cpu"), on_nonfinite="skip")
    assert not skipping.check_loss(nan, "x") and skipping.skipped == 1


def test_nonfinite_gradients_skip_the_step():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    precision = Precision("off", torch.device("cpu"))
    precision.dtype = torch.bfloat16
    model.weight.grad = torch.full_like(model.weight, float("inf"))
    before = model.weight.detach().clone()
    assert not precision.step(opt, list(model.parameters()), None, "it 0")
    assert torch.equal(model.weight, before) and precision.skipped == 1


def test_epoch_sampler_is_a_function_of_seed_and_epoch_and_shards():
    s = EpochSampler(10, seed=3)
    s.set_epoch(2)
    order = list(s)
    s.set_epoch(2, start=4)
    assert list(s) == order[4:] and len(s) == 6
    s.set_epoch(3)
    assert list(s) != order and sorted(order) == list(range(10))
    shards = [EpochSampler(9, seed=3, rank=r, world_size=2) for r in range(2)]
    for sh in shards:
        sh.set_epoch(1)
    a, b = list(shards[0]), list(shards[1])
    assert len(a) == len(b) == 5 and set(a) | set(b) == set(range(9))


DDP_WORKER = r'''
import sys, torch
import detseg.engine.train_loop as tl
from detseg.config import load_config
captured = {}
build = tl.build_model
tl.build_model = lambda c: captured.setdefault("model", build(c))
cfg = load_config(sys.argv[1], sys.argv[3:])
rank = int(__import__("os").environ["RANK"])
tl.train(cfg, __import__("pathlib").Path(sys.argv[2]), quiet=True)
torch.save(captured["model"].state_dict(), f"{sys.argv[2]}/rank{rank}.pt")
'''


@pytest.mark.slow
def test_ddp_two_cpu_processes_end_with_identical_weights(tmp_path, repo):
    worker = tmp_path / "worker.py"
    worker.write_text(DDP_WORKER)
    run = tmp_path / "run"
    run.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
         str(worker), str(repo / "configs/classifier_resnet18_shapes.yaml"), str(run), *TINY, "train.epochs=2"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = torch.load(run / "rank0.pt"), torch.load(run / "rank1.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert "x2" in proc.stdout and (run / "last.pt").is_file()
    assert proc.stdout.count("epoch 2/2") == 1  # only rank 0 logs


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_training_on_gpu(tmp_path, repo, amp, capsys):
    cfg = tiny(repo, "train.epochs=2", "train.device=cuda", f"train.amp={amp}", "train.deterministic=false",
               "train.clip_grad_norm=5.0")
    run = new_run_dir(tmp_path, amp)
    train(cfg, run, quiet=True)
    assert f"cuda x1, {amp}" in capsys.readouterr().out
    state = load_checkpoint(run / "last.pt")
    assert state["precision"]["dtype"] == amp
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
