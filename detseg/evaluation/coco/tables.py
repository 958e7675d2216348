"""Ground truth and detections as numpy columns, built once and reused by every evaluation.

Also the checks and conversions on the way in: annotation ids pycocotools would mis-score are
refused (:func:`check_annotation_ids`), and predicted masks become compressed RLEs
(:func:`encode_masks`).

Shape shorthand: D detections, G ground-truth annotations, M masks.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

__all__ = ["DtTable", "GtTable", "check_annotation_ids", "coco_from_dict", "encode_masks", "quiet"]


def quiet():
    """Swallow pycocotools' progress prints (they go to stdout unconditionally)."""
    return contextlib.redirect_stdout(io.StringIO())


def coco_from_dict(dataset: dict) -> COCO:
    """A :class:`~pycocotools.coco.COCO` over an in-memory dataset dict, without the prints."""
    coco = COCO()
    coco.dataset = dataset
    with quiet():
        coco.createIndex()
    return coco


def check_annotation_ids(ann_ids: Sequence[int], source: str = "ground truth") -> None:
    """Refuse ground-truth annotation ids that pycocotools mis-scores.

    ``COCO.createIndex`` keeps one annotation per id in ``coco.anns`` (the last), and ``COCOeval``
    loads the ground truth of each image through those ids, so an annotation sharing its id with a
    later one is replaced by that one (which then counts twice, possibly in another image) -- a
    perfect detector scores below 1 -- and ``COCOeval`` stores a matched ground truth's id as the
    detection's match with 0 meaning "none", so a detection of an annotation with id 0 counts as a
    false positive. Matching these numbers would mean copying the damage; the numbers without it
    would not be pycocotools'. So such ground truth is refused rather than scored.

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


@dataclass
class GtTable:
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
    def from_coco(cls, coco: COCO, source: str = "ground truth") -> GtTable:
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
class DtTable:
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
    def from_coco(cls, coco: COCO, iou_type: str) -> DtTable:
        """The table of a results COCO (e.g. from ``loadRes``); RLEs only for ``"segm"``."""
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

    @classmethod
    def empty(cls, iou_type: str) -> DtTable:
        """No detections (``rles`` an empty list for ``"segm"``)."""
        e = np.zeros(0, np.int64)
        return cls(e, e, e, e.astype(np.float64), e.astype(np.float64),
                   np.zeros((0, 4)), [] if iou_type == "segm" else None)


def encode_masks(masks: torch.Tensor) -> tuple[list[dict], np.ndarray]:
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
