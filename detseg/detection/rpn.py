"""Region Proposal Network (Ren et al., 2015) on one feature map or every FPN level.

Module and parameter names mirror torchvision (``head.conv``, ``head.cls_logits``,
``head.bbox_pred``) so torchvision Faster R-CNN weights map onto it key for key.

Shape shorthand: N images, L levels, A anchors per location, Hi x Wi the size of level i,
T = sum_i Hi * Wi * A anchors, K_i = min(pre_nms_top_n, Hi * Wi * A), P proposals per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import Conv2dNormActivation

from ..backbones.base import FeatureSpec
from ..config.two_stage import RPNConfig, loss_beta
from ..structures.instances import Instances
from .anchors import AnchorGenerator, default_anchor_sizes
from .box_coder import BoxCoder, clip_boxes
from .matcher import Matcher, PaddedTargets, ignore_crowd, pairwise_iou, sample_balanced
from .traceable import batched_nms


class RPNHead(nn.Module):
    """Shared 3x3 conv(s) + ReLU, then 1x1 objectness and box-delta predictors, on every level.

    Args:
        in_channels: channels of every input level (FPN levels share them).
        num_anchors: A, anchors per location.
        conv_depth: number of 3x3 convs.
    """

    def __init__(self, in_channels: int, num_anchors: int, conv_depth: int = 1) -> None:
        super().__init__()
        self.conv = nn.Sequential(*[
            Conv2dNormActivation(in_channels, in_channels, kernel_size=3, norm_layer=None)
            for _ in range(conv_depth)
        ])
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, kernel_size=1)
        self.bbox_pred = nn.Conv2d(in_channels, num_anchors * 4, kernel_size=1)
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.normal_(layer.weight, std=0.01)
                nn.init.constant_(layer.bias, 0)

    def forward(self, features: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Levels Tensor[N, C, Hi, Wi] -> objectness Tensor[N, A, Hi, Wi], deltas Tensor[N, 4A, Hi, Wi]."""
        logits, deltas = [], []
        for x in features:
            t = self.conv(x)
            logits.append(self.cls_logits(t))
            deltas.append(self.bbox_pred(t))
        return logits, deltas


@dataclass
class RPNOutputs:
    """Raw RPN predictions, flattened in anchor order (see :mod:`.anchors`).

    Attributes:
        objectness: Tensor[N, T] logits.
        deltas: Tensor[N, T, 4] box deltas relative to ``anchors``.
        anchors: Tensor[T, 4] xyxy absolute pixels (shared by the images of the batch).
        num_per_level: anchors per level, ``sum == T``.
    """

    objectness: Tensor
    deltas: Tensor
    anchors: Tensor
    num_per_level: list[int]


class RPN(nn.Module):
    """Anchors + head + matching/sampling losses + proposal selection.

    ``loss`` and ``proposals(..., train=True)`` use the training top-N settings,
    ``proposals(..., train=False)`` the test ones: the choice follows the method (loss for
    training or validation, predict for inference), not ``self.training``.

    Args:
        head: :class:`RPNHead`.
        anchor_generator: :class:`AnchorGenerator` with one entry per input level.
        fg_iou / bg_iou: anchor matching thresholds (0.7 / 0.3).
        batch_size_per_image / positive_fraction: anchors sampled per image for the losses.
        pre_nms_top_n / post_nms_top_n: ``{"train": n, "test": n}``, per level before NMS and
            per image after it.
        nms_iou: proposal NMS threshold (applied per level, as torchvision does).
        score_thresh: minimum objectness probability of a proposal.
        min_size: minimum proposal width/height in pixels.
        smooth_l1_beta: smooth-L1 switch point; 0 gives an L1 loss.

    Example:
        >>> rpn = RPN(RPNHead(64, 3), AnchorGenerator(((32,), (64,)), ((0.5, 1.0, 2.0),)))
        >>> out = rpn([p3, p4], images.shape[-2:])
        >>> losses = rpn.loss(out, targets)        # loss_rpn_cls, loss_rpn_box
        >>> boxes = rpn.proposals(out, image_sizes, train=False)   # list of Tensor[P, 4]
    """

    def __init__(
        self,
        head: RPNHead,
        anchor_generator: AnchorGenerator,
        *,
        fg_iou: float = 0.7,
        bg_iou: float = 0.3,
        batch_size_per_image: int = 256,
        positive_fraction: float = 0.5,
        pre_nms_top_n: dict[str, int] | None = None,
        post_nms_top_n: dict[str, int] | None = None,
        nms_iou: float = 0.7,
        score_thresh: float = 0.0,
        min_size: float = 1e-3,
        smooth_l1_beta: float = 1.0 / 9.0,
    ) -> None:
        super().__init__()
        self.head = head
        self.anchor_generator = anchor_generator
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.matcher = Matcher(fg_iou, bg_iou, allow_low_quality_matches=True)
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.pre_nms_top_n = dict(pre_nms_top_n or {"train": 2000, "test": 1000})
        self.post_nms_top_n = dict(post_nms_top_n or {"train": 2000, "test": 1000})
        self.nms_iou = nms_iou
        self.score_thresh = score_thresh
        self.min_size = min_size
        self.smooth_l1_beta = smooth_l1_beta

    @classmethod
    def from_config(cls, cfg: RPNConfig, in_specs: dict[str, FeatureSpec]) -> "RPN":
        """The RPN of ``model.two_stage.rpn`` on the maps ``in_specs`` (name -> channels, stride).

        The maps share one channel count (the caller checks it). ``cfg.anchor_sizes`` unset:
        :func:`~.anchors.default_anchor_sizes` for the maps' strides.

        Raises:
            ValueError: anchor sizes for another number of maps, or levels with different anchor counts.
        """
        names = list(in_specs)
        anchor_sizes = cfg.anchor_sizes
        if anchor_sizes is None:
            anchor_sizes = default_anchor_sizes([s.stride for s in in_specs.values()], single_map=len(names) == 1)
        if len(anchor_sizes) != len(names):
            raise ValueError(f"anchor_sizes has {len(anchor_sizes)} levels for RPN maps {names}; give one tuple per map")
        anchors = AnchorGenerator(anchor_sizes, (tuple(cfg.aspect_ratios),))
        counts = set(anchors.num_anchors_per_location)
        if len(counts) != 1:
            raise ValueError(f"every RPN level needs the same number of anchors, got {anchors.num_anchors_per_location}")
        return cls(
            RPNHead(in_specs[names[0]].channels, counts.pop(), cfg.conv_depth), anchors,
            fg_iou=cfg.fg_iou, bg_iou=cfg.bg_iou, batch_size_per_image=cfg.batch_size_per_image,
            positive_fraction=cfg.positive_fraction,
            pre_nms_top_n={"train": cfg.pre_nms_top_n.train, "test": cfg.pre_nms_top_n.test},
            post_nms_top_n={"train": cfg.post_nms_top_n.train, "test": cfg.post_nms_top_n.test},
            nms_iou=cfg.nms_iou, score_thresh=cfg.score_thresh, min_size=cfg.min_size,
            smooth_l1_beta=loss_beta(cfg.box_loss, cfg.smooth_l1_beta),
        )

    def forward(self, features: Sequence[Tensor], image_shape: Sequence[int]) -> RPNOutputs:
        """Run the head on every level.

        Args:
            features: L tensors Tensor[N, C, Hi, Wi].
            image_shape: ``(Hp, Wp)`` of the padded input (sets the anchor strides).
        """
        logits, deltas = self.head(features)
        n = logits[0].shape[0]
        # sizes stay symbolic under export: int() would freeze them at the example's
        anchors = self.anchor_generator([tuple(x.shape[-2:]) for x in features], tuple(image_shape),
                                        features[0].device, features[0].dtype)
        # [N, A, H, W] -> [N, H, W, A] -> [N, H*W*A]: location-major like the anchors
        flat_logits = torch.cat([x.permute(0, 2, 3, 1).reshape(n, -1) for x in logits], dim=1)
        flat_deltas = torch.cat([
            d.view(n, -1, 4, d.shape[-2], d.shape[-1]).permute(0, 3, 4, 1, 2).reshape(n, -1, 4) for d in deltas
        ], dim=1)
        return RPNOutputs(flat_logits, flat_deltas, torch.cat(anchors), [a.shape[0] for a in anchors])

    def loss(self, out: RPNOutputs, targets: Sequence[Instances]) -> dict[str, Tensor]:
        """Objectness BCE and box regression over a balanced sample of anchors per image.

        Both terms are normalised by the number of sampled anchors (torchvision); images
        without objects contribute negatives only (box loss 0).

        Returns:
            ``{"loss_rpn_cls": Tensor[], "loss_rpn_box": Tensor[]}``.
        """
        n, t = out.objectness.shape
        gt = PaddedTargets.from_instances(targets, out.anchors.device)
        with torch.no_grad():
            iou = pairwise_iou(out.anchors[None], gt.boxes)  # [N, T, G]
            matched, labels = self.matcher(iou, gt.valid)
            del iou
            labels = ignore_crowd(labels, out.anchors, gt)
            groups = torch.arange(n, device=labels.device).repeat_interleave(t)
            pos, neg = sample_balanced(labels.view(-1), groups, n, self.batch_size_per_image, self.positive_fraction)
            img, anchor_idx = pos // t, pos % t
            target_deltas = self.box_coder.encode(gt.boxes[img, matched.view(-1)[pos]], out.anchors[anchor_idx])
        sampled = torch.cat([pos, neg])
        num = max(1, len(sampled))
        logits = out.objectness.reshape(-1)[sampled]
        loss_cls = F.binary_cross_entropy_with_logits(
            logits, (torch.arange(len(sampled), device=logits.device) < len(pos)).to(logits.dtype), reduction="sum"
        ) / num
        loss_box = F.smooth_l1_loss(out.deltas.reshape(-1, 4)[pos], target_deltas.to(out.deltas.dtype),
                                    beta=self.smooth_l1_beta, reduction="sum") / num
        return {"loss_rpn_cls": loss_cls, "loss_rpn_box": loss_box}

    @torch.no_grad()
    def proposals(self, out: RPNOutputs, image_sizes: Sequence[tuple[int, int]], *, train: bool) -> list[Tensor]:
        """Top-N anchors per level -> decoded, clipped, NMS per level -> top-N per image.

        Computed without gradients: proposals are inputs to the second stage, and Faster
        R-CNN's approximate joint training does not back-propagate through box coordinates.

        Args:
            image_sizes: true ``(H, W)`` of each image (boxes are clipped to it).
            train: use the training (``loss``) or test (``predict``) top-N settings.

        Returns:
            N tensors Tensor[P_i, 4] xyxy, sorted by objectness, high first.
        """
        mode = "train" if train else "test"
        sizes = torch.as_tensor(image_sizes, dtype=torch.float32, device=out.objectness.device)
        boxes, image, keep = self.select(out, sizes, mode)
        return split_top_per_image(boxes, image, keep, len(sizes), self.post_nms_top_n[mode])

    def select(self, out: RPNOutputs, sizes: Tensor, mode: str) -> tuple[Tensor, Tensor, Tensor]:
        """The proposals of the whole batch before the per-image top-N; traceable (no data-dependent
        Python), so :meth:`~.faster_rcnn.TwoStageDetector.export_outputs` runs it too.

        Args:
            sizes: Tensor[N, 2] float ``(H, W)`` per image.
            mode: ``train`` or ``test`` (the top-N settings).

        Returns:
            ``boxes`` Tensor[N * K, 4] candidates, ``image`` Tensor[N * K] their image, ``keep``
            indices of the candidates NMS kept, by decreasing objectness over the batch.
        """
        objectness, deltas = out.objectness.detach().float(), out.deltas.detach().float()
        n = objectness.shape[0]
        device = objectness.device
        top_idx, levels, offset = [], [], 0
        for lvl, count in enumerate(out.num_per_level):
            k = torch.sym_min(self.pre_nms_top_n[mode], count)  # symbolic under export: no branch
            top_idx.append(objectness[:, offset: offset + count].topk(k, dim=1).indices + offset)
            levels.append(torch.full((k,), lvl, dtype=torch.int64, device=device))
            offset += count
        idx = torch.cat(top_idx, dim=1)  # [N, K]
        level = torch.cat(levels)  # [K]
        k = idx.shape[1]
        scores = torch.sigmoid(objectness.gather(1, idx))
        boxes = self.box_coder.decode(deltas.gather(1, idx[..., None].expand(-1, -1, 4)), out.anchors.float()[idx])
        boxes = clip_boxes(boxes, sizes.to(boxes).view(n, 1, 2)).view(-1, 4)
        scores = scores.view(-1)
        image = torch.arange(n, device=device).repeat_interleave(k)
        wh = boxes[:, 2:] - boxes[:, :2]
        keep = ((wh >= self.min_size).all(dim=1) & (scores >= self.score_thresh)).nonzero().squeeze(1)
        # one NMS call for the whole batch: the groups are (image, level) pairs
        keep = keep[batched_nms(boxes[keep], scores[keep], image[keep] * len(levels) + level.repeat(n)[keep], self.nms_iou)]
        return boxes, image, keep


def split_top_per_image(boxes: Tensor, image: Tensor, keep: Tensor, num_images: int, top_n: int) -> list[Tensor]:
    """Split ``boxes[keep]`` (sorted by score, any image order) into per-image lists of the top ``top_n``."""
    keep = keep[torch.argsort(image[keep], stable=True)]
    img = image[keep]
    counts = torch.bincount(img, minlength=num_images)
    starts = counts.cumsum(0) - counts
    rank = torch.arange(len(keep), device=keep.device) - starts[img]
    keep = keep[rank < top_n]
    return list(boxes[keep].split(counts.clamp(max=top_n).tolist()))
