""":class:`FastCOCOeval`: pycocotools' ``COCOeval`` with ``evaluate()``/``accumulate()`` in numpy.

The class ties :func:`~.matching.match_tables` (``evaluate``) and
:func:`~.accumulate.accumulate` (``accumulate``) to pycocotools' interface; ``summarize()`` and
``Params`` are pycocotools' unchanged.
"""

from __future__ import annotations

import copy

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .accumulate import accumulate
from .matching import Matches, match_tables
from .tables import DtTable, GtTable, quiet

__all__ = ["FastCOCOeval"]


class FastCOCOeval(COCOeval):
    """Drop-in :class:`~pycocotools.cocoeval.COCOeval` with numpy ``evaluate()``/``accumulate()``.

    Same constructor, ``params`` and ``summarize()``; ``eval`` and ``stats`` are identical to
    pycocotools'. Differences: nothing is printed by ``evaluate``/``accumulate``; ``evalImgs`` and
    ``ious`` are not filled (the per-detection matching is kept as arrays instead, see
    :meth:`matches`); ground truth with duplicate annotation ids or an id 0 is refused by
    ``evaluate`` (``ValueError``, see :func:`~.tables.check_annotation_ids`); keypoints or
    ``useCats=0`` fall back to the original implementation.

    Args:
        cocoGt: ground truth.
        cocoDt: detections (e.g. from ``cocoGt.loadRes``); may be ``None`` when ``dt_table`` is given.
        iouType: ``"bbox"`` or ``"segm"`` (``"keypoints"`` runs pycocotools' code).
        gt_table, dt_table: pre-built column tables (internal: lets
            :class:`~.evaluator.CocoEvaluator` skip re-reading the same ground truth and building
            per-detection dicts).

    Example:
        >>> E = FastCOCOeval(coco_gt, coco_gt.loadRes(results), "bbox")  # doctest: +SKIP
        >>> E.evaluate(); E.accumulate(); E.summarize()  # doctest: +SKIP
    """

    def __init__(self, cocoGt: COCO | None = None, cocoDt: COCO | None = None, iouType: str = "segm",
                 *, gt_table: GtTable | None = None, dt_table: DtTable | None = None) -> None:
        super().__init__(cocoGt, cocoDt, iouType)
        self._gt_table = gt_table
        self._dt_table = dt_table
        self._fast = True
        self._match: Matches | None = None

    def evaluate(self) -> None:
        p = self.params
        if p.useSegm is not None:
            p.iouType = "segm" if p.useSegm == 1 else "bbox"
        self._fast = p.iouType in ("bbox", "segm") and bool(p.useCats)
        if not self._fast:
            with quiet():
                super().evaluate()
            return
        p.imgIds = list(np.unique(p.imgIds))
        p.catIds = list(np.unique(p.catIds))
        p.maxDets = sorted(p.maxDets)
        self.params = p
        gt = self._gt_table or GtTable.from_coco(self.cocoGt)
        dt = self._dt_table or DtTable.from_coco(self.cocoDt, p.iouType)
        self._match = match_tables(p, gt, dt)
        self.evalImgs = []
        self.eval = {}
        self._paramsEval = copy.deepcopy(self.params)

    def accumulate(self, p=None) -> None:
        if not self._fast or self._match is None:
            with quiet():
                super().accumulate(p)
            return
        self.eval = accumulate(self.params if p is None else p, self._match)

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
        keep = (mt.rank < (max_det or p.maxDets[-1])) & ~mt.dtig[a][t]
        return {
            "scores": mt.d_score[keep],
            "category": mt.d_cat[keep],
            "tp": mt.dtm[a][t][keep] != 0,
            "num_gt": np.bincount(mt.g_cat[~mt.gtig[a]], minlength=len(p.catIds)),
        }
