"""Resume, Ctrl-C, early stopping, accumulation, schedules, EMA, self-healing precision, DDP."""

from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys

import pytest
import torch

import detseg.engine.train_loop as tl
from detseg.checkpoint_io import load_checkpoint
from detseg.classification import ImageClassifier
from detseg.classification.classifier import Classifications
from detseg.config import ConfigError, TrainConfig, load_config
from detseg.data.sampler import EpochSampler
from detseg.engine.checkpoint import new_run_dir
from detseg.engine.precision import NonFiniteLossError, Precision
from detseg.engine.train_loop import DivergenceError, lr_factor, train

TINY = [
    "model.backbone.width=0.125", "data.image_size=32", "data.num_train=48", "data.num_val=16",
    "data.batch_size=8", "train.device=cpu", "train.deterministic=true",
]


def tiny(repo, *overrides):
    return load_config(repo / "configs/classifier_resnet18_shapes.yaml", TINY + list(overrides))


def interrupt_at(monkeypatch, iteration: int):
    """Send this process a real SIGINT (as Ctrl-C would) from inside training iteration ``iteration``."""
    calls = {"n": 0}
    original = ImageClassifier.loss

    def loss(self, images, labels):
        if self.training:
            calls["n"] += 1
            if calls["n"] == iteration + 1:
                os.kill(os.getpid(), signal.SIGINT)
        return original(self, images, labels)

    monkeypatch.setattr(ImageClassifier, "loss", loss)


def assert_same_run(a_dir, b_dir):
    a, b = load_checkpoint(a_dir / "last.pt"), load_checkpoint(b_dir / "last.pt")
    for key in ("model", "ema"):
        for name, tensor in (a[key] or {}).items():
            assert torch.equal(tensor, b[key][name]), (key, name)
    assert a["log"]["rows"] == b["log"]["rows"]  # train/loss of the resumed epoch included


@pytest.mark.parametrize("stop_at,accumulate", [(11, 1), (14, 1), (14, 2)],
                         ids=["epoch-boundary", "mid-epoch", "mid-epoch-accumulating"])
def test_ctrl_c_then_resume_equals_straight_run_bitwise(tmp_path, repo, monkeypatch, stop_at, accumulate):
    """6 iterations per epoch: Ctrl-C during the last batch of epoch 2 or inside epoch 3, resume, finish 4 epochs.

    The batch in flight completes and the run stops after it. While accumulating over 2 batches,
    batch 3 of the epoch ends between optimiser steps: the checkpoint also holds its gradients.
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
    done = stop_at + 1 - 12
    assert (saved["epoch"], saved["log"]["batches_done"]) == ((2, 0) if done == 0 else (2, done))
    assert (saved["grads"] is not None) == (accumulate == 2)
    train(cfg, run, quiet=True, resume=run / "last.pt")
    assert_same_run(straight, run)
    assert [r["epoch"] for r in load_checkpoint(run / "last.pt")["log"]["rows"]] == [1, 2, 3, 4]


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
tl.build_model = lambda c, **kw: captured.setdefault("model", build(c, **kw))
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


class Probe(torch.nn.Module):
    """A stand-in classifier whose loss has gradient exactly 1 per weight on every batch."""

    task = "classification"

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(3))

    def loss(self, images, labels):
        return {"loss_cls": self.w.sum() + 0 * images.float().mean() + 1.0}

    def predict(self, images):
        scores = self.w.detach().softmax(0).expand(len(images), 3)
        return Classifications(scores=scores, labels=scores.argmax(1))

    def forward(self, images, labels=None):
        return self.loss(images, labels)


PROBE = ["data.num_train=56", "train.optimizer=sgd", "train.momentum=0", "train.weight_decay=0",
         "train.warmup_iters=0", "train.lr=0.1", "train.accumulate=4"]


def test_partial_accumulation_window_is_averaged_over_its_own_batches(tmp_path, repo, monkeypatch):
    """7 batches, accumulate 4: a window of 4 and one of 3, each a mean gradient of 1 -> 2 steps of lr."""
    monkeypatch.setattr(tl, "build_model", lambda cfg, **kw: Probe())
    run = new_run_dir(tmp_path, "probe")
    train(tiny(repo, *PROBE, "train.epochs=1", "train.schedule=constant"), run, quiet=True)
    weights = load_checkpoint(run / "last.pt")["model"]["w"]
    assert torch.allclose(weights, torch.full((3,), -0.2)), weights  # was -0.175: the 3-batch window / 4


def test_schedule_counts_the_steps_the_loop_takes(tmp_path, repo, monkeypatch):
    """poly (power 1) over 6 epochs of 2 steps each reaches 0 at the very end, not after 3 epochs."""
    monkeypatch.setattr(tl, "build_model", lambda cfg, **kw: Probe())
    run = new_run_dir(tmp_path, "poly")
    train(tiny(repo, *PROBE, "train.epochs=6", "train.schedule=poly", "train.power=1.0"), run, quiet=True)
    lrs = [row["lr"] for row in load_checkpoint(run / "last.pt")["log"]["rows"]]
    assert lrs == pytest.approx([0.1 * (1 - 2 * e / 12) for e in range(1, 7)], abs=1e-9)
    assert load_checkpoint(run / "last.pt")["log"]["step"] == 12
    step_run = new_run_dir(tmp_path, "step")
    train(tiny(repo, *PROBE, "train.epochs=4", "train.schedule=step", "train.milestones=[2]"), step_run, quiet=True)
    lrs = [row["lr"] for row in load_checkpoint(step_run / "last.pt")["log"]["rows"]]
    assert lrs == pytest.approx([0.1, 0.01, 0.01, 0.01])  # the LR of the next epoch: x0.1 after 2 epochs


def test_warmup_is_capped_on_a_short_run(tmp_path, repo, monkeypatch, capsys):
    monkeypatch.setattr(tl, "build_model", lambda cfg, **kw: Probe())
    run = new_run_dir(tmp_path, "warm")
    train(tiny(repo, *PROBE, "train.epochs=5", "train.schedule=constant", "train.warmup_iters=300"), run, quiet=True)
    assert "warm-up: 2 step(s) (300 configured, capped to 20% of this run's 10 optimiser steps)" in capsys.readouterr().out
    assert load_checkpoint(run / "last.pt")["log"]["rows"][-1]["lr"] == pytest.approx(0.1)


def test_fp16_fallback_inside_an_accumulation_window_unscales_the_gradients():
    """A window of 3: batch 1 backpropagates a scaled fp16 loss, batch 2 is NaN and triggers the
    fall-back to fp32, batch 3 backpropagates in fp32; the step must apply the true mean gradient
    of batches 1 and 3, not batch 1's times 2**16 (nor batch 3's divided by it)."""
    model = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.ones_(model.weight)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    precision = Precision("off", torch.device("cpu"), max_nonfinite=1, params=list(model.parameters()))
    precision.dtype, precision.scaler = torch.float16, torch.amp.GradScaler("cpu", init_scale=2.0**16)
    precision.backward(model(torch.ones(1, 2)).sum() / 3)  # gradient 1/3 per weight, scaled
    assert not precision.check_loss({"loss_cls": torch.tensor(float("nan"))}, "it 1")
    assert precision.name == "fp32" and precision.fell_back
    precision.backward(model(torch.ones(1, 2)).sum() / 3)  # fp32 now
    assert precision.step(opt, list(model.parameters()), None, "it 2")
    assert torch.allclose(model.weight, torch.full((1, 2), 1 - 0.1 * 2 / 3))
    resumed = Precision("auto", torch.device("cpu"))
    resumed.load_state_dict(precision.state_dict())
    assert resumed.fell_back and resumed.name == "fp32"


def test_fp32_skip_policy_stops_after_max_nonfinite_steps():
    precision = Precision("off", torch.device("cpu"), max_nonfinite=2, on_nonfinite="skip")
    nan = {"loss_box": torch.tensor(float("nan"))}
    assert not precision.check_loss(nan, "it 1")
    with pytest.raises(NonFiniteLossError, match=r"2 non-finite steps skipped .*last: non-finite loss at it 2"):
        precision.check_loss(nan, "it 2")


def test_resume_applies_lr_and_schedule_overrides(tmp_path, repo, monkeypatch, capsys):
    """--resume with train.lr=...: the optimiser trains at the new LR (it used to keep the old one)."""
    monkeypatch.setattr(tl, "build_model", lambda cfg, **kw: Probe())
    run = new_run_dir(tmp_path, "r")
    train(tiny(repo, *PROBE, "train.epochs=1", "train.schedule=constant"), run, quiet=True)
    before = load_checkpoint(run / "last.pt")["model"]["w"].clone()
    resumed = tiny(repo, *PROBE, "train.epochs=2", "train.schedule=constant", "train.lr=0.5")
    train(resumed, run, quiet=True, resume=run / "last.pt")
    state = load_checkpoint(run / "last.pt")
    assert torch.allclose(state["model"]["w"], before - 2 * 0.5)
    assert state["log"]["rows"][-1]["lr"] == pytest.approx(0.5)
    assert "resume applies: train.epochs 1 -> 2, train.lr 0.1 -> 0.5" in capsys.readouterr().out


def test_resume_refuses_what_it_cannot_apply(tmp_path, repo, monkeypatch):
    monkeypatch.setattr(tl, "build_model", lambda cfg, **kw: Probe())
    run = new_run_dir(tmp_path, "r")
    train(tiny(repo, *PROBE, "train.epochs=1"), run, quiet=True)
    with pytest.raises(ConfigError, match=r"--resume cannot change model.num_classes \(3 -> 5\)"):
        train(tiny(repo, *PROBE, "train.epochs=2", "model.num_classes=5"), run, quiet=True, resume=run / "last.pt")


class Exploding(Probe):
    """A loss that grows 10x per iteration while staying finite (a diverging LR under BatchNorm)."""

    def loss(self, images, labels):
        self.calls = getattr(self, "calls", 0) + 1
        return {"loss_seg": self.w.sum() * 0 + 1.5 * 10.0 ** min(self.calls - 1, 30)}


def test_a_finite_but_exploding_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, repo, monkeypatch):
    monkeypatch.setattr(tl, "build_model", lambda cfg, **kw: Exploding())
    run = new_run_dir(tmp_path, "boom")
    with pytest.raises(DivergenceError, match=r"training diverged at epoch 1, iteration \d+: .* \(this batch: loss_seg="):
        train(tiny(repo, *PROBE, "train.epochs=2"), run, quiet=True)
    assert not (run / "last.pt").exists()


def test_nonfinite_weights_are_never_saved(tmp_path, repo, monkeypatch):
    probe = Probe()
    monkeypatch.setattr(tl, "build_model", lambda cfg, **kw: probe)
    original = Probe.loss

    def poisoning(self, images, labels):  # the 10th batch (epoch 2) leaves an inf in a buffer
        self.n = getattr(self, "n", 0) + 1
        if self.n == 10:
            self.register_buffer("stat", torch.tensor([float("inf")]))
        return original(self, images, labels)

    monkeypatch.setattr(Probe, "loss", poisoning)
    run = new_run_dir(tmp_path, "inf")
    with pytest.raises(NonFiniteLossError, match=r"non-finite model weights \(stat\) at the end of epoch 2"):
        train(tiny(repo, *PROBE, "train.epochs=3"), run, quiet=True)
    assert load_checkpoint(run / "last.pt")["epoch"] == 1


AUGMENT_WORKER = r'''
import sys, torch, numpy as np
from detseg.config import load_config
from detseg.data.build import build_datasets, make_loader
from detseg.engine.distributed import init_distributed
rank, world = init_distributed(torch.device("cpu"))
cfg = load_config(sys.argv[1], sys.argv[3:])
train_set, _ = build_datasets(cfg.data, "detection", seed=cfg.train.seed, rank=rank)
loader = make_loader(train_set, cfg.data, train=True, seed=cfg.train.seed, rank=rank, world_size=world)
loader.sampler.set_epoch(1)
train_set.set_epoch(1)
images = torch.cat([batch.images for batch in loader])
torch.save(images, f"{sys.argv[2]}/rank{rank}.pt")
'''


@pytest.mark.slow
def test_ddp_ranks_draw_different_augmentations_and_reruns_repeat_them(tmp_path, repo):
    """Mosaic + flips + colour + scale jitter on two gloo ranks: the k-th images of the two ranks share
    few pixels (68-82 % were identical when every rank drew the same augmentation), and a rerun is identical."""
    worker = tmp_path / "worker.py"
    worker.write_text(AUGMENT_WORKER)
    outs = []
    for attempt in range(2):
        out = tmp_path / f"run{attempt}"
        out.mkdir()
        proc = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29519", str(worker),
             str(repo / "configs/yolo_shapes.yaml"), str(out), "data.num_train=16", "data.image_size=64",
             "data.augment.image_size=64", "data.augment.mosaic_prob=1.0", "data.augment.scale_jitter=[0.5,1.5]",
             "data.batch_size=4", "data.num_workers=1"],
            cwd=repo, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs.append([torch.load(out / f"rank{r}.pt") for r in range(2)])
    (a0, a1), (b0, b1) = outs
    assert torch.equal(a0, b0) and torch.equal(a1, b1)
    same = (a0 == a1).all(dim=1).float().mean().item()  # share of pixels identical in all channels
    assert same < 0.1, same


def test_best_checkpoint_ties_go_to_the_later_epoch_but_do_not_reset_patience(tmp_path, repo, monkeypatch):
    """The probe's accuracy never changes: best.pt is the last validated epoch, and patience 2 stops at epoch 3."""
    monkeypatch.setattr(tl, "build_model", lambda cfg, **kw: Probe())
    run = new_run_dir(tmp_path, "ties")
    train(tiny(repo, *PROBE, "train.epochs=6", "eval.patience=2"), run, quiet=True)
    assert load_checkpoint(run / "best.pt")["epoch"] == load_checkpoint(run / "last.pt")["epoch"] == 3


def test_workers_are_capped_to_the_cores_of_the_machine(repo, capsys):
    from detseg.data.build import build_datasets, make_loader

    cfg = tiny(repo, "data.num_workers=512").data
    train_set, _ = build_datasets(cfg, "classification")
    loader = make_loader(train_set, cfg, train=True)
    assert 1 <= loader.num_workers == len(os.sched_getaffinity(0)) < 512


def test_resume_with_another_eval_metric_picks_the_best_again(tmp_path, repo, monkeypatch):
    run = new_run_dir(tmp_path, "metric")
    train(tiny(repo, "train.epochs=2"), run, quiet=True)
    train(tiny(repo, "train.epochs=3", "eval.metric=val/loss", "eval.mode=min"), run, quiet=True,
          resume=run / "last.pt")
    log = load_checkpoint(run / "last.pt")["log"]
    losses = [r["val/loss"] for r in log["rows"]]
    assert log["best_value"] == min(losses) and log["best"]["val/loss"] == min(losses)


DDP_SKIP_WORKER = r'''
import os, sys, torch
import detseg.engine.train_loop as tl
sys.path.insert(0, sys.argv[3])
from test_engine_features import Probe, PROBE, TINY
from detseg.config import load_config
rank = int(os.environ["RANK"])

class NanOnRank0(Probe):
    """Rank 0's second batch (the last of a 2-batch window) has a NaN loss."""
    def loss(self, images, labels):
        self.n = getattr(self, "n", 0) + 1
        out = super().loss(images, labels)
        if rank == 0 and self.n == 2:
            out["loss_cls"] = out["loss_cls"] * float("nan")
        return out

model = NanOnRank0()
tl.build_model = lambda cfg, **kw: model
cfg = load_config(sys.argv[1], TINY + PROBE + ["train.epochs=1", "train.accumulate=2", "train.on_nonfinite=skip",
                                              "train.max_nonfinite_steps=5", "train.schedule=constant"])
tl.train(cfg, __import__("pathlib").Path(sys.argv[2]), quiet=True)
torch.save(model.state_dict(), f"{sys.argv[2]}/rank{rank}.pt")
'''


@pytest.mark.slow
def test_ddp_ranks_stay_identical_when_the_last_batch_of_a_window_is_skipped(tmp_path, repo):
    """The window's first batch ran under no_sync; with no backward on its last batch, DDP never
    averaged it, and each rank used to step with its own gradients."""
    worker = tmp_path / "worker.py"
    worker.write_text(DDP_SKIP_WORKER)
    run = tmp_path / "run"
    run.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29523", str(worker),
         str(repo / "configs/classifier_resnet18_shapes.yaml"), str(run), str(Path(__file__).parent)],
        cwd=repo, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = torch.load(run / "rank0.pt"), torch.load(run / "rank1.pt")
    assert torch.equal(a["w"], b["w"]) and not torch.equal(a["w"], torch.zeros(3))
