"""Typed configuration of the single-shot YOLO detectors (YAML: ``model.yolo``).

Defaults are the YOLOv8-style nano detector (``arch: yolo``); ``v1`` holds the settings of the
original YOLOv1 grid detector (``arch: yolov1``). A config file lists only what differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: scale name -> (depth multiplier, width multiplier, max base channels), as Ultralytics' n/s/m.
YOLO_SCALES: dict[str, tuple[float, float, int]] = {
    "nano": (0.33, 0.25, 1024),
    "small": (0.33, 0.50, 1024),
    "medium": (0.67, 0.75, 768),
}


@dataclass
class YoloV1Config:
    """The original YOLOv1 head (Redmon et al., 2016): an S x S grid, B boxes per cell.

    Attributes:
        in_feature: the backbone stage the head reads (the deepest, stride 32).
        grid_size: S, cells per side (7 in the paper).
        boxes_per_cell: B, box predictors per cell (2 in the paper).
        conv_channels: channels of the 3x3 conv before the fully connected layers.
        hidden: width of the hidden fully connected layer (4096 in the paper).
        dropout: dropout after the hidden layer (0.5 in the paper).
        lambda_coord / lambda_noobj: weights of the box term and of the no-object confidence
            term of the sum-squared loss (5 and 0.5 in the paper).
        score_thresh: detections with a lower score (``confidence * P(class | object)``) are
            dropped before NMS.
        nms_iou: IoU threshold of the class-aware NMS.
        max_det: detections kept per image after NMS.
    """

    in_feature: str = "c5"
    grid_size: int = 7
    boxes_per_cell: int = 2
    conv_channels: int = 256
    hidden: int = 512
    dropout: float = 0.5
    lambda_coord: float = 5.0
    lambda_noobj: float = 0.5
    score_thresh: float = 0.001
    nms_iou: float = 0.7
    max_det: int = 300

    def __post_init__(self) -> None:
        if self.grid_size < 1 or self.boxes_per_cell < 1:
            raise ValueError(f"grid_size and boxes_per_cell must be >= 1, got {self.grid_size}, {self.boxes_per_cell}")
        if not 0 <= self.score_thresh < 1 or not 0 < self.nms_iou <= 1:
            raise ValueError(f"need 0 <= score_thresh < 1 and 0 < nms_iou <= 1, got {self.score_thresh}, {self.nms_iou}")


@dataclass
class YoloConfig:
    """YOLOv8-style detector: backbone + PAN neck + decoupled anchor-free head + task-aligned assignment.

    Attributes:
        scale: ``nano`` / ``small`` / ``medium``: depth and width multipliers of the backbone
            (when it is ``csp_darknet``; ``backbone.width`` then multiplies the scale's width),
            the PAN and the head (see :data:`YOLO_SCALES`).
        in_features: backbone stages fused by the PAN (strides 8, 16, 32).
        neck_channels: PAN output channels for ``p3, p4, p5``; ``None`` keeps the backbone's
            (YOLOv8 with CSP-Darknet); set it for wide backbones such as ResNet-50.
        topk: anchors per object kept by the task-aligned assigner (TOOD/YOLOv8: 10 and 13).
        alpha / beta: exponents of the alignment metric ``score ** alpha * IoU ** beta``.
        center_radius: anchor points within this many strides of an object's centre are
            candidates too (besides those inside its box), so objects smaller than a stride
            still get positives.
        box_loss: ``ciou`` or ``giou``.
        cls_loss: ``bce`` (YOLOv8) or ``focal`` (sigmoid focal loss, gamma 2), both against the
            IoU-aware soft targets of the assigner.
        box_weight / cls_weight: loss weights (YOLOv8: 7.5 and 0.5).
        dfl_bins: R >= 2 predicts a distribution over distances 0 .. R-1 strides per box side,
            decoded as its mean and trained by YOLOv8's distribution focal loss besides the IoU
            loss (YOLOv8: 16). Its initial logits favour short distances (boxes start 2 strides
            wide; YOLOv8's equal logits start them 15 wide, too wide to overlap small objects,
            which then stay unlearnt for long). 0 regresses each distance as one number
            (``softplus``, in strides), the only head before this option existed (older
            checkpoints load with it). On 32 coco128 images (60 epochs, 256 px, seed 0) bins
            reach bbox mAP50 0.91 with AdamW and 0.50 with the SGD recipe, plain distances 0.61
            and 0.36.
        dfl_weight: weight of that distribution focal loss (YOLOv8: 1.5; unused when
            ``dfl_bins`` is 0).
        score_thresh: detections with a lower score are dropped before NMS (0.001 for mAP,
            0.25 for pictures).
        nms_iou: IoU threshold of the class-aware NMS.
        pre_nms_top_n: highest-scoring (anchor, class) pairs kept per image before NMS.
        max_det: detections kept per image after NMS.
        v1: settings of ``arch: yolov1``, its post-processing included (it reads nothing else here).
    """

    scale: Literal["nano", "small", "medium"] = "nano"
    in_features: tuple[str, str, str] = ("c3", "c4", "c5")
    neck_channels: tuple[int, int, int] | None = None
    topk: int = 10
    alpha: float = 0.5
    beta: float = 6.0
    center_radius: float = 2.5
    box_loss: Literal["ciou", "giou"] = "ciou"
    cls_loss: Literal["bce", "focal"] = "bce"
    box_weight: float = 7.5
    cls_weight: float = 0.5
    dfl_bins: int = 16
    dfl_weight: float = 1.5
    score_thresh: float = 0.001
    nms_iou: float = 0.7
    pre_nms_top_n: int = 1000
    max_det: int = 300
    v1: YoloV1Config = field(default_factory=YoloV1Config)

    def __post_init__(self) -> None:
        if self.topk < 1:
            raise ValueError(f"topk must be >= 1, got {self.topk}")
        if self.dfl_bins == 1 or self.dfl_bins < 0:
            raise ValueError(f"dfl_bins must be 0 (plain distances) or >= 2 (a distribution), got {self.dfl_bins}")
        if not 0 <= self.score_thresh < 1 or not 0 < self.nms_iou <= 1:
            raise ValueError(f"need 0 <= score_thresh < 1 and 0 < nms_iou <= 1, got {self.score_thresh}, {self.nms_iou}")
