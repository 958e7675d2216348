"""COCO box and mask mAP: :class:`CocoEvaluator`, and :class:`FastCOCOeval` that computes it.

The numbers are pycocotools' own: :class:`FastCOCOeval` is a :class:`~pycocotools.cocoeval.COCOeval`
whose ``evaluate()`` and ``accumulate()`` are re-written with numpy and return exactly the
``eval["precision"]``, ``eval["recall"]`` and ``eval["scores"]`` arrays (and so the ``stats``) of
the original; ``summarize()`` and ``Params`` are pycocotools' unchanged. Why re-write them:
pycocotools' ``COCOeval`` is pure Python apart from the IoU kernel (``pycocotools.mask.iou`` is C),
and its per-image matching loops over every (image, category, area range) triple and every
(IoU threshold, detection, ground truth) inside it; on coco128-sized result sets that is ~1 s per
evaluation, longer than a validation epoch of a small model. Here:

* IoUs come from the same C kernel, called once per image instead of once per (image, category);
* only detections with an IoU >= min(iouThrs) (0.5) to some ground truth of their class can ever
  match, so the greedy matching loop (sequential by definition: a detection may only take a
  ground truth that no higher-scored detection took) visits those few candidate pairs and
  nothing else; every other detection is unmatched at every threshold without being looked at;
* ``accumulate`` sorts each category once and vectorizes over IoU thresholds.

Tests compare the arrays element-wise with stock pycocotools (crowd regions, ties in scores,
images without ground truth, more than ``maxDets`` detections, area ranges).

Ground truth whose annotation ids pycocotools cannot handle is refused (:func:`check_annotation_ids`)
rather than scored: ``COCO.createIndex`` keeps one annotation per id in ``coco.anns`` (the last),
and ``COCOeval`` loads the ground truth of each image through those ids, so an annotation sharing
its id with a later one is replaced by that one (which then counts twice, possibly in another
image) -- a perfect detector scores below 1 -- and ``COCOeval`` stores a matched ground truth's id
as the detection's match with 0 meaning "none", so a detection of an annotation with id 0 counts
as a false positive. Matching these numbers would mean copying the damage; the numbers without it
would not be pycocotools'.

Shape shorthand: D detections, G ground-truth annotations, K categories, T IoU thresholds
(10), R recall thresholds (101), A area ranges (4), M max-detection settings (3).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import io
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ..structures import boxes as box_ops
from ..structures.instances import Detections, Instances

__all__ = ["STAT_NAMES", "CocoEvaluator", "FastCOCOeval", "check_annotation_ids", "detection_confusion_matrix"]

#: Names of pycocotools' 12 summary ``stats``, in order; metric keys are ``<iou_type>/<name>``.
STAT_NAMES = ("mAP", "mAP50", "mAP75", "mAP_s", "mAP_m", "mAP_l",
              "AR1", "AR10", "AR100", "AR_s", "AR_m", "AR_l")


def _quiet():
    """Swallow pycocotools' progress prints (they go to stdout unconditionally)."""
    return contextlib.redirect_stdout(io.StringIO())


def coco_from_dict(dataset: dict) -> COCO:
    """A :class:`~pycocotools.coco.COCO` over an in-memory dataset dict, without the prints."""
    coco = COCO()
    coco.dataset = dataset
    with _quiet():
        coco.createIndex()
    return coco


def check_annotation_ids(ann_ids: Sequence[int], source: str = "ground truth") -> None:
    """Refuse ground-truth annotation ids that pycocotools mis-scores (see the module docstring).

    Args:
        ann_ids: the ``id`` of every ground-truth annotation, in file order.
        source: what to name in the error (the json's path).

    Raises:
        ValueError: one line naming ``source``: ids used more than once (how many, and the first
            few), or an id 0; with the fix.
    """
    ids, counts = np.unique(np.asarray(ann_ids, np.int64), return_counts=True)
    fix = "give every annotation its own id from 1 (tools/convert.py --from coco ... --to coco renumbers them)"
    if (counts > 1).any():
        dupes = ", ".join(f"{i} ({n}x)" for i, n in zip(ids[counts > 1][:5].tolist(), counts[counts > 1][:5].tolist()))
        raise ValueError(
            f"{source}: {int((counts > 1).sum())} annotation ids are used more than once (e.g. {dupes}); "
            "pycocotools keeps one annotation per id and evaluates it in place of the others, so its "
            f"scores of this file would be wrong and detseg does not score it: {fix}")
    if len(ids) and ids[0] == 0:
        raise ValueError(
            f"{source}: an annotation has id 0, which pycocotools' matching reads as 'no match' (a "
            f"detection of that object counts as a false positive), so detseg does not score it: {fix}")


# --------------------------------------------------------------------------------------------
# Column tables: the annotations as numpy arrays (built once, reused by every evaluation)
# --------------------------------------------------------------------------------------------


@dataclass
class _GtTable:
    """Ground-truth annotations of a COCO object as columns, in ``dataset["annotations"]`` order.

    Attributes:
        image_ids, category_ids, ann_ids: [G] int64.
        areas: [G] float64, the annotations' ``area`` field (box area when absent).
        iscrowd: [G] bool (crowd regions are COCOeval's "ignore" ground truth).
        boxes: [G, 4] float64 xywh, exactly the json ``bbox`` values.
    """

    coco: COCO
    image_ids: np.ndarray
    category_ids: np.ndarray
    ann_ids: np.ndarray
    areas: np.ndarray
    iscrowd: np.ndarray
    boxes: np.ndarray
    _rles: list | None = None

    @classmethod
    def from_coco(cls, coco: COCO, source: str = "ground truth") -> _GtTable:
        """The table of ``coco``'s annotations; ids are checked with :func:`check_annotation_ids`."""
        anns = coco.dataset.get("annotations", [])
        boxes = np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4)
        ann_ids = np.array([a["id"] for a in anns], np.int64)
        check_annotation_ids(ann_ids, source)
        return cls(
            coco=coco,
            image_ids=np.array([a["image_id"] for a in anns], np.int64),
            category_ids=np.array([a["category_id"] for a in anns], np.int64),
            ann_ids=ann_ids,
            areas=np.array([a["area"] if "area" in a else b[2] * b[3] for a, b in zip(anns, boxes)],
                           np.float64),
            iscrowd=np.array([bool(a.get("iscrowd", 0)) for a in anns], bool),
            boxes=boxes,
        )

    def rles(self) -> list:
        """Compressed RLEs of all annotations (polygons converted once, then cached)."""
        if self._rles is None:
            self._rles = [self.coco.annToRLE(a) for a in self.coco.dataset.get("annotations", [])]
        return self._rles


@dataclass
class _DtTable:
    """Detections as columns, in result-list order (the order breaks score ties, as in COCOeval).

    Attributes:
        image_ids, category_ids: [D] int64.
        ids: [D] int64 annotation ids (1..D, as ``loadRes`` numbers them).
        scores: [D] float64.
        areas: [D] float64: box area (``bbox``) or mask area (``segm``), as ``loadRes`` sets it.
        boxes: [D, 4] float64 xywh.
        rles: D compressed RLE dicts, or ``None`` without masks.
    """

    image_ids: np.ndarray
    category_ids: np.ndarray
    ids: np.ndarray
    scores: np.ndarray
    areas: np.ndarray
    boxes: np.ndarray
    rles: list | None = None

    @classmethod
    def from_coco(cls, coco: COCO, iou_type: str) -> _DtTable:
        anns = coco.dataset.get("annotations", [])
        return cls(
            image_ids=np.array([a["image_id"] for a in anns], np.int64),
            category_ids=np.array([a["category_id"] for a in anns], np.int64),
            ids=np.array([a["id"] for a in anns], np.int64),
            scores=np.array([a["score"] for a in anns], np.float64),
            areas=np.array([a["area"] for a in anns], np.float64),
            boxes=np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4),
            rles=[coco.annToRLE(a) for a in anns] if iou_type == "segm" else None,
        )


def _group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Index of the first element of each run of equal values in ``sorted_keys``."""
    if len(sorted_keys) == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])


def _rank_in_group(sorted_keys: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal values of ``sorted_keys``."""
    n = len(sorted_keys)
    start = np.zeros(n, np.int64)
    first = _group_starts(sorted_keys)
    start[first] = first
    return np.arange(n) - np.maximum.accumulate(start) if n else start


class FastCOCOeval(COCOeval):
    """Drop-in :class:`~pycocotools.cocoeval.COCOeval` with numpy ``evaluate()``/``accumulate()``.

    Same constructor, ``params`` and ``summarize()``; ``eval`` and ``stats`` are identical to
    pycocotools'. Differences: nothing is printed by ``evaluate``/``accumulate``; ``evalImgs`` and
    ``ious`` are not filled (the per-detection matching is kept as arrays instead, see
    :meth:`matches`); ground truth with duplicate annotation ids or an id 0 is refused by
    ``evaluate`` (``ValueError``, see :func:`check_annotation_ids`); keypoints or ``useCats=0``
    fall back to the original implementation.

    Args:
        cocoGt: ground truth.
        cocoDt: detections (e.g. from ``cocoGt.loadRes``); may be ``None`` when ``dt_table`` is given.
        iouType: ``"bbox"`` or ``"segm"`` (``"keypoints"`` runs pycocotools' code).
        gt_table, dt_table: pre-built column tables (internal: lets :class:`CocoEvaluator` skip
            re-reading the same ground truth and building per-detection dicts).

    Example:
        >>> E = FastCOCOeval(coco_gt, coco_gt.loadRes(results), "bbox")  # doctest: +SKIP
        >>> E.evaluate(); E.accumulate(); E.summarize()  # doctest: +SKIP
    """

    def __init__(self, cocoGt: COCO | None = None, cocoDt: COCO | None = None, iouType: str = "segm",
                 *, gt_table: _GtTable | None = None, dt_table: _DtTable | None = None) -> None:
        super().__init__(cocoGt, cocoDt, iouType)
        self._gt_table = gt_table
        self._dt_table = dt_table
        self._fast = True
        self._match: dict | None = None

    # ---- evaluate ------------------------------------------------------------------------

    def evaluate(self) -> None:
        p = self.params
        if p.useSegm is not None:
            p.iouType = "segm" if p.useSegm == 1 else "bbox"
        self._fast = p.iouType in ("bbox", "segm") and bool(p.useCats)
        if not self._fast:
            with _quiet():
                super().evaluate()
            return
        p.imgIds = list(np.unique(p.imgIds))
        p.catIds = list(np.unique(p.catIds))
        p.maxDets = sorted(p.maxDets)
        self.params = p
        gt = self._gt_table or _GtTable.from_coco(self.cocoGt)
        dt = self._dt_table or _DtTable.from_coco(self.cocoDt, p.iouType)
        self._match = self._evaluate_tables(gt, dt)
        self.evalImgs = []
        self.eval = {}
        self._paramsEval = copy.deepcopy(self.params)

    def _evaluate_tables(self, gt: _GtTable, dt: _DtTable) -> dict:
        p = self.params
        img_ids = np.asarray(p.imgIds, np.int64)
        cat_ids = np.asarray(p.catIds, np.int64)
        num_cats = len(cat_ids)
        thrs = [min(float(t), 1 - 1e-10) for t in p.iouThrs]  # as COCOeval.evaluateImg
        min_thr = min(thrs)

        # Ground truth of the evaluated images/categories, sorted by (image, category), stable.
        gsel = np.flatnonzero(np.isin(gt.image_ids, img_ids) & np.isin(gt.category_ids, cat_ids))
        g_img = np.searchsorted(img_ids, gt.image_ids[gsel])
        g_cat = np.searchsorted(cat_ids, gt.category_ids[gsel])
        order = np.lexsort((g_cat, g_img))
        gsel, g_img, g_cat = gsel[order], g_img[order], g_cat[order]
        g_crowd = gt.iscrowd[gsel]
        g_area = gt.areas[gsel]
        g_ids = gt.ann_ids[gsel]

        # Detections sorted by (image, category, -score), stable; keep the top maxDets[-1] per
        # (image, category) as COCOeval does.
        dsel = np.flatnonzero(np.isin(dt.image_ids, img_ids) & np.isin(dt.category_ids, cat_ids))
        d_img = np.searchsorted(img_ids, dt.image_ids[dsel])
        d_cat = np.searchsorted(cat_ids, dt.category_ids[dsel])
        order = np.lexsort((-dt.scores[dsel], d_cat, d_img))
        dsel, d_img, d_cat = dsel[order], d_img[order], d_cat[order]
        rank = _rank_in_group(d_img * num_cats + d_cat)
        keep = rank < p.maxDets[-1]
        dsel, d_img, d_cat, rank = dsel[keep], d_img[keep], d_cat[keep], rank[keep]
        d_score = dt.scores[dsel]
        d_area = dt.areas[dsel]
        d_ids = dt.ids[dsel]

        # Candidate (detection, ground truth) pairs: same category, IoU >= min threshold.
        if p.iouType == "segm":
            d_geom, g_geom = [dt.rles[i] for i in dsel], [gt.rles()[i] for i in gsel]
        else:
            d_geom, g_geom = dt.boxes[dsel], gt.boxes[gsel]
        cand_d, cand_g, cand_iou = [], [], []
        d_bounds = np.searchsorted(d_img, np.arange(len(img_ids) + 1))
        g_bounds = np.searchsorted(g_img, np.arange(len(img_ids) + 1))
        for i in np.flatnonzero((np.diff(d_bounds) > 0) & (np.diff(g_bounds) > 0)):
            ds, de, gs, ge = d_bounds[i], d_bounds[i + 1], g_bounds[i], g_bounds[i + 1]
            ious = np.asarray(mask_utils.iou(d_geom[ds:de], g_geom[gs:ge],
                                             g_crowd[gs:ge].astype(np.uint8)))
            ok = (d_cat[ds:de, None] == g_cat[None, gs:ge]) & (ious >= min_thr)
            rows, cols = np.nonzero(ok)
            cand_d.append(rows + ds)
            cand_g.append(cols + gs)
            cand_iou.append(ious[rows, cols])
        cand_d = np.concatenate(cand_d) if cand_d else np.zeros(0, np.int64)
        cand_g = np.concatenate(cand_g) if cand_g else np.zeros(0, np.int64)
        cand_iou = np.concatenate(cand_iou) if cand_iou else np.zeros(0, np.float64)

        dtm, dtig, gtig = [], [], []
        for lo, hi in p.areaRng:
            g_ign = g_crowd | (g_area < lo) | (g_area > hi)
            m, ig = self._match_area(thrs, cand_d, cand_g, cand_iou, g_ign, g_crowd, g_ids, d_ids,
                                     len(dsel))
            # Unmatched detections outside the area range are ignored, as in COCOeval.
            ig |= (m == 0) & ((d_area < lo) | (d_area > hi))[None, :]
            dtm.append(m)
            dtig.append(ig)
            gtig.append(g_ign)
        return {"d_img": d_img, "d_cat": d_cat, "rank": rank, "d_score": d_score, "d_index": dsel,
                "g_cat": g_cat, "g_index": gsel, "dtm": dtm, "dtig": dtig, "gtig": gtig}

    @staticmethod
    def _match_area(thrs, cand_d, cand_g, cand_iou, g_ign, g_crowd, g_ids, d_ids, num_dets):
        """COCOeval.evaluateImg's greedy matching for one area range, on candidate pairs only.

        Returns ``dtMatches`` [T, D] (matched ground-truth id, 0 = none) and ``dtIgnore`` [T, D].
        Within one detection, ground truth is visited as COCOeval does: non-ignored first, each
        group in annotation order; a better-or-equal IoU replaces the current match, and once a
        non-ignored match exists, ignored ground truth is not considered. Pairs below the
        threshold can neither match nor stop that scan, so leaving them out changes nothing.
        """
        T = len(thrs)
        dtm = np.zeros((T, num_dets))
        dtig = np.zeros((T, num_dets), bool)
        if len(cand_d) == 0:
            return dtm, dtig
        order = np.lexsort((cand_g, g_ign[cand_g], cand_d))
        c_d = cand_d[order]
        starts = _group_starts(c_d).tolist() + [len(c_d)]
        c_d, c_g, c_iou = c_d.tolist(), cand_g[order].tolist(), cand_iou[order].tolist()
        c_ign, c_crowd = g_ign[cand_g[order]].tolist(), g_crowd[cand_g[order]].tolist()
        gt_id = g_ids.tolist()
        det_positive_id = (d_ids > 0).tolist()  # COCOeval marks a gt taken by storing the dt id
        taken = [set() for _ in range(T)]
        hits_t, hits_d, hits_g, hits_ign = [], [], [], []
        for s, e in itertools.pairwise(starts):
            j = c_d[s]
            cands = list(zip(c_g[s:e], c_iou[s:e], c_ign[s:e], c_crowd[s:e]))
            for t in range(T):
                best, m, m_ign, tk = thrs[t], -1, False, taken[t]
                for g, v, ig, crowd in cands:
                    if g in tk and not crowd:
                        continue
                    if m > -1 and not m_ign and ig:
                        break
                    if v < best:
                        continue
                    best, m, m_ign = v, g, ig
                if m == -1:
                    continue
                hits_t.append(t)
                hits_d.append(j)
                hits_g.append(gt_id[m])
                hits_ign.append(m_ign)
                if det_positive_id[j]:
                    tk.add(m)
        if hits_t:
            dtm[hits_t, hits_d] = hits_g
            dtig[hits_t, hits_d] = hits_ign
        return dtm, dtig

    # ---- accumulate ----------------------------------------------------------------------

    def accumulate(self, p=None) -> None:
        if not self._fast or self._match is None:
            with _quiet():
                super().accumulate(p)
            return
        p = self.params if p is None else p
        mt = self._match
        T, R, K, A, M = len(p.iouThrs), len(p.recThrs), len(p.catIds), len(p.areaRng), len(p.maxDets)
        precision = -np.ones((T, R, K, A, M))
        recall = -np.ones((T, K, A, M))
        scores = -np.ones((T, R, K, A, M))
        rec_thrs = np.asarray(p.recThrs)
        # COCOeval concatenates each image's score-sorted detections in image order and
        # merge-sorts by -score: ties stay in (image, rank) order, i.e. the current order.
        order = np.lexsort((-mt["d_score"], mt["d_cat"]))
        cat_bounds = np.searchsorted(mt["d_cat"][order], np.arange(K + 1))
        num_pos = [np.bincount(mt["g_cat"][~ign], minlength=K) for ign in mt["gtig"]]
        for k in range(K):
            idx_k = order[cat_bounds[k]:cat_bounds[k + 1]]
            rank_k = mt["rank"][idx_k]
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
                ss_all = mt["d_score"][idx]
                for a in range(A):
                    npig = num_pos[a][k]
                    if npig == 0:
                        continue
                    dtm = mt["dtm"][a][:, idx]
                    dtig = mt["dtig"][a][:, idx]
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
        self.eval = {
            "params": p,
            "counts": [T, R, K, A, M],
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            "precision": precision,
            "recall": recall,
            "scores": scores,
        }

    # ---- matching export -----------------------------------------------------------------

    def matches(self, iou: float = 0.5, area: str = "all", max_det: int | None = None) -> dict:
        """Per-detection outcome at one IoU threshold (after :meth:`evaluate`).

        Args:
            iou: one of ``params.iouThrs``.
            area: one of ``params.areaRngLbl``.
            max_det: detections per (image, category) kept; default ``max(params.maxDets)``.

        Returns:
            dict with ``scores`` [n] float64, ``category`` [n] index into ``params.catIds``,
            ``tp`` [n] bool, for the n non-ignored detections (ignored ones, matched to a crowd
            region or outside the area range, are neither true nor false positives), plus
            ``num_gt`` [K] int64: non-ignored ground truth per category.
        """
        if self._match is None:
            raise RuntimeError("matches() needs evaluate() first (bbox/segm with useCats=1)")
        p, mt = self.params, self._match
        t = int(np.flatnonzero(np.isclose(p.iouThrs, iou))[0])
        a = list(p.areaRngLbl).index(area)
        keep = (mt["rank"] < (max_det or p.maxDets[-1])) & ~mt["dtig"][a][t]
        return {
            "scores": mt["d_score"][keep],
            "category": mt["d_cat"][keep],
            "tp": mt["dtm"][a][t][keep] != 0,
            "num_gt": np.bincount(mt["g_cat"][~mt["gtig"][a]], minlength=len(p.catIds)),
        }


# --------------------------------------------------------------------------------------------
# F1 over confidence thresholds
# --------------------------------------------------------------------------------------------


@dataclass
class F1Table:
    """F1 of each class as a step function of the confidence threshold ("keep score >= thr").

    Attributes:
        scores: per class, its detections' scores sorted high to low (non-ignored only).
        cum_tp: per class, true positives among the first i + 1 of those detections.
        num_gt: [K] non-ignored ground truth per class.
    """

    scores: list[np.ndarray]
    cum_tp: list[np.ndarray]
    num_gt: np.ndarray

    @classmethod
    def from_matches(cls, matches: dict) -> F1Table:
        num_classes = len(matches["num_gt"])
        order = np.lexsort((-matches["scores"], matches["category"]))
        cat, sc, tp = matches["category"][order], matches["scores"][order], matches["tp"][order]
        bounds = np.searchsorted(cat, np.arange(num_classes + 1))
        return cls(
            scores=[sc[bounds[k]:bounds[k + 1]] for k in range(num_classes)],
            cum_tp=[np.cumsum(tp[bounds[k]:bounds[k + 1]]) for k in range(num_classes)],
            num_gt=np.asarray(matches["num_gt"], np.int64),
        )

    def f1(self, thresholds: np.ndarray) -> np.ndarray:
        """F1 [K, C] of every class at each of C thresholds; NaN for classes without ground truth.

        F1 = 2 TP / (2 TP + FP + FN) = 2 TP / (detections kept + ground truth).
        """
        thresholds = np.asarray(thresholds, np.float64)
        out = np.full((len(self.scores), len(thresholds)), np.nan)
        for k, (sc, ctp) in enumerate(zip(self.scores, self.cum_tp)):
            if self.num_gt[k] == 0:
                continue
            kept = len(sc) - np.searchsorted(sc[::-1], thresholds, side="left")  # score >= thr
            tp = np.where(kept > 0, ctp[np.maximum(kept - 1, 0)] if len(ctp) else 0, 0)
            out[k] = 2.0 * tp / (kept + self.num_gt[k])
        return out

    def best_per_class(self) -> tuple[np.ndarray, np.ndarray]:
        """(F1 [K], threshold [K]) maximizing each class's F1 over its own scores.

        Ties go to the higher threshold (fewer detections for the same F1). A class with ground
        truth but no detection has F1 0 and threshold NaN; without ground truth both are NaN.
        """
        best_f1 = np.full(len(self.scores), np.nan)
        best_thr = np.full(len(self.scores), np.nan)
        for k, (sc, ctp) in enumerate(zip(self.scores, self.cum_tp)):
            if self.num_gt[k] == 0:
                continue
            if len(sc) == 0:
                best_f1[k] = 0.0
                continue
            last = np.r_[sc[1:] != sc[:-1], True]  # "score >= thr" keeps all of a tie
            f1 = 2.0 * ctp[last] / (np.flatnonzero(last) + 1 + self.num_gt[k])
            i = int(np.argmax(f1))  # first maximum = highest threshold
            best_f1[k], best_thr[k] = f1[i], sc[last][i]
        return best_f1, best_thr

    def best_mean(self) -> tuple[float, float]:
        """(mean F1, threshold): the one threshold maximizing F1 averaged over classes with
        ground truth (a macro average, as Ultralytics' F1 curve). Candidates are all detection
        scores; ties go to the higher threshold. ``(0.0, nan)`` without detections."""
        has_gt = self.num_gt > 0
        cands = np.unique(np.concatenate([s for s in self.scores] + [np.zeros(0)]))[::-1]
        if len(cands) == 0 or not has_gt.any():
            return (0.0 if has_gt.any() else math.nan), math.nan
        mean = self.f1(cands)[has_gt].mean(axis=0)
        i = int(np.argmax(mean))
        return float(mean[i]), float(cands[i])


# --------------------------------------------------------------------------------------------
# Confusion matrix
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# The evaluator
# --------------------------------------------------------------------------------------------


def _encode_masks(masks: torch.Tensor) -> tuple[list[dict], np.ndarray]:
    """[M, H, W] bool masks -> (M compressed RLEs with ``counts`` as str, areas [M] float64).

    Same RLEs as ``pycocotools.mask.encode`` (tested), which wants every mask transposed to
    column-major order first: at 640x480 that copy costs ~3x the encoding. Here only the band of
    columns a mask occupies is transposed and run-length coded; the empty columns left and right
    become the first and last runs, and pycocotools compresses the runs.
    """
    m = masks.detach().to("cpu", torch.bool)
    num, h, w = m.shape
    if num == 0:
        return [], np.zeros(0, np.float64)
    cols = m.numpy().any(axis=1)  # [M, W]: columns a mask touches (numpy: 10x torch here)
    objs = []
    for i in range(num):
        xs = np.flatnonzero(cols[i])
        if len(xs) == 0:
            objs.append({"size": [h, w], "counts": [h * w]})
            continue
        x0, x1 = int(xs[0]), int(xs[-1]) + 1
        flat = m[i, :, x0:x1].T.contiguous().numpy().ravel()  # column-major pixels of the band
        change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        runs = np.diff(np.concatenate(([0], change, [len(flat)]))).tolist()
        if flat[0]:  # RLE counts start with a run of zeros, possibly empty
            runs.insert(0, 0)
        runs[0] += x0 * h
        tail = (w - x1) * h
        if tail and flat[-1]:
            runs.append(tail)
        elif tail:
            runs[-1] += tail
        objs.append({"size": [h, w], "counts": runs})
    rles = mask_utils.frPyObjects(objs, h, w)
    areas = mask_utils.area(rles).astype(np.float64)
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return rles, areas


class CocoEvaluator:
    """COCO box (and mask) AP/AR of :class:`Detections`, plus F1-optimal score thresholds.

    Ground truth comes from one of two places:

    * a COCO json (path or :class:`~pycocotools.coco.COCO`): the reference numbers; labels map
      to COCO category ids through ``category_ids`` (default: the json's ids in increasing
      order, the convention of :class:`detseg.data.coco.CocoDataset`), and only those
      categories are evaluated (all of them by default, as plain pycocotools does);
    * the ``targets`` given to :meth:`process` (no json needed, e.g. synthetic data): an
      in-memory COCO with category id ``label + 1``; boxes xyxy -> xywh here, ``area`` = mask
      area when masks exist, else box area. Targets whose ``image_size`` differs from a set
      ``orig_size`` are scaled to ``orig_size`` (where predictions live); give un-resized
      targets for exact numbers.

    Only images seen by :meth:`process` (in predictions or targets) are evaluated, as
    Detectron2 does; pass ``Detections.empty(image_id)`` for images without predictions.
    If :meth:`process` saw nothing, every ground-truth image is evaluated.

    Args:
        gt: COCO json path or COCO object; ``None`` for in-memory ground truth. A json whose
            annotation ids repeat or include 0 is refused here (``ValueError`` naming it, see
            :func:`check_annotation_ids`): pycocotools would score it wrongly.
        category_ids: COCO category id of each label (json ground truth only).
        class_names: names for per-class keys; default the json's category names, else
            ``str(label)``. In-memory ground truth: its length fixes K.
        iou_types: ``("bbox",)``, ``("bbox", "segm")``...; default: ``bbox``, plus ``segm`` if
            any processed prediction carries masks. Give it explicitly for stable keys when a
            mask model might predict nothing.
        f1_iou: IoU threshold of the F1 matching (one of COCO's 0.5:0.05:0.95).

    Metric keys (values in [0, 1]; NaN where pycocotools says -1, i.e. no ground truth there):
        ``<t>/mAP``, ``<t>/mAP50``, ``<t>/mAP75``, ``<t>/mAP_s|m|l``, ``<t>/AR1|AR10|AR100``,
        ``<t>/AR_s|m|l`` (pycocotools' 12 stats, see :data:`STAT_NAMES`), ``<t>/AP/<class>``
        (IoU .5:.95, all areas, 100 dets), ``<t>/AP50/<class>`` (IoU .5), ``<t>/f1_best`` and ``<t>/f1_threshold`` (the one
        score threshold maximizing class-averaged F1 at ``f1_iou``), ``<t>/f1_threshold/<class>``
        (each class's own best), for ``<t>`` in ``iou_types``.

    Example:
        >>> ev = CocoEvaluator("annotations/instances_val.json")  # doctest: +SKIP
        >>> for batch in loader:  # doctest: +SKIP
        ...     ev.process(model.predict(batch.images), batch.targets)
        >>> ev.evaluate()["bbox/mAP"]  # doctest: +SKIP
    """

    def __init__(self, gt: str | Path | COCO | None = None, category_ids: Sequence[int] | None = None,
                 class_names: Sequence[str] | None = None, *, iou_types: Sequence[str] | None = None,
                 f1_iou: float = 0.5) -> None:
        self.iou_types = tuple(iou_types) if iou_types is not None else None
        for t in self.iou_types or ():
            if t not in ("bbox", "segm"):
                raise ValueError(f"iou_types: {t!r} is not one of 'bbox', 'segm'")
        if not np.isclose(np.linspace(0.5, 0.95, 10), f1_iou).any():
            raise ValueError(f"f1_iou={f1_iou} must be one of COCO's IoU thresholds 0.5, 0.55, ..., 0.95")
        self.f1_iou = f1_iou
        self._json_gt: COCO | None = None
        if gt is not None:
            if isinstance(gt, COCO):
                self._json_gt = gt
            else:
                if not Path(gt).is_file():
                    raise FileNotFoundError(f"COCO ground truth not found: {gt}")
                with _quiet():
                    self._json_gt = COCO(str(gt))
            cats = {c["id"]: c.get("name", str(c["id"])) for c in self._json_gt.dataset["categories"]}
            self.category_ids = tuple(int(c) for c in (category_ids if category_ids is not None
                                                         else sorted(cats)))
            unknown = [c for c in self.category_ids if c not in cats]
            if unknown:
                raise ValueError(f"category_ids {unknown} are not categories of {gt}")
            self.class_names = tuple(class_names) if class_names is not None else tuple(
                cats[c] for c in self.category_ids)
            self._gt_table_cache = _GtTable.from_coco(
                self._json_gt, str(gt) if not isinstance(gt, COCO) else "COCO ground truth")
        else:
            if category_ids is not None:
                raise ValueError("category_ids maps labels to a json's categories; in-memory "
                                 "ground truth uses category id = label + 1")
            self.category_ids = None
            self.class_names = tuple(class_names) if class_names is not None else None
            self._gt_table_cache = None
        if self.class_names is not None and self.category_ids is not None \
                and len(self.class_names) != len(self.category_ids):
            raise ValueError(f"{len(self.class_names)} class_names for {len(self.category_ids)} "
                             "category_ids")
        self.coco_eval: dict[str, FastCOCOeval] = {}
        self.reset()

    # ---- accumulation --------------------------------------------------------------------

    def reset(self) -> None:
        """Forget processed predictions (and in-memory ground truth)."""
        self._dt: list[dict] = []
        self._seen: set[int] = set()
        self._gt_images: dict[int, dict] = {}  # in-memory ground truth, by image id
        self._gt_coco: COCO | None = self._json_gt
        self._has_masks = False
        self.coco_eval = {}
        self._f1: dict[str, F1Table] = {}

    def process(self, predictions: Sequence[Detections], targets: Sequence[Instances] | None = None,
                area_scales: Sequence[float] | None = None) -> None:
        """Add a batch.

        Args:
            predictions: one :class:`Detections` per image (original image coordinates, xyxy).
            targets: the matching :class:`Instances`; required without a json, ignored with one
                (beyond recording which images were evaluated).
            area_scales: per image, what multiplies an area of the predictions' (and targets')
                frame to give image-file pixels, when they live in another frame (validation
                scores resized images): COCO's small/medium/large ranges are in file pixels.
                Targets with ``areas`` (the dataset's, e.g. COCO's segmentation areas) use those.
        """
        if targets is not None and len(targets) != len(predictions):
            raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
        scales = list(area_scales) if area_scales is not None else [1.0] * len(predictions)
        for det, scale in zip(predictions, scales):
            self._add_detections(det, scale)
        for tgt, scale in zip(targets or (), scales):
            self._seen.add(int(tgt.image_id))
            if self._json_gt is None:
                self._add_target(tgt, scale)

    def _add_detections(self, det: Detections, area_scale: float = 1.0) -> None:
        image_id = int(det.image_id)
        self._seen.add(image_id)
        if len(det) == 0:
            return
        boxes = det.boxes.detach().to("cpu", torch.float64).numpy()
        xywh = box_ops.to_xywh(boxes)
        chunk = {
            "image_id": np.full(len(det), image_id, np.int64),
            "labels": det.labels.detach().cpu().numpy().astype(np.int64),
            "scores": det.scores.detach().to("cpu", torch.float64).numpy(),
            "boxes": xywh,
            "rles": None,
            "mask_areas": None,
            "area_scale": float(area_scale),
        }
        if det.masks is not None:
            chunk["rles"], chunk["mask_areas"] = _encode_masks(det.masks)
            self._has_masks = True
        self._dt.append(chunk)

    def _add_target(self, tgt: Instances, area_scale: float = 1.0) -> None:
        ih, iw = (int(s) for s in tgt.image_size)
        oh, ow = (int(s) for s in tgt.orig_size)
        h, w = (oh, ow) if oh > 0 and ow > 0 else (ih, iw)
        boxes = tgt.boxes.detach().to("cpu", torch.float64).numpy().reshape(-1, 4)
        masks = tgt.masks
        if (h, w) != (ih, iw):
            boxes = boxes * np.array([w / iw, h / ih, w / iw, h / ih])
            if masks is not None:
                masks = torch.nn.functional.interpolate(
                    masks[:, None, :ih, :iw].float(), size=(h, w), mode="nearest-exact")[:, 0] > 0.5
        xywh = box_ops.to_xywh(boxes)
        rec = {
            "height": h, "width": w, "boxes": xywh,
            "labels": tgt.labels.detach().cpu().numpy().astype(np.int64),
            "iscrowd": tgt.iscrowd.detach().cpu().numpy().astype(bool),
            "rles": None, "areas": xywh[:, 2] * xywh[:, 3] * area_scale,
        }
        if masks is not None:
            rec["rles"], mask_areas = _encode_masks(masks[:, :h, :w])
            rec["areas"] = mask_areas * area_scale
        if tgt.areas is not None:
            rec["areas"] = tgt.areas.detach().to("cpu", torch.float64).numpy()
        self._gt_images[int(tgt.image_id)] = rec
        self._gt_coco = None  # rebuilt by evaluate()

    # ---- ground truth and detections as tables -------------------------------------------

    def _num_classes(self) -> int:
        if self.category_ids is not None:
            return len(self.category_ids)
        if self.class_names is not None:
            return len(self.class_names)
        labels = [r["labels"] for r in self._gt_images.values()] + [c["labels"] for c in self._dt]
        return int(max((x.max() for x in labels if len(x)), default=-1)) + 1

    def _ground_truth(self) -> tuple[COCO, _GtTable]:
        if self._gt_coco is not None:
            return self._gt_coco, self._gt_table_cache
        if not self._gt_images:
            raise ValueError("CocoEvaluator has no ground truth: pass a COCO json, or targets to process()")
        k = self._num_classes()
        names = self.class_names or tuple(str(i) for i in range(k))
        images, anns = [], []
        for image_id, rec in sorted(self._gt_images.items()):
            images.append({"id": image_id, "height": rec["height"], "width": rec["width"]})
            if len(rec["labels"]) and (rec["labels"].max() >= k or rec["labels"].min() < 0):
                raise ValueError(f"image {image_id}: target labels {rec['labels'].tolist()} outside "
                                 f"[0, {k}) (class_names has {k} entries)")
            for i, (box, label, crowd, area) in enumerate(zip(
                    rec["boxes"].tolist(), rec["labels"].tolist(), rec["iscrowd"].tolist(),
                    rec["areas"].tolist())):
                ann = {"id": len(anns) + 1, "image_id": image_id, "category_id": label + 1,
                       "bbox": box, "area": area, "iscrowd": int(crowd)}
                if rec["rles"] is not None:
                    ann["segmentation"] = rec["rles"][i]
                anns.append(ann)
        dataset = {"images": images, "annotations": anns,
                   "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)]}
        self._gt_coco = coco_from_dict(dataset)
        self._gt_table_cache = _GtTable.from_coco(self._gt_coco)
        return self._gt_coco, self._gt_table_cache

    def _category_ids(self) -> np.ndarray:
        if self.category_ids is not None:
            return np.asarray(self.category_ids, np.int64)
        return np.arange(1, self._num_classes() + 1, dtype=np.int64)

    def _detections(self, iou_type: str) -> _DtTable:
        cat_ids = self._category_ids()
        if not self._dt:
            e = np.zeros(0, np.int64)
            return _DtTable(e, e, e, e.astype(np.float64), e.astype(np.float64),
                            np.zeros((0, 4)), [] if iou_type == "segm" else None)
        labels = np.concatenate([c["labels"] for c in self._dt])
        if labels.min() < 0 or labels.max() >= len(cat_ids):
            raise ValueError(f"predicted labels span [{labels.min()}, {labels.max()}] but only "
                             f"{len(cat_ids)} classes are known (category_ids / class_names)")
        boxes = np.concatenate([c["boxes"] for c in self._dt])
        scales = np.concatenate([np.full(len(c["labels"]), c["area_scale"]) for c in self._dt])
        rles, areas = None, boxes[:, 2] * boxes[:, 3] * scales  # loadRes: bbox area for box results
        if iou_type == "segm":
            if any(c["rles"] is None for c in self._dt):
                raise ValueError("segm evaluation needs masks in every non-empty Detections")
            rles = [r for c in self._dt for r in c["rles"]]
            areas = np.concatenate([c["mask_areas"] for c in self._dt]) * scales
        return _DtTable(
            image_ids=np.concatenate([c["image_id"] for c in self._dt]),
            category_ids=cat_ids[labels], ids=np.arange(1, len(labels) + 1, dtype=np.int64),
            scores=np.concatenate([c["scores"] for c in self._dt]), areas=areas, boxes=boxes,
            rles=rles,
        )

    # ---- evaluation ----------------------------------------------------------------------

    def _active_iou_types(self) -> tuple[str, ...]:
        if self.iou_types is not None:
            return self.iou_types
        return ("bbox", "segm") if self._has_masks else ("bbox",)

    def evaluate(self) -> dict[str, float]:
        """Run COCO evaluation on everything processed since :meth:`reset`.

        Returns:
            The metric dict described in the class docstring; the :class:`FastCOCOeval` objects
            stay in ``self.coco_eval[iou_type]`` (``.stats``, ``.eval["precision"]``...).
        """
        coco_gt, gt_table = self._ground_truth()
        gt_images = set(coco_gt.getImgIds())
        unknown = self._seen - gt_images
        if unknown:
            raise ValueError(f"{len(unknown)} processed image ids are not in the ground truth, "
                             f"e.g. {sorted(unknown)[:5]}")
        img_ids = sorted(self._seen) if self._seen else sorted(gt_images)
        cat_ids = self._category_ids()
        names = self.class_names or tuple(str(i) for i in range(len(cat_ids)))
        metrics: dict[str, float] = {}
        self.coco_eval, self._f1 = {}, {}
        for iou_type in self._active_iou_types():
            if iou_type == "segm" and self._json_gt is None and any(
                    r["rles"] is None for r in self._gt_images.values()):
                raise ValueError("segm evaluation needs masks in the targets")
            E = FastCOCOeval(coco_gt, None, iou_type, gt_table=gt_table,
                             dt_table=self._detections(iou_type))
            E.params.imgIds = img_ids
            E.params.catIds = sorted(cat_ids.tolist())
            E.evaluate()
            E.accumulate()
            with _quiet():
                E.summarize()
            self.coco_eval[iou_type] = E
            for name, value in zip(STAT_NAMES, E.stats):
                metrics[f"{iou_type}/{name}"] = float(value) if value >= 0 else math.nan
            # Per class: positions of each label's category in params.catIds (sorted).
            pos = np.searchsorted(np.asarray(E.params.catIds), cat_ids)
            prec = E.eval["precision"][:, :, :, 0, -1]
            for name, k in zip(names, pos):
                valid = prec[:, :, k][prec[:, :, k] > -1]
                metrics[f"{iou_type}/AP/{name}"] = float(valid.mean()) if valid.size else math.nan
            for name, k in zip(names, pos):  # IoU 0.5 is the first of params.iouThrs
                valid = prec[0, :, k][prec[0, :, k] > -1]
                metrics[f"{iou_type}/AP50/{name}"] = float(valid.mean()) if valid.size else math.nan
            m = E.matches(self.f1_iou)
            m["category"] = np.argsort(pos)[m["category"]]  # catIds position -> label
            m["num_gt"] = m["num_gt"][pos]
            table = F1Table.from_matches(m)
            self._f1[iou_type] = table
            f1_best, f1_thr = table.best_mean()
            metrics[f"{iou_type}/f1_best"] = f1_best
            metrics[f"{iou_type}/f1_threshold"] = f1_thr
            for name, thr in zip(names, table.best_per_class()[1]):
                metrics[f"{iou_type}/f1_threshold/{name}"] = float(thr)
        return metrics

    def class_counts(self) -> dict[str, int]:
        """Ground-truth instances per class name in the last :meth:`evaluate` (crowd regions not
        counted), for the ``instances`` column of :func:`~detseg.evaluation.report.format_metrics`."""
        if not self._f1:
            raise RuntimeError("class_counts() needs evaluate() first")
        names = self.class_names or tuple(str(i) for i in range(self._num_classes()))
        table = next(iter(self._f1.values()))
        return {name: int(n) for name, n in zip(names, table.num_gt)}

    # ---- outputs -------------------------------------------------------------------------

    def results(self, iou_type: str = "bbox") -> list[dict]:
        """Processed predictions as a COCO results list (category ids mapped back).

        ``bbox``: xywh boxes. ``segm``: masks as compressed RLE (``counts`` a str) *without* a
        ``bbox`` entry, because ``COCO.loadRes`` takes a result's area from its box when it has
        one, and COCO's small/medium/large ranges must see the mask area (Detectron2 drops the
        box before ``loadRes`` for the same reason).
        """
        if iou_type not in ("bbox", "segm"):
            raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
        cat_ids = self._category_ids()
        out = []
        for c in self._dt:
            rows = zip(c["image_id"].tolist(), cat_ids[c["labels"]].tolist(), c["boxes"].tolist(), c["scores"].tolist())
            if iou_type == "bbox":
                out += [{"image_id": i, "category_id": k, "bbox": b, "score": s} for i, k, b, s in rows]
            elif c["rles"] is not None:
                out += [{"image_id": i, "category_id": k, "score": s, "segmentation": r}
                        for (i, k, _, s), r in zip(rows, c["rles"])]
        return out

    def write_results(self, path: str | Path) -> list[Path]:
        """Write :meth:`results` as json files readable by ``COCO.loadRes``: boxes to ``path``
        and, when predictions have masks, masks to ``<stem>_segm.json`` beside it.

        Returns:
            The files written.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        written = []
        for iou_type, target in (("bbox", path), ("segm", path.with_name(f"{path.stem}_segm{path.suffix}"))):
            if iou_type == "segm" and not self._has_masks:
                continue
            with open(target, "w", encoding="utf-8") as f:
                json.dump(self.results(iou_type), f)
            written.append(target)
        return written

    def f1_curves(self, iou_type: str = "bbox", thresholds: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """(thresholds [C], F1 [K, C]) at ``f1_iou`` (after :meth:`evaluate`); default grid 0..1."""
        if iou_type not in self._f1:
            raise RuntimeError(f"no {iou_type} results: call evaluate() first")
        thresholds = np.linspace(0, 1, 1001) if thresholds is None else np.asarray(thresholds)
        return thresholds, self._f1[iou_type].f1(thresholds)

    def confusion_matrix(self, *, iou: float = 0.5, score_threshold: float = 0.25) -> np.ndarray:
        """[K + 1, K + 1] box confusion matrix over the evaluated images (rows true, columns
        predicted, index K background; see :func:`detection_confusion_matrix`). Ground truth of
        categories outside ``category_ids`` is left out."""
        coco_gt, gt = self._ground_truth()
        cat_ids = self._category_ids()
        k = len(cat_ids)
        img_ids = np.asarray(sorted(self._seen) if self._seen else sorted(coco_gt.getImgIds()), np.int64)
        lut = np.full(int(max(cat_ids.max(initial=0), gt.category_ids.max(initial=0))) + 1, -1, np.int64)
        lut[cat_ids] = np.arange(k)  # COCO category id -> label (-1: not evaluated)
        dt = self._detections("bbox")
        keep = dt.scores >= score_threshold
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

    def save_plots(self, out_dir: str | Path, *, iou_type: str = "bbox",
                   score_threshold: float = 0.25) -> list[Path]:
        """Write ``pr_curve.png``, ``f1_curve.png`` and ``confusion_matrix.png`` into ``out_dir``.

        Runs :meth:`evaluate` first if it has not run. The PR curve is at IoU 0.5 (all areas, 100
        detections), the F1 curve at ``f1_iou``, the confusion matrix at IoU 0.5 and
        ``score_threshold``.
        """
        from .plots import plot_confusion_matrix, plot_f1_curves, plot_pr_curves

        if iou_type not in self.coco_eval:
            self.evaluate()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        E = self.coco_eval[iou_type]
        cat_ids = self._category_ids()
        names = self.class_names or tuple(str(i) for i in range(len(cat_ids)))
        pos = np.searchsorted(np.asarray(E.params.catIds), cat_ids)
        t50 = int(np.flatnonzero(np.isclose(E.params.iouThrs, 0.5))[0])
        precision = E.eval["precision"][t50, :, :, 0, -1][:, pos]
        thresholds, f1 = self.f1_curves(iou_type)
        return [
            plot_pr_curves(precision, E.params.recThrs, names, out_dir / "pr_curve.png"),
            plot_f1_curves(thresholds, f1, names, out_dir / "f1_curve.png"),
            plot_confusion_matrix(self.confusion_matrix(score_threshold=score_threshold), names,
                                  out_dir / "confusion_matrix.png"),
        ]
