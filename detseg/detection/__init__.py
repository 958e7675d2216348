"""The R-CNN family of detectors: R-CNN, Fast R-CNN, Faster R-CNN (RPN) and Mask R-CNN.

Shared parts: anchors, the box coder, IoU matching and balanced sampling, the RoI heads; the
detectors differ in where regions come from (selective search or an RPN) and how a region
becomes features (warped image crop, or RoIAlign on shared features).
"""

from .anchors import AnchorGenerator
from .base import Detector, check_targets
from .box_coder import BoxCoder
from .faster_rcnn import TwoStageDetector, build_faster_rcnn, faster_rcnn, load_torchvision_faster_rcnn
from .mask_rcnn import MaskBranch, MaskRCNN, build_mask_rcnn
from .matcher import Matcher, sample_balanced
from .proposals import load_proposals, selective_search
from .rcnn import ProposalDetector, RegionCNN, WarpRegions, build_fast_rcnn, build_rcnn
from .roi_heads import FastRCNNPredictor, RoIHeads, RoISample, TwoMLPHead
from .rpn import RPN, RPNHead

__all__ = [
    "AnchorGenerator", "BoxCoder", "Detector", "FastRCNNPredictor", "MaskBranch", "MaskRCNN", "Matcher", "ProposalDetector",
    "RPN", "RPNHead", "RegionCNN", "RoIHeads", "RoISample", "TwoMLPHead", "TwoStageDetector", "WarpRegions",
    "build_fast_rcnn", "build_faster_rcnn", "build_mask_rcnn", "build_rcnn", "check_targets", "faster_rcnn",
    "load_proposals", "load_torchvision_faster_rcnn", "sample_balanced", "selective_search",
]
