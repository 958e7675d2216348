"""YOLO-style single-shot detector: backbone + PAN neck + decoupled anchor-free head (YOLOv8 layout).

Design choices (issue 7):

* **Anchor-free distance regression** rather than YOLOv3's k-means anchors: every cell centre of
  ``p3..p5`` predicts the distances ``(l, t, r, b)`` from itself to the box sides, in strides.
  Nothing depends on the dataset's box statistics, so the same config works on shapes and COCO
  without re-running k-means, and the task-aligned assigner picks positives by predicted
  quality instead of by anchor-shape IoU. Two forms (``dfl_bins``): plain distances
  (``softplus`` keeps them positive; the box branch ends in 4 outputs), or YOLOv8's
  distribution over R bins per side (4R outputs, decoded as the mean, trained by the
  distribution focal loss as well as the IoU loss).
* **No objectness branch**: the class scores are trained against IoU-aware soft targets
  (:mod:`detseg.yolo.assigner`), so a class score is also a localisation-quality score.
* **Decoupled head**: separate 2 x 3x3 conv towers for boxes and classes on every level (YOLOX,
  YOLOv8), unshared across levels.

Shape shorthand: N images, L = 3 levels (strides 8, 16, 32), Hl x Wl level size,
A = sum(Hl * Wl) anchor points, K classes.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms

from ..backbones.base import Backbone, FeatureSpec
from ..backbones.build import build_backbone
from ..backbones.csp_darknet import ConvBNAct, scaled_depth
from ..config.yolo import YOLO_SCALES
from ..detection.base import Detector, check_targets
from ..necks.pan import PAN, build_pan
from ..structures import Normalize
from ..structures.instances import Detections, Instances
from .assigner import TaskAlignedAssigner
from .losses import YoloLoss

__all__ = ["YoloHead", "YOLO", "yolo", "build_yolo", "anchor_points", "postprocess"]


def anchor_points(sizes: Sequence[tuple[int, int]], strides: Sequence[int], device: torch.device,
                  dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """Cell centres of every level, level after level, row-major.

    Args:
        sizes: ``(Hl, Wl)`` per level; strides: stride per level.

    Returns:
        ``points`` Tensor[A, 2] ``(x, y)`` pixels (``(j + 0.5) * stride``) and ``strides`` Tensor[A].
    """
    points, steps = [], []
    for (h, w), s in zip(sizes, strides):
        ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) * s
        xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) * s
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([xx, yy], -1).reshape(-1, 2))
        steps.append(torch.full((h * w,), float(s), device=device, dtype=dtype))
    return torch.cat(points), torch.cat(steps)


def postprocess(scores: Tensor, boxes: Tensor, image_size: tuple[int, int], *, score_thresh: float,
                nms_iou: float, pre_nms_top_n: int, max_det: int) -> Detections:
    """One image's candidates -> :class:`Detections` (threshold, top-N, class-aware NMS, clip).

    Every (box, class) pair above ``score_thresh`` is a candidate (multi-label, as YOLOv8's
    evaluation mode); boxes are clipped to ``image_size`` before NMS and empty ones dropped.

    Args:
        scores: Tensor[A, K] class probabilities.
        boxes: Tensor[A, 4] xyxy pixels of the input image.
        image_size: ``(h, w)`` to clip to.

    Returns:
        Detections sorted by score (``torchvision.ops.batched_nms`` keeps that order), at most
        ``max_det``.
    """
    k = scores.shape[1]
    h, w = image_size
    flat = scores.flatten()
    keep = (flat > score_thresh).nonzero().squeeze(1)
    top = flat[keep].topk(min(pre_nms_top_n, len(keep)))
    idx = keep[top.indices]
    anchor, label = idx // k, idx % k
    b = boxes[anchor].float()
    b = torch.stack([b[:, 0].clamp(0, w), b[:, 1].clamp(0, h), b[:, 2].clamp(0, w), b[:, 3].clamp(0, h)], 1)
    nonempty = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    b, s, label = b[nonempty], top.values[nonempty], label[nonempty]
    kept = batched_nms(b, s, label, nms_iou)[:max_det]
    return Detections(boxes=b[kept], scores=s[kept], labels=label[kept])


class YoloHead(nn.Module):
    """Decoupled per-level box and class towers, target assignment, loss and post-processing.

    Args:
        in_specs: neck levels, e.g. ``{"p3": FeatureSpec(64, 8), "p4": ..., "p5": ...}``.
        num_classes: K foreground classes (sigmoid scores, no background logit: background is
            "every class score low").
        loss: the :class:`~detseg.yolo.losses.YoloLoss` the head owns.
        score_thresh / nms_iou / pre_nms_top_n / max_det: post-processing (see
            :class:`~detseg.config.yolo.YoloConfig`).
        prior_image_size: image size used for the initial class bias (YOLOv8: about 5 objects
            per 640-px image spread over the cells of each level).
        dfl_bins: 0 for plain distances, R >= 2 for a distribution over 0 .. R-1 strides per side.

    ``forward(features) -> list[Tensor[N, B + K, Hl, Wl]]`` (raw box logits, B = 4 or 4R, side
    by side, then class logits, per level: tensors only, for export and CUDA graphs).
    """

    def __init__(self, in_specs: Mapping[str, FeatureSpec], num_classes: int, *, loss: YoloLoss,
                 score_thresh: float = 0.001, nms_iou: float = 0.7, pre_nms_top_n: int = 1000,
                 max_det: int = 300, prior_image_size: int = 640, dfl_bins: int = 16) -> None:
        super().__init__()
        self.dfl_bins = dfl_bins
        self.box_outputs = 4 * dfl_bins if dfl_bins else 4
        self.in_features = tuple(in_specs)
        self.strides = tuple(s.stride for s in in_specs.values())
        self.num_classes = num_classes
        c0 = next(iter(in_specs.values())).channels
        box_ch = max(16, c0 // 4, min(64, c0))
        cls_ch = max(c0, min(num_classes, 100))
        self.box_towers = nn.ModuleList(
            nn.Sequential(ConvBNAct(s.channels, box_ch, 3), ConvBNAct(box_ch, box_ch, 3),
                          nn.Conv2d(box_ch, self.box_outputs, 1))
            for s in in_specs.values())
        self.cls_towers = nn.ModuleList(
            nn.Sequential(ConvBNAct(s.channels, cls_ch, 3), ConvBNAct(cls_ch, cls_ch, 3), nn.Conv2d(cls_ch, num_classes, 1))
            for s in in_specs.values())
        for box, cls, s in zip(self.box_towers, self.cls_towers, self.strides):
            # initial boxes 2 strides wide around their cell centre, small enough to overlap small
            # objects: softplus(b) = 1, or bins with p(k) ~ 2^-k (mean 1 stride; YOLOv8's equal
            # logits start every box 15 strides wide)
            if dfl_bins:
                box[-1].bias.data.copy_((-math.log(2) * torch.arange(dfl_bins, dtype=torch.float)).repeat(4))
            else:
                nn.init.constant_(box[-1].bias, math.log(math.e - 1))
            nn.init.constant_(cls[-1].bias, math.log(5 / num_classes / (prior_image_size / s) ** 2))
        self.loss_fn = loss
        self.score_thresh = score_thresh
        self.nms_iou = nms_iou
        self.pre_nms_top_n = pre_nms_top_n
        self.max_det = max_det

    def forward(self, features: Mapping[str, Tensor]) -> list[Tensor]:
        """``{"p3": Tensor[N, C3, H3, W3], ...}`` -> ``[Tensor[N, B + K, Hl, Wl]]`` per level."""
        return [torch.cat([box(features[n]), cls(features[n])], 1)
                for n, box, cls in zip(self.in_features, self.box_towers, self.cls_towers)]

    def decode(self, raw: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
        """Flatten levels and decode boxes.

        Returns:
            ``cls_logits`` Tensor[N, A, K], ``boxes`` Tensor[N, A, 4] xyxy pixels of the input,
            ``points`` Tensor[A, 2], ``strides`` Tensor[A], and ``box_dist`` Tensor[N, A, 4, R]
            the distance-bin logits (``None`` for plain distances).
        """
        flat = torch.cat([r.flatten(2) for r in raw], 2)                                # [N, B + K, A]
        points, strides = anchor_points([r.shape[-2:] for r in raw], self.strides, flat.device)
        box_logits = flat[:, :self.box_outputs].float()
        box_dist = None
        if self.dfl_bins:  # softmax over the bins in channel-first layout: contiguous, as exported
            bins = box_logits.unflatten(1, (4, self.dfl_bins))                          # [N, 4, R, A]
            values = torch.arange(self.dfl_bins, dtype=bins.dtype, device=bins.device)[:, None]
            ltrb = (bins.softmax(2) * values).sum(2).transpose(1, 2)                     # [N, A, 4]
            box_dist = bins.permute(0, 3, 1, 2)
        else:
            ltrb = F.softplus(box_logits).transpose(1, 2)
        ltrb = ltrb * strides[:, None]
        boxes = torch.cat([points - ltrb[..., :2], points + ltrb[..., 2:]], -1)
        return flat[:, self.box_outputs:].transpose(1, 2), boxes, points, strides, box_dist

    def loss(self, raw: Sequence[Tensor], targets: Sequence[Instances]) -> dict[str, Tensor]:
        """``loss_cls``, ``loss_box`` (and ``loss_dfl`` with bins) of a batch (see
        :class:`~detseg.yolo.losses.YoloLoss`)."""
        cls_logits, boxes, points, strides, box_dist = self.decode(raw)
        return self.loss_fn(cls_logits, boxes, points, strides, targets, box_dist=box_dist)

    @torch.no_grad()
    def predict(self, raw: Sequence[Tensor], image_sizes: Sequence[tuple[int, int]]) -> list[Detections]:
        """Score threshold, top-N, class-aware NMS, clipping; one :class:`Detections` per image.

        An anchor point may yield several classes (multi-label, as YOLOv8's evaluation mode).
        """
        cls_logits, boxes, *_ = self.decode(raw)
        scores = cls_logits.float().sigmoid()
        return [postprocess(scores[i], boxes[i], size, score_thresh=self.score_thresh, nms_iou=self.nms_iou,
                            pre_nms_top_n=self.pre_nms_top_n, max_det=self.max_det)
                for i, size in enumerate(image_sizes)]


class YOLO(Detector):
    """Single-shot detector: ``Normalize -> backbone -> PAN -> YoloHead``.

    Args:
        backbone: returns the stages the neck reads (``c3, c4, c5``).
        neck: a :class:`~detseg.necks.pan.PAN` (``p3, p4, p5``).
        head: a :class:`YoloHead` on the neck's levels.

    Contract: ``images`` Tensor[N, 3, Hp, Wp] uint8 RGB (or float in [0, 1]), any size (sizes not
    multiple of 32 work); ``targets`` one :class:`~detseg.structures.Instances` per image (boxes
    xyxy pixels of the input, labels in ``[0, K)``, crowd = ignore). ``loss`` returns
    ``{"loss_cls", "loss_box", "loss_dfl"}`` (no ``loss_dfl`` when ``dfl_bins`` is 0) in train and
    eval mode; ``predict`` returns one :class:`~detseg.structures.Detections` per image in the
    input frame, clipped to ``image_sizes`` (default: the padded size), sorted by score.
    Letterboxing and the map back to the original image are the data pipeline's
    (:class:`detseg.data.geometry.Resize`).

    Example:
        >>> model = yolo("csp_darknet", num_classes=3, scale="nano")
        >>> losses = model.loss(images, targets)            # {"loss_cls": ..., "loss_box": ...}
        >>> detections = model.predict(images)              # list[Detections]
    """

    task = "detection"
    with_masks = False

    def __init__(self, backbone: Backbone, neck: PAN, head: YoloHead) -> None:
        super().__init__()
        self.normalize = Normalize()
        self.backbone = backbone
        self.neck = neck
        self.head = head
        self.num_classes = head.num_classes

    def raw_outputs(self, images: Tensor) -> list[Tensor]:
        """Images -> per-level raw head outputs ``[Tensor[N, B + K, Hl, Wl]]`` (export/benchmarks)."""
        return self.head(self.neck(self.backbone(self.normalize(images))))

    def export_outputs(self, images: Tensor) -> Tensor:
        """Images -> Tensor[N, A, 4 + K]: xyxy boxes in input pixels and class probabilities of
        every anchor point, before threshold and NMS (what ONNX/TorchScript export carry)."""
        cls_logits, boxes, *_ = self.head.decode(self.raw_outputs(images))
        return torch.cat([boxes, cls_logits.float().sigmoid()], -1)

    def loss(self, images: Tensor, targets: Sequence[Instances]) -> dict[str, Tensor]:
        """Training losses (also in eval mode, for validation)."""
        check_targets(targets, len(images), self.num_classes)
        return self.head.loss(self.raw_outputs(images), targets)

    @torch.no_grad()
    def predict(self, images: Tensor, image_sizes: Sequence[tuple[int, int]] | None = None) -> list[Detections]:
        """Detections per image in the input frame (train or eval mode)."""
        if image_sizes is None:
            image_sizes = [tuple(images.shape[-2:])] * len(images)
        return self.head.predict(self.raw_outputs(images), image_sizes)


def yolo(
    backbone: str | Backbone = "csp_darknet",
    *,
    num_classes: int,
    scale: str = "nano",
    backbone_width: float = 1.0,
    in_features: Sequence[str] = ("c3", "c4", "c5"),
    neck_channels: Sequence[int] | None = None,
    topk: int = 10,
    alpha: float = 0.5,
    beta: float = 6.0,
    center_radius: float = 2.5,
    box_loss: str = "ciou",
    cls_loss: str = "bce",
    box_weight: float = 7.5,
    cls_weight: float = 0.5,
    dfl_bins: int = 16,
    dfl_weight: float = 1.5,
    score_thresh: float = 0.001,
    nms_iou: float = 0.7,
    pre_nms_top_n: int = 1000,
    max_det: int = 300,
    **backbone_options,
) -> YOLO:
    """Build a YOLO detector at a scale (``nano`` / ``small`` / ``medium``).

    Args:
        backbone: a backbone name (``csp_darknet`` gets the scale's depth and width, times
            ``backbone_width``; other names get ``width=backbone_width``) or a built backbone.
        num_classes: K foreground classes.
        scale: a key of :data:`~detseg.config.yolo.YOLO_SCALES`; sets the neck depth too.
        neck_channels: PAN output channels; ``None`` keeps the backbone's.
        **backbone_options: passed to ``build_backbone`` (``pretrained_path``, ``freeze_bn`` ...).

    Other arguments: see :class:`~detseg.config.yolo.YoloConfig`.

    Example:
        >>> model = yolo(num_classes=80, scale="nano")   # 3.15 M parameters, 8.7 GFLOPs at 640 px
    """
    if scale not in YOLO_SCALES:
        raise ValueError(f"unknown YOLO scale {scale!r}; choose one of: {', '.join(YOLO_SCALES)}")
    depth, width, max_channels = YOLO_SCALES[scale]
    if isinstance(backbone, str):
        if backbone == "csp_darknet":
            backbone_options = {"depth": depth, "max_channels": max_channels, **backbone_options}
            backbone_width = width * backbone_width
        backbone = build_backbone(backbone, out_features=tuple(in_features), width=backbone_width, **backbone_options)
    neck = build_pan(backbone.feature_specs, in_features, neck_channels, depth=scaled_depth(3, depth))
    assigner = TaskAlignedAssigner(num_classes, topk=topk, alpha=alpha, beta=beta, center_radius=center_radius)
    loss = YoloLoss(assigner, box_loss=box_loss, cls_loss=cls_loss, box_weight=box_weight, cls_weight=cls_weight,
                    dfl_weight=dfl_weight)
    head = YoloHead(neck.feature_specs, num_classes, loss=loss, score_thresh=score_thresh, nms_iou=nms_iou,
                    pre_nms_top_n=pre_nms_top_n, max_det=max_det, dfl_bins=dfl_bins)
    return YOLO(backbone, neck, head)


def build_yolo(cfg) -> YOLO:
    """``ModelConfig`` (``arch: yolo``) -> :class:`YOLO`; ``model.yolo`` holds the head settings."""
    b, y = cfg.backbone, cfg.yolo
    if b.out_features is not None and tuple(b.out_features) != tuple(y.in_features):
        raise ValueError(f"backbone.out_features {list(b.out_features)} must equal yolo.in_features "
                         f"{list(y.in_features)} (or be left unset)")
    return yolo(
        b.name, num_classes=cfg.num_classes, scale=y.scale, backbone_width=b.width, in_features=y.in_features,
        neck_channels=y.neck_channels, topk=y.topk, alpha=y.alpha, beta=y.beta, center_radius=y.center_radius,
        box_loss=y.box_loss, cls_loss=y.cls_loss, box_weight=y.box_weight, cls_weight=y.cls_weight,
        dfl_bins=y.dfl_bins, dfl_weight=y.dfl_weight, score_thresh=y.score_thresh, nms_iou=y.nms_iou,
        pre_nms_top_n=y.pre_nms_top_n, max_det=y.max_det,
        pretrained_path=b.pretrained, frozen_stages=b.frozen_stages, freeze_bn=b.freeze_bn,
    )
