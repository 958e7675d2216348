"""Checkpoints written atomically, and run folders that never overwrite an earlier run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` via a temporary file and a rename.

    A crash or Ctrl-C during the write leaves the previous file intact, never a truncated one.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a detseg checkpoint; errors name the file and what is wrong with it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(f"{path} is not a detseg checkpoint (no 'model'/'config' entries)")
    return state


def new_run_dir(out_dir: str | os.PathLike, name: str) -> Path:
    """``out_dir/name``, or ``name-2``, ``name-3`` ... when it exists: earlier runs are kept."""
    base = Path(out_dir) / name
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path
