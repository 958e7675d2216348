"""COCOeval.accumulate on :class:`~.matching.Matches`, and the summary numbers read from it.

:func:`accumulate` returns exactly pycocotools' ``eval`` arrays (precision, recall, scores),
sorting each category once and vectorizing over IoU thresholds; ``summarize()`` then stays
pycocotools' own. :func:`summary_metrics` names the 12 ``stats`` and adds per-class AP.

Shape shorthand: T IoU thresholds (10), R recall thresholds (101), K categories, A area ranges
(4), M max-detection settings (3).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence

import numpy as np

from .matching import Matches

__all__ = ["STAT_NAMES", "accumulate", "summary_metrics"]

#: Names of pycocotools' 12 summary ``stats``, in order; metric keys are ``<iou_type>/<name>``.
STAT_NAMES = ("mAP", "mAP50", "mAP75", "mAP_s", "mAP_m", "mAP_l",
              "AR1", "AR10", "AR100", "AR_s", "AR_m", "AR_l")


def accumulate(p, mt: Matches) -> dict:
    """COCOeval's ``eval`` dict: ``precision`` [T, R, K, A, M], ``recall`` [T, K, A, M],
    ``scores`` [T, R, K, A, M] (-1 where a category has no ground truth), plus ``params``,
    ``counts`` and ``date``, from the matching of the same params ``p``."""
    T, R, K, A, M = len(p.iouThrs), len(p.recThrs), len(p.catIds), len(p.areaRng), len(p.maxDets)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    scores = -np.ones((T, R, K, A, M))
    rec_thrs = np.asarray(p.recThrs)
    # COCOeval concatenates each image's score-sorted detections in image order and
    # merge-sorts by -score: ties stay in (image, rank) order, i.e. the current order.
    order = np.lexsort((-mt.d_score, mt.d_cat))
    cat_bounds = np.searchsorted(mt.d_cat[order], np.arange(K + 1))
    num_pos = [np.bincount(mt.g_cat[~ign], minlength=K) for ign in mt.gtig]
    for k in range(K):
        idx_k = order[cat_bounds[k]:cat_bounds[k + 1]]
        rank_k = mt.rank[idx_k]
        prev = None
        for m, max_det in enumerate(p.maxDets):
            sel = rank_k < max_det
            if prev is not None and sel.all():  # same detections as the smaller maxDet
                precision[:, :, k, :, m] = precision[:, :, k, :, prev]
                recall[:, k, :, m] = recall[:, k, :, prev]
                scores[:, :, k, :, m] = scores[:, :, k, :, prev]
                continue
            prev = m if sel.all() else None
            idx = idx_k[sel]
            nd = len(idx)
            ss_all = mt.d_score[idx]
            for a in range(A):
                npig = num_pos[a][k]
                if npig == 0:
                    continue
                dtm = mt.dtm[a][:, idx]
                dtig = mt.dtig[a][:, idx]
                tp_sum = np.cumsum((dtm != 0) & ~dtig, axis=1).astype(float)
                fp_sum = np.cumsum((dtm == 0) & ~dtig, axis=1).astype(float)
                rc = tp_sum / npig
                pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
                recall[:, k, a, m] = rc[:, -1] if nd else 0
                if nd == 0:
                    precision[:, :, k, a, m] = 0
                    scores[:, :, k, a, m] = 0
                    continue
                # Precision envelope: max of precision at any higher recall.
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
                inds = np.stack([np.searchsorted(rc[t], rec_thrs, side="left") for t in range(T)])
                valid = inds < nd
                inds = np.minimum(inds, nd - 1)
                precision[:, :, k, a, m] = np.where(valid, np.take_along_axis(pr, inds, 1), 0)
                scores[:, :, k, a, m] = np.where(valid, ss_all[inds], 0)
    return {
        "params": p,
        "counts": [T, R, K, A, M],
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "precision": precision,
        "recall": recall,
        "scores": scores,
    }


def summary_metrics(E, iou_type: str, cat_ids: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """The 12 stats and per-class AP of a summarized COCOeval ``E``, as metric keys.

    Args:
        E: a COCOeval after ``accumulate()`` and ``summarize()``.
        iou_type: the key prefix.
        cat_ids: [K] COCO category id of each label (any order; ``E.params.catIds`` is sorted).
        names: K class names, in label order.

    Returns:
        ``<iou_type>/<stat>`` for :data:`STAT_NAMES`, ``<iou_type>/AP/<class>`` (IoU .5:.95, all
        areas, 100 dets) and ``<iou_type>/AP50/<class>``; NaN where pycocotools says -1.
    """
    metrics = {f"{iou_type}/{name}": float(value) if value >= 0 else math.nan
               for name, value in zip(STAT_NAMES, E.stats)}
    # Per class: positions of each label's category in params.catIds (sorted).
    pos = np.searchsorted(np.asarray(E.params.catIds), cat_ids)
    prec = E.eval["precision"][:, :, :, 0, -1]
    for name, k in zip(names, pos):
        valid = prec[:, :, k][prec[:, :, k] > -1]
        metrics[f"{iou_type}/AP/{name}"] = float(valid.mean()) if valid.size else math.nan
    for name, k in zip(names, pos):  # IoU 0.5 is the first of params.iouThrs
        valid = prec[0, :, k][prec[0, :, k] > -1]
        metrics[f"{iou_type}/AP50/{name}"] = float(valid.mean()) if valid.size else math.nan
    return metrics
