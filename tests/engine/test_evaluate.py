"""Validation plumbing for detection and segmentation, with an oracle model that echoes the targets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from detseg.config import load_config
from detseg.data.build import build_datasets, make_loader
from detseg.data.geometry import Resize
from detseg.engine.evaluate import build_evaluator, validate
from detseg.evaluation import CocoEvaluator
from detseg.structures.instances import Detections

COCO128 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "coco128"


class Oracle(nn.Module):
    """Predicts exactly the targets it last saw in ``loss`` (validate calls loss, then predict)."""

    def __init__(self, task: str, with_masks: bool = False):
        super().__init__()
        self.task, self.with_masks = task, with_masks
        self.weight = nn.Parameter(torch.zeros(()))
        self.targets = []

    def loss(self, images, targets):
        self.targets = targets
        return {"loss_fake": self.weight + 1.0}

    def predict(self, images, image_sizes=None):
        if self.task == "segmentation":
            return torch.stack([t.semantic for t in self.targets])
        out = []
        for t in self.targets:
            keep = ~t.iscrowd
            out.append(Detections(t.boxes[keep], torch.ones(int(keep.sum())), t.labels[keep],
                                  masks=t.masks[keep] if self.with_masks else None))
        return out


def shapes_cfg(*extra):
    return load_config(None, ["data.num_train=2", "data.num_val=6", "data.image_size=64", "data.max_objects=3",
                              "data.augment.image_size=96", "data.batch_size=3", *extra])


@pytest.mark.parametrize("with_masks", [False, True])
def test_perfect_detections_score_one_in_the_input_frame(with_masks):
    cfg = shapes_cfg()
    _, val = build_datasets(cfg.data, "detection", with_masks=with_masks)
    model = Oracle("detection", with_masks)
    evaluator = build_evaluator("detection", 3, val.class_names, with_masks=with_masks)
    metrics = validate(model, make_loader(val, cfg.data, train=False), evaluator, torch.device("cpu"))
    assert metrics["val/loss_fake"] == 1.0 and metrics["val/loss"] == 1.0
    assert metrics["bbox/mAP"] == pytest.approx(1.0, abs=1e-9)
    if with_masks:
        assert metrics["segm/mAP"] == pytest.approx(1.0, abs=1e-9)


def test_perfect_label_maps_give_miou_one():
    cfg = shapes_cfg()
    _, val = build_datasets(cfg.data, "segmentation")
    evaluator = build_evaluator("segmentation", 3, val.class_names)
    metrics = validate(Oracle("segmentation"), make_loader(val, cfg.data, train=False), evaluator, torch.device("cpu"))
    assert metrics["miou"] == pytest.approx(1.0) and metrics["pixel_acc"] == pytest.approx(1.0)


def test_to_original_frame_inverts_the_letterbox():
    cfg = shapes_cfg().data.augment  # letterbox to 96
    masks = torch.zeros(1, 96, 96, dtype=torch.bool)
    masks[0, 30:60, 20:50] = True
    det = Detections(torch.tensor([[20.0, 30.0, 50.0, 60.0]]), torch.ones(1), torch.zeros(1, dtype=torch.long),
                     masks=masks)
    back = Resize.from_config((48, 64), cfg).detections_back(det)  # scale 1.5, pad_y (96 - 72) / 2 = 12
    assert back.boxes[0].tolist() == pytest.approx([20 / 1.5, 18 / 1.5, 50 / 1.5, 48 / 1.5])
    assert back.masks.shape == (1, 48, 64)
    ys, xs = back.masks[0].nonzero(as_tuple=True)
    assert abs(xs.min().item() - 20 / 1.5) <= 1 and abs(ys.max().item() + 1 - 48 / 1.5) <= 1


@pytest.mark.coco128
def test_coco128_perfect_predictions_mapped_back_score_one_against_the_json():
    images, ann = COCO128 / "images", COCO128 / "annotations" / "instances.json"
    cfg = load_config(None, ["data.format=coco", f"data.train.images={images}", f"data.train.annotations={ann}",
                             f"data.val.images={images}", f"data.val.annotations={ann}",
                             "data.augment.image_size=320", "data.batch_size=16"])
    _, val = build_datasets(cfg.data, "detection")
    evaluator = CocoEvaluator(str(ann), val.category_ids, val.class_names)
    metrics = validate(Oracle("detection"), make_loader(val, cfg.data, train=False), evaluator,
                       torch.device("cpu"), resize=cfg.data.augment, original_frame=True)
    # boxes travel 640 -> 320 -> 640 px: exact up to float rounding, so every IoU is ~1
    assert metrics["bbox/mAP"] > 0.99 and metrics["bbox/mAP75"] > 0.99


class SkipsSmall(Oracle):
    """Detects every object except COCO's small ones (segmentation area < 32^2 in the image file)."""

    def predict(self, images, image_sizes=None):
        out = []
        for t in self.targets:
            keep = ~t.iscrowd & (t.areas >= 32 ** 2)
            out.append(Detections(t.boxes[keep], torch.ones(int(keep.sum())), t.labels[keep]))
        return out


@pytest.mark.coco128
def test_size_metrics_of_validation_agree_with_pycocotools_on_the_json():
    """Validation scores resized images against resized targets, but small/medium/large must be
    COCO's (segmentation areas in image-file pixels): it used to take box areas at 320 px."""
    images, ann = COCO128 / "images", COCO128 / "annotations" / "instances.json"
    cfg = load_config(None, ["data.format=coco", f"data.train.images={images}", f"data.train.annotations={ann}",
                             f"data.val.images={images}", f"data.val.annotations={ann}",
                             "data.augment.image_size=320", "data.batch_size=16"])
    _, val = build_datasets(cfg.data, "detection")
    loader = make_loader(val, cfg.data, train=False)
    reference = validate(SkipsSmall("detection"), loader, CocoEvaluator(str(ann), val.category_ids, val.class_names),
                         torch.device("cpu"), resize=cfg.data.augment, original_frame=True)
    during_training = validate(SkipsSmall("detection"), loader, build_evaluator("detection", 80, val.class_names),
                               torch.device("cpu"), resize=cfg.data.augment)
    assert reference["bbox/mAP_s"] < 0.01 and reference["bbox/mAP_l"] > 0.99
    for key in ("mAP_s", "mAP_m", "mAP_l", "AR_s", "AR_m", "AR_l"):
        assert during_training[f"bbox/{key}"] == pytest.approx(reference[f"bbox/{key}"], abs=0.01), key
