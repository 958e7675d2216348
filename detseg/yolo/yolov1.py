"""YOLOv1 (Redmon et al., 2016 "You Only Look Once"): the original S x S grid detector, for the lineage.

The image is cut into an ``S x S`` grid; the cell that contains an object's centre is
responsible for it. Each cell predicts ``B`` boxes ``(x, y, sqrt(w), sqrt(h), confidence)`` and
one set of ``K`` class probabilities shared by its boxes, all from fully connected layers over
the whole image (the paper's 7 x 7 x 30 tensor for S=7, B=2, K=20). Limits that later YOLOs
removed, visible here: one class and in practice one object per cell (crowded or adjacent small
objects collide), coarse localisation, and FC layers tied to a grid.

Differences from the paper, each for stability on small data: box values and confidences go
through a sigmoid (the paper regresses them linearly), class probabilities through a softmax
(the paper's sum-squared error is kept on them), the backbone is any detseg backbone and the
grid comes from adaptive average pooling of its last stage (so any input size works). Crowd
regions are dropped (the sum-squared loss has no ignore state).

Loss (the paper's sum-squared error, summed over the batch and divided by N)::

    lambda_coord * sum_resp [(x - x^)^2 + (y - y^)^2 + (sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2]
  + sum_resp (C - IoU)^2 + lambda_noobj * sum_not_resp C^2
  + sum_cells_with_object sum_k (p_k - p^_k)^2

reported as ``loss_box``, ``loss_obj`` (both confidence terms) and ``loss_cls``. The responsible
predictor of an object is the one of its cell's ``B`` boxes with the highest IoU; when several
objects fall in one cell, the largest one is the cell's target.

Shape shorthand: N images, S grid size, B boxes per cell, K classes, Hp x Wp padded input size.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones.base import Backbone
from ..backbones.build import build_backbone
from ..detection.base import Detector, check_targets
from ..structures import Normalize
from ..structures.instances import Detections, Instances
from .assigner import pairwise_iou
from .model import postprocess

__all__ = ["YoloV1", "yolov1", "build_yolov1"]


class YoloV1(Detector):
    """The YOLOv1 detector: ``Normalize -> backbone[in_feature] -> conv -> pool to S x S -> FC -> FC``.

    Args:
        backbone: returns ``in_feature``.
        num_classes: K foreground classes (softmax over K per cell; no background class, the
            confidence says whether a box holds an object).
        in_feature: the backbone stage read (``c5``).
        grid_size / boxes_per_cell: S and B.
        conv_channels / hidden / dropout: head sizes (paper: 1024 conv channels, 4096 hidden,
            dropout 0.5).
        lambda_coord / lambda_noobj: loss weights (paper: 5, 0.5).
        score_thresh / nms_iou / max_det: post-processing; the score of a (box, class) pair is
            ``confidence * P(class | object)``, as in the paper.

    Same contract as :class:`~detseg.yolo.model.YOLO`: ``loss`` -> ``{"loss_box", "loss_obj",
    "loss_cls"}``; ``predict`` -> ``list[Detections]`` in the input frame.

    Example:
        >>> model = yolov1("resnet18", num_classes=3, width=0.25)
        >>> model.loss(images, targets), model.predict(images)
    """

    task = "detection"
    with_masks = False

    def __init__(self, backbone: Backbone, *, num_classes: int, in_feature: str = "c5", grid_size: int = 7,
                 boxes_per_cell: int = 2, conv_channels: int = 256, hidden: int = 512, dropout: float = 0.5,
                 lambda_coord: float = 5.0, lambda_noobj: float = 0.5, score_thresh: float = 0.001,
                 nms_iou: float = 0.5, max_det: int = 100) -> None:
        super().__init__()
        if in_feature not in backbone.feature_specs:
            raise ValueError(f"YOLOv1 reads {in_feature!r} but the backbone returns {list(backbone.feature_specs)}")
        self.normalize = Normalize()
        self.backbone = backbone
        self.in_feature = in_feature
        self.num_classes = num_classes
        self.grid_size = grid_size
        self.boxes_per_cell = boxes_per_cell
        channels = backbone.feature_specs[in_feature].channels
        s, b, k = grid_size, boxes_per_cell, num_classes
        self.head = nn.Sequential(
            nn.Conv2d(channels, conv_channels, 3, padding=1, bias=False), nn.BatchNorm2d(conv_channels),
            nn.LeakyReLU(0.1, inplace=True), nn.AdaptiveAvgPool2d(s), nn.Flatten(),
            nn.Linear(conv_channels * s * s, hidden), nn.LeakyReLU(0.1, inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, s * s * (5 * b + k)),
        )
        self.lambda_coord = lambda_coord
        self.lambda_noobj = lambda_noobj
        self.score_thresh = score_thresh
        self.nms_iou = nms_iou
        self.max_det = max_det

    def raw_outputs(self, images: Tensor) -> Tensor:
        """Images -> Tensor[N, S, S, 5B + K]: per cell B x (x, y, sqrt w, sqrt h, conf) logits, then K class logits."""
        x = self.backbone(self.normalize(images))[self.in_feature]
        return self.head(x).view(len(images), self.grid_size, self.grid_size, -1)

    def _decode(self, raw: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
        """Box values Tensor[N, S, S, B, 5] in [0, 1], boxes Tensor[N, S, S, B, 4] xyxy pixels, class probs [N, S, S, K]."""
        s, b = self.grid_size, self.boxes_per_cell
        hp, wp = size
        values = raw[..., : 5 * b].float().sigmoid().view(*raw.shape[:3], b, 5)
        rows = torch.arange(s, device=raw.device, dtype=torch.float32)
        cx = (values[..., 0] + rows[None, None, :, None]) * (wp / s)
        cy = (values[..., 1] + rows[None, :, None, None]) * (hp / s)
        w, h = values[..., 2].square() * wp, values[..., 3].square() * hp
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
        return values, boxes, raw[..., 5 * b:].float().softmax(-1)

    def _encode(self, targets: Sequence[Instances], size: tuple[int, int], device: torch.device):
        """Grid targets: object mask [N, S, S], box values [N, S, S, 4] in cell/image units, boxes [N, S, S, 4] px, labels [N, S, S]."""
        n, s = len(targets), self.grid_size
        hp, wp = size
        obj = torch.zeros((n, s * s), dtype=torch.bool, device=device)
        values = torch.zeros((n, s * s, 4), device=device)
        boxes = torch.zeros((n, s * s, 4), device=device)
        labels = torch.zeros((n, s * s), dtype=torch.int64, device=device)
        for i, t in enumerate(targets):  # per-image scatter; vectorised inside
            keep = ~t.iscrowd.to(device).bool() if t.iscrowd is not None else slice(None)
            gt, lab = t.boxes.to(device).float()[keep], t.labels.to(device)[keep]
            if not len(gt):
                continue
            cx, cy = (gt[:, 0] + gt[:, 2]) / 2 * s / wp, (gt[:, 1] + gt[:, 3]) / 2 * s / hp
            col, row = cx.floor().clamp(0, s - 1), cy.floor().clamp(0, s - 1)
            cell = (row * s + col).long()
            # several objects in one cell: the largest wins (sort by area, then stably by cell)
            area = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
            order = area.argsort(descending=True, stable=True)
            order = order[cell[order].argsort(stable=True)]
            first = torch.ones_like(order, dtype=torch.bool)
            first[1:] = cell[order][1:] != cell[order][:-1]
            j = order[first]
            c = cell[j]
            obj[i, c] = True
            wh = (gt[j, 2:] - gt[j, :2]) / gt.new_tensor([wp, hp])
            values[i, c] = torch.stack([cx[j] - col[j], cy[j] - row[j], wh[:, 0].sqrt(), wh[:, 1].sqrt()], 1)
            boxes[i, c] = gt[j]
            labels[i, c] = lab[j]
        shape = (n, s, s)
        return obj.view(shape), values.view(*shape, 4), boxes.view(*shape, 4), labels.view(shape)

    def loss(self, images: Tensor, targets: Sequence[Instances]) -> dict[str, Tensor]:
        """The paper's sum-squared loss (see the module docstring), divided by the batch size."""
        check_targets(targets, len(images), self.num_classes)
        size = tuple(images.shape[-2:])
        raw = self.raw_outputs(images)
        values, boxes, probs = self._decode(raw, size)
        obj, gt_values, gt_boxes, gt_labels = self._encode(targets, size, images.device)
        with torch.no_grad():
            ious = pairwise_iou(gt_boxes[..., None, :], boxes).squeeze(-2)            # [N, S, S, B]
            best = ious.argmax(-1)
            resp = F.one_hot(best, self.boxes_per_cell).bool() & obj[..., None]      # [N, S, S, B]
        n = len(images)
        coord = (values[..., :4] - gt_values[..., None, :]).square().sum(-1)
        loss_box = self.lambda_coord * (coord * resp).sum() / n
        conf = values[..., 4]
        loss_obj = (((conf - ious) ** 2) * resp).sum() / n + self.lambda_noobj * (conf.square() * ~resp).sum() / n
        onehot = F.one_hot(gt_labels, self.num_classes).float()
        loss_cls = ((probs - onehot).square().sum(-1) * obj).sum() / n
        return {"loss_box": loss_box, "loss_obj": loss_obj, "loss_cls": loss_cls}

    @torch.no_grad()
    def predict(self, images: Tensor, image_sizes: Sequence[tuple[int, int]] | None = None) -> list[Detections]:
        """Detections per image in the input frame: ``conf * P(class)`` scores, threshold, class-aware NMS."""
        size = tuple(images.shape[-2:])
        if image_sizes is None:
            image_sizes = [size] * len(images)
        values, boxes, probs = self._decode(self.raw_outputs(images), size)
        scores = values[..., 4:5] * probs[..., None, :]                                 # [N, S, S, B, K]
        n = len(images)
        scores, boxes = scores.reshape(n, -1, self.num_classes), boxes.reshape(n, -1, 4)
        return [postprocess(scores[i], boxes[i], hw, score_thresh=self.score_thresh, nms_iou=self.nms_iou,
                            pre_nms_top_n=scores.shape[1] * self.num_classes, max_det=self.max_det)
                for i, hw in enumerate(image_sizes)]


def yolov1(backbone: str | Backbone = "resnet18", *, num_classes: int, width: float = 1.0, in_feature: str = "c5",
           **options) -> YoloV1:
    """Build YOLOv1 on a backbone name (built with ``out_features=(in_feature,)``) or a built backbone.

    ``options``: :class:`YoloV1` arguments (``grid_size``, ``boxes_per_cell``, ``hidden`` ...).
    """
    if isinstance(backbone, str):
        backbone = build_backbone(backbone, out_features=(in_feature,), width=width)
    return YoloV1(backbone, num_classes=num_classes, in_feature=in_feature, **options)


def build_yolov1(cfg) -> YoloV1:
    """``ModelConfig`` (``arch: yolov1``) -> :class:`YoloV1`; ``model.yolo.v1`` holds the head settings."""
    b, v = cfg.backbone, cfg.yolo.v1
    backbone = build_backbone(b.name, out_features=(v.in_feature,), width=b.width, pretrained_path=b.pretrained,
                              frozen_stages=b.frozen_stages, freeze_bn=b.freeze_bn)
    return YoloV1(backbone, num_classes=cfg.num_classes, in_feature=v.in_feature, grid_size=v.grid_size,
                  boxes_per_cell=v.boxes_per_cell, conv_channels=v.conv_channels, hidden=v.hidden,
                  dropout=v.dropout, lambda_coord=v.lambda_coord, lambda_noobj=v.lambda_noobj,
                  score_thresh=v.score_thresh, nms_iou=v.nms_iou, max_det=v.max_det)
