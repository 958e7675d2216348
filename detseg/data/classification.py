"""Classification view of the synthetic shapes set (the backbone-classifier demo and tests)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..config import DataConfig
from .synthetic import CLASS_NAMES, ShapesConfig, ShapesDataset, classification_label


class ShapeClassification(Dataset):
    """Synthetic images labelled by their (largest) shape: ``(Tensor[3, H, W] in [0, 1], label)``."""

    def __init__(self, cfg: ShapesConfig) -> None:
        self.shapes = ShapesDataset(cfg)
        self.class_names = CLASS_NAMES

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        sample = self.shapes[index]
        image = torch.from_numpy(sample.image).permute(2, 0, 1).float().div_(255)
        return image, classification_label(sample)


def build_classification_loaders(cfg: DataConfig) -> tuple[DataLoader, DataLoader]:
    """Train and validation loaders of synthetic shapes (different seeds, so no overlap)."""
    size = (cfg.image_size, cfg.image_size)

    def split(num: int, seed: int) -> ShapeClassification:
        return ShapeClassification(ShapesConfig(
            num_images=num, image_size=size, min_objects=1, max_objects=cfg.max_objects,
            min_size=max(8, cfg.image_size * 3 // 8), max_size=max(12, cfg.image_size * 7 // 8), seed=seed,
        ))

    train = split(cfg.num_train, cfg.seed)
    val = split(cfg.num_val, cfg.seed + 1_000_003)
    kw = dict(batch_size=cfg.batch_size, num_workers=cfg.num_workers,
              persistent_workers=cfg.num_workers > 0)
    generator = torch.Generator().manual_seed(cfg.seed)
    return (DataLoader(train, shuffle=True, drop_last=len(train) > cfg.batch_size, generator=generator, **kw),
            DataLoader(val, shuffle=False, **kw))
