"""Loading torchvision-format ImageNet state dicts from a local file (no downloads, ever)."""

from __future__ import annotations

import os
import re

import torch
from torch import nn

#: state-dict key prefixes of classifier heads, dropped when the model has no head or another K
_HEAD_PREFIXES = ("fc.", "classifier.", "aux1.", "aux2.")

#: torchvision's published DenseNet files use pre-0.4 key names (``denselayer1.norm.1.weight``)
_OLD_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.pth`` file (plain, or wrapped in ``{"state_dict"|"model": ...}``).

    ``module.`` prefixes (DataParallel) are stripped and old DenseNet key names are renamed, as
    torchvision itself does when it loads its published DenseNet files.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pretrained weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or non-torch file: say which file
        raise ValueError(f"cannot read weights from {path}: {exc}") from exc
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    state = {}
    for key, value in obj.items():
        key = key.removeprefix("module.")
        old = _OLD_DENSENET_KEY.match(key)
        state[old.group(1) + old.group(2) if old else key] = value
    return state


def load_torchvision_weights(model: nn.Module, path: str | os.PathLike) -> list[str]:
    """Load a torchvision-format state dict into ``model`` strictly, except for head keys.

    Classifier-head keys (``fc.*``, ``classifier.*``, GoogLeNet ``aux1/aux2.*``) are dropped when
    the model has no such parameters or their shapes differ (fine-tuning on other classes).

    Returns:
        The dropped key names (so callers can log them).

    Raises:
        ValueError: one readable message listing missing, unexpected and mis-shaped keys.
    """
    state = read_state_dict(path)
    own = model.state_dict()
    dropped = [
        k for k, v in state.items()
        if k.startswith(_HEAD_PREFIXES) and (k not in own or own[k].shape != v.shape)
    ]
    for k in dropped:
        del state[k]
    # a head missing from the file stays randomly initialised (backbone-only checkpoints)
    missing = [
        k for k in own
        if k not in state and not k.endswith("num_batches_tracked") and not k.startswith(_HEAD_PREFIXES)
    ]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in state if k in own and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = [f"weights in {path} do not fit {type(model).__name__}:"]
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
            if keys:
                shown = ", ".join(keys[:10]) + (f" ... (+{len(keys) - 10})" if len(keys) > 10 else "")
                parts.append(f"  {title} ({len(keys)}): {shown}")
        parts.append("  (is this the right architecture / width? torchvision-format files only)")
        raise ValueError("\n".join(parts))
    model.load_state_dict({**own, **state}, strict=True)
    return dropped

