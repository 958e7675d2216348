"""Faster R-CNN (Ren et al., 2015) on any detseg backbone, with an FPN or on a single feature map.

:class:`TwoStageDetector` is the R-CNN skeleton: normalisation, backbone, optional neck, a
proposer (the :class:`~.rpn.RPN`) and :class:`~.roi_heads.RoIHeads`. Top-level module names are
``backbone``, ``neck`` (torchvision's ``backbone.fpn``), ``rpn`` and ``roi_heads``; below them
the names are torchvision's, so a torchvision checkpoint maps by renaming prefixes.

Shape shorthand: N images, Hp x Wp padded batch size, K foreground classes.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import MultiScaleRoIAlign

from ..backbones.base import Backbone
from ..backbones.build import build_backbone
from ..necks.fpn import FPN, build_fpn
from ..structures import Normalize
from ..structures.instances import Detections, Instances
from .anchors import AnchorGenerator, default_anchor_sizes
from .base import Detector, check_targets
from .roi_heads import FastRCNNPredictor, RoIHeads, TwoMLPHead
from .rpn import RPN, RPNHead
from .traceable import multiscale_roi_align


class TwoStageDetector(Detector):
    """Backbone (+ FPN) -> proposals -> RoI heads; the model contract of detseg detectors.

    Args:
        backbone: returns the stages the neck (or the heads) read.
        neck: an :class:`~detseg.necks.fpn.FPN`, or ``None`` to use backbone maps directly.
        rpn: the proposer.
        roi_heads: the box branch.
        rpn_features / roi_features: names of the maps (after the neck) each stage reads.
        num_classes: K foreground classes.

    Inputs: ``images`` Tensor[N, 3, Hp, Wp] uint8 RGB (or float in [0, 1]), zero-padded at the
    bottom/right; ``targets``: one :class:`Instances` per image (boxes xyxy absolute pixels,
    labels in [0, K), crowd boxes ignored). ``loss`` returns ``loss_rpn_cls``, ``loss_rpn_box``,
    ``loss_roi_cls``, ``loss_roi_box`` in any mode; ``predict`` returns one :class:`Detections`
    per image (input frame, clipped to ``image_sizes``) in any mode.

    Example:
        >>> model = faster_rcnn("resnet18", num_classes=3, width=0.25, fpn_channels=32,
        ...                     anchor_sizes=((16,), (32,), (64,), (128,)))
        >>> losses = model.loss(images, targets)
        >>> detections = model.predict(images, image_sizes=[(128, 128)] * len(images))
    """

    task = "detection"
    with_masks = False
    #: exported graphs take one image (see :meth:`export_outputs`)
    export_batch_size = 1
    export_output_names = ("boxes", "scores", "labels")
    #: inputs are padded to a multiple of this (the largest stride), as the data loader pads batches
    size_divisibility = 32

    def __init__(self, backbone: Backbone, neck: FPN | None, rpn: RPN, roi_heads: RoIHeads, *,
                 rpn_features: Sequence[str], roi_features: Sequence[str], num_classes: int) -> None:
        super().__init__()
        self.normalize = Normalize()
        self.backbone = backbone
        self.neck = neck
        self.rpn = rpn
        self.roi_heads = roi_heads
        self.rpn_features = tuple(rpn_features)
        self.roi_features = tuple(roi_features)
        self.num_classes = num_classes

    def extract(self, images: Tensor, image_sizes: Sequence[tuple[int, int]] | None = None) -> dict[str, Tensor]:
        """Normalised images (padding set to the mean colour) -> named feature maps (backbone stages or FPN levels)."""
        features = self.backbone(self.normalize(images, image_sizes))
        return self.neck(features) if self.neck is not None else features

    def _stage_one(self, images: Tensor, targets: Sequence[Instances]):
        """Checked targets -> (feature maps, RPN outputs, true image sizes)."""
        check_targets(targets, len(images), self.num_classes)
        image_sizes = [tuple(t.image_size) for t in targets]
        features = self.extract(images, image_sizes)
        return features, self.rpn([features[k] for k in self.rpn_features], images.shape[-2:]), image_sizes

    def loss(self, images: Tensor, targets: Sequence[Instances]) -> dict[str, Tensor]:
        """Training losses (train-time top-N settings whatever the mode; used for validation too)."""
        features, out, image_sizes = self._stage_one(images, targets)
        losses = self.rpn.loss(out, targets)
        proposals = self.rpn.proposals(out, image_sizes, train=True)
        roi_inputs = {k: features[k] for k in self.roi_features}
        losses.update(self.roi_heads.loss(roi_inputs, proposals, targets, image_sizes))
        return losses

    @torch.no_grad()
    def predict(self, images: Tensor, image_sizes: Sequence[tuple[int, int]] | None = None) -> list[Detections]:
        """Detections per image (test-time settings whatever the mode).

        Args:
            image_sizes: true ``(H, W)`` per image before padding; ``None``: the padded size.
        """
        if image_sizes is None:
            image_sizes = [tuple(images.shape[-2:])] * len(images)
        image_sizes = [tuple(int(v) for v in s) for s in image_sizes]
        features = self.extract(images, image_sizes)
        out = self.rpn([features[k] for k in self.rpn_features], images.shape[-2:])
        proposals = self.rpn.proposals(out, image_sizes, train=False)
        return self.roi_heads.predict({k: features[k] for k in self.roi_features}, proposals, image_sizes)

    def export_outputs(self, images: Tensor) -> tuple[Tensor, ...]:
        """One image -> its detections: what :meth:`predict` computes, as one exportable graph.

        The same modules and the same selection code (:meth:`~.rpn.RPN.select`,
        :meth:`~.roi_heads.RoIHeads.select`) as :meth:`predict`, with nothing that freezes a
        size or a count at the example's value, so ``torch.export`` / ONNX keep the image size and
        the number of proposals and detections dynamic; RoIAlign goes through
        :func:`~.traceable.multiscale_roi_align` (torchvision's level rule, each level's scale
        fixed by its stride). One image per call: proposals and detections are per image, and a
        batch would need them padded to a common count.

        Args:
            images: Tensor[1, 3, H, W] float RGB in [0, 1] (or uint8), any H and W; padded here
                to a multiple of :attr:`size_divisibility` with the mean colour, as the data
                loader pads a batch.

        Returns:
            ``boxes`` Tensor[M, 4] xyxy input pixels clipped to ``(H, W)``, ``scores`` Tensor[M],
            ``labels`` Tensor[M] int64 in ``[0, K)``, by decreasing score, ``M <= detections_per_img``
            (0 when nothing passes ``score_thresh``).
        """
        _, boxes, scores, labels = self._export_detections(images)
        return boxes, scores, labels

    def _export_detections(self, images: Tensor) -> tuple[list[Tensor], Tensor, Tensor, Tensor]:
        """``export_outputs`` and the RoI feature maps (Mask R-CNN pools them again)."""
        if images.shape[0] != 1:
            raise ValueError(f"export_outputs takes one image, got a batch of {images.shape[0]}")
        h, w = images.shape[-2:]
        d = self.size_divisibility
        # zero after normalising is the mean colour, the padding predict() gets from Normalize
        x = F.pad(self.normalize(images), (0, (-w) % d, 0, (-h) % d))
        features = self.backbone(x)
        if self.neck is not None:
            features = self.neck(features)
        out = self.rpn([features[k] for k in self.rpn_features], x.shape[-2:])
        sizes = torch.tensor([[h, w]], dtype=torch.float32, device=x.device)
        candidates, _, keep = self.rpn.select(out, sizes, "test")
        proposals = candidates[keep[: self.rpn.post_nms_top_n["test"]]]
        roi_maps = [features[k] for k in self.roi_features]
        pool = self.roi_heads.box_roi_pool
        pooled = multiscale_roi_align(roi_maps, proposals, self.roi_strides, pool.output_size[0], pool.sampling_ratio,
                                      pool.canonical_scale, pool.canonical_level)
        heads = self.roi_heads
        logits, deltas = heads.box_predictor(heads.box_head(pooled))
        image = torch.zeros_like(proposals[:, 0], dtype=torch.int64)
        sizes = sizes.expand(proposals.shape[0], 2)
        boxes, scores, labels, _, keep = heads.select(logits, deltas, proposals, sizes, image)
        keep = keep[: heads.detections_per_img]
        return roi_maps, boxes[keep], scores[keep], labels[keep]

    @property
    def roi_strides(self) -> tuple[int, ...]:
        """Stride of each map the RoI heads pool from."""
        specs = self.neck.feature_specs if self.neck is not None else self.backbone.feature_specs
        return tuple(specs[k].stride for k in self.roi_features)


def faster_rcnn(
    backbone: str | Backbone = "resnet50",
    *,
    num_classes: int,
    width: float = 1.0,
    backbone_features: Sequence[str] | None = None,
    use_fpn: bool = True,
    fpn_features: Sequence[str] = ("c2", "c3", "c4", "c5"),
    fpn_channels: int = 256,
    fpn_extra_levels: str = "pool",
    rpn_features: Sequence[str] | None = None,
    roi_features: Sequence[str] | None = None,
    anchor_sizes: Sequence[Sequence[float]] | None = None,
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    rpn_conv_depth: int = 1,
    rpn_fg_iou: float = 0.7,
    rpn_bg_iou: float = 0.3,
    rpn_batch_size_per_image: int = 256,
    rpn_positive_fraction: float = 0.5,
    rpn_pre_nms_top_n: dict[str, int] | None = None,
    rpn_post_nms_top_n: dict[str, int] | None = None,
    rpn_nms_iou: float = 0.7,
    rpn_score_thresh: float = 0.0,
    rpn_min_size: float = 1e-3,
    rpn_smooth_l1_beta: float = 1.0 / 9.0,
    pooler_size: int = 7,
    sampling_ratio: int = 2,
    canonical_scale: int = 224,
    canonical_level: int = 4,
    representation_size: int = 1024,
    roi_fg_iou: float = 0.5,
    roi_bg_iou: float = 0.5,
    roi_batch_size_per_image: int = 512,
    roi_positive_fraction: float = 0.25,
    bbox_reg_weights: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
    score_thresh: float = 0.05,
    nms_iou: float = 0.5,
    detections_per_img: int = 100,
    roi_smooth_l1_beta: float = 1.0 / 9.0,
    **backbone_options,
) -> TwoStageDetector:
    """Build Faster R-CNN. Defaults are torchvision's ``fasterrcnn_resnet50_fpn``.

    Args:
        backbone: a backbone name (built with ``width`` and ``backbone_options``) or a built one.
        num_classes: K foreground classes.
        backbone_features: stages the backbone returns; default ``fpn_features`` with an FPN,
            ``("c4",)`` without (the paper's conv4/C4 map, stride 16).
        use_fpn: FPN on ``fpn_features`` (levels ``p*``, ``fpn_extra_levels`` on top) or a
            single feature map.
        rpn_features / roi_features: maps the RPN / the RoI pooler read; default every level
            (RPN) and the non-extra levels (RoI), or the single map.
        anchor_sizes: one tuple per RPN level; see :func:`~.anchors.default_anchor_sizes`.
        Other arguments: see :class:`~.rpn.RPN`, :class:`~.roi_heads.RoIHeads` and
        :class:`~detseg.config.two_stage.RPNConfig` / ``RoIHeadsConfig``.
    """
    if isinstance(backbone, str):
        out = backbone_features or (tuple(fpn_features) if use_fpn else ("c4",))
        backbone = build_backbone(backbone, out_features=out, width=width, **backbone_options)
    specs = backbone.feature_specs
    if use_fpn:
        neck = build_fpn(specs, tuple(fpn_features), fpn_channels, fpn_extra_levels)  # type: ignore[arg-type]
        level_specs = neck.feature_specs
        base_levels = tuple(f"p{n[1:]}" for n in fpn_features)
        rpn_features = tuple(rpn_features or level_specs)
        roi_features = tuple(roi_features or base_levels)
    else:
        neck, level_specs = None, specs
        last = tuple(specs)[-1]
        rpn_features = tuple(rpn_features or (last,))
        roi_features = tuple(roi_features or (last,))
    for role, names in (("rpn_features", rpn_features), ("roi_features", roi_features)):
        missing = [n for n in names if n not in level_specs]
        if missing:
            raise ValueError(f"{role} {list(names)}: available maps are {list(level_specs)}")
    channels = {level_specs[n].channels for n in rpn_features + roi_features}
    if len(channels) != 1:
        raise ValueError(f"RPN/RoI maps must share a channel count (use an FPN), got {channels}")
    in_channels = channels.pop()
    if anchor_sizes is None:
        anchor_sizes = default_anchor_sizes([level_specs[n].stride for n in rpn_features], single_map=len(rpn_features) == 1)
    if len(anchor_sizes) != len(rpn_features):
        raise ValueError(f"anchor_sizes has {len(anchor_sizes)} levels for RPN maps {list(rpn_features)}; give one tuple per map")
    anchors = AnchorGenerator(anchor_sizes, (tuple(aspect_ratios),))
    counts = set(anchors.num_anchors_per_location)
    if len(counts) != 1:
        raise ValueError(f"every RPN level needs the same number of anchors, got {anchors.num_anchors_per_location}")
    rpn = RPN(
        RPNHead(in_channels, counts.pop(), rpn_conv_depth), anchors,
        fg_iou=rpn_fg_iou, bg_iou=rpn_bg_iou, batch_size_per_image=rpn_batch_size_per_image,
        positive_fraction=rpn_positive_fraction, pre_nms_top_n=rpn_pre_nms_top_n,
        post_nms_top_n=rpn_post_nms_top_n, nms_iou=rpn_nms_iou, score_thresh=rpn_score_thresh,
        min_size=rpn_min_size, smooth_l1_beta=rpn_smooth_l1_beta,
    )
    pool = MultiScaleRoIAlign(list(roi_features), pooler_size, sampling_ratio,
                              canonical_scale=canonical_scale, canonical_level=canonical_level)
    roi_heads = RoIHeads(
        pool, TwoMLPHead(in_channels * pooler_size**2, representation_size),
        FastRCNNPredictor(representation_size, num_classes), num_classes=num_classes,
        fg_iou=roi_fg_iou, bg_iou=roi_bg_iou, batch_size_per_image=roi_batch_size_per_image,
        positive_fraction=roi_positive_fraction, bbox_reg_weights=bbox_reg_weights,
        score_thresh=score_thresh, nms_iou=nms_iou, detections_per_img=detections_per_img,
        smooth_l1_beta=roi_smooth_l1_beta,
    )
    return TwoStageDetector(backbone, neck, rpn, roi_heads, rpn_features=rpn_features,
                            roi_features=roi_features, num_classes=num_classes)


def build_faster_rcnn(cfg) -> TwoStageDetector:
    """``ModelConfig`` -> Faster R-CNN (``model.arch: faster_rcnn``).

    ``model.neck`` set: FPN on ``neck.in_features``; unset: a single map, the last of
    ``backbone.out_features`` (default ``c4``). ``model.two_stage`` holds the RPN/RoI settings.
    """
    b, ts = cfg.backbone, cfg.two_stage
    rpn, roi = ts.rpn, ts.roi_heads
    use_fpn = cfg.neck is not None
    if use_fpn:
        features = tuple(cfg.neck.in_features)
        extra = [f for f in (b.out_features or ()) if f not in features]
        if extra:
            raise ValueError(f"backbone.out_features {list(b.out_features)} has stages the FPN does not read: {extra}")
    else:
        features = tuple(b.out_features or ("c4",))
    backbone = build_backbone(
        b.name, out_features=features, width=b.width, output_stride=b.output_stride,
        pretrained_path=b.pretrained, frozen_stages=b.frozen_stages, freeze_bn=b.freeze_bn,
    )
    beta = {"smooth_l1": None, "l1": 0.0}
    return faster_rcnn(
        backbone, num_classes=cfg.num_classes, use_fpn=use_fpn,
        fpn_features=features if use_fpn else ("c2", "c3", "c4", "c5"),
        fpn_channels=cfg.neck.out_channels if use_fpn else 256,
        fpn_extra_levels=cfg.neck.extra_levels if use_fpn else "none",
        rpn_features=rpn.in_features, roi_features=roi.in_features,
        anchor_sizes=rpn.anchor_sizes, aspect_ratios=rpn.aspect_ratios, rpn_conv_depth=rpn.conv_depth,
        rpn_fg_iou=rpn.fg_iou, rpn_bg_iou=rpn.bg_iou, rpn_batch_size_per_image=rpn.batch_size_per_image,
        rpn_positive_fraction=rpn.positive_fraction,
        rpn_pre_nms_top_n={"train": rpn.pre_nms_top_n.train, "test": rpn.pre_nms_top_n.test},
        rpn_post_nms_top_n={"train": rpn.post_nms_top_n.train, "test": rpn.post_nms_top_n.test},
        rpn_nms_iou=rpn.nms_iou, rpn_score_thresh=rpn.score_thresh, rpn_min_size=rpn.min_size,
        rpn_smooth_l1_beta=rpn.smooth_l1_beta if beta[rpn.box_loss] is None else 0.0,
        pooler_size=roi.pooler_size, sampling_ratio=roi.sampling_ratio,
        canonical_scale=roi.canonical_scale, canonical_level=roi.canonical_level,
        representation_size=roi.representation_size, roi_fg_iou=roi.fg_iou, roi_bg_iou=roi.bg_iou,
        roi_batch_size_per_image=roi.batch_size_per_image, roi_positive_fraction=roi.positive_fraction,
        bbox_reg_weights=roi.bbox_reg_weights, score_thresh=roi.score_thresh, nms_iou=roi.nms_iou,
        detections_per_img=roi.detections_per_img,
        roi_smooth_l1_beta=roi.smooth_l1_beta if beta[roi.box_loss] is None else 0.0,
    )


#: torchvision ``FasterRCNN`` key prefix -> detseg prefix (everything else is named alike)
TORCHVISION_PREFIXES = (("backbone.body.", "backbone."), ("backbone.fpn.", "neck."))


def from_torchvision_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a torchvision ``fasterrcnn_*_fpn`` state dict to detseg's module names.

    torchvision counts background as class 0 of ``num_classes``; detseg's ``num_classes`` is the
    foreground count, so a COCO checkpoint (91 outputs) loads into ``num_classes=90``.
    """
    out = {}
    for key, value in state.items():
        for old, new in TORCHVISION_PREFIXES:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def load_torchvision_faster_rcnn(model: TwoStageDetector, state: dict[str, Tensor] | str) -> None:
    """Load a torchvision Faster R-CNN checkpoint (a state dict or a local ``.pth`` path).

    Raises:
        RuntimeError: keys or shapes that do not match, listed in one message.
    """
    if isinstance(state, str):
        state = torch.load(state, map_location="cpu", weights_only=True)
    mapped = from_torchvision_state_dict(state)
    own = model.state_dict()
    # torchvision's pretrained detectors use FrozenBatchNorm2d, which has no step counter
    for key in own:
        if key.endswith("num_batches_tracked") and key not in mapped:
            mapped[key] = own[key]
    missing = sorted(set(own) - set(mapped))
    unexpected = sorted(set(mapped) - set(own))
    shapes = [f"{k}: checkpoint {tuple(mapped[k].shape)} vs model {tuple(own[k].shape)}"
              for k in set(own) & set(mapped) if mapped[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise RuntimeError(
            "torchvision Faster R-CNN checkpoint does not fit this model:"
            + (f"\n  missing: {missing[:10]}{' ...' if len(missing) > 10 else ''}" if missing else "")
            + (f"\n  unexpected: {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}" if unexpected else "")
            + (f"\n  shape mismatch: {shapes[:10]}" if shapes else "")
            + "\n(build with faster_rcnn('resnet50', num_classes=<torchvision num_classes - 1>))"
        )
    model.load_state_dict(mapped, strict=True)


__all__ = ["TwoStageDetector", "build_faster_rcnn", "check_targets", "faster_rcnn",
           "from_torchvision_state_dict", "load_torchvision_faster_rcnn"]
