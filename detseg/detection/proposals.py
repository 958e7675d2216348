"""Classical region proposals for R-CNN and Fast R-CNN: a selective-search-like grouping.

Uijlings et al. (2013) over-segment the image, then greedily merge the most similar pair of
adjacent regions until one is left; every region ever formed is a proposal. Selective search
proper lives in opencv-contrib (``cv2.ximgproc``), which detseg does not depend on, so this is
a compact version on plain OpenCV + NumPy:

1. over-segmentation: colour quantisation (k-means in Lab space, a few values of k for
   diversity), then connected components of each colour;
2. grouping: adjacent regions merge by colour, size and fill similarity (the paper's
   ``s_colour + s_size + s_fill``), recording the box of each merged region.

It runs on a downscaled copy of the image (``work_size``), so it costs a few milliseconds per
image at 128 px and tens at 640 px: slow next to an RPN, which is the point of the lineage.

Proposals can also come from a file (:func:`load_proposals`), e.g. from the original
selective search or EdgeBoxes, and be passed to ``loss``/``predict`` of the R-CNN models.
"""

from __future__ import annotations

import heapq
import json
import math
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch import Tensor
from torchvision.ops import nms


def _oversegment(lab: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Region ids Tensor[H, W] int32: connected components of the k-means colour clusters."""
    pixels = lab.reshape(-1, 3).astype(np.float32)
    cv2.setRNGSeed(int(rng.integers(1 << 30)))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 8, 1.0)
    _, clusters, _ = cv2.kmeans(pixels, k, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    clusters = clusters.reshape(lab.shape[:2])
    regions = np.zeros(lab.shape[:2], np.int32)
    next_id = 0
    for c in range(k):
        n, comp = cv2.connectedComponents((clusters == c).astype(np.uint8), connectivity=4)
        inside = comp > 0
        regions[inside] = comp[inside] + next_id - 1
        next_id += n - 1
    return regions


def _group(regions: np.ndarray, lab: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Hierarchical grouping; returns the box ``(x1, y1, x2, y2)`` of every region formed."""
    h, w = regions.shape
    n = int(regions.max()) + 1
    flat = regions.ravel()
    size = np.bincount(flat, minlength=n).astype(np.float64)
    colour = np.stack([np.bincount(flat, lab[..., c].ravel(), minlength=n) for c in range(3)], 1) / size[:, None]
    ys, xs = np.divmod(np.arange(h * w), w)
    boxes = np.stack([
        np.full(n, w), np.full(n, h), np.zeros(n, np.int64), np.zeros(n, np.int64)], 1).astype(np.int64)
    np.minimum.at(boxes[:, 0], flat, xs)
    np.minimum.at(boxes[:, 1], flat, ys)
    np.maximum.at(boxes[:, 2], flat, xs + 1)
    np.maximum.at(boxes[:, 3], flat, ys + 1)
    pairs = np.concatenate([
        np.stack([regions[:, :-1].ravel(), regions[:, 1:].ravel()], 1),
        np.stack([regions[:-1].ravel(), regions[1:].ravel()], 1)])
    pairs = np.unique(np.sort(pairs[pairs[:, 0] != pairs[:, 1]], axis=1), axis=0)
    neighbours: dict[int, set[int]] = {i: set() for i in range(n)}
    for a, b in pairs.tolist():
        neighbours[a].add(b)
        neighbours[b].add(a)
    size_l, colour_l, boxes_l = size.tolist(), [tuple(c) for c in colour.tolist()], [tuple(b) for b in boxes.tolist()]
    area = float(h * w)

    def similarity(a: int, b: int) -> float:
        x1, y1, x2, y2 = (min(boxes_l[a][0], boxes_l[b][0]), min(boxes_l[a][1], boxes_l[b][1]),
                          max(boxes_l[a][2], boxes_l[b][2]), max(boxes_l[a][3], boxes_l[b][3]))
        s = size_l[a] + size_l[b]
        s_colour = math.exp(-math.dist(colour_l[a], colour_l[b]) / 20.0)
        return s_colour + (1.0 - s / area) + (1.0 - ((x2 - x1) * (y2 - y1) - s) / area)

    # max-heap of candidate merges; entries whose regions were merged since are skipped
    heap = [(-similarity(a, b), a, b) for a, b in pairs.tolist()]
    heapq.heapify(heap)
    alive = set(range(n))
    out = list(boxes_l)
    while heap:
        _, a, b = heapq.heappop(heap)
        if a not in alive or b not in alive:
            continue
        new = len(size_l)
        size_l.append(size_l[a] + size_l[b])
        colour_l.append(tuple((ca * size_l[a] + cb * size_l[b]) / size_l[new] for ca, cb in zip(colour_l[a], colour_l[b])))
        boxes_l.append((min(boxes_l[a][0], boxes_l[b][0]), min(boxes_l[a][1], boxes_l[b][1]),
                        max(boxes_l[a][2], boxes_l[b][2]), max(boxes_l[a][3], boxes_l[b][3])))
        out.append(boxes_l[new])
        merged = (neighbours.pop(a) | neighbours.pop(b)) - {a, b}
        alive -= {a, b}
        alive.add(new)
        neighbours[new] = merged
        for r in merged:
            neighbours[r] -= {a, b}
            neighbours[r].add(new)
            heapq.heappush(heap, (-similarity(r, new), r, new))
    return out


def selective_search(image: np.ndarray, *, ks: Sequence[int] = (6, 12), work_size: int = 96,
                     max_proposals: int = 300, min_size: float = 4.0, seed: int = 0) -> np.ndarray:
    """Region proposals of one image by colour over-segmentation and hierarchical grouping.

    Args:
        image: HxWx3 uint8 RGB.
        ks: colour cluster counts of the over-segmentations (each adds a hierarchy).
        work_size: the longest side the image is downscaled to before segmenting.
        max_proposals: most boxes returned (large hierarchy levels first, then the rest).
        min_size: boxes narrower or shorter than this (in image pixels) are dropped.
        seed: k-means initialisation seed (proposals are deterministic given it).

    Returns:
        float32 ``[P, 4]`` xyxy boxes in image pixels, near-duplicates (IoU > 0.9) removed.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"selective_search needs an HxWx3 uint8 image, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    scale = min(1.0, work_size / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(cv2.GaussianBlur(small, (3, 3), 0), cv2.COLOR_RGB2LAB).astype(np.float32)
    rng = np.random.default_rng(seed)
    boxes: list[tuple[int, int, int, int]] = []
    for k in ks:
        boxes += _group(_oversegment(lab, k, rng), lab)
    b = torch.tensor(boxes, dtype=torch.float32) / scale
    b[:, 0::2] = b[:, 0::2].clamp(0, w)
    b[:, 1::2] = b[:, 1::2].clamp(0, h)
    wh = b[:, 2:] - b[:, :2]
    b = b[(wh >= min_size).all(1)]
    # NMS by area: big groups survive near-duplicate removal, the order favours them at the cut
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    keep = nms(b, area / (h * w), 0.9)
    return b[keep[:max_proposals]].numpy()


def images_to_proposals(images: Tensor, image_sizes: Sequence[tuple[int, int]], **options) -> list[Tensor]:
    """Selective search on each image of a padded uint8/float batch Tensor[N, 3, Hp, Wp]."""
    out = []
    for img, (h, w) in zip(images, image_sizes):
        x = img[:, :h, :w]
        if x.dtype != torch.uint8:
            x = (x.float().clamp(0, 1) * 255).round().to(torch.uint8)
        boxes = selective_search(np.ascontiguousarray(x.permute(1, 2, 0).cpu().numpy()), **options)
        out.append(torch.from_numpy(boxes).to(images.device))
    return out


def load_proposals(path: str | Path) -> dict[str, Tensor]:
    """Proposals from a JSON file ``{"image file name": [[x1, y1, x2, y2], ...], ...}`` (pixels).

    Raises:
        ValueError: naming the file and the entry when a box list is malformed.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read proposals: {e}") from e
    out = {}
    for name, boxes in data.items():
        t = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4) if len(boxes) else torch.zeros(0, 4)
        if len(boxes) and (t.shape[0] != len(boxes) or not bool(((t[:, 2:] > t[:, :2]).all()))):
            raise ValueError(f"{path}: entry {name!r}: proposals must be [[x1, y1, x2, y2], ...] with x2 > x1, y2 > y1")
        out[name] = t
    return out


__all__ = ["images_to_proposals", "load_proposals", "selective_search"]
