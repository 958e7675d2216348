"""Starting weights for a new run (``model.weights``): whatever fits, from whatever people have.

Fine-tuning starts from a model trained on other classes or other data: a detseg checkpoint
(any class count), a torchvision detection / segmentation / classification state dict of the
same architecture, or just a backbone's ImageNet file. :func:`load_weights` maps the file's
names onto the model's in the ways those files are laid out, keeps the mapping under which the
most tensors fit by name *and* shape, loads those, and leaves every other tensor as the model
was built (freshly initialised heads of another class count, typically). One summary line says
how much was loaded and which parts start fresh, so a silently ignored file cannot pass for
fine-tuning.

``torchvision:<Weights>.<NAME>`` names (e.g. ``torchvision:ResNet50_Weights.IMAGENET1K_V2``)
are resolved through torchvision's weights API to the file in torch's hub cache
(``$TORCH_HOME/hub/checkpoints``), downloaded there when missing and the machine is online.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Callable

from torch import Tensor, nn

from .backbones.base import Backbone
from .backbones.weights import WeightsError, load_torch_file, rename_old_densenet_keys, resolve

def read_weights(source: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of a weights file: a state dict, or the (EMA) model of a detseg checkpoint.

    ``module.`` prefixes (DataParallel) are stripped; ``{"state_dict"|"model": ...}`` wrappers
    are opened.
    """
    path = resolve(source)
    try:
        obj = load_torch_file(path)
    except Exception as exc:
        raise WeightsError(f"cannot read weights from {path} (truncated or not a torch file?): "
                           f"{' '.join(str(exc).split())[:200]}") from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict) and "config" in obj:
        obj = obj.get("ema") or obj["model"]  # a detseg checkpoint: its validated (EMA) weights
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise WeightsError(f"{path} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _candidates(model: nn.Module, state: dict[str, Tensor]) -> dict[str, dict[str, Tensor]]:
    """The file's tensors renamed in each way files are laid out, by name of the layout."""
    from .detection.faster_rcnn import from_torchvision_state_dict

    out = {"same names": dict(state), "torchvision detector": from_torchvision_state_dict(state)}
    backbones = [name for name, m in model.named_modules() if isinstance(m, Backbone)]
    # a classifier's or backbone's file, or the backbone part of a torchvision segmenter/detector
    for strip in ("", "backbone.", "backbone.body."):
        part = rename_old_densenet_keys({k[len(strip):]: v for k, v in state.items() if k.startswith(strip)})
        for name in backbones:
            out[f"backbone file ({strip or 'whole'} -> {name or 'model'})"] = {
                (f"{name}.{k}" if name else k): v for k, v in part.items()}
    return out


def _groups(names: list[str], depth: int = 2) -> str:
    counts = Counter(".".join(n.split(".")[:depth]) for n in names)
    return ", ".join(f"{g} ({c})" for g, c in counts.most_common(6)) + (" ..." if len(counts) > 6 else "")


def load_weights(model: nn.Module, source: str | os.PathLike, log: Callable[[str], None] = print) -> int:
    """Load every tensor of ``source`` that fits ``model`` by name and shape; the rest stays as built.

    Returns:
        The number of tensors loaded.

    Raises:
        WeightsError: the file is missing, unreadable, or nothing in it fits the model.
    """
    state = read_weights(source)
    own = model.state_dict()
    wanted = [k for k in own if not k.endswith("num_batches_tracked")]

    def fitting(candidate: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: v for k, v in candidate.items() if k in own and v.shape == own[k].shape}

    layout, matched = max(((name, fitting(c)) for name, c in _candidates(model, state).items()),
                          key=lambda item: sum(not k.endswith("num_batches_tracked") for k in item[1]))
    loaded = [k for k in wanted if k in matched]
    if not loaded:
        raise WeightsError(f"nothing in {source} fits this {type(model).__name__} ({len(state)} tensors, e.g. "
                           f"{next(iter(state))}): another architecture?")
    model.load_state_dict({**own, **matched})
    fresh = [k for k in wanted if k not in matched]
    log(f"[weights] {source}: loaded {len(loaded)}/{len(wanted)} tensors ({layout})"
        + (f"; initialised afresh: {_groups(fresh)}" if fresh else "; every tensor of the model"))
    return len(loaded)
