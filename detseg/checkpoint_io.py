"""The detseg checkpoint file: written atomically, read safely, errors that name the file.

A checkpoint is a dict with at least ``model`` (a state dict) and ``config`` (the resolved
config as a plain dict); training adds ``ema``, ``optimizer``, ``log`` and RNG states.
Training (:mod:`detseg.engine`) writes and resumes these files; inference, evaluation and
fine-tuning read them, so reading and writing live here rather than in the engine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .backbones.weights import load_torch_file
from .errors import InputError

#: config keys added with a default that differs from how models were built before they existed:
#: (arch, dotted key) -> the value that reproduces those older models. A checkpoint whose saved
#: config lacks the key gets this value when read, so its weights still fit the model it describes.
PRE_EXISTING_DEFAULTS: dict[tuple[str, str], Any] = {
    ("yolo", "model.yolo.dfl_bins"): 0,  # box distances were one number per side (4 outputs)
}


class CheckpointError(InputError):
    """A checkpoint that cannot be read or used; the message names the file (one line)."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` via a temporary file and a rename.

    A crash or Ctrl-C during the write leaves the previous file intact, never a truncated one.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a detseg checkpoint; errors name the file and what is wrong with it (one line)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = load_torch_file(path)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or not a torch file?): {reason}") from exc
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"{path} is not a detseg checkpoint (no 'model'/'config' entries)")
    _fill_pre_existing_defaults(state["config"])
    return state


def _fill_pre_existing_defaults(config: dict[str, Any]) -> None:
    """Give a saved config the :data:`PRE_EXISTING_DEFAULTS` it predates (in place)."""
    arch = config.get("model", {}).get("arch")
    for (for_arch, key), value in PRE_EXISTING_DEFAULTS.items():
        *parents, leaf = key.split(".")
        node = config
        for name in parents:
            node = node.get(name) if isinstance(node, dict) else None
        if arch == for_arch and isinstance(node, dict) and leaf not in node:
            node[leaf] = value
