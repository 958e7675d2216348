"""The YOLO detection loss: task-aligned targets, IoU-family box loss, BCE/focal class loss and,
for a head that predicts distance distributions, YOLOv8's distribution focal loss (DFL).

Shape shorthand: N images, A anchor points (all levels), K classes, M objects per image (padded).

Normalisation follows YOLOv8: both terms are divided by the sum of the soft class targets over
the batch (at least 1), so an image's weight grows with how well its objects are already
localised, and a batch of empty images gives zero box loss and a class loss that only pushes
scores down.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import complete_box_iou_loss, generalized_box_iou_loss, sigmoid_focal_loss

from ..structures.instances import Instances
from .assigner import TaskAlignedAssigner

__all__ = ["YoloLoss", "pad_targets", "distribution_focal_loss"]


def pad_targets(targets: Sequence[Instances], device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Stack per-image ground truth into padded tensors (the assigner works on the whole batch).

    Returns:
        ``boxes`` Tensor[N, M, 4] xyxy pixels, ``labels`` Tensor[N, M] int64, ``valid``
        Tensor[N, M] bool (real, non-crowd objects) and ``crowd`` Tensor[N, M] bool (crowd
        regions: ignored, never positives), M = most objects of any image.
    """
    n = len(targets)
    m = max((len(t.boxes) for t in targets), default=0)
    boxes = torch.zeros((n, m, 4), device=device)
    labels = torch.zeros((n, m), dtype=torch.int64, device=device)
    valid = torch.zeros((n, m), dtype=torch.bool, device=device)
    crowd = torch.zeros((n, m), dtype=torch.bool, device=device)
    for i, t in enumerate(targets):
        k = len(t.boxes)
        if not k:
            continue
        is_crowd = t.iscrowd.to(device).bool() if t.iscrowd is not None else torch.zeros(k, dtype=torch.bool, device=device)
        boxes[i, :k] = t.boxes.to(device).float()
        labels[i, :k] = t.labels.to(device)
        valid[i, :k] = ~is_crowd
        crowd[i, :k] = is_crowd
    return boxes, labels, valid, crowd


def distribution_focal_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Distribution focal loss (Li et al., GFL, 2020; YOLOv8's ``DFLoss``): cross-entropy to the
    two bins around a continuous target, weighted by closeness, so the distribution's mean is
    pulled to the target and its mass to the nearest bins.

    Args:
        logits: Tensor[P, 4, R] bin logits of the four sides of P positives.
        target: Tensor[P, 4] distances in bins (strides), clamped here to ``[0, R - 1.01]``.

    Returns:
        Tensor[P], the loss of each positive (mean over its four sides).
    """
    target = target.clamp(0, logits.shape[-1] - 1.01)
    left = target.long()
    w_right = target - left
    logp = F.log_softmax(logits.float(), -1)
    at_left, at_right = logp.gather(-1, left[..., None])[..., 0], logp.gather(-1, left[..., None] + 1)[..., 0]
    return -(at_left * (1 - w_right) + at_right * w_right).mean(-1)


class YoloLoss:
    """Assign targets and compute ``loss_cls`` and ``loss_box`` from decoded predictions.

    Args:
        assigner: the task-aligned assigner.
        box_loss: ``ciou`` or ``giou`` (torchvision's losses on xyxy boxes).
        cls_loss: ``bce`` or ``focal`` (``sigmoid_focal_loss`` with gamma 2, alpha 0.25), against
            the soft targets.
        box_weight / cls_weight: weights of the two terms.
        dfl_weight: weight of ``loss_dfl``, the distribution focal loss, when the head predicts
            distance distributions (``box_dist`` given to the call).
    """

    def __init__(self, assigner: TaskAlignedAssigner, box_loss: Literal["ciou", "giou"] = "ciou",
                 cls_loss: Literal["bce", "focal"] = "bce", box_weight: float = 7.5, cls_weight: float = 0.5,
                 dfl_weight: float = 1.5) -> None:
        self.assigner = assigner
        self.box_loss = {"ciou": complete_box_iou_loss, "giou": generalized_box_iou_loss}[box_loss]
        self.cls_loss = cls_loss
        self.box_weight = box_weight
        self.cls_weight = cls_weight
        self.dfl_weight = dfl_weight

    def __call__(self, cls_logits: Tensor, pred_boxes: Tensor, points: Tensor, strides: Tensor,
                 targets: Sequence[Instances], box_dist: Tensor | None = None) -> dict[str, Tensor]:
        """Losses of a batch.

        Args:
            cls_logits: Tensor[N, A, K] class logits.
            pred_boxes: Tensor[N, A, 4] decoded xyxy pixels (with gradient).
            points: Tensor[A, 2] anchor points ``(x, y)`` pixels; strides: Tensor[A].
            targets: one :class:`Instances` per image (checked by the model).
            box_dist: Tensor[N, A, 4, R] distance-bin logits of a distribution head, or ``None``.

        Returns:
            ``{"loss_cls": scalar, "loss_box": scalar}``, and ``loss_dfl`` with ``box_dist``.
        """
        cls_logits, pred_boxes = cls_logits.float(), pred_boxes.float()
        gt_boxes, gt_labels, gt_valid, gt_crowd = pad_targets(targets, cls_logits.device)
        a = self.assigner(cls_logits.detach().sigmoid(), pred_boxes.detach(), points, strides,
                          gt_boxes, gt_labels, gt_valid)
        # anchor points inside a crowd region are ignored (neither positive nor negative)
        px, py = points[:, 0], points[:, 1]
        x1, y1, x2, y2 = (gt_boxes[..., i, None] for i in range(4))
        in_crowd = ((px > x1) & (px < x2) & (py > y1) & (py < y2) & gt_crowd[..., None]).any(1)
        weight = (~(in_crowd & ~a.fg)).float()[..., None]                               # [N, A, 1]
        norm = a.scores.sum().clamp(min=1.0)
        if self.cls_loss == "focal":
            cls = sigmoid_focal_loss(cls_logits, a.scores, reduction="none")
        else:
            cls = F.binary_cross_entropy_with_logits(cls_logits, a.scores, reduction="none")
        loss_cls = (cls * weight).sum() / norm
        box_weight = a.scores.sum(-1)[a.fg]                                             # [P]
        loss_box = (self.box_loss(pred_boxes[a.fg], a.boxes[a.fg], reduction="none") * box_weight).sum() / norm
        losses = {"loss_cls": self.cls_weight * loss_cls, "loss_box": self.box_weight * loss_box}
        if box_dist is not None:
            fg_points = points.expand(len(a.fg), -1, -1)[a.fg]                           # [P, 2]
            fg_boxes = a.boxes[a.fg]
            ltrb = torch.cat([fg_points - fg_boxes[:, :2], fg_boxes[:, 2:] - fg_points], -1)
            ltrb = ltrb / strides.expand_as(a.fg)[a.fg][:, None]                         # in strides = bins
            loss_dfl = (distribution_focal_loss(box_dist[a.fg], ltrb) * box_weight).sum() / norm
            losses["loss_dfl"] = self.dfl_weight * loss_dfl
        return losses
