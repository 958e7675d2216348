"""Second stage of Fast/Faster R-CNN: RoIAlign, two-FC box head, per-class scores and boxes.

Names mirror torchvision (``box_roi_pool``, ``box_head.fc6/fc7``, ``box_predictor.cls_score/
bbox_pred``). Classification has ``K + 1`` outputs with **background first** (index 0), then
class ``k`` at index ``k + 1``: torchvision's layout, so its checkpoints map directly.

Shape shorthand: N images, R RoIs in the batch, K foreground classes, C feature channels,
S pooler size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import MultiScaleRoIAlign

from ..config.two_stage import RoIHeadsConfig, loss_beta
from ..structures.instances import Detections, Instances, num_with_background
from .box_coder import BoxCoder, clip_boxes
from .matcher import Matcher, PaddedTargets, ignore_crowd, pairwise_iou, sample_balanced
from .traceable import batched_nms


@dataclass
class RoISample:
    """The RoIs a training step scores, grouped by image.

    Attributes:
        rois: N tensors Tensor[R_i, 4] xyxy (proposals and ground truth).
        classes: Tensor[R] int64 in [0, K], 0 background, k + 1 class k.
        target_deltas: Tensor[R, 4] box-regression targets (zero for background).
        matched: Tensor[R] int64 index of the matched ground truth in its image (positives only).
        per_image: R_i for each image.
    """

    rois: list[Tensor]
    classes: Tensor
    target_deltas: Tensor
    matched: Tensor
    per_image: list[int]


class TwoMLPHead(nn.Module):
    """Flatten + fc6 + ReLU + fc7 + ReLU: Tensor[R, C, S, S] -> Tensor[R, representation_size]."""

    def __init__(self, in_channels: int, representation_size: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_channels, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.fc7(F.relu(self.fc6(x.flatten(start_dim=1)))))


class FastRCNNPredictor(nn.Module):
    """Class logits Tensor[R, K + 1] (background first) and class-specific deltas Tensor[R, 4(K + 1)]."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_with_background(num_classes))
        self.bbox_pred = nn.Linear(in_channels, num_with_background(num_classes) * 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.flatten(start_dim=1)
        return self.cls_score(x), self.bbox_pred(x)


class RoIHeads(nn.Module):
    """Box branch of the R-CNN family, shared by Fast R-CNN (external proposals) and Faster R-CNN.

    Training (``loss``): the ground-truth boxes join the proposals, proposals are matched to
    ground truth by IoU (crowd regions are never positives), a balanced sample per image is
    pooled, and the losses are cross-entropy over K + 1 classes plus smooth-L1 on the deltas of
    the true class (positives only), both normalised by the number of sampled RoIs.
    Inference (``predict``): softmax scores, class-specific boxes clipped to the image,
    score threshold, per-class NMS, top ``detections_per_img``.

    Args:
        box_roi_pool: ``MultiScaleRoIAlign`` over the feature maps (one map or FPN levels;
            FPN levels are assigned by RoI size).
        box_head: RoI features -> Tensor[R, D] (:class:`TwoMLPHead`).
        box_predictor: Tensor[R, D] -> (logits, deltas) (:class:`FastRCNNPredictor`).
        num_classes: K foreground classes.
        fg_iou / bg_iou: proposal matching thresholds.
        batch_size_per_image / positive_fraction: RoIs sampled per image for the losses.
        bbox_reg_weights: box coder weights.
        score_thresh / nms_iou / detections_per_img: inference post-processing.
        smooth_l1_beta: smooth-L1 switch point; 0 gives an L1 loss.
    """

    def __init__(
        self,
        box_roi_pool: MultiScaleRoIAlign,
        box_head: nn.Module,
        box_predictor: nn.Module,
        *,
        num_classes: int,
        fg_iou: float = 0.5,
        bg_iou: float = 0.5,
        batch_size_per_image: int = 512,
        positive_fraction: float = 0.25,
        bbox_reg_weights: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
        score_thresh: float = 0.05,
        nms_iou: float = 0.5,
        detections_per_img: int = 100,
        smooth_l1_beta: float = 1.0 / 9.0,
        min_size: float = 1e-2,
    ) -> None:
        super().__init__()
        self.box_roi_pool = box_roi_pool
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.num_classes = num_classes
        self.box_coder = BoxCoder(bbox_reg_weights)
        self.matcher = Matcher(fg_iou, bg_iou, allow_low_quality_matches=False)
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.score_thresh = score_thresh
        self.nms_iou = nms_iou
        self.detections_per_img = detections_per_img
        self.smooth_l1_beta = smooth_l1_beta
        self.min_size = min_size

    @classmethod
    def from_config(cls, cfg: RoIHeadsConfig, box_roi_pool: nn.Module, box_head: nn.Module,
                    num_classes: int) -> "RoIHeads":
        """The box branch of ``model.two_stage.roi_heads`` around a pooler and a box head whose
        output is ``cfg.representation_size`` wide (a :class:`FastRCNNPredictor` goes on top)."""
        return cls(
            box_roi_pool, box_head, FastRCNNPredictor(cfg.representation_size, num_classes), num_classes=num_classes,
            fg_iou=cfg.fg_iou, bg_iou=cfg.bg_iou, batch_size_per_image=cfg.batch_size_per_image,
            positive_fraction=cfg.positive_fraction, bbox_reg_weights=cfg.bbox_reg_weights,
            score_thresh=cfg.score_thresh, nms_iou=cfg.nms_iou, detections_per_img=cfg.detections_per_img,
            smooth_l1_beta=loss_beta(cfg.box_loss, cfg.smooth_l1_beta),
        )

    def forward(self, features: dict[str, Tensor], proposals: Sequence[Tensor],
                image_sizes: Sequence[tuple[int, int]]) -> tuple[Tensor, Tensor]:
        """Pool and classify RoIs.

        Args:
            features: name -> Tensor[N, C, Hl, Wl] (``box_roi_pool`` picks its maps).
            proposals: N tensors Tensor[R_i, 4] xyxy absolute pixels.
            image_sizes: true ``(H, W)`` per image (the pooler infers level scales from them).

        Returns:
            ``logits`` Tensor[R, K + 1], ``deltas`` Tensor[R, 4(K + 1)], RoIs in image order.
        """
        pooled = self.box_roi_pool(features, list(proposals), [tuple(s) for s in image_sizes])
        return self.box_predictor(self.box_head(pooled))

    def sample(self, proposals: Sequence[Tensor], targets: Sequence[Instances]) -> RoISample:
        """Add ground truth to the proposals, match them and draw a balanced sample per image."""
        n = len(proposals)
        device = proposals[0].device
        gt = PaddedTargets.from_instances(targets, device)
        # ground truth as proposals: the head always sees perfect boxes (torchvision, Detectron2)
        boxes = torch.cat([torch.cat([p, t.boxes[~t.iscrowd].to(p)]) for p, t in zip(proposals, targets)])
        counts = torch.tensor([len(p) + int((~t.iscrowd).sum()) for p, t in zip(proposals, targets)], device=device)
        image = torch.arange(n, device=device).repeat_interleave(counts)
        # each RoI is a batch of one against its own image's ground truth: [R, 1, G]
        iou = pairwise_iou(boxes[:, None], gt.boxes[image])
        matched, labels = (x[:, 0] for x in self.matcher(iou, gt.valid[image]))
        labels = ignore_crowd(labels, boxes, gt, image)
        pos, neg = sample_balanced(labels, image, n, self.batch_size_per_image, self.positive_fraction)
        sampled = torch.cat([pos, neg]).sort().values  # grouped by image again
        is_pos = labels[sampled] == 1
        matched = matched[sampled]
        matched_boxes = gt.boxes[image[sampled], matched]
        classes = torch.where(is_pos, gt.labels[image[sampled], matched] + 1, 0)
        target_deltas = self.box_coder.encode(matched_boxes, boxes[sampled])
        target_deltas = torch.where(is_pos[:, None], target_deltas, 0.0)  # background: no box target
        per_image = torch.bincount(image[sampled], minlength=n).tolist()
        return RoISample(list(boxes[sampled].split(per_image)), classes, target_deltas, matched, per_image)

    def loss(self, features: dict[str, Tensor], proposals: Sequence[Tensor], targets: Sequence[Instances],
             image_sizes: Sequence[tuple[int, int]], sample: RoISample | None = None) -> dict[str, Tensor]:
        """``{"loss_roi_cls", "loss_roi_box"}`` on a balanced sample of (proposals + ground truth).

        ``sample``: a sample drawn beforehand with :meth:`sample` (Mask R-CNN reuses it).
        """
        if sample is None:
            with torch.no_grad():
                sample = self.sample(proposals, targets)
        classes = sample.classes
        logits, deltas = self(features, sample.rois, image_sizes)
        num = max(1, len(classes))
        loss_cls = F.cross_entropy(logits, classes, reduction="sum") / num
        pos = (classes > 0).nonzero().squeeze(1)
        deltas = deltas.view(len(deltas), num_with_background(self.num_classes), 4)[pos, classes[pos]]
        loss_box = F.smooth_l1_loss(deltas, sample.target_deltas[pos].to(deltas.dtype), beta=self.smooth_l1_beta,
                                    reduction="sum") / num
        return {"loss_roi_cls": loss_cls, "loss_roi_box": loss_box}

    @torch.no_grad()
    def predict(self, features: dict[str, Tensor], proposals: Sequence[Tensor],
                image_sizes: Sequence[tuple[int, int]]) -> list[Detections]:
        """Detections per image, in the input frame, clipped to ``image_sizes``, scores descending."""
        logits, deltas = self(features, proposals, image_sizes)
        return self.postprocess(logits.float(), deltas.float(), proposals, image_sizes)

    def postprocess(self, logits: Tensor, deltas: Tensor, proposals: Sequence[Tensor],
                    image_sizes: Sequence[tuple[int, int]]) -> list[Detections]:
        """Scores, class boxes, threshold and per-class NMS for the whole batch at once."""
        n = len(proposals)
        device = logits.device
        counts = torch.tensor([len(p) for p in proposals], device=device)
        image = torch.arange(n, device=device).repeat_interleave(counts)
        sizes = torch.as_tensor(image_sizes, dtype=torch.float32, device=device).view(n, 2)
        rois = torch.cat(list(proposals))
        boxes, scores, labels, image, keep = self.select(logits, deltas, rois, sizes[image], image)
        keep = keep[torch.argsort(image[keep], stable=True)]
        img = image[keep]
        per_image = torch.bincount(img, minlength=n)
        rank = torch.arange(len(keep), device=device) - (per_image.cumsum(0) - per_image)[img]
        keep = keep[rank < self.detections_per_img]
        chunks = per_image.clamp(max=self.detections_per_img).tolist()
        return [Detections(b, s, l) for b, s, l in zip(
            boxes[keep].split(chunks), scores[keep].split(chunks), labels[keep].split(chunks))]

    def select(self, logits: Tensor, deltas: Tensor, rois: Tensor, sizes: Tensor,
               image: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Every (RoI, class) candidate and the ones kept, before the per-image top-N; traceable
        (no data-dependent Python), so :meth:`~.faster_rcnn.TwoStageDetector.export_outputs` runs it too.

        Args:
            logits / deltas: the head's Tensor[R, K + 1] and Tensor[R, 4(K + 1)].
            rois: Tensor[R, 4] xyxy; sizes: Tensor[R, 2] ``(H, W)`` of each RoI's image;
            image: Tensor[R] int64 image index of each RoI.

        Returns:
            ``boxes`` Tensor[R * K, 4], ``scores``, ``labels`` (0-based), ``image`` Tensor[R * K],
            ``keep``: indices above ``score_thresh`` and at least ``min_size`` that class-wise
            NMS kept per image, by decreasing score.
        """
        k = self.num_classes
        rois = rois.float()
        # .shape[0], not len(): len() makes a plain int of a size that is symbolic under export
        boxes = self.box_coder.decode(deltas.float().view(-1, num_with_background(k), 4), rois[:, None, :])  # [R, K+1, 4]
        boxes = clip_boxes(boxes, sizes.to(boxes)[:, None, :])[:, 1:].reshape(-1, 4)  # drop background
        scores = F.softmax(logits.float(), dim=-1)[:, 1:].reshape(-1)
        labels = torch.arange(k, device=logits.device).repeat(rois.shape[0])
        image = image.repeat_interleave(k)
        wh = boxes[:, 2:] - boxes[:, :2]
        keep = ((scores > self.score_thresh) & (wh >= self.min_size).all(dim=1)).nonzero().squeeze(1)
        keep = keep[batched_nms(boxes[keep], scores[keep], image[keep] * k + labels[keep], self.nms_iou)]
        return boxes, scores, labels, image, keep


def roi_pooler(cfg: RoIHeadsConfig, in_features: Sequence[str], output_size: int | None = None) -> MultiScaleRoIAlign:
    """RoIAlign over the maps ``in_features`` with the sampling and FPN level rule of ``cfg``.

    Args:
        output_size: side of the pooled maps; ``None``: ``cfg.pooler_size`` (the box branch;
            Mask R-CNN's mask branch pools larger maps with the same rule).
    """
    return MultiScaleRoIAlign(list(in_features), output_size or cfg.pooler_size, cfg.sampling_ratio,
                              canonical_scale=cfg.canonical_scale, canonical_level=cfg.canonical_level)


__all__ = ["FastRCNNPredictor", "RoIHeads", "RoISample", "TwoMLPHead", "roi_pooler"]
