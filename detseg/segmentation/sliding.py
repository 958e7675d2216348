"""Sliding-window inference for images larger than the size a segmentation model was trained at.

The image is covered by overlapping ``window x window`` tiles (the last row/column of tiles is
shifted inwards so every tile lies inside the image); the softmax probabilities of all tiles
covering a pixel are averaged, then the arg-max is taken. Images smaller than a window are
predicted whole.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..structures.instances import num_with_background
from .base import SemanticSegmenter


def _starts(size: int, window: int, step: int) -> list[int]:
    if size <= window:
        return [0]
    starts = list(range(0, size - window + 1, step))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


@torch.no_grad()
def sliding_window_probs(model: SemanticSegmenter, images: Tensor, window: int, overlap: float = 0.25,
                         batch_size: int = 8) -> Tensor:
    """Average class probabilities over overlapping tiles.

    Args:
        model: any :class:`SemanticSegmenter` (its ``logits`` pads each tile to its stride).
        images: Tensor[N, 3, H, W] uint8 RGB or float RGB in [0, 1].
        window: tile side in pixels (typically the training image size).
        overlap: fraction of a tile shared with its neighbour, in ``[0, 1)``.
        batch_size: tiles per forward pass.

    Returns:
        Tensor[N, K + 1, H, W] float32 probabilities.
    """
    if window < 1 or not 0 <= overlap < 1:
        raise ValueError(f"need window >= 1 and overlap in [0, 1), got {window}, {overlap}")
    n, _, h, w = images.shape
    step = max(1, int(round(window * (1 - overlap))))
    boxes = [(y, x) for y in _starts(h, window, step) for x in _starts(w, window, step)]
    probs = images.new_zeros((n, num_with_background(model.num_classes), h, w), dtype=torch.float32)
    counts = images.new_zeros((1, 1, h, w), dtype=torch.float32)
    for start in range(0, len(boxes), batch_size):
        chunk = boxes[start: start + batch_size]
        tiles = torch.cat([images[:, :, y: y + window, x: x + window] for y, x in chunk])
        out = model.logits(tiles).float().softmax(dim=1)
        for j, (y, x) in enumerate(chunk):
            th, tw = out.shape[-2:]
            probs[:, :, y: y + th, x: x + tw] += out[j * n: (j + 1) * n]
            counts[:, :, y: y + th, x: x + tw] += 1
    return probs / counts


def predict_sliding(model: SemanticSegmenter, images: Tensor, window: int, overlap: float = 0.25,
                    batch_size: int = 8) -> Tensor:
    """Label map Tensor[N, H, W] int64 (0 background, k + 1 class k) by sliding-window inference."""
    return sliding_window_probs(model, images, window, overlap, batch_size).argmax(dim=1)
