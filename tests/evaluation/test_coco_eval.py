"""CocoEvaluator / FastCOCOeval: pycocotools' exact numbers, known hand-made APs, F1, plots."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detseg.evaluation import CocoEvaluator, FastCOCOeval, detection_confusion_matrix
from detseg.evaluation.coco.tables import coco_from_dict
from detseg.evaluation.plots import (
    plot_confusion_matrix,
    plot_f1_curves,
    plot_pr_curves,
)
from detseg.structures.instances import Detections, Instances

COCO128 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "coco128"
ANN = COCO128 / "annotations" / "instances.json"
PNG = b"\x89PNG\r\n\x1a\n"
# pycocotools' precision is tp / (tp + fp + eps): a perfect AP is 1 - 2e-16, not 1.
ONE = pytest.approx(1.0, abs=1e-12)


def quiet():
    return contextlib.redirect_stdout(io.StringIO())


def stock_eval(coco_gt: COCO, results: list[dict] | str, iou_type: str, img_ids=None) -> COCOeval:
    """Plain pycocotools: loadRes + evaluate/accumulate/summarize."""
    with quiet():
        E = COCOeval(coco_gt, coco_gt.loadRes(results), iou_type)
        if img_ids is not None:
            E.params.imgIds = img_ids
        E.evaluate()
        E.accumulate()
        E.summarize()
    return E


def assert_same_eval(a: COCOeval, b: COCOeval) -> None:
    for key in ("precision", "recall", "scores"):
        np.testing.assert_array_equal(a.eval[key], b.eval[key], err_msg=key)
    np.testing.assert_array_equal(a.stats, b.stats)


def xyxy(boxes) -> torch.Tensor:
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)


def dets(image_id, boxes, scores, labels, masks=None) -> Detections:
    return Detections(xyxy(boxes), torch.tensor(scores, dtype=torch.float32),
                      torch.tensor(labels, dtype=torch.int64), masks, image_id)


def target(image_id, boxes, labels, iscrowd=None, size=(100, 100), masks=None, orig_size=None) -> Instances:
    n = len(labels)
    return Instances(xyxy(boxes), torch.tensor(labels, dtype=torch.int64),
                     torch.tensor(iscrowd or [False] * n, dtype=torch.bool), image_size=size,
                     masks=masks, orig_size=orig_size or size, image_id=image_id)


# ------------------------------------------------------------------------------------------
# FastCOCOeval == COCOeval, element for element
# ------------------------------------------------------------------------------------------


def random_case(seed: int, num_images=6, num_cats=3, max_fp=130, size=48):
    """Boxes/masks with crowd regions, odd areas, score ties, images without ground truth and
    more than 100 detections of one category in an image."""
    rng = np.random.default_rng(seed)
    images = [{"id": i, "height": size, "width": size} for i in range(1, num_images + 1)]

    def rect(x, y, w, h):
        m = np.zeros((size, size), np.uint8, order="F")
        m[int(y):int(y + h), int(x):int(x + w)] = 1
        rle = mask_utils.encode(m)
        rle["counts"] = rle["counts"].decode()
        return rle

    anns = []
    for im in images[:-1]:  # the last image has no ground truth
        for _ in range(rng.integers(0, 10)):
            x, y = rng.integers(0, size - 10, 2)
            w, h = rng.integers(2, 24, 2)
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": int(rng.integers(1, num_cats + 1)),
                         "bbox": [float(x), float(y), float(w), float(h)], "area": float(w * h * rng.uniform(0.5, 40)),
                         "iscrowd": int(rng.random() < 0.15), "segmentation": rect(x, y, w, h)})
    results = []
    for a in anns:
        for _ in range(rng.integers(0, 4)):
            x, y, w, h = (np.array(a["bbox"]) + rng.integers(-2, 3, 4)).tolist()
            x, y, w, h = max(0, x), max(0, y), max(1, w), max(1, h)
            cat = a["category_id"] if rng.random() < 0.8 else int(rng.integers(1, num_cats + 1))
            results.append({"image_id": a["image_id"], "category_id": cat, "bbox": [x, y, w, h],
                            "score": float(rng.integers(0, 5)) / 4, "segmentation": rect(x, y, w, h)})
    for im in images:
        for _ in range(rng.integers(0, max_fp)):
            x, y = rng.integers(0, size - 10, 2)
            w, h = rng.integers(1, 30, 2)
            results.append({"image_id": im["id"], "category_id": int(rng.integers(1, num_cats + 1)),
                            "bbox": [float(x), float(y), float(w), float(h)],
                            "score": float(rng.integers(0, 10)) / 10, "segmentation": rect(x, y, w, h)})
    rng.shuffle(results)
    gt = coco_from_dict({"images": images, "annotations": anns,
                         "categories": [{"id": i, "name": str(i)} for i in range(1, num_cats + 1)]})
    return gt, results


@pytest.mark.parametrize("seed,num_cats", [(0, 3), (1, 1), (2, 2)])
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_fast_cocoeval_equals_pycocotools(seed, num_cats, iou_type):
    gt, results = random_case(seed, num_cats=num_cats)
    drop = "segmentation" if iou_type == "bbox" else "bbox"
    results = [{k: v for k, v in r.items() if k != drop} for r in results]
    ref = stock_eval(gt, copy.deepcopy(results), iou_type)
    with quiet():
        fast = FastCOCOeval(gt, gt.loadRes(copy.deepcopy(results)), iou_type)
        fast.evaluate()
        fast.accumulate()
        fast.summarize()
    assert_same_eval(ref, fast)
    assert ref.stats[0] > 0.01  # a real case, not all zeros


def test_fast_cocoeval_custom_params_and_fallback():
    gt, results = random_case(3)
    results = [{k: v for k, v in r.items() if k != "segmentation"} for r in results]
    ref_cfg = {"imgIds": [2, 3, 5], "catIds": [1, 3], "maxDets": [5, 20, 50]}
    with quiet():
        E, F = (cls(gt, gt.loadRes(copy.deepcopy(results)), "bbox") for cls in (COCOeval, FastCOCOeval))
        for ev in (E, F):
            for k, v in ref_cfg.items():
                setattr(ev.params, k, v)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
    assert_same_eval(E, F)
    # useCats=0 runs pycocotools' own code
    with quiet():
        F = FastCOCOeval(gt, gt.loadRes(copy.deepcopy(results)), "bbox")
        F.params.useCats = 0
        F.evaluate()
        F.accumulate()
    assert F.evalImgs and F.eval["precision"].shape[2] == 1


# ------------------------------------------------------------------------------------------
# In-memory ground truth: hand-made cases with known answers
# ------------------------------------------------------------------------------------------


def test_known_ap_in_memory():
    # Two objects of class 0. Scores: hit (0.9), miss (0.8), and a box covering the second
    # object with IoU 0.625 (0.7): a hit for IoU thresholds 0.5, 0.55, 0.6 only.
    ev = CocoEvaluator(class_names=("a", "b"))
    ev.process(
        [dets(1, [[0, 0, 10, 10], [50, 50, 60, 60], [20, 0, 30, 6.25]], [0.9, 0.8, 0.7], [0, 0, 0])],
        [target(1, [[0, 0, 10, 10], [20, 0, 30, 10]], [0, 0])],
    )
    m = ev.evaluate()
    # 101-point interpolation: precision 1 up to recall 0.5 (51 points); then 2/3 when the
    # third detection is a hit (50 points), else 0.
    ap_hit, ap_miss = (51 + 50 * 2 / 3) / 101, 51 / 101
    assert m["bbox/mAP50"] == pytest.approx(ap_hit, abs=1e-12)
    assert m["bbox/mAP75"] == pytest.approx(ap_miss, abs=1e-12)
    assert m["bbox/mAP"] == pytest.approx((3 * ap_hit + 7 * ap_miss) / 10, abs=1e-12)
    assert m["bbox/AP/a"] == m["bbox/mAP"]
    assert math.isnan(m["bbox/AP/b"])  # no ground truth of class b
    assert m["bbox/AR100"] == pytest.approx((3 * 1.0 + 7 * 0.5) / 10)
    assert math.isnan(m["bbox/mAP_m"]) and math.isnan(m["bbox/mAP_l"])  # no such objects: -1 -> NaN
    assert "segm/mAP" not in m


def test_no_gt_class_image_and_crowd_handling():
    ev = CocoEvaluator(class_names=("a", "b"))
    ev.process(
        [dets(1, [[0, 0, 10, 10], [40, 40, 90, 90], [60, 60, 70, 70]], [0.9, 0.95, 0.5], [0, 0, 1]),
         dets(2, [[0, 0, 10, 10]], [0.3], [0])],  # an image without ground truth: a false positive
        [target(1, [[0, 0, 10, 10], [30, 30, 100, 100]], [0, 0], iscrowd=[False, True]),
         target(2, [], [])],
    )
    m = ev.evaluate()
    # The top-scored box lies inside a crowd region: ignored, not a false positive. The class-b
    # box has no class-b ground truth to spoil: class b stays out of the mean. Image 2's box is a
    # false positive scored below the hit: AP 1 still.
    assert m["bbox/mAP"] == pytest.approx(1.0, abs=1e-12) and math.isnan(m["bbox/AP/b"])
    # Same numbers as plain pycocotools on the in-memory ground truth and the written results.
    ref = stock_eval(ev.coco_eval["bbox"].cocoGt, ev.results(), "bbox")
    assert_same_eval(ref, ev.coco_eval["bbox"])
    # Without the crowd flag, that box is a false positive above the hit: AP50 = 101-point
    # interpolation of precision 1/2 at recall 1.
    ev2 = CocoEvaluator(class_names=("a", "b"))
    ev2.process([dets(1, [[0, 0, 10, 10], [40, 40, 90, 90]], [0.9, 0.95], [0, 0])],
                [target(1, [[0, 0, 10, 10]], [0])])
    assert ev2.evaluate()["bbox/mAP50"] == pytest.approx(0.5)


def test_no_predictions_at_all():
    ev = CocoEvaluator(class_names=("a",))
    ev.process([Detections.empty(1), Detections.empty(2)],
               [target(1, [[0, 0, 10, 10]], [0]), target(2, [], [])])
    m = ev.evaluate()
    assert m["bbox/mAP"] == 0.0 and m["bbox/AR100"] == 0.0
    assert m["bbox/f1_best"] == 0.0 and math.isnan(m["bbox/f1_threshold"])
    assert ev.results() == []
    with pytest.raises(ValueError, match="no ground truth"):
        CocoEvaluator().evaluate()


def test_masks_in_memory_and_rescaled_targets():
    def box_mask(size, boxes):
        m = torch.zeros(len(boxes), *size, dtype=torch.bool)
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            m[i, y1:y2, x1:x2] = True
        return m

    boxes = [[4, 4, 20, 30], [30, 10, 60, 40]]
    # Targets at half resolution (image_size) of the original image (orig_size): scaled back.
    small = [[b // 2 for b in box] for box in boxes]
    tgt = target(7, small, [0, 1], size=(32, 40), masks=box_mask((32, 40), small), orig_size=(64, 80))
    pred_masks = box_mask((64, 80), boxes)
    ev = CocoEvaluator(class_names=("a", "b"))
    ev.process([dets(7, boxes, [0.9, 0.8], [0, 1], masks=pred_masks)], [tgt])
    m = ev.evaluate()
    assert m["bbox/mAP"] == ONE and m["segm/mAP"] == ONE
    ann = ev.coco_eval["segm"].cocoGt.anns[1]
    assert ann["area"] == 16 * 26 and ann["bbox"] == [4.0, 4.0, 16.0, 26.0]  # mask area, xywh
    # A mask shifted by 4 px: segm below 1 and equal to pycocotools on the written results.
    ev.reset()
    ev.process([dets(7, boxes, [0.9, 0.8], [0, 1], masks=pred_masks.roll(4, dims=2))], [tgt])
    m = ev.evaluate()
    assert 0 < m["segm/mAP"] < 1
    segm_results = ev.results("segm")
    assert all("bbox" not in r for r in segm_results)  # loadRes would take the box area
    assert_same_eval(stock_eval(ev.coco_eval["segm"].cocoGt, segm_results, "segm"), ev.coco_eval["segm"])


def test_errors_name_the_problem():
    ev = CocoEvaluator(class_names=("a",))
    ev.process([dets(1, [[0, 0, 5, 5]], [0.5], [3])], [target(1, [[0, 0, 5, 5]], [0])])
    with pytest.raises(ValueError, match="predicted labels"):
        ev.evaluate()
    with pytest.raises(ValueError, match="predictions for"):
        ev.process([Detections.empty(1)], [])


# ------------------------------------------------------------------------------------------
# F1-optimal thresholds, confusion matrix, plots
# ------------------------------------------------------------------------------------------


def f1_case() -> CocoEvaluator:
    # class a: 3 objects; detections by score: hit .9, hit .8, miss .6, miss .5, hit .4, miss .3
    #   F1 by threshold: .9: 2/4, .8: 4/5, .6: 4/6, .5: 4/7, .4: 6/8, .3: 6/9 -> best 0.8 at 0.8
    # class b: 1 object; miss .7, hit .2: F1 0 until 0.2, then 2/3 -> best at 0.2
    # class mean: .9 .25, .8 .4, .7 .4, .6 .33, .5 .29, .4 .375, .3 .33, .2 (2/3+2/3)/2 -> 0.2
    gt_a = [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]]
    far = [[100 + 20 * i, 100, 110 + 20 * i, 110] for i in range(4)]
    boxes = [gt_a[0], gt_a[1], far[0], far[1], gt_a[2], far[2], far[3], [0, 50, 10, 60]]
    scores = [0.9, 0.8, 0.6, 0.5, 0.4, 0.3, 0.7, 0.2]
    labels = [0, 0, 0, 0, 0, 0, 1, 1]
    order = np.argsort(scores)[::-1].tolist()
    ev = CocoEvaluator(class_names=("a", "b"))
    ev.process([dets(1, [boxes[i] for i in order], [scores[i] for i in order], [labels[i] for i in order])],
               [target(1, gt_a + [[0, 50, 10, 60]], [0, 0, 0, 1], size=(200, 200))])
    return ev


def test_f1_threshold_hand_made():
    m = f1_case().evaluate()
    assert m["bbox/f1_threshold/a"] == pytest.approx(0.8)
    assert m["bbox/f1_threshold/b"] == pytest.approx(0.2)
    assert m["bbox/f1_threshold"] == pytest.approx(0.2)
    assert m["bbox/f1_best"] == pytest.approx(2 / 3)


def test_f1_curves_match_the_step_function():
    ev = f1_case()
    ev.evaluate()
    _thr, f1 = ev.f1_curves(thresholds=np.array([0.95, 0.85, 0.8, 0.45, 0.1]))
    np.testing.assert_allclose(f1[0], [0, 0.5, 0.8, 4 / 7, 6 / 9])
    np.testing.assert_allclose(f1[1], [0, 0, 0, 0, 2 / 3])


def test_detection_confusion_matrix_hand_made():
    gt = np.array([[0, 0, 10, 10], [20, 0, 10, 10], [40, 0, 10, 10]], float)  # xywh
    pred = np.array([[0, 0, 10, 10], [21, 0, 10, 10], [80, 80, 5, 5], [100, 100, 10, 10]], float)
    cm = detection_confusion_matrix(gt, [0, 1, 1], pred, [0, 0, 1, 1], 2,
                                    crowd_boxes=np.array([[98, 98, 20, 20]], float))
    expected = np.zeros((3, 3), int)
    expected[0, 0] = 1  # right class
    expected[1, 0] = 1  # class-1 object called class 0
    expected[2, 1] = 1  # false positive (the box inside the crowd region is not one)
    expected[1, 2] = 1  # missed class-1 object
    np.testing.assert_array_equal(cm, expected)


def test_plots_are_written(tmp_path):
    ev = f1_case()
    paths = ev.save_plots(tmp_path / "plots", score_thresh=0.5)
    assert [p.name for p in paths] == ["pr_curve.png", "f1_curve.png", "confusion_matrix.png"]
    for p in paths:
        assert p.read_bytes()[:8] == PNG and p.stat().st_size > 5000
    cm = ev.confusion_matrix(score_thresh=0.5)
    assert cm[0, 0] == 2 and cm[2, 0] == 2 and cm[2, 1] == 1 and cm[0, 2] == 1 and cm[1, 2] == 1
    # Many classes: curves unnamed, matrix without per-cell text; -1/NaN columns skipped.
    rng = np.random.default_rng(0)
    prec = np.sort(rng.random((101, 50)), axis=0)[::-1]
    prec[:, 3] = -1
    f1 = rng.random((50, 11))
    f1[5] = np.nan
    for p in (plot_pr_curves(prec, np.linspace(0, 1, 101), [str(i) for i in range(50)], tmp_path / "pr.png"),
              plot_f1_curves(np.linspace(0, 1, 11), f1, [str(i) for i in range(50)], tmp_path / "f1.png"),
              plot_confusion_matrix(rng.integers(0, 9, (51, 51)), [str(i) for i in range(50)], tmp_path / "cm.png")):
        assert p.read_bytes()[:8] == PNG


# ------------------------------------------------------------------------------------------
# coco128: real annotations (polygons, RLE, crowd regions)
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coco128() -> COCO:
    with quiet():
        return COCO(str(ANN))


def gt_as_detections(coco: COCO, image_id: int, *, shift=(0.0, 0.0), with_masks=False, seed=0):
    """The image's non-crowd annotations as detections (labels: index in sorted category ids)."""
    cat_ids = sorted(coco.getCatIds())
    anns = [a for a in coco.imgToAnns[image_id] if not a["iscrowd"]]
    if not anns:
        return Detections.empty(image_id)
    b = np.array([a["bbox"] for a in anns], np.float64)
    boxes = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], 1) + np.array(shift * 2)
    rng = np.random.default_rng(seed + image_id)
    scores = np.round(rng.random(len(anns)), 2) if any(shift) else np.ones(len(anns))
    masks = None
    if with_masks:
        masks = torch.from_numpy(np.stack([coco.annToMask(a) for a in anns]).astype(bool))
    return Detections(torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores, dtype=torch.float32),
                      torch.tensor([cat_ids.index(a["category_id"]) for a in anns]), masks, image_id)


@pytest.mark.coco128
def test_coco128_perfect_predictions_give_map_1(coco128):
    ev = CocoEvaluator(ANN)
    for image_id in sorted(coco128.getImgIds()):
        ev.process([gt_as_detections(coco128, image_id, with_masks=True)])
    m = ev.evaluate()
    for t in ("bbox", "segm"):
        assert m[f"{t}/mAP"] == ONE and m[f"{t}/mAP50"] == ONE and m[f"{t}/mAP_s"] == ONE
        assert m[f"{t}/AR100"] == 1.0
        assert m[f"{t}/f1_best"] == 1.0 and m[f"{t}/f1_threshold"] == 1.0
    assert m["bbox/AP/person"] == ONE and math.isnan(m["bbox/AP/hair drier"])  # absent class
    assert len([k for k in m if k.startswith("bbox/AP/")]) == 80


@pytest.mark.coco128
def test_coco128_shifted_boxes_equal_plain_pycocotools(coco128, tmp_path):
    ev = CocoEvaluator(ANN)
    image_ids = sorted(coco128.getImgIds())
    for image_id in image_ids:
        ev.process([gt_as_detections(coco128, image_id, shift=(3.0, -2.0))])
    m = ev.evaluate()
    (path,) = ev.write_results(tmp_path / "results.json")
    ref = stock_eval(coco128, str(path), "bbox")
    assert_same_eval(ref, ev.coco_eval["bbox"])
    from detseg.evaluation.coco import STAT_NAMES
    assert [m[f"bbox/{n}"] for n in STAT_NAMES] == ref.stats.tolist()
    assert 0.3 < m["bbox/mAP"] < 0.9
    # Masks (every 8th image): shifted masks vs pycocotools on the same results, bbox dropped so
    # that the detection area is the mask area (as Detectron2 does).
    ev = CocoEvaluator(ANN)
    for image_id in image_ids[::8]:
        d = gt_as_detections(coco128, image_id, shift=(3.0, -2.0), with_masks=True)
        if d.masks is not None:
            d.masks = d.masks.roll((-2, 3), dims=(1, 2))
        ev.process([d])
    ev.evaluate()
    bbox_file, segm_file = ev.write_results(tmp_path / "with_masks.json")
    assert segm_file.name == "with_masks_segm.json"
    ref = stock_eval(coco128, str(segm_file), "segm", img_ids=image_ids[::8])
    assert_same_eval(ref, ev.coco_eval["segm"])
    assert 0.2 < ref.stats[0] < 0.9


@pytest.mark.coco128
def test_coco128_empty_predictions_and_category_ids(coco128, tmp_path):
    image_ids = sorted(coco128.getImgIds())
    ev = CocoEvaluator(ANN)
    ev.process([Detections.empty(i) for i in image_ids])
    m = ev.evaluate()
    assert m["bbox/mAP"] == 0.0 and m["bbox/AR100"] == 0.0 and "segm/mAP" not in m
    assert ev.write_results(tmp_path / "empty.json")[0].read_text() == "[]"
    # Labels map back to COCO's sparse ids (label 0 -> 1 person, label 79 -> 90 toothbrush).
    ev = CocoEvaluator(ANN)
    ev.process([dets(image_ids[0], [[0, 0, 5, 5], [5, 5, 9, 9], [1, 1, 4, 4]], [0.9, 0.5, 0.4], [0, 79, 11])])
    results = json.loads(ev.write_results(tmp_path / "r.json")[0].read_text())
    assert [r["category_id"] for r in results] == [1, 90, 13]
    assert results[1]["bbox"] == [5.0, 5.0, 4.0, 4.0] and results[0]["image_id"] == image_ids[0]
    # An explicit category_ids list (a model trained on three COCO classes, in its own order)
    ev = CocoEvaluator(ANN, category_ids=[18, 1, 3])
    assert ev.class_names == ("dog", "person", "car")
    ev.process([dets(image_ids[0], [[0, 0, 5, 5], [1, 1, 4, 4]], [0.9, 0.5], [0, 2])])
    assert [r["category_id"] for r in ev.results()] == [18, 3]
    assert {k.split("/")[-1] for k in ev.evaluate() if "/AP/" in k} == {"dog", "person", "car"}
    with pytest.raises(ValueError, match="not categories"):
        CocoEvaluator(ANN, category_ids=[1, 12])  # 12 is not a COCO 2017 category


def test_mask_encoding_equals_pycocotools():
    from detseg.evaluation.coco.tables import encode_masks

    rng = np.random.default_rng(0)
    for trial in range(60):
        h, w = rng.integers(1, 25, 2)
        masks = torch.from_numpy(rng.random((int(rng.integers(1, 5)), h, w)) < rng.random())
        masks[0] = masks[0] if trial % 4 else False  # empty masks
        if trial % 3 == 0:
            masks[:, :, 0] = masks[:, :, -1] = True  # masks touching both sides
        rles, areas = encode_masks(masks)
        ref = mask_utils.encode(np.asfortranarray(masks.numpy().astype(np.uint8).transpose(1, 2, 0)))
        assert [r["counts"] for r in rles] == [r["counts"].decode() for r in ref]
        np.testing.assert_array_equal(areas, masks.sum((1, 2)).numpy())
    assert encode_masks(torch.zeros(0, 4, 4, dtype=torch.bool))[0] == []


# ------------------------------------------------------------------------------------------
# Annotation ids pycocotools mis-scores: refused, with the reason
# ------------------------------------------------------------------------------------------


def perfect_results(anns: list[dict]) -> list[dict]:
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
            for a in anns if not a["iscrowd"]]


@pytest.mark.coco128
def test_coco128_duplicate_annotation_ids_are_refused(tmp_path):
    data = json.loads(ANN.read_text())  # not the fixture's: segm evaluation rewrites its polygons as RLE
    anns = data["annotations"]
    for i in range(20, len(anns), 20):  # 46 annotations take the id of the one before them
        anns[i]["id"] = anns[i - 1]["id"]
    num_dupes = len(range(20, len(anns), 20))
    path = tmp_path / "duplicate_ids.json"
    path.write_text(json.dumps(data))
    with quiet():
        gt = COCO(str(path))
    # Why pycocotools scores a perfect detector below 1: COCO.anns keeps one annotation per id (the
    # last), and COCOeval loads each image's ground truth through those ids, so the first of two
    # annotations sharing an id is never seen and the second is evaluated twice (in its own image).
    E = stock_eval(gt, perfect_results(anns), "bbox")
    assert len(gt.anns) == len(anns) - num_dupes
    gts = [g for group in E._gts.values() for g in group]
    assert len(gts) == len(anns) and len({id(g) for g in gts}) == len(anns) - num_dupes
    assert E.stats[0] < 0.96
    # detseg does not score it (neither pycocotools' wrong number nor a different one): one line, why, the fix
    with pytest.raises(ValueError) as info:
        CocoEvaluator(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {num_dupes} annotation ids are used more than once (e.g. ")
    assert "\n" not in message
    assert "pycocotools keeps one annotation per id" in message and "tools/convert.py" in message
    with pytest.raises(ValueError, match="used more than once"):
        FastCOCOeval(gt, gt.loadRes(perfect_results(anns)), "bbox").evaluate()
    # Renumbered, the two agree again, on a perfect score.
    for i, ann in enumerate(anns, 1):
        ann["id"] = i
    gt = coco_from_dict(data)
    fast = FastCOCOeval(gt, gt.loadRes(perfect_results(anns)), "bbox")
    fast.evaluate()
    fast.accumulate()
    with quiet():
        fast.summarize()
    ref = stock_eval(gt, perfect_results(anns), "bbox")
    assert_same_eval(ref, fast)
    assert fast.stats[0] == ONE


def test_annotation_id_zero_is_refused():
    images = [{"id": 1, "height": 50, "width": 50}]
    anns = [{"id": i, "image_id": 1, "category_id": 1, "bbox": [5.0 + 20 * i, 5.0, 10.0, 10.0], "area": 100.0,
             "iscrowd": 0} for i in range(2)]
    gt = coco_from_dict({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "a"}]})
    # COCOeval stores a matched ground truth's id as the detection's match and reads 0 as "none":
    # a perfect detection of annotation 0 is a false positive there.
    assert stock_eval(gt, perfect_results(anns), "bbox").stats[1] < 0.6
    with pytest.raises(ValueError, match="COCO ground truth: an annotation has id 0") as info:
        CocoEvaluator(gt)
    assert "false positive" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match="id 0"):
        FastCOCOeval(gt, gt.loadRes(perfect_results(anns)), "bbox").evaluate()
