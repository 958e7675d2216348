"""Batching: a list of :class:`~detseg.data.sample.Sample` -> one padded :class:`Batch`.

The DataLoader's ``collate_fn`` (:func:`collate`); images stay **uint8** (4x less host-to-device
traffic; models normalise on the device) and are padded bottom/right to a common size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ..structures.instances import Batch, Instances
from ..structures.normalize import IMAGENET_MEAN

__all__ = ["MEAN_COLOUR", "collate", "pad_images"]


#: uint8 RGB of the ImageNet mean: padding that normalises to ~0, as torchvision/Detectron2 pad
MEAN_COLOUR = tuple(round(255 * m) for m in IMAGENET_MEAN)


def pad_images(images: Sequence[Tensor], size_divisibility: int = 32,
               value: int | Sequence[int] = MEAN_COLOUR) -> Tensor:
    """Stack ``[3, Hi, Wi]`` images into ``[N, 3, Hp, Wp]``, padding bottom/right with ``value``.

    ``Hp, Wp`` are the largest sizes rounded up to ``size_divisibility`` (FPN levels then align).
    The default fill is the mean colour, so padded pixels are ~0 after normalisation for every
    model (black would be a dark border the model sees around every smaller image of a batch).
    """
    if not images:
        raise ValueError("pad_images needs at least one image")
    h = max(int(i.shape[1]) for i in images)
    w = max(int(i.shape[2]) for i in images)
    if size_divisibility > 1:
        h = -(-h // size_divisibility) * size_divisibility
        w = -(-w // size_divisibility) * size_divisibility
    out = images[0].new_empty((len(images), images[0].shape[0], h, w))
    out[:] = torch.as_tensor(value, dtype=out.dtype).view(-1, 1, 1)
    for i, img in enumerate(images):
        out[i, :, : img.shape[1], : img.shape[2]].copy_(img)
    return out


def collate(samples: Sequence, size_divisibility: int = 32) -> Batch:
    """DataLoader ``collate_fn``: list of ``Sample`` (``None`` = unreadable, skipped) -> :class:`Batch`.

    Semantic maps are padded with the ignore index 255 so padding never counts as background.

    Raises:
        ValueError: every image of the batch was unreadable (nothing to train on).
    """
    kept = [s for s in samples if s is not None]
    if not kept:
        raise ValueError(f"all {len(samples)} images of a batch were unreadable (see warnings above)")
    images = [torch.from_numpy(np.ascontiguousarray(s.image)).permute(2, 0, 1) for s in kept]
    targets = [Instances.from_sample(s) for s in kept]
    padded = pad_images(images, size_divisibility)
    hp, wp = padded.shape[-2:]
    for t in targets:
        if t.semantic is not None:
            sem = t.semantic.new_full((hp, wp), 255)
            sem[: t.semantic.shape[0], : t.semantic.shape[1]] = t.semantic
            t.semantic = sem
    return Batch(padded, targets, skipped=len(samples) - len(kept))
