"""Datasets and loaders from the ``data`` config section, for every format."""

from __future__ import annotations

import pytest
import torch

from detseg.config import load_config
from detseg.data.build import build_datasets, make_loader
from detseg.data.mask_folder import write_mask_folder
from detseg.data.synthetic import ShapesConfig, ShapesDetection, write_coco
from detseg.data.transforms import AugmentedDataset
from detseg.data.voc import write_voc
from detseg.data.yolo import write_yolo
from detseg.structures.instances import Batch

SHAPES = ShapesConfig(num_images=4, image_size=(48, 64), max_size=20, seed=3)


def data_cfg(*overrides):
    return load_config(None, ["data.augment.image_size=64", "data.batch_size=2", *overrides]).data


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    coco_json = write_coco(SHAPES, root / "coco")
    source = ShapesDetection(SHAPES)
    write_voc(source, root / "voc", "train")
    write_voc(source, root / "voc", "val")
    write_yolo(source, root / "yolo", "train")
    yaml_path = write_yolo(source, root / "yolo", "val")
    write_mask_folder(source, root / "masks" / "images", root / "masks" / "labels")
    return {"root": root, "coco_json": coco_json, "yolo_yaml": yaml_path}


def first_batch(train) -> Batch:
    return next(iter(make_loader(train, data_cfg(), train=True)))


@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo", "masks", "shapes"])
def test_every_format_builds_and_batches(files, fmt):
    r = files["root"]
    split = {
        "coco": [f"data.{s}.images={r / 'coco/images'}" for s in ("train", "val")]
        + [f"data.{s}.annotations={files['coco_json']}" for s in ("train", "val")],
        "voc": [f"data.{s}.root={r / 'voc'}" for s in ("train", "val")] + ["data.class_names=[circle,rectangle,triangle]"],
        "yolo": [f"data.{s}.annotations={files['yolo_yaml']}" for s in ("train", "val")],
        "masks": [f"data.{s}.images={r / 'masks/images'}" for s in ("train", "val")]
        + [f"data.{s}.masks={r / 'masks/labels'}" for s in ("train", "val")] + ["data.class_names=[circle,rectangle,triangle]"],
        "shapes": ["data.num_train=4", "data.num_val=2", "data.image_size=48", "data.max_objects=3"],
    }[fmt]
    task = "segmentation" if fmt == "masks" else "detection"
    train, val = build_datasets(data_cfg(f"data.format={fmt}", *split), task)
    assert tuple(train.class_names) == ("circle", "rectangle", "triangle")
    batch = first_batch(train)
    assert batch.images.shape == (2, 3, 64, 64) and batch.images.dtype == torch.uint8
    sample = val[0]
    assert max(sample.image.shape[:2]) == 64 and sample.orig_size != (64, 64)
    if task == "detection":
        assert sum(len(t) for t in batch.targets) > 0
        assert all(t.boxes[:, 2:].le(64).all() for t in batch.targets)
    else:
        assert batch.targets[0].semantic.shape == (64, 64)
        assert set(batch.targets[0].semantic.unique().tolist()) <= {0, 1, 2, 3, 255}


def test_missing_paths_are_named(files):
    with pytest.raises(ValueError, match=r"data.format=coco needs data.train.images, data.train.annotations"):
        build_datasets(data_cfg("data.format=coco"), "detection")
    with pytest.raises(ValueError, match="data.class_names is required for data.format=masks"):
        r = files["root"]
        build_datasets(data_cfg("data.format=masks", f"data.train.images={r / 'masks/images'}",
                                f"data.train.masks={r / 'masks/labels'}"), "segmentation")
    with pytest.raises(ValueError, match="classifier trains on data.format=shapes only"):
        build_datasets(data_cfg("data.format=voc"), "classification")


def test_mosaic_wraps_the_training_set_only():
    cfg = data_cfg("data.num_train=8", "data.num_val=2", "data.image_size=48", "data.max_objects=3",
                   "data.augment.mosaic_prob=1.0")
    train, val = build_datasets(cfg, "detection")
    assert isinstance(train, AugmentedDataset) and not isinstance(val, AugmentedDataset)
    train.set_epoch(1)
    assert first_batch(train).images.shape == (2, 3, 64, 64)


def test_masks_only_when_needed():
    cfg = data_cfg("data.num_train=2", "data.num_val=2", "data.image_size=48")
    assert build_datasets(cfg, "detection")[0][0].masks is None
    assert build_datasets(cfg, "detection", with_masks=True)[0][0].masks is not None


def test_image_corrupted_after_the_build_is_skipped_and_counted_by_the_loader(tmp_path, caplog):
    ann = write_coco(ShapesConfig(num_images=5, image_size=(48, 48), max_size=20), tmp_path)
    opts = [f"data.{s}.{k}={v}" for s in ("train", "val")
            for k, v in (("images", tmp_path / "images"), ("annotations", ann))]
    cfg = data_cfg("data.format=coco", "data.max_bad_fraction=0.5", *opts)
    train, _ = build_datasets(cfg, "detection")
    (tmp_path / "images" / "000002.png").write_bytes(b"truncated")  # a disk fault mid-run
    batches = list(make_loader(train, cfg, train=False))
    assert sum(b.skipped for b in batches) == 1 and sum(len(b) for b in batches) == 4
    assert "000002.png" in caplog.text
