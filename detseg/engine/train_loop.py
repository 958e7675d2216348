"""The training loop: a few named steps over one small state object.

:func:`train` builds a :class:`Run` (what stays fixed during a run: model, loaders, optimiser,
precision) and a :class:`RunState` (what a checkpoint restores: progress, schedule clock, log),
then runs :func:`train_epoch` (batches -> optimiser steps) and :func:`end_epoch` (validate,
keep the best, save, log) per epoch. The loop only needs ``model(images, targets)`` in training
mode (the loss dict; called through ``forward`` so DistributedDataParallel synchronises
gradients), ``model.loss`` in eval mode for the validation loss and ``model.predict`` for
metrics; every task plugs in through those methods.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..checkpoint_io import CheckpointError, load_checkpoint, save_checkpoint
from ..config import ConfigError, ExperimentConfig, TrainConfig, dump_config, to_dict
from ..data.build import build_datasets, make_loader
from ..models import build_model, model_spec
from ..utils.device import resolve_device
from ..weights import load_weights
from .checkpoint import check_resume_config
from .curves import plot_curves, write_csv
from .distributed import all_reduce_mean, barrier, cleanup, init_distributed, is_main_process, local_device
from .evaluate import build_evaluator, to_device, validate
from .interrupt import StopRequest
from .precision import NonFiniteLossError, Precision, TrainingStopped
from .tensorboard import TensorBoardLogger

__all__ = ["DivergenceError", "NonFiniteLossError", "TrainingStopped", "train", "build_optimizer", "lr_factor"]

#: warm-up never takes more than this share of a run's optimiser steps
MAX_WARMUP_FRACTION = 0.2


class DivergenceError(TrainingStopped):
    """The smoothed training loss grew past ``train.divergence_factor`` x the run's first loss."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_optimizer(model: nn.Module, cfg: TrainConfig, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """SGD or AdamW; no weight decay on biases and normalisation parameters (1-d tensors)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    return torch.optim.AdamW(groups, lr=lr)


def warmup_steps(cfg: TrainConfig, total_steps: int) -> int:
    """``cfg.warmup_iters``, capped to :data:`MAX_WARMUP_FRACTION` of the run's steps."""
    return min(cfg.warmup_iters, int(MAX_WARMUP_FRACTION * total_steps))


def lr_factor(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """LR multiplier after ``step`` optimiser steps: linear warm-up from 0.001, then the schedule.

    ``steps_per_epoch`` must count the steps the loop really takes (a last, partial
    accumulation window steps too), or the schedule ends early.
    """
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = warmup_steps(cfg, total)

    def factor(step: int) -> float:
        if step < warmup:
            return 0.001 + (1 - 0.001) * step / warmup
        t = min(1.0, (step - warmup) / max(1, total - warmup))
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


@dataclass
class RunState:
    """What a checkpoint restores besides weights and optimiser: where the run is, and its log.

    Attributes:
        epoch: epochs completed.
        batches_done: batches of epoch ``epoch + 1`` already trained (a stop mid-epoch).
        step: optimiser steps taken: the clock of the LR schedule.
        iteration: batches trained since the run began (named in error messages).
        running: summed loss of the batches of the current epoch.
        rows: one dict of logged values per completed epoch.
        best / best_value / since_best: the row of the best validation, its ``eval.metric`` and
            how many validations ago it was.
        first_loss / loss_ema: the run's first loss and a smoothed loss (divergence check).
    """

    epoch: int = 0
    batches_done: int = 0
    step: int = 0
    iteration: int = 0
    running: float = 0.0
    rows: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)
    best_value: float | None = None
    since_best: int = 0
    first_loss: float | None = None
    loss_ema: float | None = None


@dataclass
class Run:
    """Everything that stays fixed while a run trains (built once by :func:`build_run`)."""

    cfg: ExperimentConfig
    run_dir: Path
    device: torch.device
    world: int
    model: nn.Module
    net: nn.Module                 # ``model``, or its DDP wrapper
    train_set: Any
    loader: Any
    val_loader: Any
    evaluator: Any
    optimizer: torch.optim.Optimizer
    precision: Precision
    ema: torch.optim.swa_utils.AveragedModel | None
    params: list[nn.Parameter]
    lr: float                      # base LR (after linear scaling)
    schedule: Callable[[int], float]
    accumulate: int
    loss_scale: float              # effective batch under ``nominal_batch_size``, else 1
    class_names: tuple[str, ...]
    category_ids: list[int]
    quiet: bool
    tensorboard: TensorBoardLogger = field(default_factory=lambda: TensorBoardLogger(None))  # opened by train()

    @property
    def main(self) -> bool:
        return is_main_process()


def classes_from_data(cfg: ExperimentConfig, dataset) -> ExperimentConfig:
    """``cfg`` with ``model.num_classes`` and ``model.class_names`` taken from ``dataset`` where unset.

    Raises:
        ConfigError: the config's class count disagrees with the data's (before anything trains).
    """
    names = tuple(dataset.class_names)
    m = cfg.model
    if m.num_classes is not None and m.num_classes != len(names):
        shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
        raise ConfigError(f"model.num_classes={m.num_classes} but the training data has {len(names)} classes "
                          f"({shown}); remove model.num_classes to take the data's, or fix the data")
    if m.class_names is None and is_main_process():
        print(f"[train] {len(names)} classes from the data: " + ", ".join(names[:10])
              + (f" ... (+{len(names) - 10})" if len(names) > 10 else ""), flush=True)
    model = replace(m, num_classes=len(names), class_names=m.class_names or names)
    return replace(cfg, model=model)


def build_run(cfg: ExperimentConfig, run_dir: Path, quiet: bool, resuming: bool = False) -> Run:
    """Model, data, optimiser, schedule and precision of ``cfg`` (joins DDP under torchrun).

    A new run starts from ``model.weights`` when set (a resumed one from its checkpoint).
    """
    tc = cfg.train
    set_deterministic(tc.deterministic)
    device = local_device(resolve_device(tc.device))
    rank, world = init_distributed(device)
    spec = model_spec(cfg.model.arch)
    with_masks = spec.with_masks
    train_set, val_set = build_datasets(cfg.data, spec.task, with_masks=with_masks, seed=tc.seed, rank=rank,
                                        report_dir=run_dir)
    cfg = classes_from_data(cfg, train_set)
    class_names = cfg.model.class_names
    # the dataset's own category ids (COCO ids are not contiguous), so results can be written in them
    category_ids = [int(c) for c in getattr(train_set, "category_ids", None) or range(1, len(class_names) + 1)]
    seed_everything(tc.seed)
    model = build_model(cfg.model, pretrained=not resuming)  # a resumed run's weights come from its checkpoint
    if cfg.model.weights and not resuming:
        load_weights(model, cfg.model.weights, log=print if is_main_process() else lambda line: None)
    model.to(device)
    loader = make_loader(train_set, cfg.data, train=True, seed=tc.seed, rank=rank, world_size=world,
                         pin_memory=device.type == "cuda", deterministic=tc.deterministic)
    val_loader = make_loader(val_set, cfg.data, train=False, pin_memory=device.type == "cuda")
    evaluator = build_evaluator(model.task, cfg.model.num_classes, class_names, with_masks=with_masks)
    per_step = cfg.data.batch_size * world
    accumulate = max(1, round(tc.nominal_batch_size / per_step)) if tc.nominal_batch_size else tc.accumulate
    effective = per_step * accumulate
    lr = tc.lr * (effective / tc.base_batch_size if tc.lr_scaling == "linear" else 1.0)
    weight_decay = tc.weight_decay * (effective / tc.nominal_batch_size if tc.nominal_batch_size else 1.0)
    optimizer = build_optimizer(model, tc, lr, weight_decay)
    steps_per_epoch = max(1, math.ceil(len(loader) / accumulate))  # the last, partial window steps too
    ema = (torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=ema_update(tc.ema_decay, tc.ema_warmup), use_buffers=True)
           if tc.ema_decay else None)
    net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else model
    params = [p for p in model.parameters() if p.requires_grad]
    run = Run(cfg, run_dir, device, world, model, net, train_set, loader, val_loader, evaluator, optimizer,
              Precision(tc.amp, device, tc.max_nonfinite_steps, tc.on_nonfinite, params), ema,
              params, lr, lr_factor(tc, steps_per_epoch), accumulate,
              float(effective) if tc.nominal_batch_size else 1.0, class_names, category_ids, quiet)
    if run.main:
        total = tc.epochs * steps_per_epoch
        print(f"[train] device {device} x{world}, {run.precision.name}, effective batch {effective} "
              f"({cfg.data.batch_size} x {accumulate} accumulation x {world} process), lr {lr:.4g}"
              + (f" (linear scaling of {tc.lr:.4g} from batch {tc.base_batch_size})" if tc.lr_scaling == "linear" else "")
              + (f"; nominal batch {tc.nominal_batch_size}: loss x {effective} (summed over images), "
                 f"weight decay {weight_decay:.3g}" if tc.nominal_batch_size else ""),
              flush=True)
        if device.type == "cpu" and spec.task != "classification" and cfg.data.augment.image_size >= 512:
            print(f"[train] {cfg.data.augment.image_size} px images on a CPU: an epoch takes a while; "
                  f"data.augment.image_size=320 is about {(cfg.data.augment.image_size / 320) ** 2:.0f}x faster",
                  flush=True)
        if loader.num_workers != cfg.data.num_workers:
            print(f"[train] data.num_workers {cfg.data.num_workers} -> {loader.num_workers}: this machine gives "
                  f"the run {loader.num_workers} CPU cores", flush=True)
        if warmup_steps(tc, total) < tc.warmup_iters:
            print(f"[train] warm-up: {warmup_steps(tc, total)} step(s) ({tc.warmup_iters} configured, capped to "
                  f"{MAX_WARMUP_FRACTION:.0%} of this run's {total} optimiser steps)", flush=True)
    return run


def set_lr(run: Run, step: int) -> None:
    """The schedule's LR after ``step`` optimiser steps, in every parameter group."""
    for group in run.optimizer.param_groups:
        group["lr"] = run.lr * run.schedule(step)


def save(run: Run, state: RunState, path: Path, *, rng: dict | None = None) -> None:
    """Write a checkpoint of the run as it is now (mid-window gradients included)."""
    partial = state.batches_done % run.accumulate != 0
    save_checkpoint({
        "grads": [None if p.grad is None else p.grad.detach().cpu() for p in run.params] if partial else None,
        "model": run.model.state_dict(), "ema": None if run.ema is None else run.ema.module.state_dict(),
        "ema_full": None if run.ema is None else run.ema.state_dict(), "optimizer": run.optimizer.state_dict(),
        "precision": run.precision.state_dict(), "log": asdict(state), "rng": rng or _rng_state(),
        "config": to_dict(run.cfg), "class_names": list(run.class_names), "category_ids": run.category_ids,
        "epoch": state.epoch, "metrics": state.rows[-1] if state.rows else {}, "world": run.world,
    }, path)


def restore(run: Run, checkpoint: dict) -> RunState:
    """Load a ``last.pt`` into ``run``; hyperparameters come from the (possibly changed) config."""
    run.model.load_state_dict(checkpoint["model"])
    fresh = [{k: v for k, v in g.items() if k != "params"} for g in run.optimizer.param_groups]
    run.optimizer.load_state_dict(checkpoint["optimizer"])
    for group, hyper in zip(run.optimizer.param_groups, fresh):  # train.lr, weight_decay ... as configured now
        group.update(hyper)
    run.precision.load_state_dict(checkpoint["precision"])
    if run.ema is not None and checkpoint.get("ema_full"):
        run.ema.load_state_dict(checkpoint["ema_full"])
    for p, g in zip(run.params, checkpoint.get("grads") or ()):
        p.grad = None if g is None else g.to(run.device)
    state = RunState(**checkpoint["log"])
    saved_world = checkpoint.get("world", 1)
    if state.batches_done and saved_world != run.world:
        raise CheckpointError(f"this run stopped mid-epoch on {saved_world} process(es); resume it on "
                              f"{saved_world}, or from an epoch boundary")
    saved_eval = checkpoint["config"].get("eval", {})
    if (saved_eval.get("metric"), saved_eval.get("mode")) != (run.cfg.eval.metric, run.cfg.eval.mode):
        pick_best(state, run.cfg.eval.metric, run.cfg.eval.mode)
    set_lr(run, state.step)
    return state


def is_better(value: float, best: float | None, mode: str) -> bool:
    """Strictly better than ``best`` under ``mode`` (``max``/``min``); anything beats ``None``."""
    return best is None or (value > best if mode == "max" else value < best)


def pick_best(state: RunState, metric: str, mode: str) -> None:
    """Recompute the best row and the patience count from the log (``eval.metric`` changed)."""
    state.best, state.best_value, state.since_best = {}, None, 0
    for row in state.rows:
        value = row.get(metric)
        if value is None or math.isnan(value):
            continue
        improved = is_better(value, state.best_value, mode)
        if improved or value == state.best_value:
            state.best, state.best_value = row, value
        state.since_best = 0 if improved else state.since_best + 1


def check_finite_weights(run: Run, where: str) -> None:
    """Refuse to save weights that are NaN/inf (a checkpoint must never hold a broken model)."""
    for source, module in (("model", run.model), ("EMA", None if run.ema is None else run.ema.module)):
        for name, tensor in (module.state_dict().items() if module is not None else ()):
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise NonFiniteLossError(f"non-finite {source} weights ({name}) at {where}")


def watch_loss(state: RunState, value: float, losses: dict[str, torch.Tensor], factor: float | None, where: str) -> None:
    """Track the smoothed loss and stop when it grows past ``factor`` x the run's first loss."""
    state.first_loss = value if state.first_loss is None else state.first_loss
    state.loss_ema = value if state.loss_ema is None else 0.9 * state.loss_ema + 0.1 * value
    reference = max(state.first_loss, 0.1)
    if factor is not None and state.loss_ema > factor * reference:
        terms = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
        raise DivergenceError(f"training diverged at {where}: smoothed loss {state.loss_ema:.4g} is "
                              f"{state.loss_ema / reference:.3g}x the first loss {state.first_loss:.4g} "
                              f"(this batch: {terms}); lower train.lr or set train.clip_grad_norm")


def _synced(loss: torch.Tensor, world: int) -> torch.Tensor:
    """The loss every rank judges: the mean over ranks under DDP (so all skip or stop together)."""
    if world == 1:
        return loss.detach()
    total = loss.detach().float().clone()
    torch.distributed.all_reduce(total)
    return total / world


def average_gradients(params: list[nn.Parameter], world: int) -> None:
    """Average the gradients over ranks by hand (what DDP's backward does), missing ones as zeros."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        torch.distributed.all_reduce(p.grad)
        p.grad /= world


def train_step(run: Run, state: RunState, batch, i: int, num_batches: int, epoch: int) -> int:
    """Batch ``i`` of the epoch: forward, checks, backward; a step at the end of its window.

    Returns the number of images of the batch.
    """
    tc = run.cfg.train
    images, targets = to_device(batch, run.device)
    where = f"epoch {epoch}, iteration {state.iteration}"
    window_start = i - i % run.accumulate
    window = min(run.accumulate, num_batches - window_start)  # the epoch's last window may be shorter
    last = i + 1 == window_start + window
    sync = contextlib.nullcontext() if run.world == 1 or last else run.net.no_sync()
    with sync:
        with run.precision.autocast():
            losses = run.net(images, targets)
        loss = sum(losses.values())
        total = _synced(loss, run.world)
        finite = run.precision.check_loss(losses, where, total)  # the same answer on every rank
        if finite:
            run.precision.backward(loss * (run.loss_scale / window))
            value = total.item()
            state.running += value
            run.tensorboard.log_step(state.iteration + 1, total, losses, run.optimizer.param_groups[0]["lr"])
            watch_loss(state, value, losses, tc.divergence_factor, where)
    if last:
        if not finite and run.world > 1:  # no backward outside no_sync: DDP did not average the window
            average_gradients(run.params, run.world)
        if run.precision.step(run.optimizer, run.params, tc.clip_grad_norm, where) and run.ema is not None:
            run.ema.update_parameters(run.model)
        run.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        set_lr(run, state.step)
    state.batches_done = i + 1
    state.iteration += 1
    return len(images)


def train_epoch(run: Run, state: RunState, epoch: int, stop: StopRequest, resume_rng: dict | None) -> dict[str, float]:
    """Train epoch ``epoch`` from batch ``state.batches_done``; returns its row of the log.

    Raises:
        KeyboardInterrupt: after a Ctrl-C, once ``last.pt`` holds the state after the last batch.
    """
    tc, data = run.cfg.train, run.cfg.data
    seed_everything(tc.seed + epoch)
    if state.batches_done:  # resumed mid-epoch: the generators as they were at that batch boundary
        _set_rng_state(resume_rng[torch.distributed.get_rank()] if run.world > 1 else resume_rng)
    run.loader.generator.manual_seed(tc.seed * 100_003 + epoch)
    run.loader.sampler.set_epoch(epoch, start=state.batches_done * data.batch_size)
    if hasattr(run.train_set, "set_epoch"):  # augmentation (and mosaic partners) per epoch
        run.train_set.set_epoch(epoch)
    if hasattr(run.train_set, "set_mosaic"):
        run.train_set.set_mosaic(epoch <= tc.epochs - data.augment.close_mosaic)
    run.net.train()
    num_batches = state.batches_done + len(run.loader)  # len(loader) counts what is left of the epoch
    bar = tqdm(run.loader, desc=f"epoch {epoch}/{tc.epochs}", disable=run.quiet or not run.main, leave=False,
               initial=state.batches_done, total=num_batches)
    seen, skipped, start = 0, 0, time.perf_counter()
    batches = iter(bar)
    for i in range(state.batches_done, num_batches):
        try:
            batch = next(batches)
        except StopIteration:
            break
        except RuntimeError:
            if not stop.requested:  # a DataLoader worker ended by the same Ctrl-C is not an error
                raise
            break
        skipped += getattr(batch, "skipped", 0)
        seen += train_step(run, state, batch, i, num_batches, epoch)
        rate = seen * run.world / (time.perf_counter() - start)
        bar.set_postfix(loss=f"{state.running / max(1, i + 1):.3f}", lr=f"{run.optimizer.param_groups[0]['lr']:.2e}",
                        img_s=f"{rate:.3g}")
        if stop.agreed(run.device):
            break
    if state.batches_done < num_batches:  # stopped by Ctrl-C
        save_interrupted(run, state, f"epoch {epoch}, batch {state.batches_done}/{num_batches}")
    # every rank has every key, so that DDP can average the rows key by key
    return {"epoch": epoch, "train/loss": state.running / max(1, num_batches), "lr": run.optimizer.param_groups[0]["lr"],
            "skipped_images": skipped}


def save_interrupted(run: Run, state: RunState, where: str) -> None:
    """Save the state after the last completed batch, then raise ``KeyboardInterrupt``.

    Under DDP every rank gets here together: the partial window's gradients are averaged (each
    rank holds only its own, under ``no_sync``) and every rank's random state is kept.
    """
    if run.world > 1 and state.batches_done % run.accumulate:
        average_gradients(run.params, run.world)
    rng = _rng_state()
    if run.world > 1:
        states: list = [None] * run.world
        torch.distributed.all_gather_object(states, rng)
        rng = states
    check_finite_weights(run, where)
    if run.main:
        save(run, state, run.run_dir / "last.pt", rng=rng)
        print(f"[train] interrupted: saved {run.run_dir / 'last.pt'} ({where}); continue with "
              f"--resume {run.run_dir / 'last.pt'}", flush=True)
    raise KeyboardInterrupt


def end_epoch(run: Run, state: RunState, epoch: int, row: dict[str, float]) -> bool:
    """Validate, keep the best, save ``last.pt``/``best.pt``, log; returns whether to stop early."""
    cfg = run.cfg
    skipped = row.pop("skipped_images")
    if run.world > 1:
        row = all_reduce_mean(row, run.device)
        skipped = int(round(all_reduce_mean({"n": float(skipped)}, run.device)["n"] * run.world))
        # DDP syncs buffers at the start of each forward; the last forward's BN statistics
        # still differ per rank, so rank 0's are copied to all before validating and saving
        for buffer in run.model.buffers():
            torch.distributed.broadcast(buffer, 0)
    if skipped:
        row["skipped_images"] = skipped
    state.epoch, state.batches_done, state.running = epoch, 0, 0.0
    check_finite_weights(run, f"the end of epoch {epoch}")
    stop = False
    if run.main:
        if epoch % cfg.eval.interval == 0 or epoch == cfg.train.epochs:
            eval_model = run.ema.module if run.ema is not None else run.model
            row.update(validate(eval_model, run.val_loader, run.evaluator, run.device, run.precision, quiet=run.quiet,
                                resize=cfg.data.augment))
            run.tensorboard.log_predictions(state.iteration, eval_model, run.val_loader.dataset,
                                            run.val_loader.collate_fn, run.device, run.class_names)
        state.rows.append(row)
        value = row.get(cfg.eval.metric)
        if value is not None and not math.isnan(value):
            improved = is_better(value, state.best_value, cfg.eval.mode)
            if improved or value == state.best_value:  # a tie: best.pt becomes the later, longer-trained epoch
                state.best, state.best_value = row, value
            state.since_best = 0 if improved else state.since_best + 1
            stop = cfg.eval.patience is not None and state.since_best >= cfg.eval.patience
        save(run, state, run.run_dir / "last.pt")
        if state.best is row:
            save(run, state, run.run_dir / "best.pt")
        shown = [k for k in row if k.startswith(("train/", "val/")) or k in ("lr", "skipped_images", cfg.eval.metric)]
        print(f"epoch {epoch}/{cfg.train.epochs}: " + "  ".join(f"{k}={row[k]:.4g}" for k in shown), flush=True)
        write_csv(state.rows, run.run_dir / "metrics.csv")
        plot_curves(state.rows, run.run_dir / "curves.png")
        run.tensorboard.log_epoch(state.iteration, row)
        if stop:
            print(f"[train] early stop: no {cfg.eval.metric} improvement in {cfg.eval.patience} validations", flush=True)
    else:
        state.rows.append(row)
    if run.world > 1:
        flag = torch.tensor([float(stop)], device=run.device)
        torch.distributed.broadcast(flag, 0)
        stop = bool(flag.item())
    return stop


def train(cfg: ExperimentConfig, run_dir: Path, *, quiet: bool = False, resume: str | Path | None = None) -> dict[str, float]:
    """Train ``cfg`` into ``run_dir``: config.yaml, last.pt, best.pt, metrics.csv, curves.png.

    Args:
        quiet: no progress bars; the one-line summary per epoch is always printed.
        resume: a ``last.pt`` to continue from exactly (weights, optimiser, schedule clock,
            scaler, EMA, epoch and batch inside it, RNG states). Hyperparameters that can change
            mid-run (``train.lr``, ``train.epochs``, the schedule, ``eval.*`` ...) follow ``cfg``;
            other differences from the checkpoint's config are refused.

    Returns:
        The metrics of the best validation (by ``cfg.eval.metric``).

    Raises:
        TrainingStopped: a non-finite loss, gradient or weights, or a diverging loss; the last
            good checkpoint is kept.
        KeyboardInterrupt: after Ctrl-C, with ``last.pt`` saved at the last completed batch.
        ConfigError: ``resume`` with a config change that cannot be applied to a running run.
    """
    checkpoint = load_checkpoint(resume) if resume else None  # a bad file fails before anything is built
    if checkpoint is not None:
        changes = check_resume_config(checkpoint, cfg)
    run = build_run(cfg, run_dir, quiet, resuming=checkpoint is not None)
    state = restore(run, checkpoint) if checkpoint is not None else RunState()
    if run.main:
        (run_dir / "config.yaml").write_text(dump_config(run.cfg))  # with the classes the data gave
        if checkpoint is not None and changes:
            print("[train] resume applies: " + ", ".join(changes), flush=True)
    set_lr(run, state.step)
    resume_rng = checkpoint["rng"] if checkpoint is not None else None
    # rank 0 only; what a resumed run logged after its last.pt is purged from the view (trained again)
    run.tensorboard = TensorBoardLogger(run_dir if run.main and cfg.train.tensorboard else None,
                                        purge_step=state.iteration + 1 if checkpoint is not None else None)
    with StopRequest() as stop, run.tensorboard:
        for epoch in range(state.epoch + 1, cfg.train.epochs + 1):
            row = train_epoch(run, state, epoch, stop, resume_rng)
            if end_epoch(run, state, epoch, row):
                break
            if stop.agreed(run.device) and epoch < cfg.train.epochs:  # after the last epoch: done anyway
                if run.main:
                    print(f"[train] interrupted after epoch {epoch}: {run_dir / 'last.pt'} is saved", flush=True)
                raise KeyboardInterrupt
    barrier()
    cleanup()
    return state.best
