"""Typed configuration of the two-stage (R-CNN family) detectors (YAML: ``model.two_stage``).

Defaults are torchvision's ``fasterrcnn_resnet50_fpn`` settings; a config file lists only what
differs (the tiny shapes config shrinks anchors, top-N and the box head).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


def check_sampling(fg_iou: float, bg_iou: float, positive_fraction: float) -> None:
    """The matching and sampling settings shared by the RPN and the RoI heads."""
    if not 0.0 <= bg_iou <= fg_iou <= 1.0:
        raise ValueError(f"need 0 <= bg_iou <= fg_iou <= 1, got {bg_iou}, {fg_iou}")
    if not 0.0 < positive_fraction <= 1.0:
        raise ValueError(f"positive_fraction must be in (0, 1], got {positive_fraction}")


def loss_beta(box_loss: str, smooth_l1_beta: float) -> float:
    """The smooth-L1 beta a ``box_loss`` setting means (``l1`` is smooth L1 with beta 0)."""
    return smooth_l1_beta if box_loss == "smooth_l1" else 0.0


@dataclass
class TrainTest:
    """A setting with one value for training (``loss``) and one for inference (``predict``)."""

    train: int
    test: int

    def __post_init__(self) -> None:
        if self.train < 1 or self.test < 1:
            raise ValueError(f"train/test values must be >= 1, got {self.train}/{self.test}")


@dataclass
class RPNConfig:
    """Region Proposal Network: anchors, matching, sampling, proposal selection.

    Attributes:
        in_features: feature maps the RPN runs on; ``None`` = every FPN level (including the
            ``pool`` extra level), or the backbone's last output without a neck.
        anchor_sizes: anchor sizes in pixels, one tuple per RPN level (several sizes per level
            allowed; every level must then have the same count). ``None``: ``(8 * stride,)`` per
            FPN level (torchvision: 32..512 on p2..p6), ``(128, 256, 512)`` on a single map
            (the Faster R-CNN paper).
        aspect_ratios: anchor height / width ratios, the same at every level.
        conv_depth: 3x3 convs of the shared head before the 1x1 predictors.
        fg_iou / bg_iou: anchors with max IoU >= ``fg_iou`` are positives, < ``bg_iou``
            negatives, in between ignored; each ground truth's best anchors are positives too.
        batch_size_per_image / positive_fraction: anchors sampled per image for the losses and
            the largest positive share of them.
        pre_nms_top_n: proposals kept per level (by objectness) before NMS.
        post_nms_top_n: proposals kept per image after NMS.
        nms_iou: IoU threshold of the proposal NMS (per level).
        score_thresh: proposals with objectness probability below this are dropped.
        min_size: proposals narrower or shorter than this (pixels) are dropped.
        box_loss: ``smooth_l1`` (with ``smooth_l1_beta``) or ``l1`` on the box deltas.
        smooth_l1_beta: the L1/L2 switch point of the smooth-L1 loss (torchvision: 1/9).
    """

    in_features: tuple[str, ...] | None = None
    anchor_sizes: tuple[tuple[float, ...], ...] | None = None
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    conv_depth: int = 1
    fg_iou: float = 0.7
    bg_iou: float = 0.3
    batch_size_per_image: int = 256
    positive_fraction: float = 0.5
    pre_nms_top_n: TrainTest = field(default_factory=lambda: TrainTest(2000, 1000))
    post_nms_top_n: TrainTest = field(default_factory=lambda: TrainTest(2000, 1000))
    nms_iou: float = 0.7
    score_thresh: float = 0.0
    min_size: float = 1e-3
    box_loss: Literal["smooth_l1", "l1"] = "smooth_l1"
    smooth_l1_beta: float = 1.0 / 9.0

    def __post_init__(self) -> None:
        check_sampling(self.fg_iou, self.bg_iou, self.positive_fraction)
        if self.anchor_sizes is not None and len({len(s) for s in self.anchor_sizes}) > 1:
            raise ValueError(f"every level needs the same number of anchor sizes, got {self.anchor_sizes}")


@dataclass
class RoIHeadsConfig:
    """Second stage: RoIAlign on the proposals, two-FC box head, classification + box regression.

    Attributes:
        in_features: feature maps RoIs are pooled from; ``None`` = the FPN levels built from
            backbone stages (not the extra ``pool`` level), or the backbone's last output.
        pooler_size / sampling_ratio: RoIAlign output size and samples per bin.
        canonical_scale / canonical_level: FPN level assignment ``k = floor(level +
            log2(sqrt(area) / scale))`` (Lin et al. eq. 1; torchvision: 224, 4).
        representation_size: width of the two FC layers (``fc6``, ``fc7``).
        fg_iou / bg_iou: proposals with IoU >= ``fg_iou`` to a ground truth are positives,
            below ``bg_iou`` background, in between ignored.
        batch_size_per_image / positive_fraction: RoIs sampled per image for the losses.
        bbox_reg_weights: (wx, wy, ww, wh) scaling of the box deltas.
        score_thresh: detections at or below this class probability are dropped.
        nms_iou: IoU threshold of the per-class NMS.
        detections_per_img: most detections kept per image.
        box_loss / smooth_l1_beta: as for the RPN.
    """

    in_features: tuple[str, ...] | None = None
    pooler_size: int = 7
    sampling_ratio: int = 2
    canonical_scale: int = 224
    canonical_level: int = 4
    representation_size: int = 1024
    fg_iou: float = 0.5
    bg_iou: float = 0.5
    batch_size_per_image: int = 512
    positive_fraction: float = 0.25
    bbox_reg_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    score_thresh: float = 0.05
    nms_iou: float = 0.5
    detections_per_img: int = 100
    box_loss: Literal["smooth_l1", "l1"] = "smooth_l1"
    smooth_l1_beta: float = 1.0 / 9.0

    def __post_init__(self) -> None:
        check_sampling(self.fg_iou, self.bg_iou, self.positive_fraction)


@dataclass
class ProposalConfig:
    """Selective-search-like proposals of R-CNN and Fast R-CNN (:mod:`detseg.detection.proposals`).

    Attributes:
        ks: colour cluster counts of the over-segmentations (one grouping hierarchy each).
        work_size: longest image side (pixels) the proposals are computed at.
        min_size: proposals narrower or shorter than this (pixels) are dropped.
        max_proposals: regions per image used in training (``loss``) and inference (``predict``).
    """

    ks: tuple[int, ...] = (6, 12)
    work_size: int = 96
    min_size: float = 4.0
    max_proposals: TrainTest = field(default_factory=lambda: TrainTest(300, 300))

    def __post_init__(self) -> None:
        if not self.ks or min(self.ks) < 2:
            raise ValueError(f"ks must list cluster counts >= 2, got {self.ks}")


@dataclass
class MaskHeadConfig:
    """Mask R-CNN's mask branch (torchvision's defaults).

    Attributes:
        pooler_size: RoIAlign output of the mask branch (14).
        conv_layers: 3x3 conv + ReLU layers of the mask head, each ``conv_channels`` wide.
        conv_channels: their width (256).
        mask_thresh: probability above which a pasted mask pixel is foreground.
    """

    pooler_size: int = 14
    conv_layers: int = 4
    conv_channels: int = 256
    mask_thresh: float = 0.5


@dataclass
class TwoStageConfig:
    """The R-CNN family (YAML: ``model.two_stage.*``).

    Attributes:
        rpn: Faster/Mask R-CNN's proposal network.
        roi_heads: the box branch shared by all four detectors.
        proposals: external proposals of R-CNN / Fast R-CNN.
        mask: Mask R-CNN's mask branch.
        warp_size: R-CNN's warped region side (227 in the paper).
        warp_context: R-CNN's context padding, a fraction of the box size per side.
    """

    rpn: RPNConfig = field(default_factory=RPNConfig)
    roi_heads: RoIHeadsConfig = field(default_factory=RoIHeadsConfig)
    proposals: ProposalConfig = field(default_factory=ProposalConfig)
    mask: MaskHeadConfig = field(default_factory=MaskHeadConfig)
    warp_size: int = 227
    warp_context: float = 0.08
