"""Small typed structures shared by models, data and evaluation."""

from .normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Normalize"]
