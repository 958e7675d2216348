"""COCO box and mask mAP: :class:`CocoEvaluator`, and :class:`FastCOCOeval` that computes it.

The numbers are pycocotools' own: :class:`FastCOCOeval` is a :class:`~pycocotools.cocoeval.COCOeval`
whose ``evaluate()`` and ``accumulate()`` are re-written with numpy and return exactly the
``eval["precision"]``, ``eval["recall"]`` and ``eval["scores"]`` arrays (and so the ``stats``) of
the original; ``summarize()`` and ``Params`` are pycocotools' unchanged. Why re-write them:
pycocotools' ``COCOeval`` is pure Python apart from the IoU kernel (``pycocotools.mask.iou`` is C),
and its per-image matching loops over every (image, category, area range) triple and every
(IoU threshold, detection, ground truth) inside it; on coco128-sized result sets that is ~1 s per
evaluation, longer than a validation epoch of a small model. Tests compare the arrays
element-wise with stock pycocotools (crowd regions, ties in scores, images without ground truth,
more than ``maxDets`` detections, area ranges).

One module per concern, in the order data flows through them:

* :mod:`.tables`: ground truth and detections as numpy columns; annotation ids pycocotools
  mis-scores are refused (:func:`check_annotation_ids`); masks -> RLE;
* :mod:`.matching`: the greedy per-image matching of detections to ground truth;
* :mod:`.accumulate`: precision/recall/score arrays and the 12 summary numbers (:data:`STAT_NAMES`);
* :mod:`.cocoeval`: :class:`FastCOCOeval`, the two above behind pycocotools' interface;
* :mod:`.f1`: F1 over confidence thresholds; :mod:`.confusion`: detection confusion matrices;
* :mod:`.evaluator`: :class:`CocoEvaluator`, which ties them to ``process``/``evaluate``.
"""

from .accumulate import STAT_NAMES
from .cocoeval import FastCOCOeval
from .confusion import detection_confusion_matrix
from .evaluator import CocoEvaluator
from .tables import check_annotation_ids

__all__ = ["STAT_NAMES", "CocoEvaluator", "FastCOCOeval", "check_annotation_ids", "detection_confusion_matrix"]
