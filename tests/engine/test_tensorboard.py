"""TensorBoard event files of training runs, read back with TensorBoard's own reader."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from detseg.config import load_config
from detseg.engine.tensorboard import NUM_IMAGES, TensorBoardLogger, draw_pair, metric_tag
from detseg.engine.train_loop import train
from detseg.structures.instances import Detections, Instances

REPO = Path(__file__).resolve().parents[2]
#: two epochs of 8 training images at 64 px: 2 batches an epoch, validation after each
TINY = ["train.epochs=2", "train.device=cpu", "data.num_train=8", "data.num_val=4", "data.batch_size=4",
        "data.image_size=64", "data.augment.image_size=64", "data.num_workers=0", "model.backbone.width=0.125"]


def events(run_dir: Path) -> EventAccumulator:
    files = list(run_dir.glob("events.out.tfevents.*"))
    assert len(files) == 1, files
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def test_a_run_logs_losses_lr_metrics_and_pictures_of_predictions(tmp_path):
    cfg = load_config(REPO / "configs/mask_rcnn_shapes.yaml", TINY)
    train(cfg, tmp_path, quiet=True)
    acc = events(tmp_path)
    scalars = set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4]  # every batch, at the batches trained
    assert {"lr", "train/loss_rpn_cls", "train/loss_roi_box", "train/loss_mask"} <= scalars
    per_batch_sum = [sum(acc.Scalars(t)[i].value for t in scalars if t.startswith("train/loss_")) for i in range(4)]
    assert [e.value for e in acc.Scalars("train/loss")] == pytest.approx(per_batch_sum, rel=1e-5)
    assert {"val/loss", "val/loss_mask", "val/bbox/mAP50", "val/segm/mAP", "val_per_class/segm/AP/circle"} <= scalars
    assert not any(t.startswith("val/") and t.count("/") > 2 for t in scalars)  # per class: a section of their own

    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))  # metrics.csv and curves.png stay
    assert (tmp_path / "curves.png").is_file() and len(rows) == 2
    logged = acc.Scalars("val/segm/mAP50")
    assert [e.step for e in logged] == [2, 4]  # after 2 and 4 batches: one x axis with the losses
    assert [e.value for e in logged] == pytest.approx([float(r["segm/mAP50"]) for r in rows], rel=1e-6, nan_ok=True)

    assert set(acc.Tags()["images"]) == {f"val/predictions/{i}" for i in range(NUM_IMAGES)}
    pictures = acc.Images("val/predictions/0")
    assert [p.step for p in pictures] == [2, 4]
    assert (pictures[0].height, pictures[0].width) == (256, 2 * 256 + 4)  # 64 px enlarged 4x, two panels


@pytest.mark.parametrize("config", ["unet_shapes", "classifier_resnet18_shapes"])
def test_segmenters_and_classifiers_log_their_metrics_and_pictures(config, tmp_path):
    cfg = load_config(REPO / f"configs/{config}.yaml",
                      [o for o in TINY if "backbone" not in o or config != "unet_shapes"] + ["train.epochs=1"])
    train(cfg, tmp_path, quiet=True)
    acc = events(tmp_path)
    metric = "val/miou" if config == "unet_shapes" else "val/accuracy"
    per_class = "val_per_class/iou/circle" if config == "unet_shapes" else "val_per_class/accuracy/circle"
    assert {metric, per_class, "val/loss", "train/loss", "lr"} <= set(acc.Tags()["scalars"])
    assert len(acc.Images("val/predictions/0")) == 1


def test_a_resumed_run_continues_the_curves_and_drops_what_it_trains_again(tmp_path):
    """Resumed from an older last.pt (as after a crash), the batches logged since are shown once."""
    base = [o for o in TINY if o != "train.epochs=2"]
    cfg = load_config(REPO / "configs/classifier_resnet18_shapes.yaml", base + ["train.epochs=1"])
    train(cfg, tmp_path, quiet=True)
    shutil.copy(tmp_path / "last.pt", tmp_path / "epoch1.pt")
    longer = load_config(REPO / "configs/classifier_resnet18_shapes.yaml", base + ["train.epochs=2"])
    train(longer, tmp_path, quiet=True, resume=tmp_path / "last.pt")
    train(longer, tmp_path, quiet=True, resume=tmp_path / "epoch1.pt")  # batches 3 and 4 again
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4]
    assert [e.step for e in acc.Scalars("val/accuracy")] == [2, 4]


def test_switched_off_the_run_folder_has_no_event_file(tmp_path):
    cfg = load_config(REPO / "configs/classifier_resnet18_shapes.yaml",
                      TINY + ["train.epochs=1", "train.tensorboard=false"])
    train(cfg, tmp_path, quiet=True)
    assert (tmp_path / "metrics.csv").is_file() and not list(tmp_path.glob("events.out.tfevents.*"))


def test_a_disabled_logger_writes_nothing(tmp_path):
    logger = TensorBoardLogger(None)  # ranks > 0, train.tensorboard=false
    logger.log_step(0, torch.tensor(1.0), {"loss_cls": torch.tensor(1.0)}, 0.1)
    logger.log_epoch(1, {"val/loss": 1.0})
    logger.close()
    assert not logger.enabled and not list(tmp_path.iterdir())


def test_tags_follow_the_ecosystem():
    assert metric_tag("val/loss_rpn_cls") == "val/loss_rpn_cls"
    assert metric_tag("bbox/mAP50") == "val/bbox/mAP50" and metric_tag("miou") == "val/miou"
    assert metric_tag("bbox/AP50/stop sign") == "val_per_class/bbox/AP50/stop sign"
    assert metric_tag("accuracy/cat") == "val_per_class/accuracy/cat" and metric_tag("accuracy") == "val/accuracy"
    assert metric_tag("skipped_images") == "train/skipped_images"
    assert [metric_tag(k) for k in ("train/loss", "lr", "epoch")] == [None, None, None]  # per batch, or bookkeeping


def test_pictures_show_confident_predictions_left_and_the_ground_truth_right():
    image = np.full((256, 256, 3), 100, np.uint8)
    prediction = Detections(torch.tensor([[10.0, 10, 60, 60], [150, 150, 200, 200]]), torch.tensor([0.9, 0.1]),
                            torch.tensor([0, 1]))
    target = Instances(torch.tensor([[100.0, 20, 180, 90]]), torch.tensor([1]), torch.tensor([False]), (256, 256))
    picture = draw_pair("detection", image, prediction, target, ["a", "b"])
    assert picture.shape == (256, 2 * 256 + 4, 3)
    left, right = picture[:, :256], picture[:, 260:]
    changed = (left != 100).any(2)
    assert changed[10:60, 10].any() and not changed[150:200, 150:200].any()  # the 0.1 detection is not drawn
    assert (right != 100).any(2)[20:90, 100].any() and not (right != 100).any(2)[10:60, 10:12].any()

    label_map = torch.zeros(256, 256, dtype=torch.long)
    label_map[100:150, 100:150] = 2
    semantic = Instances(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.bool),
                         (256, 256), semantic=torch.zeros(256, 256, dtype=torch.long))
    picture = draw_pair("segmentation", image, label_map, semantic, ["a", "b"])
    assert (picture[120, 120] != 100).any() and (picture[120, 260 + 120] == 100).all()
