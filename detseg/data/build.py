"""From the ``data`` config section to datasets and DataLoaders: the one place formats are chosen."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..config import ConfigError, DataConfig
from ..config.schema import SplitConfig
from .classification import classification_datasets
from .coco import CocoDataset
from .collate import collate
from .mask_folder import MaskFolderDataset
from .preflight import preflight
from .sample import SafeDataset
from .sampler import EpochSampler
from .synthetic import CLASS_NAMES, ShapesConfig, ShapesDetection
from .transforms import AugmentedDataset, build_transforms
from .voc import VOC_CLASSES, VOCDataset
from .yolo import YOLODataset


def shapes_datasets(cfg: DataConfig, *, with_masks: bool = True) -> tuple[ShapesDetection, ShapesDetection]:
    """Train/val splits of the generated shapes set (different seeds: no shared image).

    ``data.class_names`` picks the shape kinds (default circle, rectangle, triangle; ellipse
    and cross exist too), so a run can learn other classes than the one it started from.
    """
    size = cfg.image_size

    def split(num: int, seed: int) -> ShapesDetection:
        return ShapesDetection(ShapesConfig(
            num_images=num, image_size=(size, size), max_objects=cfg.max_objects,
            min_size=max(6, size // 8), max_size=max(12, size * 3 // 8), seed=seed,
            classes=tuple(cfg.class_names or CLASS_NAMES),
        ), with_masks=with_masks)

    return split(cfg.num_train, cfg.seed), split(cfg.num_val, cfg.seed + 1_000_003)


#: format -> (required SplitConfig fields, reader); each reader takes (cfg, split, task, with_masks).
#: Readers collect their problems (strict=False) and read every image header; preflight() then
#: applies data.bad_samples to both splits at once.
def _coco(cfg: DataConfig, split: SplitConfig, task: str, with_masks: bool):
    return CocoDataset(split.annotations, split.images, with_masks=with_masks, with_semantic=task == "segmentation",
                       keep_empty=cfg.keep_empty, strict=False, check_image_sizes=True)


def _voc(cfg: DataConfig, split: SplitConfig, task: str, with_masks: bool):
    return VOCDataset(split.root, split.split, class_names=cfg.class_names or VOC_CLASSES,
                      keep_difficult=cfg.keep_difficult, keep_empty=cfg.keep_empty, strict=False,
                      check_image_sizes=True)


def _yolo(cfg: DataConfig, split: SplitConfig, task: str, with_masks: bool):
    return YOLODataset(split.annotations, split.split, keep_empty=cfg.keep_empty, strict=False,
                       check_image_sizes=True)


def _masks(cfg: DataConfig, split: SplitConfig, task: str, with_masks: bool):
    if not cfg.class_names:
        raise ConfigError("data.class_names is required for data.format=masks (one name per label value >= 1)")
    return MaskFolderDataset(split.images, split.masks, class_names=cfg.class_names, ignore_index=cfg.ignore_index,
                             mask_values=cfg.mask_values, strict=False)


READERS = {
    "coco": (("images", "annotations"), _coco),
    "voc": (("root",), _voc),
    "yolo": (("annotations",), _yolo),
    "masks": (("images", "masks"), _masks),
}


def build_datasets(cfg: DataConfig, task: str, *, with_masks: bool = False, seed: int | None = None, rank: int = 0,
                   report_dir: str | Path | None = None):
    """``(train, val)`` datasets for ``task`` (``classification``, ``detection``, ``segmentation``).

    Detection/segmentation datasets get the configured augmentation (train) or the deterministic
    resize (val). The training set is an :class:`AugmentedDataset` (mosaics when
    ``augment.mosaic_prob > 0``) when ``seed`` is given or mosaics are on: with ``seed``, the
    augmentation of image ``i`` in epoch ``e`` on DDP rank ``rank`` is a pure function of
    ``(seed, rank, e, i)`` (reproducible, resumable, different on every rank).

    Files (``coco``, ``voc``, ``yolo``, ``masks``) are checked here, before any epoch: every image
    header is read (missing, unreadable or truncated images, sizes against the annotations;
    masks are decoded), ``data.bad_samples`` decides what a bad image does, and rank 0 prints a
    ``[data]`` line per split for the images left out and the boxes that reading drops or clips
    (:func:`~detseg.data.preflight.preflight`).

    Args:
        report_dir: where ``data.bad_samples=skip`` writes the list of left-out images (the run
            folder); ``None``: a temporary file, named in the printed line.

    Raises:
        ValueError: a format that cannot serve the task, or a split missing a required path
            (naming the key, e.g. ``data.train.annotations``).
        DatasetError: one line naming the first bad files of either split, with the count of each
            kind (every fatal problem under ``data.bad_samples=error``; annotation errors only
            under ``skip``).
    """
    if task == "classification":
        if cfg.format != "shapes":
            raise ConfigError(f"the classifier trains on data.format=shapes only, got {cfg.format!r}")
        return classification_datasets(cfg)
    needs_masks = with_masks or task == "segmentation"
    if cfg.format == "shapes":
        train, val = shapes_datasets(cfg, with_masks=needs_masks)
    else:
        required, reader = READERS[cfg.format]
        splits = []
        for name in ("train", "val"):
            split = getattr(cfg, name)
            missing = [f"data.{name}.{key}" for key in required if getattr(split, key) is None]
            if missing:
                raise ConfigError(f"data.format={cfg.format} needs {', '.join(missing)}")
            splits.append(reader(cfg, split, task, needs_masks))
        train, val = splits
        preflight({"train": train, "val": val}, cfg.bad_samples, coco_val=cfg.format == "coco",
                  report_dir=report_dir, verbose=rank == 0)
    train.transform = build_transforms(cfg.augment, train=True)
    val.transform = build_transforms(cfg.augment, train=False)
    if seed is not None or cfg.augment.mosaic_prob > 0:
        train = AugmentedDataset(train, cfg.augment, transform=train.transform, seed=seed, rank=rank)
    return train, val


def usable_workers(requested: int) -> int:
    """``requested`` DataLoader workers, at most the CPU cores this process may use.

    More workers than cores only compete with the training process for them (torch warns).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(requested, cores)


def make_loader(dataset, cfg: DataConfig, *, train: bool, seed: int = 0, rank: int = 0,
                world_size: int = 1, pin_memory: bool = False, deterministic: bool = False) -> DataLoader:
    """A DataLoader over ``dataset`` with a resumable, rank-sharded :class:`EpochSampler`.

    Datasets of ``Sample`` (those with ``load``) get the padding :func:`collate` and
    :class:`SafeDataset` (corrupt images are skipped and counted in ``Batch.skipped``).
    Workers persist across epochs for speed, except in ``deterministic`` runs: there each epoch
    restarts them so their random seeds (drawn from the loader's generator, which the training
    loop reseeds per epoch) make augmentation replay exactly after a resume.
    """
    sampler = EpochSampler(len(dataset), shuffle=train, seed=seed, rank=rank, world_size=world_size)
    workers = usable_workers(cfg.num_workers)
    collate_fn = None
    if hasattr(dataset, "load"):
        collate_fn = partial(collate, size_divisibility=32)
        dataset = SafeDataset(dataset, cfg.max_bad_fraction)
    return DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=workers,
        collate_fn=collate_fn, pin_memory=pin_memory, drop_last=train and len(dataset) > cfg.batch_size,
        persistent_workers=workers > 0 and not deterministic,
        generator=torch.Generator().manual_seed(seed),
    )
