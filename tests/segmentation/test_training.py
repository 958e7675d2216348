"""Segmentation through the engine: COCO-format and mask-folder configs, and the learning tests."""

import math

import pytest
import torch

from detseg.config import load_config
from detseg.data.build import build_datasets, make_loader
from detseg.data.synthetic import ShapesConfig, write_coco
from detseg.engine.checkpoint import new_run_dir
from detseg.engine.train_loop import train
from detseg.models import build_model


@pytest.mark.coco128
def test_coco_config_gives_semantic_batches_the_model_trains_on(repo, monkeypatch):
    monkeypatch.chdir(repo)  # the config's coco128 paths are relative to the repository root
    cfg = load_config(repo / "configs/fcn_resnet50_coco.yaml", [
        "model.backbone.width=0.125", "model.segmentation.fcn.head_channels=16", "data.augment.image_size=96",
        "data.batch_size=2", "data.num_workers=0"])
    model = build_model(cfg.model)
    train_set, _ = build_datasets(cfg.data, model.task)
    batch = next(iter(make_loader(train_set, cfg.data, train=True)))
    sem = torch.stack([t.semantic for t in batch.targets])
    assert sem.shape == (2, *batch.images.shape[-2:])
    assert int(sem[sem != 255].max()) <= cfg.model.num_classes
    losses = model.loss(batch.images, batch.targets)
    assert torch.isfinite(losses["loss_seg"])
    assert model.predict(batch.images).shape == sem.shape


def test_mask_folder_config_trains_through_the_engine(repo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the config's data/shapes_masks paths are relative
    write_coco(ShapesConfig(num_images=16, image_size=(64, 64), min_size=10, max_size=24),
               "data/shapes_masks/train")
    write_coco(ShapesConfig(num_images=8, image_size=(64, 64), min_size=10, max_size=24, seed=1),
               "data/shapes_masks/val")
    cfg = load_config(repo / "configs/deeplab_masks.yaml", [
        "model.backbone.width=0.125", "model.segmentation.aspp.channels=8", "data.augment.image_size=64",
        "data.batch_size=8", "train.epochs=1", "train.device=cpu"])
    best = train(cfg, new_run_dir(tmp_path, "run"), quiet=True)
    assert 0.0 <= best["miou"] <= 1.0 and math.isfinite(best["val/loss_seg"])


@pytest.mark.slow
@pytest.mark.parametrize("config", ["fcn8s_shapes.yaml", "unet_shapes.yaml", "deeplab_shapes.yaml"])
def test_learns_shapes_semantic_maps(repo, tmp_path, config):
    """The shipped config, as is, through ``train``: validation mIoU >= 0.7 (one CPU thread)."""
    cfg = load_config(repo / "configs" / config, ["train.device=cpu"])
    best = train(cfg, new_run_dir(tmp_path, "run"), quiet=True)
    assert best["miou"] >= 0.7, best
