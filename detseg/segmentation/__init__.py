"""Semantic segmentation: FCN-32s/16s/8s, U-Net (classic and backbone-encoder) and DeepLab-v3.

Every model is a :class:`SemanticSegmenter` (``loss``/``predict``/``forward``, padding to the
network stride and cropping back); builders from ``ModelConfig`` live in :mod:`.build`.
"""

from .base import SemanticSegmenter
from .deeplab import ASPP, DeepLabV3
from .fcn import FCN, BilinearUpsample, bilinear_kernel, convolutionalize_vgg_classifier
from .losses import SegmentationLoss, dice_loss
from .sliding import predict_sliding, sliding_window_probs
from .unet import BackboneUNet, UNet

__all__ = [
    "ASPP", "BackboneUNet", "BilinearUpsample", "DeepLabV3", "FCN", "SegmentationLoss", "SemanticSegmenter",
    "UNet", "bilinear_kernel", "convolutionalize_vgg_classifier", "dice_loss", "predict_sliding", "sliding_window_probs",
]
