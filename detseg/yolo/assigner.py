"""Task-aligned assignment (Feng et al., 2021 "TOOD"; the YOLOv8 assigner), vectorised over the batch.

Each anchor point (a cell centre of a pyramid level) is scored against each object by the
**alignment metric** ``t = s ** alpha * u ** beta``, where ``s`` is the predicted probability of
the object's class and ``u`` the IoU of the predicted box with the object's box. Every object
takes its ``topk`` candidates with the largest ``t`` as positives; an anchor claimed by several
objects keeps the one its box overlaps most. Classification targets are soft: the object's
class gets ``t`` rescaled so that each object's best anchor has target = its best IoU, which
makes the class score double as a localisation-quality score (no separate objectness branch).

Why this rather than SimOTA: both adapt the number of positives to how well the model already
predicts, but task alignment needs no per-object dynamic-k loop nor a cost matrix over all
anchors, so one batched ``topk`` does it; on crowded images, anchors claimed twice are resolved
by IoU in one ``argmax``.

Candidates are the anchor points inside an object's box **or** within ``center_radius`` strides
of its centre (SimOTA's centre prior): without the latter an object smaller than a stride may
contain no anchor point and never be learned.

Shape shorthand: N images, A anchor points (all levels), M objects per image (padded), K classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Assignment", "TaskAlignedAssigner", "pairwise_iou"]


def pairwise_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-9) -> Tensor:
    """Batched IoU of xyxy boxes: Tensor[..., M, 4] x Tensor[..., A, 4] -> Tensor[..., M, A].

    ``torchvision.ops.box_iou`` is 2-d only; this is the same formula broadcast over a batch.
    """
    lt = torch.maximum(boxes1[..., :, None, :2], boxes2[..., None, :, :2])
    rb = torch.minimum(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    return inter / (area1[..., :, None] + area2[..., None, :] - inter + eps)


@dataclass
class Assignment:
    """Targets for every anchor point.

    Attributes:
        fg: Tensor[N, A] bool, positive anchors.
        boxes: Tensor[N, A, 4] xyxy pixels, the assigned object's box (meaningful where ``fg``).
        labels: Tensor[N, A] int64, the assigned object's class (meaningful where ``fg``).
        scores: Tensor[N, A, K] soft classification targets (zero on negatives).
        gt_index: Tensor[N, A] int64, index of the assigned object in the padded targets.
    """

    fg: Tensor
    boxes: Tensor
    labels: Tensor
    scores: Tensor
    gt_index: Tensor


class TaskAlignedAssigner:
    """Assign objects to anchor points by the task-alignment metric (see the module docstring).

    Args:
        num_classes: K foreground classes.
        topk: positives per object (before conflict resolution).
        alpha / beta: exponents of classification score and IoU in the metric.
        center_radius: centre-prior radius in strides (0 disables it: inside-box only).
        eps: numerical guard.

    Example:
        >>> assigner = TaskAlignedAssigner(num_classes=3, topk=10)
        >>> a = assigner(scores, boxes, points, strides, gt_boxes, gt_labels, gt_valid)
        >>> a.fg.shape, a.scores.shape                      # [N, A], [N, A, K]
    """

    def __init__(self, num_classes: int, topk: int = 10, alpha: float = 0.5, beta: float = 6.0,
                 center_radius: float = 2.5, eps: float = 1e-9) -> None:
        self.num_classes = num_classes
        self.topk = topk
        self.alpha = alpha
        self.beta = beta
        self.center_radius = center_radius
        self.eps = eps

    @torch.no_grad()
    def __call__(self, pred_scores: Tensor, pred_boxes: Tensor, points: Tensor, strides: Tensor,
                 gt_boxes: Tensor, gt_labels: Tensor, gt_valid: Tensor) -> Assignment:
        """Assign a batch.

        Args:
            pred_scores: Tensor[N, A, K] class probabilities (after sigmoid), detached.
            pred_boxes: Tensor[N, A, 4] predicted xyxy pixels, detached.
            points: Tensor[A, 2] anchor points (cell centres), ``(x, y)`` pixels.
            strides: Tensor[A] stride of each anchor point's level.
            gt_boxes: Tensor[N, M, 4] xyxy pixels, padded with anything where not ``gt_valid``.
            gt_labels: Tensor[N, M] int64 in ``[0, K)`` (padding: any valid index, e.g. 0).
            gt_valid: Tensor[N, M] bool, real (non-crowd) objects.

        Returns:
            An :class:`Assignment`.
        """
        n, a, k = pred_scores.shape
        m = gt_boxes.shape[1]
        device = pred_scores.device
        if m == 0 or not bool(gt_valid.any()):
            return Assignment(
                fg=torch.zeros((n, a), dtype=torch.bool, device=device),
                boxes=torch.zeros((n, a, 4), device=device),
                labels=torch.zeros((n, a), dtype=torch.int64, device=device),
                scores=torch.zeros((n, a, k), device=device),
                gt_index=torch.zeros((n, a), dtype=torch.int64, device=device),
            )
        gt_boxes = gt_boxes.float()
        pred_scores, pred_boxes = pred_scores.float(), pred_boxes.float()
        # candidates: anchor point inside the box, or near its centre      -> [N, M, A]
        px, py = points[:, 0], points[:, 1]
        x1, y1, x2, y2 = (gt_boxes[..., i, None] for i in range(4))
        inside = (px > x1) & (px < x2) & (py > y1) & (py < y2)
        radius = self.center_radius * strides
        near = ((px - (x1 + x2) / 2).abs() < radius) & ((py - (y1 + y2) / 2).abs() < radius)
        candidate = (inside | near) & gt_valid[..., None]

        ious = pairwise_iou(gt_boxes, pred_boxes).clamp(min=0) * candidate            # [N, M, A]
        labels = gt_labels.clamp(0, k - 1)
        cls_scores = pred_scores.gather(2, labels[:, None, :].expand(n, a, m)).transpose(1, 2)
        metric = cls_scores.pow(self.alpha) * ious.pow(self.beta) * candidate         # [N, M, A]

        # top-k anchors per object; ties at zero metric still pick candidates only
        ranked = metric + candidate.float() * self.eps
        idx = ranked.topk(min(self.topk, a), dim=-1).indices                          # [N, M, k]
        mask_pos = torch.zeros_like(candidate).scatter_(-1, idx, True) & candidate    # [N, M, A]

        # an anchor claimed by several objects keeps the one whose box it overlaps most
        claimed = mask_pos.sum(1, keepdim=True) > 1                                   # [N, 1, A]
        best = torch.where(mask_pos, ious, torch.full_like(ious, -1.0)).argmax(1)     # [N, A]
        best_mask = F.one_hot(best, m).transpose(1, 2).bool()                          # [N, M, A]
        mask_pos = torch.where(claimed, best_mask & mask_pos, mask_pos)

        fg = mask_pos.any(1)                                                          # [N, A]
        gt_index = mask_pos.float().argmax(1)                                         # [N, A]
        target_labels = labels.gather(1, gt_index)
        target_boxes = gt_boxes.gather(1, gt_index[..., None].expand(n, a, 4))

        # soft targets: metric rescaled per object so its best anchor gets its best IoU
        metric = metric * mask_pos
        max_metric = metric.amax(-1, keepdim=True)
        max_iou = (ious * mask_pos).amax(-1, keepdim=True)
        norm = (metric * max_iou / (max_metric + self.eps)).amax(1)                   # [N, A]
        scores = F.one_hot(target_labels, k).float() * (norm * fg)[..., None]
        return Assignment(fg=fg, boxes=target_boxes, labels=target_labels, scores=scores, gt_index=gt_index)
