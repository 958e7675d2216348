"""Loading torchvision-format ImageNet state dicts from a local file (no downloads, ever)."""

from __future__ import annotations

import os
import re

import torch
from torch import nn

from ..errors import InputError

#: state-dict key prefixes of classifier heads, dropped when the model has no head or another K
_HEAD_PREFIXES = ("fc.", "classifier.", "aux1.", "aux2.")

#: torchvision's published DenseNet files use pre-0.4 key names (``denselayer1.norm.1.weight``)
_OLD_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


class WeightsError(InputError):
    """A weights file that cannot be read or does not fit the model (one line naming the file)."""


TORCHVISION_PREFIX = "torchvision:"


def _numpy_globals() -> list:
    """The numpy types a detseg checkpoint pickles (NumPy's RNG state in ``rng``)."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core  # numpy 2 / 1
    return [np.ndarray, np.dtype, core.multiarray._reconstruct, type(np.dtype("uint32"))]


def load_torch_file(path: str | os.PathLike):
    """``torch.load`` with ``weights_only=True`` (never arbitrary code from a file), admitting the
    numpy arrays that detseg checkpoints hold besides tensors."""
    with torch.serialization.safe_globals(_numpy_globals()):
        return torch.load(path, map_location="cpu", weights_only=True)


def resolve(source: str | os.PathLike) -> str:
    """A local file for ``source``: a path, or a ``torchvision:<Weights>.<NAME>`` name.

    Names go through torchvision's weights API to the file in torch's hub cache
    (``$TORCH_HOME/hub/checkpoints``), downloaded there when missing and the machine is online.
    """
    source = str(source)
    if not source.startswith(TORCHVISION_PREFIX):
        if not os.path.isfile(source):
            raise WeightsError(f"weights file not found: {source}")
        return source
    name = source[len(TORCHVISION_PREFIX):]
    from torchvision.models import get_weight

    try:
        weights = get_weight(name)
    except (ValueError, KeyError, AttributeError) as exc:
        raise WeightsError(f"{source}: not a torchvision weights name such as ResNet50_Weights.IMAGENET1K_V2 "
                           f"({' '.join(str(exc).split())})") from None
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    if not os.path.isfile(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            torch.hub.download_url_to_file(weights.url, path, progress=True)
        except Exception as exc:
            raise WeightsError(f"{source}: cannot download {weights.url} ({type(exc).__name__}); on an offline "
                               f"machine put the file at {path}") from None
    return path


def rename_old_densenet_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``denselayer1.norm.1.weight`` -> ``denselayer1.norm1.weight`` (torchvision's published files)."""
    out = {}
    for key, value in state.items():
        old = _OLD_DENSENET_KEY.match(key)
        out[old.group(1) + old.group(2) if old else key] = value
    return out


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.pth`` file (plain, or wrapped in ``{"state_dict"|"model": ...}``)
    or a ``torchvision:`` weights name (see :func:`resolve`).

    ``module.`` prefixes (DataParallel) are stripped and old DenseNet key names are renamed, as
    torchvision itself does when it loads its published DenseNet files.
    """
    path = resolve(path)
    try:
        obj = load_torch_file(path)
    except Exception as exc:  # corrupt or non-torch file: say which file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot read weights from {path} (truncated or not a torch file?): {reason}") from exc
    if isinstance(obj, dict) and "config" in obj and "model" in obj:
        raise WeightsError(f"{path} is a detseg checkpoint: start a new run from it with model.weights={path} "
                           "(a backbone's pretrained file is an ImageNet state dict)")
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors")
    return rename_old_densenet_keys({key.removeprefix("module."): value for key, value in obj.items()})


def load_torchvision_weights(model: nn.Module, path: str | os.PathLike) -> list[str]:
    """Load a torchvision-format state dict into ``model`` strictly, except for head keys.

    Classifier-head keys (``fc.*``, ``classifier.*``, GoogLeNet ``aux1/aux2.*``) are dropped when
    the model has no such parameters or their shapes differ (fine-tuning on other classes).

    Returns:
        The dropped key names (so callers can log them).

    Raises:
        WeightsError: one line listing the first missing, unexpected and mis-shaped keys.
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
        parts = []
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
            if keys:
                shown = ", ".join(keys[:3]) + (f" ... (+{len(keys) - 3})" if len(keys) > 3 else "")
                parts.append(f"{title} {len(keys)}: {shown}")
        raise WeightsError(f"weights in {path} do not fit {type(model).__name__} ({'; '.join(parts)}); is this the "
                           "right architecture and width? (torchvision-format backbone files only)")
    model.load_state_dict({**own, **state}, strict=True)
    return dropped

