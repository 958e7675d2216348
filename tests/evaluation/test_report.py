"""format_metrics: the overall block and one row per class, from real evaluator outputs."""

import math

import pytest
import torch

from detseg.evaluation import ClassificationEvaluator, CocoEvaluator, SemanticEvaluator, format_metrics
from detseg.structures.instances import Detections, Instances

K = 12
NAMES = tuple(f"class_{i}" for i in range(K - 1)) + ("a class name longer than the table allows",)
LOSSES = {"val/loss_rpn_cls": 0.1, "val/loss_rpn_box": 0.05, "val/loss_roi_cls": 0.3, "val/loss_roi_box": 0.2,
          "val/loss_mask": 0.4, "val/loss": 1.05}


def mask_rcnn_evaluation(images=6, per_image=5):
    """Box and mask COCO metrics of jittered detections; the last two classes have no ground truth."""
    g = torch.Generator().manual_seed(0)
    ev = CocoEvaluator(None, class_names=NAMES, iou_types=("bbox", "segm"))
    for i in range(images):
        xy = torch.randint(0, 40, (per_image, 2), generator=g).float()
        boxes = torch.cat([xy, xy + torch.randint(8, 24, (per_image, 2), generator=g).float()], 1)
        labels = torch.randint(0, K - 2, (per_image,), generator=g)
        masks = torch.zeros(per_image, 64, 64, dtype=torch.bool)
        for j, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
            masks[j, y0:y1, x0:x1] = True
        gt = Instances(boxes, labels, torch.zeros(per_image, dtype=torch.bool), (64, 64), masks=masks, image_id=i)
        det = Detections(boxes + torch.randn(per_image, 4, generator=g) * 2, torch.rand(per_image, generator=g),
                         labels, masks=masks, image_id=i)
        ev.process([det], [gt])
    return {**LOSSES, **ev.evaluate()}, ev


def test_mask_rcnn_metrics_render_compactly_with_a_row_per_class():
    metrics, ev = mask_rcnn_evaluation()
    counts = ev.class_counts()
    assert sum(counts.values()) == 30 and counts[NAMES[-1]] == 0
    text = format_metrics(metrics, "detection", counts=counts)
    lines = text.splitlines()
    assert len(metrics) > 100 and len(lines) <= 20 + K
    assert lines[0].startswith("loss: val 1.05  (rpn_cls 0.1, rpn_box 0.05")
    assert lines[1].split() == ["box", "mask"]
    assert lines[2].split() == ["mAP", f"{metrics['bbox/mAP']:.3f}", f"{metrics['segm/mAP']:.3f}"]
    header = next(i for i, line in enumerate(lines) if line.startswith("class"))
    assert lines[header].split() == ["class", "instances", "box", "AP50", "box", "AP50-95", "mask", "AP50", "mask",
                                     "AP50-95"]
    assert lines[header + 1].split() == ["all", "30", f"{metrics['bbox/mAP50']:.3f}", f"{metrics['bbox/mAP']:.3f}",
                                         f"{metrics['segm/mAP50']:.3f}", f"{metrics['segm/mAP']:.3f}"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[header + 2:-1]}
    assert rows["class_0"] == [str(counts["class_0"])] + [f"{metrics[f'{t}/{ap}/class_0']:.3f}"
                                                         for t in ("bbox", "segm") for ap in ("AP50", "AP")]
    assert len(rows) == sum(n > 0 for n in counts.values())  # classes without ground truth are counted instead
    assert lines[-1] == f"({K - len(rows)} of {K} classes have no ground truth here: not listed)"


def test_the_best_row_of_a_training_log_renders_without_counts():
    metrics, _ = mask_rcnn_evaluation()
    lines = format_metrics({"epoch": 7, "train/loss": 1.5, "lr": 1e-4, **metrics}).splitlines()
    assert lines[0].startswith("epoch 7  loss: train 1.5  val 1.05")
    assert "instances" not in "\n".join(lines) and any(line.startswith("class_0 ") for line in lines)
    assert max(len(line) for line in lines) < 120


def box(x0, y0, x1, y1):
    return torch.tensor([[x0, y0, x1, y1]], dtype=torch.float32)


def test_per_class_ap50_is_the_ap_at_iou_one_half():
    """Class a found exactly, class b at IoU 0.77: AP50 is 1 for both, AP50-95 is 1 and 0.6 (6 of 10 IoUs)."""
    ev = CocoEvaluator(None, class_names=("a", "b"))
    gt = Instances(torch.cat([box(0, 0, 20, 20), box(40, 40, 60, 60)]), torch.tensor([0, 1]),
                   torch.tensor([False, False]), (80, 80), image_id=1)
    det = Detections(torch.cat([box(0, 0, 20, 20), box(40, 40, 60, 55.4)]), torch.tensor([0.9, 0.8]),
                     torch.tensor([0, 1]), image_id=1)
    ev.process([det], [gt])
    m = ev.evaluate()
    assert m["bbox/AP50/a"] == pytest.approx(1.0) and m["bbox/AP50/b"] == pytest.approx(1.0)
    assert m["bbox/AP/a"] == pytest.approx(1.0) and m["bbox/AP/b"] == pytest.approx(0.6)
    assert ev.class_counts() == {"a": 1, "b": 1}


def test_crowd_regions_are_not_counted_as_instances():
    ev = CocoEvaluator(None, class_names=("a",))
    gt = Instances(torch.cat([box(0, 0, 20, 20), box(30, 30, 60, 60)]), torch.tensor([0, 0]),
                   torch.tensor([False, True]), (80, 80), image_id=1)
    ev.process([Detections.empty(1)], [gt])
    ev.evaluate()
    assert ev.class_counts() == {"a": 1}


def test_segmentation_table_lists_iou_per_class_and_counts_absent_ones():
    ev = SemanticEvaluator(4, ("background", "circle", "square", "star"))
    target = torch.tensor([[[0, 0, 1, 1], [0, 2, 2, 255]]])
    ev.process(torch.tensor([[[0, 0, 1, 2], [0, 2, 2, 0]]]), target)
    metrics = {"val/loss_seg": 0.5, "val/loss": 0.5, **ev.evaluate()}
    lines = format_metrics(metrics, counts=ev.class_counts()).splitlines()
    assert lines[:4] == ["loss: val 0.5  (seg 0.5)", f"miou       {metrics['miou']:.3f}",
                         f"pixel_acc  {metrics['pixel_acc']:.3f}", f"mean_acc   {metrics['mean_acc']:.3f}"]
    assert lines[5].split() == ["class", "pixels", "IoU"]
    assert [line.split() for line in lines[6:9]] == [["background", "3", "1.000"], ["circle", "2", "0.500"],
                                                     ["square", "2", "0.667"]]
    assert lines[9] == "(1 of 4 classes absent from labels and predictions: not listed)"
    assert math.isnan(metrics["iou/star"])


def test_classification_table_lists_accuracy_per_class():
    ev = ClassificationEvaluator(3, ("circle", "rectangle", "triangle"))
    ev.process(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]))
    lines = format_metrics(ev.evaluate(), counts=ev.class_counts()).splitlines()
    assert lines[0] == "accuracy  0.750"
    assert [line.split() for line in lines[2:]] == [["class", "images", "accuracy"], ["circle", "1", "1.000"],
                                                    ["rectangle", "1", "1.000"], ["triangle", "2", "0.500"]]
