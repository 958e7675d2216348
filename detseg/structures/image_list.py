"""Model-side preprocessing of image batches."""

from __future__ import annotations

import torch
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """Float RGB images in [0, 1] -> ImageNet-normalised images (what pretrained weights expect).

    Kept inside the model so checkpoints carry their preprocessing and users feed plain images.

    Args:
        mean, std: per-channel statistics in [0, 1] units.
    """

    def __init__(self, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        """Tensor[N, 3, H, W] float in [0, 1] -> normalised Tensor[N, 3, H, W]."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"expected images as Tensor[N, 3, H, W], got shape {tuple(images.shape)}"
            )
        if not images.is_floating_point():
            raise TypeError(
                f"expected float images in [0, 1], got {images.dtype}; use images.float() / 255"
            )
        return (images - self.mean) / self.std
