"""detseg: object detection and segmentation on classic CNN backbones."""

__version__ = "0.1.0"
