"""Inference on images, folders, video and large images (tiles), and drawn results."""

from .predictor import Predictor, Result

__all__ = ["Predictor", "Result"]
