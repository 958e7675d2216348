""":class:`CocoEvaluator`: COCO box and mask AP/AR of :class:`Detections`, plus F1 and plots.

It gathers predictions (and in-memory ground truth) in :meth:`~CocoEvaluator.process`, turns them
into column tables (:mod:`.tables`) and scores them with :class:`~.cocoeval.FastCOCOeval`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from pycocotools.coco import COCO

from ...structures import boxes as box_ops
from ...structures.instances import DEFAULT_SCORE_THRESH, Detections, Instances
from .accumulate import summary_metrics
from .cocoeval import FastCOCOeval
from .confusion import confusion_matrix_over_images
from .f1 import F1Table
from .tables import DtTable, GtTable, coco_from_dict, encode_masks, quiet

__all__ = ["CocoEvaluator"]


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
            :func:`~.tables.check_annotation_ids`): pycocotools would score it wrongly.
        category_ids: COCO category id of each label (json ground truth only).
        class_names: names for per-class keys; default the json's category names, else
            ``str(label)``. In-memory ground truth: its length fixes K.
        iou_types: ``("bbox",)``, ``("bbox", "segm")``...; default: ``bbox``, plus ``segm`` if
            any processed prediction carries masks. Give it explicitly for stable keys when a
            mask model might predict nothing.
        f1_iou: IoU threshold of the F1 matching (one of COCO's 0.5:0.05:0.95).

    Metric keys (values in [0, 1]; NaN where pycocotools says -1, i.e. no ground truth there):
        ``<t>/mAP``, ``<t>/mAP50``, ``<t>/mAP75``, ``<t>/mAP_s|m|l``, ``<t>/AR1|AR10|AR100``,
        ``<t>/AR_s|m|l`` (pycocotools' 12 stats, see :data:`~.accumulate.STAT_NAMES`), ``<t>/AP/<class>``
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
                with quiet():
                    self._json_gt = COCO(str(gt))
            cats = {c["id"]: c.get("name", str(c["id"])) for c in self._json_gt.dataset["categories"]}
            self.category_ids = tuple(int(c) for c in (category_ids if category_ids is not None
                                                         else sorted(cats)))
            unknown = [c for c in self.category_ids if c not in cats]
            if unknown:
                raise ValueError(f"category_ids {unknown} are not categories of {gt}")
            self.class_names = tuple(class_names) if class_names is not None else tuple(
                cats[c] for c in self.category_ids)
            self._gt_table_cache = GtTable.from_coco(
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
            chunk["rles"], chunk["mask_areas"] = encode_masks(det.masks)
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
            rec["rles"], mask_areas = encode_masks(masks[:, :h, :w])
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

    def _ground_truth(self) -> tuple[COCO, GtTable]:
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
        self._gt_table_cache = GtTable.from_coco(self._gt_coco)
        return self._gt_coco, self._gt_table_cache

    def _category_ids(self) -> np.ndarray:
        if self.category_ids is not None:
            return np.asarray(self.category_ids, np.int64)
        return np.arange(1, self._num_classes() + 1, dtype=np.int64)

    def _detections(self, iou_type: str) -> DtTable:
        cat_ids = self._category_ids()
        if not self._dt:
            return DtTable.empty(iou_type)
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
        return DtTable(
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
            with quiet():
                E.summarize()
            self.coco_eval[iou_type] = E
            metrics.update(summary_metrics(E, iou_type, cat_ids, names))
            pos = np.searchsorted(np.asarray(E.params.catIds), cat_ids)  # label -> catIds position
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

    def confusion_matrix(self, *, iou: float = 0.5, score_thresh: float = DEFAULT_SCORE_THRESH) -> np.ndarray:
        """[K + 1, K + 1] box confusion matrix over the evaluated images (rows true, columns
        predicted, index K background; see :func:`~.confusion.detection_confusion_matrix`). Ground truth of
        categories outside ``category_ids`` is left out."""
        coco_gt, gt = self._ground_truth()
        img_ids = np.asarray(sorted(self._seen) if self._seen else sorted(coco_gt.getImgIds()), np.int64)
        return confusion_matrix_over_images(gt, self._detections("bbox"), img_ids, self._category_ids(),
                                            iou=iou, score_thresh=score_thresh)

    def save_plots(self, out_dir: str | Path, *, iou_type: str = "bbox",
                   score_thresh: float = DEFAULT_SCORE_THRESH) -> list[Path]:
        """Write ``pr_curve.png``, ``f1_curve.png`` and ``confusion_matrix.png`` into ``out_dir``.

        Runs :meth:`evaluate` first if it has not run. The PR curve is at IoU 0.5 (all areas, 100
        detections), the F1 curve at ``f1_iou``, the confusion matrix at IoU 0.5 and
        ``score_thresh``.
        """
        from ..plots import plot_confusion_matrix, plot_f1_curves, plot_pr_curves

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
            plot_confusion_matrix(self.confusion_matrix(score_thresh=score_thresh), names,
                                  out_dir / "confusion_matrix.png"),
        ]
