"""Model-side preprocessing of image batches."""

from __future__ import annotations

import torch
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """RGB images (uint8, or float in [0, 1]) -> ImageNet-normalised float images.

    Kept inside the model so checkpoints carry their preprocessing and users feed plain images;
    uint8 input lets data loaders ship 4x fewer bytes to the GPU and convert there.

    Args:
        mean, std: per-channel statistics in [0, 1] units.
    """

    def __init__(self, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        """Tensor[N, 3, H, W] uint8 or float in [0, 1] -> normalised float Tensor[N, 3, H, W]."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"expected images as Tensor[N, 3, H, W], got shape {tuple(images.shape)}"
            )
        if images.dtype == torch.uint8:
            return (images.float() / 255 - self.mean) / self.std
        if not images.is_floating_point():
            raise TypeError(f"expected uint8 images or float images in [0, 1], got {images.dtype}")
        return (images - self.mean) / self.std
