"""Matching of anchors/proposals to ground truth and balanced sampling, batched over images.

Ground truth of a batch is padded to ``G = max(1, most boxes in an image)`` per image so that
every image is matched in one tensor operation (no loop over images or anchors); padded slots
are masked out. Crowd boxes are never matched: an anchor/proposal that would be background but
lies mostly inside a crowd region (intersection over its own area >= ``crowd_ioa``) is ignored
instead, so it is neither a positive nor a negative.

Shape shorthand: N images, M anchors or proposals, G padded ground truths per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from ..structures.instances import Instances

#: anchors/proposals with at least this fraction of their area inside a crowd box are ignored
CROWD_IOA = 0.5


def _inter_and_areas(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    lt = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    rb = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter, area_a, area_b


def pairwise_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of Tensor[..., M, 4] and Tensor[..., G, 4] xyxy boxes (batch dims broadcast) -> [..., M, G]."""
    inter, area_a, area_b = _inter_and_areas(a, b)
    return inter / (area_a[..., :, None] + area_b[..., None, :] - inter)


def pairwise_ioa(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over the area of ``a``: Tensor[..., M, 4], Tensor[..., G, 4] -> [..., M, G]."""
    inter, area_a, _ = _inter_and_areas(a, b)
    return inter / area_a[..., :, None].clamp(min=1e-6)


@dataclass
class PaddedTargets:
    """Ground truth of a batch padded to G boxes per image.

    Attributes:
        boxes: Tensor[N, G, 4] xyxy (padding: zeros).
        labels: Tensor[N, G] int64 (padding: 0).
        valid: Tensor[N, G] bool, real non-crowd boxes (the ones that can be matched).
        crowd: Tensor[N, G] bool, crowd (ignore) regions.
    """

    boxes: Tensor
    labels: Tensor
    valid: Tensor
    crowd: Tensor

    @classmethod
    def from_instances(cls, targets: Sequence[Instances], device: torch.device) -> "PaddedTargets":
        n = len(targets)
        g = max([1] + [len(t.boxes) for t in targets])
        boxes = torch.zeros((n, g, 4), device=device)
        labels = torch.zeros((n, g), dtype=torch.int64, device=device)
        real = torch.zeros((n, g), dtype=torch.bool, device=device)
        crowd = torch.zeros((n, g), dtype=torch.bool, device=device)
        for i, t in enumerate(targets):
            m = len(t.boxes)
            boxes[i, :m] = t.boxes.to(device)
            labels[i, :m] = t.labels.to(device)
            real[i, :m] = True
            if t.iscrowd is not None:
                crowd[i, :m] = t.iscrowd.to(device).bool()
        return cls(boxes, labels, real & ~crowd, real & crowd)


class Matcher:
    """Label each anchor/proposal positive (1), negative (0) or ignored (-1) by IoU.

    Max IoU >= ``fg_iou``: positive; < ``bg_iou``: negative; in between: ignored. With
    ``allow_low_quality_matches`` every ground truth's highest-IoU anchors (ties included) are
    positives too, so small or odd-shaped boxes get at least one anchor (Faster R-CNN RPN).

    Args:
        fg_iou, bg_iou: thresholds, ``bg_iou <= fg_iou``.
        allow_low_quality_matches: see above.
    """

    def __init__(self, fg_iou: float, bg_iou: float, allow_low_quality_matches: bool = False) -> None:
        if bg_iou > fg_iou:
            raise ValueError(f"bg_iou {bg_iou} must be <= fg_iou {fg_iou}")
        self.fg_iou, self.bg_iou = fg_iou, bg_iou
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, iou: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
        """Match.

        Args:
            iou: Tensor[..., M, G] IoU of each anchor with each ground truth.
            valid: Tensor[..., G] bool, which ground truths may be matched (not padding/crowd).

        Returns:
            ``matched``: Tensor[..., M] int64 index of the best ground truth (meaningful for
            positives); ``labels``: Tensor[..., M] int8 in {1, 0, -1}.
        """
        iou = iou.masked_fill(~valid[..., None, :], -1.0)
        best, matched = iou.max(dim=-1)
        labels = torch.full_like(matched, -1, dtype=torch.int8)
        labels[best < self.bg_iou] = 0
        labels[best >= self.fg_iou] = 1
        if self.allow_low_quality_matches:
            best_per_gt = iou.max(dim=-2, keepdim=True).values
            low_quality = ((iou == best_per_gt) & (best_per_gt > 0) & valid[..., None, :]).any(dim=-1)
            labels[low_quality] = 1
        return matched, labels


def ignore_crowd(labels: Tensor, boxes: Tensor, targets: PaddedTargets, batch_index: Tensor | None = None) -> Tensor:
    """Turn negatives that lie mostly inside a crowd box into ignored (-1) entries.

    Args:
        labels: Tensor[N, M] (or Tensor[M] with ``batch_index``) in {1, 0, -1}.
        boxes: Tensor[M, 4] anchors shared by all images, or proposals with ``batch_index``.
        batch_index: Tensor[M] image of each proposal; ``None`` for shared anchors.
    """
    if not bool(targets.crowd.any()):
        return labels
    if batch_index is None:
        ioa = pairwise_ioa(boxes[None], targets.boxes)  # [N, M, G]
        crowd = targets.crowd[:, None, :]
    else:
        ioa = pairwise_ioa(boxes[:, None], targets.boxes[batch_index])[:, 0]  # [M, G]
        crowd = targets.crowd[batch_index]
    inside = ((ioa >= CROWD_IOA) & crowd).any(dim=-1)
    return labels.masked_fill((labels == 0) & inside, -1)


def _shuffle_within_groups(mask: Tensor, groups: Tensor, num_groups: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Indices where ``mask`` holds, in random order inside each group, with their group rank."""
    idx = mask.nonzero().squeeze(1)
    idx = idx[torch.randperm(len(idx), device=idx.device)]
    g = groups[idx]
    order = torch.argsort(g, stable=True)
    idx, g = idx[order], g[order]
    counts = torch.bincount(g, minlength=num_groups)
    starts = counts.cumsum(0) - counts
    rank = torch.arange(len(idx), device=idx.device) - starts[g]
    return idx, g, rank, counts


def sample_balanced(labels: Tensor, groups: Tensor, num_groups: int, batch_size_per_image: int,
                    positive_fraction: float) -> tuple[Tensor, Tensor]:
    """Random positives and negatives per image (Faster R-CNN's balanced mini-batch).

    Each image gets at most ``batch_size_per_image * positive_fraction`` positives and fills
    the rest of ``batch_size_per_image`` with negatives (fewer when it has too few).

    Args:
        labels: Tensor[M] in {1, 0, -1} for every anchor/proposal of the batch.
        groups: Tensor[M] int64 image index of each entry.
        num_groups: N.

    Returns:
        ``(positive, negative)`` index tensors into ``labels``.
    """
    pos_idx, pos_g, pos_rank, pos_count = _shuffle_within_groups(labels == 1, groups, num_groups)
    num_pos = pos_count.clamp(max=int(batch_size_per_image * positive_fraction))
    neg_idx, neg_g, neg_rank, neg_count = _shuffle_within_groups(labels == 0, groups, num_groups)
    num_neg = torch.minimum(neg_count, batch_size_per_image - num_pos)
    return pos_idx[pos_rank < num_pos[pos_g]], neg_idx[neg_rank < num_neg[neg_g]]
