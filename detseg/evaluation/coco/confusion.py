"""Detection confusion matrices: of one image, and summed over the images of an evaluation.

Shape shorthand: K classes (index K is background), G ground truth, D detections.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from .tables import DtTable, GtTable

__all__ = ["confusion_matrix_over_images", "detection_confusion_matrix"]


def detection_confusion_matrix(
    gt_boxes: np.ndarray, gt_labels: np.ndarray, pred_boxes: np.ndarray, pred_labels: np.ndarray,
    num_classes: int, *, iou: float = 0.5, crowd_boxes: np.ndarray | None = None,
) -> np.ndarray:
    """Detection confusion matrix of one image, [K + 1, K + 1] int64, rows true, columns predicted.

    Index K is background: row K counts false positives (a prediction that matched nothing),
    column K false negatives (ground truth nothing matched). Matching is class-agnostic and
    greedy by IoU (pairs with IoU >= ``iou``, highest first, each box used once), so a box on
    the right object with the wrong class lands off the diagonal instead of counting twice.

    Args:
        gt_boxes: [G, 4] xywh absolute pixels (COCO's format, as everything in this module).
        gt_labels: [G] int in ``[0, K)``.
        pred_boxes: [D, 4] xywh; filter by score before calling.
        pred_labels: [D] int in ``[0, K)``.
        num_classes: K.
        iou: matching threshold.
        crowd_boxes: [C, 4] xywh crowd regions: an unmatched prediction lying mostly inside one
            (intersection / prediction area >= ``iou``, COCO's crowd IoU) is not a false positive.
    """
    k = num_classes
    cm = np.zeros((k + 1, k + 1), np.int64)
    gt_labels = np.asarray(gt_labels, np.int64)
    pred_labels = np.asarray(pred_labels, np.int64)
    matched_d = np.zeros(len(pred_labels), bool)
    matched_g = np.zeros(len(gt_labels), bool)
    if len(gt_labels) and len(pred_labels):
        ious = np.asarray(mask_utils.iou(np.asarray(pred_boxes, np.float64),
                                         np.asarray(gt_boxes, np.float64),
                                         np.zeros(len(gt_labels), np.uint8)))
        d, g = np.nonzero(ious >= iou)
        for i in np.argsort(-ious[d, g], kind="stable"):
            if not matched_d[d[i]] and not matched_g[g[i]]:
                matched_d[d[i]] = matched_g[g[i]] = True
                cm[gt_labels[g[i]], pred_labels[d[i]]] += 1
    fp = ~matched_d
    if crowd_boxes is not None and len(crowd_boxes) and fp.any():
        ioa = np.asarray(mask_utils.iou(np.asarray(pred_boxes, np.float64)[fp],
                                        np.asarray(crowd_boxes, np.float64),
                                        np.ones(len(crowd_boxes), np.uint8)))
        fp[np.flatnonzero(fp)[(ioa >= iou).any(1)]] = False
    np.add.at(cm, (k, pred_labels[fp]), 1)
    np.add.at(cm, (gt_labels[~matched_g], k), 1)
    return cm


def confusion_matrix_over_images(gt: GtTable, dt: DtTable, img_ids: np.ndarray, cat_ids: np.ndarray,
                                 *, iou: float, score_thresh: float) -> np.ndarray:
    """Sum of :func:`detection_confusion_matrix` over ``img_ids``, [K + 1, K + 1] int64.

    Args:
        gt, dt: ground truth and detections (COCO category ids, xywh boxes).
        img_ids: the images to count.
        cat_ids: [K] COCO category id of each label; ground truth of other categories is left out.
        iou: matching threshold.
        score_thresh: detections scoring below it are left out.
    """
    k = len(cat_ids)
    lut = np.full(int(max(cat_ids.max(initial=0), gt.category_ids.max(initial=0))) + 1, -1, np.int64)
    lut[cat_ids] = np.arange(k)  # COCO category id -> label (-1: not evaluated)
    keep = dt.scores >= score_thresh
    d_img, d_box, d_lab = dt.image_ids[keep], dt.boxes[keep], lut[dt.category_ids[keep]]
    g_lab = lut[gt.category_ids]
    d_order = np.argsort(d_img, kind="stable")
    d_lo = np.searchsorted(d_img[d_order], img_ids, side="left")
    d_hi = np.searchsorted(d_img[d_order], img_ids, side="right")
    g_order = np.argsort(gt.image_ids, kind="stable")
    g_lo = np.searchsorted(gt.image_ids[g_order], img_ids, side="left")
    g_hi = np.searchsorted(gt.image_ids[g_order], img_ids, side="right")
    cm = np.zeros((k + 1, k + 1), np.int64)
    for i in range(len(img_ids)):
        di = d_order[d_lo[i]:d_hi[i]]
        gi = g_order[g_lo[i]:g_hi[i]]
        gi = gi[g_lab[gi] >= 0]
        crowd = gt.iscrowd[gi]
        cm += detection_confusion_matrix(
            gt.boxes[gi[~crowd]], g_lab[gi[~crowd]], d_box[di], d_lab[di], k, iou=iou,
            crowd_boxes=gt.boxes[gi[crowd]])
    return cm
