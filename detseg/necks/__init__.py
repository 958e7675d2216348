"""Necks: modules between a backbone's stages and the task heads."""

from .fpn import FPN

__all__ = ["FPN"]
