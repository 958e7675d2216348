"""Single-shot detectors: a YOLOv8-style anchor-free detector and the original YOLOv1 grid detector."""

from .assigner import TaskAlignedAssigner
from .model import YOLO, YoloHead, build_yolo, yolo

__all__ = ["TaskAlignedAssigner", "YOLO", "YoloHead", "build_yolo", "yolo"]
