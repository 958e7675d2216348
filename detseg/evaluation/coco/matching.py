"""COCOeval's per-image matching, on numpy columns: which detection matched which ground truth.

What makes it fast while giving COCOeval's exact matches:

* IoUs come from pycocotools' C kernel (``pycocotools.mask.iou``), called once per image instead
  of once per (image, category);
* only detections with an IoU >= min(iouThrs) (0.5) to some ground truth of their class can ever
  match, so the greedy matching loop (sequential by definition: a detection may only take a
  ground truth that no higher-scored detection took) visits those few candidate pairs and
  nothing else; every other detection is unmatched at every threshold without being looked at.

Shape shorthand: D detections and G ground truth kept for evaluation, T IoU thresholds (10),
A area ranges (4).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from .tables import DtTable, GtTable

__all__ = ["Matches", "match_tables"]


@dataclass
class Matches:
    """The outcome of matching, per kept detection and ground truth (input to accumulation).

    Detections are sorted by (image, category, -score) and cut to ``maxDets[-1]`` per (image,
    category); ground truth by (image, category). Images and categories are positions in
    ``params.imgIds`` / ``params.catIds``.

    Attributes:
        d_img, d_cat, rank: [D] int64 image, category, rank by score within (image, category).
        d_score: [D] float64.
        d_index: [D] row of each detection in its :class:`DtTable`.
        g_cat: [G] int64 category; g_index: [G] row in the :class:`GtTable`.
        dtm: per area range, [T, D] matched ground-truth annotation id (0: none).
        dtig: per area range, [T, D] bool, detection ignored.
        gtig: per area range, [G] bool, ground truth ignored (crowd or outside the range).
    """

    d_img: np.ndarray
    d_cat: np.ndarray
    rank: np.ndarray
    d_score: np.ndarray
    d_index: np.ndarray
    g_cat: np.ndarray
    g_index: np.ndarray
    dtm: list[np.ndarray]
    dtig: list[np.ndarray]
    gtig: list[np.ndarray]


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


def match_tables(p, gt: GtTable, dt: DtTable) -> Matches:
    """COCOeval.evaluate's matching of ``dt`` to ``gt`` under ``p``, for every area range.

    Args:
        p: pycocotools ``Params`` with ``imgIds``/``catIds`` sorted and unique, ``maxDets``
            sorted, ``iouType`` ``"bbox"`` or ``"segm"``.
        gt, dt: the ground truth and detections (all of them; ``p`` selects).
    """
    img_ids = np.asarray(p.imgIds, np.int64)
    cat_ids = np.asarray(p.catIds, np.int64)
    num_cats = len(cat_ids)
    thrs = [min(float(t), 1 - 1e-10) for t in p.iouThrs]  # as COCOeval.evaluateImg

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
    d_area = dt.areas[dsel]
    d_ids = dt.ids[dsel]

    if p.iouType == "segm":
        d_geom, g_geom = [dt.rles[i] for i in dsel], [gt.rles()[i] for i in gsel]
    else:
        d_geom, g_geom = dt.boxes[dsel], gt.boxes[gsel]
    cand = _candidate_pairs(len(img_ids), min(thrs), d_img, d_cat, d_geom, g_img, g_cat, g_geom, g_crowd)

    dtm, dtig, gtig = [], [], []
    for lo, hi in p.areaRng:
        g_ign = g_crowd | (g_area < lo) | (g_area > hi)
        m, ig = _match_area(thrs, *cand, g_ign, g_crowd, g_ids, d_ids, len(dsel))
        # Unmatched detections outside the area range are ignored, as in COCOeval.
        ig |= (m == 0) & ((d_area < lo) | (d_area > hi))[None, :]
        dtm.append(m)
        dtig.append(ig)
        gtig.append(g_ign)
    return Matches(d_img=d_img, d_cat=d_cat, rank=rank, d_score=dt.scores[dsel], d_index=dsel,
                   g_cat=g_cat, g_index=gsel, dtm=dtm, dtig=dtig, gtig=gtig)


def _candidate_pairs(num_images, min_thr, d_img, d_cat, d_geom, g_img, g_cat, g_geom, g_crowd
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(detection, ground truth, IoU) of every same-category pair with IoU >= ``min_thr``.

    Detections and ground truth are sorted by image; IoUs are computed one image at a time
    (crowd ground truth with COCO's crowd IoU, as COCOeval).
    """
    cand_d, cand_g, cand_iou = [], [], []
    d_bounds = np.searchsorted(d_img, np.arange(num_images + 1))
    g_bounds = np.searchsorted(g_img, np.arange(num_images + 1))
    for i in np.flatnonzero((np.diff(d_bounds) > 0) & (np.diff(g_bounds) > 0)):
        ds, de, gs, ge = d_bounds[i], d_bounds[i + 1], g_bounds[i], g_bounds[i + 1]
        ious = np.asarray(mask_utils.iou(d_geom[ds:de], g_geom[gs:ge],
                                         g_crowd[gs:ge].astype(np.uint8)))
        ok = (d_cat[ds:de, None] == g_cat[None, gs:ge]) & (ious >= min_thr)
        rows, cols = np.nonzero(ok)
        cand_d.append(rows + ds)
        cand_g.append(cols + gs)
        cand_iou.append(ious[rows, cols])
    return (np.concatenate(cand_d) if cand_d else np.zeros(0, np.int64),
            np.concatenate(cand_g) if cand_g else np.zeros(0, np.int64),
            np.concatenate(cand_iou) if cand_iou else np.zeros(0, np.float64))


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
