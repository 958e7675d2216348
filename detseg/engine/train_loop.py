"""The training loop: a plain function that fits on a screen, plus its small helpers.

The loop only needs ``model.loss(images, targets) -> dict`` for training and validation loss and
``model.predict(images)`` for metrics; every task plugs in through those two methods.
"""

from __future__ import annotations

import csv
import math
import random
import time
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..config import ExperimentConfig, TrainConfig, dump_config, to_dict
from ..data.classification import build_classification_loaders
from ..evaluation import ClassificationEvaluator
from ..models import build_model
from .checkpoint import save_checkpoint


class NonFiniteLossError(RuntimeError):
    """Raised when a loss is NaN/inf; the last good checkpoint is left untouched."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD or AdamW; no weight decay on biases and normalisation parameters (1-d tensors)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def warmup_cosine(total_iters: int, warmup_iters: int):
    """LR factor per iteration: linear warm-up from 0.001, then cosine decay to 0.01."""
    def factor(it: int) -> float:
        if it < warmup_iters:
            return 0.001 + (1 - 0.001) * it / warmup_iters
        t = (it - warmup_iters) / max(1, total_iters - warmup_iters)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return factor


@torch.no_grad()
def validate(model: nn.Module, loader: Iterable, evaluator, device: torch.device) -> dict[str, float]:
    """Validation loss (``val/<loss>``) and the evaluator's metrics, in eval mode."""
    model.eval()
    evaluator.reset()
    sums: dict[str, float] = {}
    batches = 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        for k, v in model.loss(images, labels).items():
            sums[k] = sums.get(k, 0.0) + float(v)
        evaluator.process(model.predict(images).labels, labels)
        batches += 1
    metrics = {f"val/{k}": v / max(1, batches) for k, v in sums.items()}
    metrics.update(evaluator.evaluate())
    return metrics


def train(cfg: ExperimentConfig, run_dir: Path, *, quiet: bool = False) -> dict[str, float]:
    """Train ``cfg`` into ``run_dir`` (config.yaml, last.pt, best.pt, metrics.csv).

    ``quiet`` turns off progress bars; the one-line summary per epoch is always printed.
    Returns the validation metrics of the best epoch.
    """
    seed_everything(cfg.train.seed)
    device = resolve_device(cfg.train.device)
    train_loader, val_loader = build_classification_loaders(cfg.data)
    class_names = cfg.model.class_names or train_loader.dataset.class_names
    model = build_model(cfg.model).to(device)
    optimizer = build_optimizer(model, cfg.train)
    total = cfg.train.epochs * len(train_loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, cfg.train.warmup_iters))
    evaluator = ClassificationEvaluator(cfg.model.num_classes, tuple(class_names))
    (run_dir / "config.yaml").write_text(dump_config(cfg))
    best, best_value, rows, it = {}, -math.inf, [], 0
    for epoch in range(1, cfg.train.epochs + 1):
        model.train()
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{cfg.train.epochs}", disable=quiet, leave=False)
        running, seen, start = 0.0, 0, time.perf_counter()
        for images, labels in bar:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            losses = model.loss(images, labels)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                terms = {k: v.item() for k, v in losses.items()}
                raise NonFiniteLossError(f"non-finite loss at epoch {epoch}, iteration {it}: {terms}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            it, seen = it + 1, seen + len(images)
            running += float(loss.detach())
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}",
                            img_s=f"{seen / (time.perf_counter() - start):.0f}")
        row = {"epoch": epoch, "train/loss": running / max(1, len(train_loader)),
               "lr": scheduler.get_last_lr()[0]}
        if epoch % cfg.eval.interval == 0 or epoch == cfg.train.epochs:
            row.update(validate(model, val_loader, evaluator, device))
        rows.append(row)
        state = {"model": model.state_dict(), "config": to_dict(cfg), "epoch": epoch,
                 "metrics": row, "class_names": list(class_names)}
        save_checkpoint(state, run_dir / "last.pt")
        value = row.get(cfg.eval.metric)
        if value is not None and value > best_value:
            best_value, best = value, row
            save_checkpoint(state, run_dir / "best.pt")
        shown = [k for k in row if k.startswith(("train/", "val/")) or k in ("lr", cfg.eval.metric)]
        print(f"epoch {epoch}/{cfg.train.epochs}: " + "  ".join(f"{k}={row[k]:.4g}" for k in shown), flush=True)
        write_csv(rows, run_dir / "metrics.csv")
    return best


def write_csv(rows: list[dict[str, float]], path: Path) -> None:
    """One row per epoch; columns are the union of all keys (validation epochs have more)."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
