"""Mask R-CNN (He et al., 2017): Faster R-CNN plus a mask branch on the positive RoIs.

The mask branch pools each RoI at 14 x 14 with RoIAlign, runs four 3x3 convs, upsamples 2x with
a transposed conv to 28 x 28 and predicts one mask logit map per class (background first, as
the box classifier). The loss is per-pixel BCE on the channel of the RoI's ground-truth class
against the ground-truth mask cropped to the RoI; inference pastes the mask of each detected
box's class into the image and thresholds it. Module names are torchvision's
(``mask_roi_pool``, ``mask_head``, ``mask_predictor``), and its head/predictor modules are used
as they are.

Shape shorthand: N images, R positive RoIs, K foreground classes, S mask resolution (28).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import paste_masks_in_image, project_masks_on_boxes
from torchvision.ops import MultiScaleRoIAlign

from ..structures.instances import Detections, Instances, num_with_background
from .faster_rcnn import TwoStageDetector, build_faster_rcnn
from .roi_heads import RoISample, roi_pooler
from .traceable import multiscale_roi_align


class MaskBranch(nn.Module):
    """RoIAlign 14x14 -> conv head -> 28x28 class-specific mask logits.

    Args:
        mask_roi_pool: pooler over the same maps as the box branch.
        mask_head: ``MaskRCNNHeads`` (3x3 convs + ReLU).
        mask_predictor: ``MaskRCNNPredictor`` (2x transposed conv + 1x1 conv to K + 1 maps).
        mask_thresh: probability above which a pasted pixel belongs to the instance.
    """

    def __init__(self, mask_roi_pool: MultiScaleRoIAlign, mask_head: nn.Module, mask_predictor: nn.Module,
                 mask_thresh: float = 0.5) -> None:
        super().__init__()
        self.mask_roi_pool = mask_roi_pool
        self.mask_head = mask_head
        self.mask_predictor = mask_predictor
        self.mask_thresh = mask_thresh

    def forward(self, features: dict[str, Tensor], boxes: Sequence[Tensor],
                image_sizes: Sequence[tuple[int, int]]) -> Tensor:
        """N tensors Tensor[R_i, 4] -> mask logits Tensor[R, K + 1, S, S]."""
        pooled = self.mask_roi_pool(features, list(boxes), [tuple(s) for s in image_sizes])
        return self.mask_predictor(self.mask_head(pooled))

    def loss(self, features: dict[str, Tensor], sample: RoISample, targets: Sequence[Instances],
             image_sizes: Sequence[tuple[int, int]]) -> dict[str, Tensor]:
        """``{"loss_mask"}``: mean per-pixel BCE over the positive RoIs of ``sample``."""
        classes = sample.classes.split(sample.per_image)
        matched = sample.matched.split(sample.per_image)
        pos = [c > 0 for c in classes]
        rois = [r[p] for r, p in zip(sample.rois, pos)]
        logits = self(features, rois, image_sizes)
        labels = torch.cat([c[p] for c, p in zip(classes, pos)])
        if not len(labels):
            return {"loss_mask": logits.sum() * 0.0}  # keeps the graph (DDP) when no RoI is positive
        size = logits.shape[-1]
        mask_targets = torch.cat([
            project_masks_on_boxes(t.masks.to(r.device), r, m[p], size)
            for t, r, m, p in zip(targets, rois, matched, pos) if len(r)
        ])
        picked = logits[torch.arange(len(labels), device=labels.device), labels]
        return {"loss_mask": F.binary_cross_entropy_with_logits(picked, mask_targets.to(picked.dtype))}

    @torch.no_grad()
    def predict(self, features: dict[str, Tensor], detections: list[Detections],
                image_sizes: Sequence[tuple[int, int]]) -> list[Detections]:
        """Fill ``masks`` (Tensor[M, H, W] bool at each image's size) of every detection list."""
        logits = self(features, [d.boxes for d in detections], image_sizes)
        labels = torch.cat([d.labels for d in detections]) + 1
        probs = torch.sigmoid(logits[torch.arange(len(labels), device=labels.device), labels].float())
        out = []
        for d, p, (h, w) in zip(detections, probs.split([len(d) for d in detections]), image_sizes):
            if len(d):
                masks = paste_masks_in_image(p[:, None], d.boxes, (h, w))[:, 0] > self.mask_thresh
            else:
                masks = torch.zeros((0, h, w), dtype=torch.bool, device=p.device)
            out.append(Detections(d.boxes, d.scores, d.labels, masks=masks))
        return out


class MaskRCNN(TwoStageDetector):
    """Faster R-CNN + :class:`MaskBranch`; ``loss`` adds ``loss_mask``, ``predict`` fills masks.

    Targets need ``masks`` (Tensor[M, H, W] bool at the image size): the data pipeline loads
    them when the model's ``with_masks`` is true.
    """

    with_masks = True
    export_output_names = ("boxes", "scores", "labels", "masks")

    def __init__(self, detector: TwoStageDetector, mask_branch: MaskBranch) -> None:
        super().__init__(detector.backbone, detector.neck, detector.rpn, detector.roi_heads,
                         rpn_features=detector.rpn_features, roi_features=detector.roi_features,
                         num_classes=detector.num_classes)
        self.mask_branch = mask_branch

    def loss(self, images: Tensor, targets: Sequence[Instances]) -> dict[str, Tensor]:
        """Faster R-CNN's four losses plus ``loss_mask`` on the box branch's positive RoIs."""
        for i, t in enumerate(targets):
            if t.masks is None or len(t.masks) != len(t.boxes):
                raise ValueError(f"image {i}: Mask R-CNN needs one mask per box, got "
                                 f"{None if t.masks is None else len(t.masks)} masks for {len(t.boxes)} boxes")
        features, out, image_sizes = self._stage_one(images, targets)
        losses = self.rpn.loss(out, targets)
        proposals = self.rpn.proposals(out, image_sizes, train=True)
        with torch.no_grad():
            sample = self.roi_heads.sample(proposals, targets)
        roi_inputs = {k: features[k] for k in self.roi_features}
        losses.update(self.roi_heads.loss(roi_inputs, proposals, targets, image_sizes, sample=sample))
        losses.update(self.mask_branch.loss(roi_inputs, sample, targets, image_sizes))
        return losses

    @torch.no_grad()
    def predict(self, images: Tensor, image_sizes: Sequence[tuple[int, int]] | None = None) -> list[Detections]:
        """Detections with ``masks`` pasted at each image's true size."""
        detections, roi_inputs, image_sizes = self._detect(images, image_sizes)
        return self.mask_branch.predict(roi_inputs, detections, image_sizes)

    def export_outputs(self, images: Tensor) -> tuple[Tensor, ...]:
        """One image -> its detections and their mask probabilities, as one exportable graph.

        As :meth:`TwoStageDetector.export_outputs`, plus ``masks`` Tensor[M, S, S] float: the
        sigmoid of each detection's class channel on its box (S = 28). Pasting them into the
        image (``paste_masks_in_image``, then ``> mask_thresh``) is left to the runtime, as
        MMDeploy does: a full-size mask per detection would be most of the graph's output.
        """
        roi_maps, boxes, scores, labels = self._export_detections(images)
        pool = self.mask_branch.mask_roi_pool
        pooled = multiscale_roi_align(roi_maps, boxes, self.roi_strides, pool.output_size[0], pool.sampling_ratio,
                                      pool.canonical_scale, pool.canonical_level)
        logits = self.mask_branch.mask_predictor(self.mask_branch.mask_head(pooled))
        masks = torch.sigmoid(logits[torch.arange(labels.shape[0], device=labels.device), labels + 1])
        return boxes, scores, labels, masks


def build_mask_rcnn(cfg) -> MaskRCNN:
    """``ModelConfig`` -> Mask R-CNN (``model.arch: mask_rcnn``); ``model.two_stage.mask`` sets the branch."""
    detector = build_faster_rcnn(cfg)
    m = cfg.two_stage.mask
    in_channels = cfg.neck.out_channels if cfg.neck is not None else detector.backbone.feature_specs[
        detector.roi_features[0]].channels
    pool = roi_pooler(cfg.two_stage.roi_heads, detector.roi_features, output_size=m.pooler_size)
    head = MaskRCNNHeads(in_channels, [m.conv_channels] * m.conv_layers, 1)
    predictor = MaskRCNNPredictor(m.conv_channels, m.conv_channels, num_with_background(cfg.num_classes))
    return MaskRCNN(detector, MaskBranch(pool, head, predictor, m.mask_thresh))


__all__ = ["MaskBranch", "MaskRCNN", "build_mask_rcnn"]
