"""The training loop: one plain function that fits on a screen, plus its small helpers.

The loop only needs ``model(images, targets)`` in training mode (the loss dict; called through
``forward`` so DistributedDataParallel synchronises gradients), ``model.loss`` in eval mode for the
validation loss and ``model.predict`` for metrics; every task plugs in through those methods.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..config import ExperimentConfig, TrainConfig, dump_config, to_dict
from ..data.build import build_datasets, make_loader
from ..models import build_model
from .checkpoint import load_checkpoint, save_checkpoint
from .curves import plot_curves, write_csv
from .distributed import all_reduce_mean, barrier, cleanup, init_distributed, is_main_process, local_device
from .evaluate import build_evaluator, to_device, validate
from .precision import NonFiniteLossError, Precision

__all__ = ["NonFiniteLossError", "train", "build_optimizer", "lr_factor"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_optimizer(model: nn.Module, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """SGD or AdamW; no weight decay on biases and normalisation parameters (1-d tensors)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=lr)


def lr_factor(cfg: TrainConfig, steps_per_epoch: int):
    """Per optimiser step LR multiplier: linear warm-up from 0.001, then the configured schedule."""
    total = max(1, cfg.epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < cfg.warmup_iters:
            return 0.001 + (1 - 0.001) * step / cfg.warmup_iters
        t = min(1.0, (step - cfg.warmup_iters) / max(1, total - cfg.warmup_iters))
        if cfg.schedule == "cosine":
            return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))
        if cfg.schedule == "poly":
            return (1 - t) ** cfg.power
        if cfg.schedule == "step":
            epoch = step // max(1, steps_per_epoch)
            return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
        return 1.0
    return factor


def set_deterministic(on: bool) -> None:
    """Deterministic kernels (and the cuBLAS workspace setting they need) for bitwise replays."""
    if on:
        import os
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def ema_update(decay: float, warmup: float):
    """``AveragedModel`` update with the decay ramped over ``warmup`` updates (constant when 0)."""
    @torch.no_grad()
    def update(ema_params, params, num_averaged) -> None:
        d = decay * (1 - math.exp(-(float(num_averaged) + 1) / warmup)) if warmup else decay
        floats = [(e, p) for e, p in zip(ema_params, params) if e.is_floating_point()]
        if floats:
            torch._foreach_lerp_([e for e, _ in floats], [p for _, p in floats], 1 - d)
        for e, p in zip(ema_params, params):
            if not e.is_floating_point():
                e.copy_(p)
    return update


def train(cfg: ExperimentConfig, run_dir: Path, *, quiet: bool = False, resume: str | Path | None = None) -> dict[str, float]:
    """Train ``cfg`` into ``run_dir``: config.yaml, last.pt, best.pt, metrics.csv, curves.png.

    Args:
        quiet: no progress bars; the one-line summary per epoch is always printed.
        resume: a ``last.pt`` to continue from exactly (weights, optimiser, schedule, scaler,
            EMA, epoch and position inside it, RNG states).

    Returns:
        The metrics of the best validation (by ``cfg.eval.metric``).

    Raises:
        NonFiniteLossError: a NaN/inf loss in fp32 with ``train.on_nonfinite=error``.
        KeyboardInterrupt: after saving ``last.pt`` at the last completed optimiser step.
    """
    tc = cfg.train
    set_deterministic(tc.deterministic)
    device = local_device(resolve_device(tc.device))
    rank, world = init_distributed(device)
    seed_everything(tc.seed)
    model = build_model(cfg.model).to(device)
    train_set, val_set = build_datasets(cfg.data, model.task, with_masks=getattr(model, "with_masks", False))
    class_names = cfg.model.class_names or tuple(train_set.class_names)
    loader = make_loader(train_set, cfg.data, train=True, seed=tc.seed, rank=rank, world_size=world,
                         pin_memory=device.type == "cuda", deterministic=tc.deterministic)
    val_loader = make_loader(val_set, cfg.data, train=False, pin_memory=device.type == "cuda")
    evaluator = build_evaluator(model.task, cfg.model.num_classes, class_names,
                                with_masks=getattr(model, "with_masks", False))
    effective = cfg.data.batch_size * tc.accumulate * world
    lr = tc.lr * (effective / tc.base_batch_size if tc.lr_scaling == "linear" else 1.0)
    optimizer = build_optimizer(model, tc, lr)
    steps_per_epoch = max(1, len(loader) // tc.accumulate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(tc, steps_per_epoch))
    precision = Precision(tc.amp, device, tc.max_nonfinite_steps, tc.on_nonfinite)
    ema = (torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=ema_update(tc.ema_decay, tc.ema_warmup), use_buffers=True)
           if tc.ema_decay else None)
    params = [p for p in model.parameters() if p.requires_grad]
    net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else model
    log = {"rows": [], "best": {}, "best_value": None, "since_best": 0, "epoch": 0, "batches_done": 0, "it": 0}
    if resume:
        state = load_checkpoint(resume)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        precision.load_state_dict(state["precision"])
        if ema is not None and state.get("ema_full"):
            ema.load_state_dict(state["ema_full"])
        for p, g in zip(params, state.get("grads") or ()):
            p.grad = None if g is None else g.to(device)
        log = state["log"]
    main = is_main_process()
    if main:
        (run_dir / "config.yaml").write_text(dump_config(cfg))
        print(f"[train] device {device} x{world}, {precision.name}, effective batch {effective} "
              f"({cfg.data.batch_size} x {tc.accumulate} accumulation x {world} process), lr {lr:.4g}"
              + (f" (linear scaling of {tc.lr:.4g} from batch {tc.base_batch_size})" if tc.lr_scaling == "linear" else ""),
              flush=True)

    def checkpoint(path: Path, epoch_done: int, batches_done: int, running: float = 0.0) -> None:
        # mid-accumulation (Ctrl-C between optimiser steps) the summed gradients are saved too
        partial = batches_done % tc.accumulate != 0
        log.update(epoch=epoch_done, batches_done=batches_done, running=running)
        save_checkpoint({
            "grads": [None if p.grad is None else p.grad.detach().cpu() for p in params] if partial else None,
            "model": model.state_dict(), "ema": None if ema is None else ema.module.state_dict(),
            "ema_full": None if ema is None else ema.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "precision": precision.state_dict(), "log": log,
            "rng": _rng_state(), "config": to_dict(cfg), "class_names": list(class_names),
            "epoch": epoch_done, "metrics": log["rows"][-1] if log["rows"] else {},
        }, path)

    start_epoch, skip = (log["epoch"] + 1, log["batches_done"]) if resume else (1, 0)
    for epoch in range(start_epoch, tc.epochs + 1):
        seed_everything(tc.seed + epoch)
        loader.generator.manual_seed(tc.seed * 100_003 + epoch)
        loader.sampler.set_epoch(epoch, start=skip * cfg.data.batch_size)
        if hasattr(train_set, "set_epoch"):  # mosaic: fresh combinations every epoch
            train_set.set_epoch(epoch)
        if hasattr(train_set, "set_mosaic"):
            train_set.set_mosaic(epoch <= tc.epochs - cfg.data.augment.close_mosaic)
        if skip:
            _set_rng_state(state["rng"])
        net.train()
        num_batches = skip + len(loader)  # len(loader) counts what is left of a resumed epoch
        bar = tqdm(loader, desc=f"epoch {epoch}/{tc.epochs}", disable=quiet or not main, leave=False,
                   initial=skip, total=num_batches)
        running = log.get("running", 0.0) if skip else 0.0
        seen, skipped, start, done = 0, 0, time.perf_counter(), skip
        try:
            for i, batch in enumerate(bar, start=skip):
                images, targets = to_device(batch, device)
                skipped += getattr(batch, "skipped", 0)
                where = f"epoch {epoch}, iteration {log['it']}"
                with precision.autocast():
                    losses = net(images, targets)
                if precision.check_loss(losses, where):
                    loss = sum(losses.values())
                    precision.backward(loss / tc.accumulate)
                    running += loss.item()
                if (i + 1) % tc.accumulate == 0 or i + 1 == num_batches:
                    if precision.step(optimizer, params, tc.clip_grad_norm, where) and ema is not None:
                        ema.update_parameters(model)
                    optimizer.zero_grad(set_to_none=True)
                    scheduler.step()
                done = i + 1
                log["it"] += 1
                seen += len(images)
                bar.set_postfix(loss=f"{running / max(1, i + 1):.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}",
                                img_s=f"{seen * world / (time.perf_counter() - start):.0f}")
        except KeyboardInterrupt:
            if main:
                checkpoint(run_dir / "last.pt", epoch - 1, done, running)
                print(f"\n[train] interrupted: saved {run_dir / 'last.pt'} (epoch {epoch}, batch {done}); "
                      f"continue with --resume {run_dir / 'last.pt'}", flush=True)
            raise
        row = {"epoch": epoch, "train/loss": running / max(1, num_batches), "lr": scheduler.get_last_lr()[0]}
        skip = 0
        if world > 1:
            row = all_reduce_mean(row, device)
            # DDP syncs buffers at the start of each forward; the last forward's BN statistics
            # still differ per rank, so rank 0's are copied to all before validating and saving
            for buffer in model.buffers():
                torch.distributed.broadcast(buffer, 0)
        if skipped:
            row["skipped_images"] = skipped
        if main and (epoch % cfg.eval.interval == 0 or epoch == tc.epochs):
            eval_model = ema.module if ema is not None else model
            row.update(validate(eval_model, val_loader, evaluator, device, precision, quiet=quiet))
        log["rows"].append(row)
        stop = False
        if main:
            value = row.get(cfg.eval.metric)
            if value is not None:
                better = log["best_value"] is None or (value > log["best_value"] if cfg.eval.mode == "max" else value < log["best_value"])
                if better:
                    log.update(best=row, best_value=value, since_best=0)
                else:
                    log["since_best"] += 1
                    stop = cfg.eval.patience is not None and log["since_best"] >= cfg.eval.patience
            checkpoint(run_dir / "last.pt", epoch, 0)
            if log["best"] is row:
                checkpoint(run_dir / "best.pt", epoch, 0)
            shown = [k for k in row if k.startswith(("train/", "val/")) or k in ("lr", "skipped_images", cfg.eval.metric)]
            print(f"epoch {epoch}/{tc.epochs}: " + "  ".join(f"{k}={row[k]:.4g}" for k in shown), flush=True)
            write_csv(log["rows"], run_dir / "metrics.csv")
            plot_curves(log["rows"], run_dir / "curves.png")
            if stop:
                print(f"[train] early stop: no {cfg.eval.metric} improvement in {cfg.eval.patience} validations", flush=True)
        if world > 1:
            flag = torch.tensor([float(stop)], device=device)
            torch.distributed.broadcast(flag, 0)
            stop = bool(flag.item())
        if stop:
            break
    barrier()
    cleanup()
    return log["best"]
