"""Run folders that never overwrite an earlier run, and what a resumed run may change.

Reading and writing the checkpoint file itself is :mod:`detseg.checkpoint_io`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..checkpoint_io import CheckpointError


def new_run_dir(out_dir: str | os.PathLike, name: str) -> Path:
    """``out_dir/name``, or ``name-2``, ``name-3`` ... when it exists: earlier runs are kept."""
    base = Path(out_dir) / name
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


#: config keys a resumed run can take from new overrides (prefixes): the optimiser's
#: hyperparameters, the schedule and its length, validation, precision, logging; the rest
#: (model, data, batch, accumulation, seed) shaped the saved state and is refused
RESUMABLE_CHANGES = (
    "train.epochs", "train.lr", "train.schedule", "train.milestones", "train.gamma", "train.power",
    "train.warmup_iters", "train.momentum", "train.nesterov", "train.weight_decay", "train.lr_scaling",
    "train.base_batch_size", "train.clip_grad_norm", "train.ema_warmup", "train.amp", "train.max_nonfinite_steps",
    "train.on_nonfinite", "train.divergence_factor", "train.deterministic", "train.device", "train.out_dir",
    "train.name", "train.tensorboard", "eval.", "data.num_workers", "data.max_bad_fraction",
)


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_leaves(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: list(tree) if isinstance(tree, tuple) else tree}


def check_resume_config(checkpoint: dict[str, Any], cfg) -> list[str]:
    """The differences between a checkpoint's config and ``cfg`` that a resume will apply.

    Returns:
        ``"key old -> new"`` for each applied change (to be printed).

    Raises:
        ConfigError: a change a running run cannot take (e.g. ``model.num_classes``), in one line.
    """
    from ..config import ConfigError, to_dict

    if "step" not in checkpoint.get("log", {}):
        raise CheckpointError("this checkpoint was written by an older detseg and cannot be resumed exactly; "
                         "start a new run (its weights load with model.weights=...)")
    old, new = _leaves(checkpoint["config"]), _leaves(to_dict(cfg))
    from_data = ("model.num_classes", "model.class_names")  # unset: the run's (taken from its data)
    changed = sorted(k for k in old.keys() | new.keys()
                     if old.get(k) != new.get(k) and not (k in from_data and new.get(k) is None))
    refused = [k for k in changed if not k.startswith(RESUMABLE_CHANGES)]
    if refused:
        detail = ", ".join(f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in refused)
        raise ConfigError(f"--resume cannot change {detail}: the saved run was built with the old value; "
                          f"start a new run instead")
    return [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in changed]
