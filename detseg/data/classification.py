"""Classification view of the synthetic shapes set (the backbone-classifier demo and tests)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..config import DataConfig
from .synthetic import CLASS_NAMES, ShapesConfig, ShapesDataset, classification_label


class ShapeClassification(Dataset):
    """Synthetic images labelled by their (largest) shape: ``(Tensor[3, H, W] uint8, label)``."""

    def __init__(self, cfg: ShapesConfig) -> None:
        self.shapes = ShapesDataset(cfg)
        self.class_names = CLASS_NAMES

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        sample = self.shapes[index]
        return torch.from_numpy(sample.image).permute(2, 0, 1), classification_label(sample)


def classification_datasets(cfg: DataConfig) -> tuple[ShapeClassification, ShapeClassification]:
    """Train and validation sets of synthetic shapes (different seeds, so no overlap)."""
    size = (cfg.image_size, cfg.image_size)

    def split(num: int, seed: int) -> ShapeClassification:
        return ShapeClassification(ShapesConfig(
            num_images=num, image_size=size, min_objects=1, max_objects=cfg.max_objects,
            min_size=max(8, cfg.image_size * 3 // 8), max_size=max(12, cfg.image_size * 7 // 8), seed=seed,
        ))

    return split(cfg.num_train, cfg.seed), split(cfg.num_val, cfg.seed + 1_000_003)
