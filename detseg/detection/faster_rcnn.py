"""Faster R-CNN (Ren et al., 2015) on any detseg backbone, with an FPN or on a single feature map.

:class:`TwoStageDetector` is the R-CNN skeleton: normalisation, backbone, optional neck, a
proposer (the :class:`~.rpn.RPN`) and :class:`~.roi_heads.RoIHeads`. Top-level module names are
``backbone``, ``neck`` (torchvision's ``backbone.fpn``), ``rpn`` and ``roi_heads``; below them
the names are torchvision's, so a torchvision checkpoint maps by renaming prefixes.

Shape shorthand: N images, Hp x Wp padded batch size, K foreground classes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..backbones.base import Backbone, FeatureSpec
from ..backbones.build import build_backbone
from ..config.two_stage import RoIHeadsConfig, RPNConfig, TrainTest
from ..necks.fpn import FPN, build_fpn
from ..structures import Normalize
from ..structures.instances import Detections, Instances
from .base import Detector, check_targets
from .roi_heads import RoIHeads, TwoMLPHead, roi_pooler
from .rpn import RPN
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
        return self._detect(images, image_sizes)[0]

    def _detect(self, images: Tensor, image_sizes: Sequence[tuple[int, int]] | None):
        """Test-time boxes, with what a further RoI branch needs: (detections, RoI features, sizes)."""
        if image_sizes is None:
            image_sizes = [tuple(images.shape[-2:])] * len(images)
        image_sizes = [tuple(int(v) for v in s) for s in image_sizes]
        features = self.extract(images, image_sizes)
        out = self.rpn([features[k] for k in self.rpn_features], images.shape[-2:])
        proposals = self.rpn.proposals(out, image_sizes, train=False)
        roi_inputs = {k: features[k] for k in self.roi_features}
        return self.roi_heads.predict(roi_inputs, proposals, image_sizes), roi_inputs, image_sizes

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


#: faster_rcnn()'s flat keywords (torchvision's ``fasterrcnn_*`` spellings) -> the
#: :class:`~detseg.config.two_stage.RPNConfig` field each sets; the dataclass holds the defaults
RPN_KEYWORDS = {
    "rpn_features": "in_features", "anchor_sizes": "anchor_sizes", "aspect_ratios": "aspect_ratios",
    "rpn_conv_depth": "conv_depth", "rpn_fg_iou": "fg_iou", "rpn_bg_iou": "bg_iou",
    "rpn_batch_size_per_image": "batch_size_per_image", "rpn_positive_fraction": "positive_fraction",
    "rpn_pre_nms_top_n": "pre_nms_top_n", "rpn_post_nms_top_n": "post_nms_top_n", "rpn_nms_iou": "nms_iou",
    "rpn_score_thresh": "score_thresh", "rpn_min_size": "min_size", "rpn_smooth_l1_beta": "smooth_l1_beta",
}
#: the same for :class:`~detseg.config.two_stage.RoIHeadsConfig`
ROI_KEYWORDS = {
    "roi_features": "in_features", "pooler_size": "pooler_size", "sampling_ratio": "sampling_ratio",
    "canonical_scale": "canonical_scale", "canonical_level": "canonical_level",
    "representation_size": "representation_size", "roi_fg_iou": "fg_iou", "roi_bg_iou": "bg_iou",
    "roi_batch_size_per_image": "batch_size_per_image", "roi_positive_fraction": "positive_fraction",
    "bbox_reg_weights": "bbox_reg_weights", "score_thresh": "score_thresh", "nms_iou": "nms_iou",
    "detections_per_img": "detections_per_img", "roi_smooth_l1_beta": "smooth_l1_beta",
}


def _with_keywords(section, table: dict[str, str], options: dict):
    """``section`` with the flat keywords of ``table`` taken out of ``options`` (``None`` = unset;
    ``{"train": n, "test": n}`` dicts become :class:`TrainTest`)."""
    fields = {}
    for keyword, name in table.items():
        value = options.pop(keyword, None)
        if value is not None:
            fields[name] = TrainTest(**value) if isinstance(value, dict) else value
    return replace(section, **fields)


def _feature_maps(backbone: Backbone, neck: FPN | None, fpn_features: Sequence[str], rpn: RPNConfig,
                  roi: RoIHeadsConfig) -> tuple[dict[str, FeatureSpec], tuple[str, ...], tuple[str, ...]]:
    """The maps the stages can read (name -> spec) and the names the RPN and the RoI pooler read.

    Defaults: with an FPN every level (RPN) and the levels built from backbone stages (RoI);
    without, the backbone's last map for both. Both stages read one channel count.
    """
    if neck is not None:
        specs = neck.feature_specs
        rpn_features = tuple(rpn.in_features or specs)
        roi_features = tuple(roi.in_features or (f"p{n[1:]}" for n in fpn_features))
    else:
        specs = backbone.feature_specs
        last = tuple(specs)[-1]
        rpn_features, roi_features = tuple(rpn.in_features or (last,)), tuple(roi.in_features or (last,))
    for role, names in (("rpn_features", rpn_features), ("roi_features", roi_features)):
        missing = [n for n in names if n not in specs]
        if missing:
            raise ValueError(f"{role} {list(names)}: available maps are {list(specs)}")
    channels = {specs[n].channels for n in rpn_features + roi_features}
    if len(channels) != 1:
        raise ValueError(f"RPN/RoI maps must share a channel count (use an FPN), got {channels}")
    return specs, rpn_features, roi_features


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
    rpn: RPNConfig | None = None,
    roi_heads: RoIHeadsConfig | None = None,
    **options,
) -> TwoStageDetector:
    """Build Faster R-CNN. Defaults are torchvision's ``fasterrcnn_resnet50_fpn``.

    Args:
        backbone: a backbone name (built with ``width`` and the backbone options) or a built one.
        num_classes: K foreground classes.
        backbone_features: stages the backbone returns; default ``fpn_features`` with an FPN,
            ``("c4",)`` without (the paper's conv4/C4 map, stride 16).
        use_fpn: FPN on ``fpn_features`` (levels ``p*``, ``fpn_extra_levels`` on top) or a
            single feature map.
        rpn / roi_heads: the two stages' settings (``model.two_stage.rpn`` / ``roi_heads`` of a
            config); default: the dataclasses' defaults.
        **options: flat keywords for single fields of those sections, torchvision-style
            (:data:`RPN_KEYWORDS`, :data:`ROI_KEYWORDS`: ``rpn_nms_iou``, ``anchor_sizes``,
            ``score_thresh``, ``representation_size``, ...; ``rpn_pre_nms_top_n`` and
            ``rpn_post_nms_top_n`` as ``{"train": n, "test": n}``); they override ``rpn`` /
            ``roi_heads``. Any other keyword goes to the backbone builder.

    Example:
        >>> model = faster_rcnn("resnet18", num_classes=3, width=0.25, fpn_channels=32,
        ...                     rpn=RPNConfig(anchor_sizes=((16,), (32,), (64,), (128,))))
    """
    rpn = _with_keywords(rpn or RPNConfig(), RPN_KEYWORDS, options)
    roi = _with_keywords(roi_heads or RoIHeadsConfig(), ROI_KEYWORDS, options)
    if isinstance(backbone, str):
        out = backbone_features or (tuple(fpn_features) if use_fpn else ("c4",))
        backbone = build_backbone(backbone, out_features=out, width=width, **options)
    neck = None
    if use_fpn:
        neck = build_fpn(backbone.feature_specs, tuple(fpn_features), fpn_channels, fpn_extra_levels)  # type: ignore[arg-type]
    specs, rpn_features, roi_features = _feature_maps(backbone, neck, fpn_features, rpn, roi)
    proposer = RPN.from_config(rpn, {n: specs[n] for n in rpn_features})
    box_head = TwoMLPHead(specs[roi_features[0]].channels * roi.pooler_size**2, roi.representation_size)
    heads = RoIHeads.from_config(roi, roi_pooler(roi, roi_features), box_head, num_classes)
    return TwoStageDetector(backbone, neck, proposer, heads, rpn_features=rpn_features,
                            roi_features=roi_features, num_classes=num_classes)


def build_faster_rcnn(cfg) -> TwoStageDetector:
    """``ModelConfig`` -> Faster R-CNN (``model.arch: faster_rcnn``).

    ``model.neck`` set: FPN on ``neck.in_features``; unset: a single map, the last of
    ``backbone.out_features`` (default ``c4``). ``model.two_stage`` holds the RPN/RoI settings.
    """
    b, neck = cfg.backbone, cfg.neck
    if neck is not None:
        features = tuple(neck.in_features)
        extra = [f for f in (b.out_features or ()) if f not in features]
        if extra:
            raise ValueError(f"backbone.out_features {list(b.out_features)} has stages the FPN does not read: {extra}")
    else:
        features = tuple(b.out_features or ("c4",))
    backbone = build_backbone(
        b.name, out_features=features, width=b.width, output_stride=b.output_stride,
        pretrained_path=b.pretrained, frozen_stages=b.frozen_stages, freeze_bn=b.freeze_bn,
    )
    fpn = {} if neck is None else dict(fpn_features=features, fpn_channels=neck.out_channels,
                                       fpn_extra_levels=neck.extra_levels)
    return faster_rcnn(backbone, num_classes=cfg.num_classes, use_fpn=neck is not None, **fpn,
                       rpn=cfg.two_stage.rpn, roi_heads=cfg.two_stage.roi_heads)


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
