"""Model-side preprocessing of image batches."""

from __future__ import annotations

from collections.abc import Sequence

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

    def forward(self, images: Tensor, image_sizes: Sequence[tuple[int, int]] | None = None) -> Tensor:
        """Tensor[N, 3, H, W] uint8 or float in [0, 1] -> normalised float Tensor[N, 3, H, W].

        Args:
            image_sizes: true ``(H, W)`` per image; pixels outside are set to 0 after
                normalisation (the mean colour), as torchvision and Detectron2 pad, whatever the
                collate padded with. ``None``: the whole tensor is image.
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"expected images as Tensor[N, 3, H, W], got shape {tuple(images.shape)}"
            )
        if images.dtype == torch.uint8:
            x = (images.float() / 255 - self.mean) / self.std
        elif images.is_floating_point():
            x = (images - self.mean) / self.std
        else:
            raise TypeError(f"expected uint8 images or float images in [0, 1], got {images.dtype}")
        height, width = x.shape[-2:]
        if image_sizes is None or all(h >= height and w >= width for h, w in image_sizes):
            return x
        sizes = torch.as_tensor(image_sizes, device=x.device)
        rows = torch.arange(height, device=x.device) < sizes[:, :1]  # [N, H]
        cols = torch.arange(width, device=x.device) < sizes[:, 1:]  # [N, W]
        return x * (rows[:, None, :, None] & cols[:, None, None, :])
