"""R-CNN (Girshick et al., 2014) and Fast R-CNN (Girshick, 2015): detectors on external proposals.

Both take region proposals from outside the network (the built-in
:func:`~.proposals.selective_search`, or boxes passed to ``loss``/``predict``, e.g. from
:func:`~.proposals.load_proposals`) and share :class:`~.roi_heads.RoIHeads` with Faster R-CNN.
They differ only in how a region becomes a feature vector:

* **R-CNN** warps every region of the *image* to a fixed square (:class:`WarpRegions`, with
  context padding) and runs the whole CNN on each crop (:class:`RegionCNN`): one forward pass
  per region, which is why it is slow.
* **Fast R-CNN** runs the CNN once per image and pools each region from the shared feature map
  with RoIAlign (the box pooler of Faster R-CNN).

Training follows Fast R-CNN for both: one network with a softmax classifier and class-specific
box regression trained jointly on a balanced sample of regions (the original R-CNN fitted SVMs
and regressors on frozen features afterwards; its fine-tuning stage is this one).

Shape shorthand: N images, R regions in the batch, S the warp size, K foreground classes.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torchvision.ops import roi_align

from ..backbones.base import Backbone
from ..backbones.build import build_backbone
from ..necks.fpn import FPN, build_fpn
from ..structures import Normalize
from ..structures.instances import Detections, Instances
from .base import Detector, check_targets
from .proposals import images_to_proposals
from .roi_heads import RoIHeads, TwoMLPHead, roi_pooler


class WarpRegions(nn.Module):
    """R-CNN's region warp: each box, grown by ``context`` on every side, resampled to S x S.

    Bilinear resampling of image pixels (``roi_align`` at scale 1), so the crops of a whole
    batch are one tensor operation; the aspect ratio is not kept, as in the paper.

    Args:
        size: S, the side of the warped crop (227 in the paper).
        context: fraction of the box size added on each side (the paper's 16 px of context
            around a 227 px crop is ``16 / 195 ~ 0.08``).
    """

    def __init__(self, size: int, context: float = 0.08) -> None:
        super().__init__()
        self.size, self.context = size, context

    def forward(self, features: dict[str, Tensor], boxes: Sequence[Tensor],
                image_sizes: Sequence[tuple[int, int]]) -> Tensor:
        """``features["image"]`` Tensor[N, 3, Hp, Wp] -> crops Tensor[R, 3, S, S]."""
        image = features["image"]
        grown = []
        for b in boxes:
            pad = (b[:, 2:] - b[:, :2]) * self.context
            grown.append(torch.cat([b[:, :2] - pad, b[:, 2:] + pad], dim=1).to(image.dtype))
        return roi_align(image, grown, self.size, spatial_scale=1.0, sampling_ratio=2, aligned=True)


class RegionCNN(nn.Module):
    """The whole CNN on each warped region: backbone -> global average pool -> fc -> ReLU.

    Args:
        backbone: returns one feature map (its last stage).
        representation_size: width of the fc layer (the paper's fc7 is 4096).
    """

    def __init__(self, backbone: Backbone, representation_size: int) -> None:
        super().__init__()
        self.backbone = backbone
        (name, spec), = list(backbone.feature_specs.items())[-1:]
        self.feature = name
        self.fc = nn.Linear(spec.channels, representation_size)

    def forward(self, crops: Tensor) -> Tensor:
        """Tensor[R, 3, S, S] normalised crops -> Tensor[R, representation_size]."""
        x = self.backbone(crops)[self.feature].mean(dim=(2, 3))
        return torch.relu(self.fc(x))


class ProposalDetector(Detector):
    """R-CNN / Fast R-CNN: proposals from outside the network + :class:`RoIHeads`.

    Args:
        roi_heads: the region classifier (its pooler is :class:`WarpRegions` for R-CNN, a
            ``MultiScaleRoIAlign`` for Fast R-CNN).
        backbone / neck: the shared feature extractor of Fast R-CNN; ``None`` for R-CNN, whose
            CNN sits inside ``roi_heads.box_head``.
        roi_features: maps the pooler reads (``("image",)`` for R-CNN).
        num_classes: K foreground classes.
        proposal_options: keyword arguments of :func:`~.proposals.selective_search`.
        max_proposals: ``{"train": n, "test": n}`` regions per image.

    ``loss(images, targets, proposals=None)`` / ``predict(images, image_sizes, proposals=None)``:
    without ``proposals`` (list of Tensor[P_i, 4] xyxy, input frame) selective search runs on
    the images.
    """

    task = "detection"
    with_masks = False

    def __init__(self, roi_heads: RoIHeads, *, backbone: Backbone | None, neck: FPN | None,
                 roi_features: Sequence[str], num_classes: int, proposal_options: dict | None = None,
                 max_proposals: dict[str, int] | None = None) -> None:
        super().__init__()
        self.normalize = Normalize()
        self.backbone = backbone
        self.neck = neck
        self.roi_heads = roi_heads
        self.roi_features = tuple(roi_features)
        self.num_classes = num_classes
        self.proposal_options = dict(proposal_options or {})
        self.max_proposals = dict(max_proposals or {"train": 2000, "test": 2000})

    def extract(self, images: Tensor, image_sizes: Sequence[tuple[int, int]] | None = None) -> dict[str, Tensor]:
        """Normalised images (R-CNN) or shared feature maps (Fast R-CNN), by name; padding set to the mean colour."""
        x = self.normalize(images, image_sizes)
        if self.backbone is None:
            return {"image": x}
        features = self.backbone(x)
        return self.neck(features) if self.neck is not None else features

    def regions(self, images: Tensor, image_sizes: Sequence[tuple[int, int]], proposals: Sequence[Tensor] | None,
                mode: str) -> list[Tensor]:
        """Given proposals, or selective search; at most ``max_proposals[mode]`` per image."""
        if proposals is None:
            proposals = images_to_proposals(images, image_sizes, **self.proposal_options)
        elif len(proposals) != len(images):
            raise ValueError(f"got {len(images)} images but {len(proposals)} proposal lists")
        return [p[: self.max_proposals[mode]].to(images.device, torch.float32) for p in proposals]

    def loss(self, images: Tensor, targets: Sequence[Instances],
             proposals: Sequence[Tensor] | None = None) -> dict[str, Tensor]:
        """``loss_roi_cls``, ``loss_roi_box`` on a balanced sample of proposals + ground truth."""
        check_targets(targets, len(images), self.num_classes)
        image_sizes = [tuple(t.image_size) for t in targets]
        boxes = self.regions(images, image_sizes, proposals, "train")
        features = self.extract(images, image_sizes)
        return self.roi_heads.loss({k: features[k] for k in self.roi_features}, boxes, targets, image_sizes)

    @torch.no_grad()
    def predict(self, images: Tensor, image_sizes: Sequence[tuple[int, int]] | None = None,
                proposals: Sequence[Tensor] | None = None) -> list[Detections]:
        """Detections per image in the input frame (see :meth:`RoIHeads.predict`)."""
        if image_sizes is None:
            image_sizes = [tuple(images.shape[-2:])] * len(images)
        image_sizes = [tuple(int(v) for v in s) for s in image_sizes]
        boxes = self.regions(images, image_sizes, proposals, "test")
        features = self.extract(images, image_sizes)
        return self.roi_heads.predict({k: features[k] for k in self.roi_features}, boxes, image_sizes)


def _proposal_settings(cfg) -> dict:
    p = cfg.two_stage.proposals
    return dict(proposal_options={"ks": p.ks, "work_size": p.work_size, "min_size": p.min_size,
                                  "max_proposals": max(p.max_proposals.train, p.max_proposals.test)},
                max_proposals={"train": p.max_proposals.train, "test": p.max_proposals.test})


def build_rcnn(cfg) -> ProposalDetector:
    """``ModelConfig`` -> R-CNN (``model.arch: rcnn``): the backbone runs on every warped region.

    ``model.two_stage.warp_size`` / ``warp_context`` set the crops, ``roi_heads`` the sampling,
    the fc width (``representation_size``) and post-processing; ``proposals`` selective search.
    """
    b, roi = cfg.backbone, cfg.two_stage.roi_heads
    features = tuple(b.out_features or ("c5",))[-1:]
    backbone = build_backbone(b.name, out_features=features, width=b.width, output_stride=b.output_stride,
                              pretrained_path=b.pretrained, frozen_stages=b.frozen_stages, freeze_bn=b.freeze_bn)
    heads = RoIHeads.from_config(roi, WarpRegions(cfg.two_stage.warp_size, cfg.two_stage.warp_context),
                                 RegionCNN(backbone, roi.representation_size), cfg.num_classes)
    return ProposalDetector(heads, backbone=None, neck=None, roi_features=("image",), num_classes=cfg.num_classes,
                            **_proposal_settings(cfg))


def build_fast_rcnn(cfg) -> ProposalDetector:
    """``ModelConfig`` -> Fast R-CNN (``model.arch: fast_rcnn``): RoIAlign on shared features.

    ``model.neck`` set: RoIs pooled from the FPN levels (assigned by size); unset: from the last
    of ``backbone.out_features`` (default ``c4``, the paper's conv5 of VGG-16 at stride 16).
    """
    b, roi = cfg.backbone, cfg.two_stage.roi_heads
    if cfg.neck is not None:
        features = tuple(cfg.neck.in_features)
    else:
        features = tuple(b.out_features or ("c4",))
    backbone = build_backbone(b.name, out_features=features, width=b.width, output_stride=b.output_stride,
                              pretrained_path=b.pretrained, frozen_stages=b.frozen_stages, freeze_bn=b.freeze_bn)
    if cfg.neck is not None:
        neck = build_fpn(backbone.feature_specs, features, cfg.neck.out_channels, "none")
        names = tuple(roi.in_features or neck.feature_specs)
        channels = cfg.neck.out_channels
    else:
        neck = None
        names = tuple(roi.in_features or features[-1:])
        channels = backbone.feature_specs[names[0]].channels
    heads = RoIHeads.from_config(roi, roi_pooler(roi, names),
                                 TwoMLPHead(channels * roi.pooler_size**2, roi.representation_size), cfg.num_classes)
    return ProposalDetector(heads, backbone=backbone, neck=neck, roi_features=names, num_classes=cfg.num_classes,
                            **_proposal_settings(cfg))


__all__ = ["ProposalDetector", "RegionCNN", "WarpRegions", "build_fast_rcnn", "build_rcnn"]
