"""COCO-format instance datasets: :class:`CocoDataset` reads them, :func:`write_coco` writes them.

Reading converts COCO's conventions to detseg's (see :mod:`detseg.data.sample`) in this one place:

* ``bbox`` ``[x, y, w, h]`` -> ``boxes`` xyxy absolute pixels (``x2 = x + w``, no "+1");
* ``category_id`` (any sparse ids, e.g. COCO's 1..90) -> contiguous 0-based ``labels`` in
  increasing category id order; :meth:`CocoDataset.category_id_of` maps back for results;
* ``segmentation`` (polygons, compressed RLE, or uncompressed RLE whose ``counts`` is a list)
  -> ``[N, H, W]`` bool masks, decoded lazily in :meth:`CocoDataset.load` with
  ``pycocotools.mask``;
* ``iscrowd = 1`` regions are kept as instances with ``iscrowd=True`` (ignore regions), never
  dropped.

Everything that can be checked without decoding images is checked when the dataset is built,
and each error names the annotation file and the offending annotation or image.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .sample import (
    IGNORE_INDEX, DatasetError, DetectionDataset, ImageReadError, Sample, check_class_names, read_image,
    read_image_sizes,
)

logger = logging.getLogger(__name__)

_MAX_LISTED = 5  # annotation ids quoted in the warning about dropped annotations


@dataclass(frozen=True)
class _ImageRecord:
    """One image and its annotations, pre-parsed at build time so ``load`` only decodes."""

    image_id: int
    path: Path
    height: int | None  # from the json (None if absent); checked against the decoded image
    width: int | None
    boxes: np.ndarray  # [N, 4] float32 xyxy absolute
    labels: np.ndarray  # [N] int64
    iscrowd: np.ndarray  # [N] bool
    ann_ids: tuple  # N COCO annotation ids (for error messages)
    areas: np.ndarray  # [N] float32 the json's ``area`` (box area where absent): COCO's size ranges
    segmentations: tuple  # N raw json segmentations (polygons cleaned), () without masks


def _read_json(ann_file: Path) -> dict:
    if not ann_file.is_file():
        raise DatasetError(f"annotation file not found: {ann_file}")
    try:
        with open(ann_file, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{ann_file}:{exc.lineno}:{exc.colno}: malformed JSON at line {exc.lineno}, "
            f"column {exc.colno}: {exc.msg}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{ann_file}: not UTF-8 text ({exc})") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{ann_file}: expected a JSON object at the top level, got {type(data).__name__}")
    missing = [k for k in ("images", "annotations", "categories") if k not in data]
    if missing:
        raise DatasetError(f"{ann_file}: not a COCO instances file, missing key(s) {missing}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data[key], list):
            raise DatasetError(f"{ann_file}: '{key}' must be a list, got {type(data[key]).__name__}")
    return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _clean_segmentation(segm: Any, height: int | None, width: int | None) -> tuple[Any, int, str | None]:
    """Validate one ``segmentation``; returns ``(cleaned, dropped_polygons, problem)``.

    Polygons with fewer than 3 points (or an odd number of coordinates) are dropped, as
    Detectron2 does: ``pycocotools`` crashes on them (a 4-number list is even taken for a box).
    """
    if isinstance(segm, dict):
        if "counts" not in segm or "size" not in segm:
            return None, 0, "RLE segmentation needs 'counts' and 'size'"
        size = segm["size"]
        if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size)):
            return None, 0, f"RLE 'size' must be [height, width], got {size!r}"
        if height is not None and list(size) != [height, width]:
            return None, 0, f"RLE size {size} differs from the image size [{height}, {width}]"
        if not isinstance(segm["counts"], (list, str)):
            return None, 0, f"RLE 'counts' must be a list or a string, got {type(segm['counts']).__name__}"
        return segm, 0, None
    if isinstance(segm, list) and segm:
        if not all(isinstance(p, list) and all(_is_number(v) for v in p) for p in segm):
            return None, 0, "polygons must be lists of finite numbers"
        polygons = [p for p in segm if len(p) >= 6 and len(p) % 2 == 0]
        if not polygons:
            return None, 0, "no polygon with at least 3 points"
        return polygons, len(segm) - len(polygons), None
    return None, 0, "no segmentation (use with_masks=False, with_semantic=False for box-only data)"


class CocoDataset(DetectionDataset):
    """A COCO-format instance dataset (a COCO ``instances_*.json`` and its image folder).

    Input: ``ann_file`` with ``images`` (``id``, ``file_name``, optional ``height``/``width``),
    ``annotations`` (``id``, ``image_id``, ``category_id``, ``bbox`` xywh, ``iscrowd``,
    ``segmentation``) and ``categories`` (``id``, ``name``). Output of ``dataset[i]``: a
    :class:`~detseg.data.sample.Sample` with ``image`` ``[H, W, 3]`` uint8 RGB, ``boxes``
    ``[N, 4]`` float32 xyxy absolute pixels, ``labels`` ``[N]`` int64 in ``[0, K)``, ``iscrowd``
    ``[N]`` bool, ``masks`` ``[N, H, W]`` bool (``with_masks``), ``semantic`` ``[H, W]`` uint8
    (``with_semantic``), ``image_id`` = the COCO image id and ``file_name`` = the image path.
    Crowd annotations are among the ``N`` instances, with ``iscrowd=True``.

    Labels: categories sorted by id get labels ``0..K-1``, whether or not any annotation uses
    them (COCO: 80 classes, ids 1..90 with gaps). ``category_ids[label]`` is the COCO id.

    Semantic map rule (``with_semantic``): 0 background, ``label + 1`` where a non-crowd instance
    is; :data:`~detseg.data.sample.IGNORE_INDEX` (255) where non-crowd instances of *different*
    classes overlap (COCO polygons of touching objects overlap at their borders and nothing says
    which one is in front) and where a crowd region covers no non-crowd instance. Non-crowd
    instances win over crowd regions: an individually annotated object inside a crowd is labelled.

    A file that cannot be read at all (missing, malformed JSON with line and column, missing
    top-level keys, no image folder) raises :class:`~detseg.data.sample.DatasetError` at once.
    Everything else is checked in one pass at build time and recorded in ``self.problems``
    (kinds of :data:`~detseg.data.sample.PROBLEM_KINDS`, each naming ``ann_file`` and the
    annotation or image id, or the image file): invalid or duplicate image and category entries,
    annotations with an unknown ``category_id`` or ``image_id``, malformed ``bbox`` or
    ``segmentation``, missing image files, and (``check_image_sizes``) unreadable or truncated
    images and image headers whose size differs from the json's. The bad entry is left out; a
    strict dataset then raises one error listing them. Reported but not fatal: annotations with
    zero or negative width or height (dropped, also counted in ``counts["degenerate_annotations"]``
    and logged once), polygon parts with fewer than 3 points, annotation ids used twice or equal
    to 0 (training does not use them; COCO evaluation of the file does, see
    :func:`detseg.evaluation.coco.check_annotation_ids`), and boxes that loading will clip or
    drop because they stick out of the json's image size (each naming the annotation id; the
    json itself, and so ``tools/eval.py``, keeps them as they are). Checked in ``load``: the decoded image
    size must equal the json's ``height``/``width`` (``DatasetError``, ``kind="size_mismatch"``,
    the same rule as the header check); a corrupt image raises
    :class:`~detseg.data.sample.ImageReadError` (wrap in ``SafeDataset`` to skip it).

    Args:
        ann_file: path of the COCO json.
        image_dir: folder that ``file_name`` entries are relative to.
        with_masks: decode instance masks (needs a ``segmentation`` on every annotation).
        with_semantic: also build the ``[H, W]`` semantic map from the instance masks.
        keep_empty: keep images without non-crowd annotations (as negatives); ``False`` drops
            them (useful for training detectors that cannot learn from crowd-only images).
        transform: callable ``Sample -> Sample`` applied after box sanitising.
        strict: raise at the end of the build if a fatal problem was found; ``False`` keeps
            them in ``self.problems`` and the usable images in the dataset (the checker's mode).
        check_image_sizes: read every image header (not the pixels, in threads: seconds for
            tens of thousands of images) at build time, refuse unreadable or truncated files and
            compare the size with the json's. Off by default; ``build_datasets`` (training) and
            the checker turn it on, so these problems are found before epoch 1.

    Attributes:
        class_names: ``K`` category names in label order.
        category_ids: ``K`` COCO category ids in label order.
        supercategories: ``K`` COCO supercategory names (``""`` when absent).
        image_ids: COCO image ids in dataset order.
        counts: ``degenerate_annotations``, ``invalid_polygons``, ``empty_images`` (images
            without non-crowd annotations, kept or not) plus the box-sanitising counts.

    Example:
        >>> ds = CocoDataset("coco128/annotations/instances.json", "coco128/images")  # doctest: +SKIP
        >>> s = ds[0]; s.image.shape, s.boxes.shape, s.masks.shape  # doctest: +SKIP
        ((480, 640, 3), (8, 4), (8, 480, 640))
        >>> ds.category_id_of(int(s.labels[0]))  # doctest: +SKIP
        51
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        *,
        with_masks: bool = True,
        with_semantic: bool = False,
        keep_empty: bool = True,
        transform=None,
        strict: bool = True,
        check_image_sizes: bool = False,
    ) -> None:
        super().__init__(transform, strict=strict)
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        self.with_masks = with_masks
        self.with_semantic = with_semantic
        self.keep_empty = keep_empty
        data = _read_json(self.ann_file)
        self._parse_categories(data["categories"])
        if with_semantic and self.num_classes >= IGNORE_INDEX:
            raise DatasetError(
                f"{self.ann_file}: {self.num_classes} categories do not fit a uint8 semantic map "
                f"(at most {IGNORE_INDEX - 1}); use with_semantic=False"
            )
        images, left_out = self._parse_images(data["images"])
        self._records = self._parse_annotations(data["annotations"], images, left_out)
        self._records, sizes = self._check_files(self._records, check_image_sizes)
        self._check_boxes([r.boxes for r in self._records], sizes, [r.path for r in self._records])
        self.image_ids = [r.image_id for r in self._records]
        self.problems.raise_if_fatal(self.ann_file)

    # ----------------------------------------------------------------------------- build time

    def _problem(self, kind: str, text: str, count: int = 1, *, left_out: bool = False) -> None:
        self.problems.add(kind, f"{self.ann_file}: {text}", count, left_out=left_out)

    def _parse_categories(self, categories: list) -> None:
        by_id = {}
        for i, cat in enumerate(categories):
            if not isinstance(cat, dict) or not _is_int(cat.get("id")) or "name" not in cat:
                self._problem("invalid_categories", f"category #{i} needs an integer 'id' and a 'name': {cat!r}"[:300])
            elif cat["id"] in by_id:
                self._problem("invalid_categories", f"category id {cat['id']} appears twice (the second is left out)")
            else:
                by_id[cat["id"]] = cat
        cats = [by_id[k] for k in sorted(by_id)]
        self.class_names = check_class_names([c["name"] for c in cats], str(self.ann_file))
        self.category_ids: list[int] = [c["id"] for c in cats]
        self.supercategories: tuple[str, ...] = tuple(str(c.get("supercategory", "")) for c in cats)
        self._label_of = {cid: label for label, cid in enumerate(self.category_ids)}

    def _parse_images(self, images: list) -> tuple[dict[int, dict], set]:
        """Valid image entries by id, and the ids of entries left out (their annotations go too)."""
        by_id, left_out = {}, set()
        for i, img in enumerate(images):
            if not isinstance(img, dict) or not _is_int(img.get("id")):
                self._problem("invalid_images", f"image #{i} has no integer 'id': {img!r}"[:300])
                continue
            if img["id"] in by_id:
                self._problem("duplicate_images", f"image id {img['id']} appears twice "
                              f"({by_id[img['id']].get('file_name')!r}, {img.get('file_name')!r}); the second "
                              "entry is left out")
                continue
            if not isinstance(img.get("file_name"), str) or not img["file_name"]:
                self._problem("invalid_images", f"image {img['id']} has no 'file_name'", left_out=True)
            elif ("height" in img or "width" in img) and not (
                _is_int(img.get("height")) and _is_int(img.get("width"))
                and img["height"] > 0 and img["width"] > 0
            ):
                self._problem("invalid_images", f"image {img['id']} ({img['file_name']}) has invalid height/width "
                              f"{img.get('height')!r}/{img.get('width')!r}", left_out=True)
            else:
                by_id[img["id"]] = img
                continue
            left_out.add(img["id"])
        return by_id, left_out

    def _parse_annotations(self, annotations: list, images: dict[int, dict], left_out: set) -> list[_ImageRecord]:
        need_segm = self.with_masks or self.with_semantic
        per_image: dict[int, list] = {image_id: [] for image_id in images}
        degenerate, ids = [], {}
        invalid_polygons = 0
        for i, ann in enumerate(annotations):
            if not isinstance(ann, dict):
                self._problem("invalid_annotations", f"annotation #{i} is not an object")
                continue
            name = f"annotation {ann['id']}" if "id" in ann else f"annotation #{i} (no id)"
            if "id" in ann:
                ids.setdefault(ann["id"], []).append(ann.get("image_id"))
            cat, image_id, bbox = ann.get("category_id"), ann.get("image_id"), ann.get("bbox")
            if image_id in left_out:
                continue  # its image entry was reported
            if cat not in self._label_of:
                self._problem("unknown_classes", f"{name}: unknown category_id {cat!r} (not in 'categories')")
            elif image_id not in per_image:
                self._problem("unknown_image_ids", f"{name}: image_id {image_id!r} is not in 'images'")
            elif not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
                self._problem("invalid_boxes", f"{name}: bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}")
            elif bbox[2] <= 0 or bbox[3] <= 0:
                degenerate.append(ann.get("id", f"#{i}"))
                self._problem("degenerate_annotations", f"{name}: bbox {bbox} has zero or negative width/height")
            else:
                segm = None
                if need_segm:
                    img = images[image_id]
                    segm, dropped, problem = _clean_segmentation(
                        ann.get("segmentation"), img.get("height"), img.get("width")
                    )
                    if dropped:
                        invalid_polygons += dropped
                        self._problem("invalid_polygons", f"{name}: {dropped} polygon(s) with fewer than 3 "
                                      "points left out", dropped)
                    if problem:
                        self._problem("invalid_segmentations", f"{name}: {problem}")
                        continue
                area = ann.get("area")
                per_image[image_id].append((ann.get("id", -1), bbox, self._label_of[cat],
                                            bool(ann.get("iscrowd", 0)), segm,
                                            float(area) if _is_number(area) else bbox[2] * bbox[3]))
        self._check_annotation_ids(ids)

        self.counts["degenerate_annotations"] = len(degenerate)
        self.counts["invalid_polygons"] = invalid_polygons
        if degenerate:
            logger.warning(
                "%s: dropped %d annotation(s) with zero or negative width or height (ids %s%s)",
                self.ann_file, len(degenerate), degenerate[:_MAX_LISTED],
                " ..." if len(degenerate) > _MAX_LISTED else "",
            )
        if invalid_polygons:
            logger.warning("%s: dropped %d polygon(s) with fewer than 3 points",
                           self.ann_file, invalid_polygons)

        records, empty = [], 0
        for image_id, anns in per_image.items():
            iscrowd = np.array([a[3] for a in anns], bool)
            if not (~iscrowd).any():
                empty += 1
                if not self.keep_empty:
                    continue
            xywh = np.array([a[1] for a in anns], np.float64).reshape(-1, 4)
            # In float64 so that xyxy -> xywh -> xyxy (write_coco, then read) is exact.
            boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1).astype(np.float32)
            img = images[image_id]
            records.append(_ImageRecord(
                image_id=image_id,
                path=self.image_dir / img["file_name"],
                height=img.get("height"),
                width=img.get("width"),
                boxes=boxes,
                labels=np.array([a[2] for a in anns], np.int64),
                iscrowd=iscrowd,
                ann_ids=tuple(a[0] for a in anns),
                areas=np.array([a[5] for a in anns], np.float32),
                segmentations=tuple(a[4] for a in anns) if need_segm else (),
            ))
        self.counts["empty_images"] = empty
        return records

    def _check_annotation_ids(self, ids: dict) -> None:
        """Ids used twice and id 0: harmless for training, but COCO evaluation goes wrong on them
        (see :func:`detseg.evaluation.coco.check_annotation_ids`), so the file is reported."""
        for ann_id, image_ids in ids.items():
            if len(image_ids) > 1:
                self._problem("duplicate_annotation_ids",
                              f"annotation id {ann_id!r} is used by {len(image_ids)} annotations "
                              f"(of images {sorted(set(map(str, image_ids)))}); renumber them, e.g. with "
                              "tools/convert.py --from coco ... --to coco")
        if 0 in ids:
            self._problem("annotation_id_zero", "annotation id 0: pycocotools takes a detection matched "
                          "to it for a false positive (so COCO evaluation refuses the file); number "
                          "annotations from 1")

    def _size_problem(self, r: _ImageRecord, h: int, w: int) -> str | None:
        """The size rule, shared by the header check at build time and the decoded check in ``load``."""
        if r.height is None or (h, w) == (r.height, r.width):
            return None
        return (f"{r.path}: image is {h}x{w} (HxW) but {self.ann_file} says {r.height}x{r.width} "
                f"for image {r.image_id}")

    def _check_files(self, records: list[_ImageRecord], check_image_sizes: bool
                     ) -> tuple[list[_ImageRecord], list[tuple[int, int] | None]]:
        """Records whose image file exists (and, with ``check_image_sizes``, whose header is
        readable and matches the json's size), and their sizes (the json's, else the header's,
        else None); the others are reported and left out."""
        if not self.image_dir.is_dir():
            raise DatasetError(f"{self.ann_file}: image folder not found: {self.image_dir}")
        found = []
        for r in records:
            if os.path.isfile(r.path):
                found.append(r)
            else:
                self.problems.add("missing_images", f"{r.path}: image file not found (image {r.image_id} "
                                  f"of {self.ann_file})", left_out=True)
        headers = read_image_sizes([r.path for r in found]) if check_image_sizes else [None] * len(found)
        kept, sizes = [], []
        for r, header in zip(found, headers):
            if isinstance(header, ImageReadError):
                self.problems.add("unreadable_images", str(header), left_out=True)
                continue
            problem = self._size_problem(r, *header) if header is not None else None
            if problem:
                self.problems.add("size_mismatch", problem, left_out=True)
                continue
            kept.append(r)
            sizes.append((r.height, r.width) if r.height is not None else header)
        return kept, sizes

    # ----------------------------------------------------------------------------- queries

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.ann_file)!r}, {len(self)} images, "
                f"{self.num_classes} classes)")

    def label_of(self, category_id: int) -> int:
        """Contiguous label of a COCO ``category_id``; ``KeyError`` for an unknown id."""
        try:
            return self._label_of[category_id]
        except KeyError:
            raise KeyError(f"unknown category id {category_id!r}; known ids: {self.category_ids}") from None

    def category_id_of(self, label: int) -> int:
        """COCO ``category_id`` of a contiguous label in ``[0, K)``; ``IndexError`` otherwise."""
        if not 0 <= label < self.num_classes:
            raise IndexError(f"label {label} outside [0, {self.num_classes})")
        return self.category_ids[label]

    def image_info(self, index: int) -> dict:
        """``{"image_id", "file_name", "height", "width", "num_instances"}`` without decoding.

        ``height``/``width`` are the json's (``None`` when the json has none); useful for
        aspect-ratio grouping and dataset statistics.
        """
        r = self._records[index]
        return {"image_id": r.image_id, "file_name": str(r.path), "height": r.height,
                "width": r.width, "num_instances": len(r.labels)}

    # ----------------------------------------------------------------------------- load time

    def load(self, index: int) -> Sample:
        """Decode image ``index`` and its masks (see the class docstring for the format).

        Raises:
            ImageReadError: the image file is corrupt or vanished since the build.
            DatasetError: the decoded image size differs from the json ``height``/``width``
                (``kind="size_mismatch"``), or an RLE's size does (``"invalid_segmentations"``).
        """
        r = self._records[index]
        image = read_image(r.path)
        h, w = image.shape[:2]
        problem = self._size_problem(r, h, w)
        if problem:
            raise DatasetError(problem, kind="size_mismatch")
        masks = semantic = None
        if self.with_masks or self.with_semantic:
            masks = self._decode_masks(r, h, w)
            if self.with_semantic:
                semantic = semantic_map(masks, r.labels, r.iscrowd)
            if not self.with_masks:
                masks = None
        return Sample(
            image=image, boxes=r.boxes.copy(), labels=r.labels.copy(), iscrowd=r.iscrowd.copy(),
            masks=masks, semantic=semantic, image_id=r.image_id, file_name=str(r.path),
            orig_size=(h, w), areas=r.areas.copy(),
        )

    def instance_names(self, index: int) -> list[str]:
        """``"annotation <id>"`` for each instance of ``load(index)``."""
        return [f"annotation {i}" for i in self._records[index].ann_ids]

    def _decode_masks(self, r: _ImageRecord, h: int, w: int) -> np.ndarray:
        from pycocotools import mask as mask_utils

        if not r.segmentations:
            return np.zeros((0, h, w), bool)
        rles = []
        for segm in r.segmentations:
            if isinstance(segm, list):  # polygons of one object -> one RLE
                rles.append(mask_utils.merge(mask_utils.frPyObjects(segm, h, w)))
            elif isinstance(segm["counts"], list):  # uncompressed RLE
                rles.append(mask_utils.frPyObjects(segm, *segm["size"]))
            else:  # compressed RLE; decode accepts counts as str
                rles.append(segm)
        for ann_id, rle in zip(r.ann_ids, rles):
            if list(rle["size"]) != [h, w]:
                raise DatasetError(
                    f"{self.ann_file}: annotation {ann_id}: RLE size {list(rle['size'])} differs "
                    f"from the decoded image {r.path} ({h}x{w})", kind="invalid_segmentations"
                )
        # decode gives [H, W, N] in Fortran order; copy once into C-contiguous [N, H, W].
        return np.ascontiguousarray(mask_utils.decode(rles).transpose(2, 0, 1), dtype=bool)


def semantic_map(masks: np.ndarray, labels: np.ndarray, iscrowd: np.ndarray) -> np.ndarray:
    """Semantic map from instance masks, with the rule of :class:`CocoDataset`.

    Args:
        masks: ``[N, H, W]`` bool instance masks.
        labels: ``[N]`` int64 labels in ``[0, 254)``.
        iscrowd: ``[N]`` bool.

    Returns:
        ``[H, W]`` uint8: 0 background, ``label + 1`` class, 255 where non-crowd instances of
        different classes overlap or where only a crowd region is.
    """
    h, w = masks.shape[1:]
    semantic = np.zeros((h, w), np.uint8)
    conflict = np.zeros((h, w), bool)
    crowd = np.zeros((h, w), bool)
    for mask, label, is_crowd in zip(masks, labels, iscrowd):
        if is_crowd:
            crowd |= mask
            continue
        value = np.uint8(label + 1)
        conflict |= mask & (semantic != 0) & (semantic != value)
        semantic[mask] = value
    semantic[conflict] = IGNORE_INDEX
    semantic[crowd & (semantic == 0)] = IGNORE_INDEX
    return semantic


def _encode_rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def write_coco(dataset, out_file: str | Path, *, image_root: str | Path | None = None) -> Path:
    """Write a detection dataset as a COCO instances json (format conversion, exports).

    Every sample is read with ``dataset.load(index)`` (untransformed, unsanitised) and written
    as it is: boxes xyxy -> ``bbox`` xywh, ``iscrowd`` kept, masks (when the sample has them) as
    compressed RLE with ``counts`` as str and ``area`` = mask pixels (else box area). Images are
    not copied; ``file_name`` points at the sample's ``file_name``.

    Args:
        dataset: anything with ``class_names``, ``__len__`` and ``load(index) -> Sample``. When
            it has ``category_ids`` (e.g. a :class:`CocoDataset`) those are the category ids;
            otherwise label ``k`` gets id ``k + 1``. ``supercategories`` is kept when present.
        out_file: json path to write (parent folders are created).
        image_root: write ``file_name`` relative to this folder (pass it as ``image_dir`` when
            reading back); ``None`` writes absolute paths.

    Returns:
        ``out_file`` as a :class:`~pathlib.Path`.

    Raises:
        DatasetError: a sample has no ``file_name``, an image lies outside ``image_root``, or a
            label is outside ``[0, K)``; names the sample.
    """
    out_file = Path(out_file)
    class_names = tuple(dataset.class_names)
    category_ids = list(getattr(dataset, "category_ids", None) or range(1, len(class_names) + 1))
    if len(category_ids) != len(class_names):
        raise DatasetError(f"{len(class_names)} class names but {len(category_ids)} category ids")
    supercategories = getattr(dataset, "supercategories", None) or ("",) * len(class_names)
    root = Path(image_root).resolve() if image_root is not None else None

    images, annotations, ann_image_index = [], [], []
    for index in range(len(dataset)):
        s = dataset.load(index)
        where = f"sample {index} ({s.file_name or 'no file'})"
        if not s.file_name:
            raise DatasetError(f"{where}: has no file_name, so COCO cannot refer to its image")
        path = Path(s.file_name).resolve()
        if root is not None:
            try:
                file_name = path.relative_to(root).as_posix()
            except ValueError:
                raise DatasetError(f"{where}: image is not under image_root {root}") from None
        else:
            file_name = str(path)
        if s.num_instances and (s.labels.min() < 0 or s.labels.max() >= len(class_names)):
            raise DatasetError(
                f"{where}: labels {sorted(set(s.labels.tolist()))} outside [0, {len(class_names)})"
            )
        h, w = (int(v) for v in s.image.shape[:2])
        images.append({"id": int(s.image_id), "file_name": file_name, "height": h, "width": w})
        for i in range(s.num_instances):
            x1, y1, x2, y2 = (float(v) for v in s.boxes[i])
            ann = {
                "id": len(annotations) + 1,  # >= 1: COCOeval treats a matched id 0 as unmatched
                "image_id": int(s.image_id),
                "category_id": int(category_ids[int(s.labels[i])]),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
                "iscrowd": int(bool(s.iscrowd[i])),
            }
            if s.masks is not None:
                ann["segmentation"] = _encode_rle(s.masks[i])
                ann["area"] = float(np.count_nonzero(s.masks[i]))
            annotations.append(ann)
            ann_image_index.append(index)

    ids = [img["id"] for img in images]
    if len(set(ids)) != len(ids):
        # Datasets without real ids (image_id left at 0) still need unique COCO ids.
        logger.warning("write_coco: image ids of %s are not unique; renumbering them 1..%d",
                       type(dataset).__name__, len(ids))
        for index, img in enumerate(images):
            img["id"] = index + 1
        for ann, index in zip(annotations, ann_image_index):
            ann["image_id"] = index + 1
    coco = {
        "info": {"description": f"written by detseg.data.coco.write_coco from {type(dataset).__name__}"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": int(cid), "name": name, "supercategory": str(sup)}
            for cid, name, sup in zip(category_ids, class_names, supercategories)
        ],
    }
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(coco))
    return out_file
