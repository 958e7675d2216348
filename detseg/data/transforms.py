"""Training augmentation and evaluation resizing of :class:`~detseg.data.sample.Sample` objects.

Everything here takes a ``Sample`` and returns a ``Sample`` in the internal format (image
``[H, W, 3]`` uint8 RGB, boxes ``[N, 4]`` float32 xyxy absolute pixels, instance masks
``[N, H, W]`` bool, semantic ``[H, W]`` uint8 with 255 = ignore). After every transform:

* boxes, labels, ``iscrowd`` and masks stay paired: an instance is kept or dropped as a whole;
* boxes lie inside the image and have positive width and height;
* ``orig_size``, ``image_id`` and ``file_name`` are unchanged (mosaics excepted, see
  :class:`AugmentedDataset`).

Training (:func:`build_transforms` with ``train=True``) is an albumentations pipeline::

    [BBoxSafeRandomCrop] -> resize to image_size -> [RandomScale] -> [HorizontalFlip]
        -> [ColorJitter] -> crop/pad to the output canvas

Evaluation (``train=False``) is only the deterministic resize, written with OpenCV rather than
albumentations so that it is *exactly* the affine map of :class:`~detseg.data.geometry.Resize`
(the resize modes are described there): evaluation and inference map predictions back to the
original image with that map's inverse, and nothing is added to ``Sample``.

Example:
    >>> from detseg.data.sample import Sample
    >>> cfg = AugmentConfig(image_size=64)
    >>> sample = Sample(np.zeros((50, 100, 3), np.uint8), boxes=[[10, 10, 30, 40]], labels=[1])
    >>> out = build_transforms(cfg, train=False)(sample)
    >>> out.image.shape, out.boxes.astype(float).round(2).tolist()
    ((64, 64, 3), [[6.4, 22.4, 19.2, 41.6]])
    >>> Resize.from_config(sample.orig_size, cfg).boxes_back(out.boxes).astype(float).round(3).tolist()
    [[10.0, 10.0, 30.0, 40.0]]
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.augmentations.crops.transforms import BaseCrop
from torch.utils.data import Dataset

from ..config.schema import AugmentConfig
from ..structures import boxes as box_ops
from .geometry import Resize, scaled_size
from .sample import IGNORE_INDEX, Sample, sanitize_boxes


# Boxes narrower/shorter than this (pixels) are degenerate after any transform.
_EPS_SIZE = 1e-3
# A box leaving the canvas by at most this many pixels was not cut by a crop (see _cut_boxes).
_CUT_TOLERANCE = 2.0
# cv2.resize handles at most 512 channels at once; masks are resized in chunks of this many.
_CV_MAX_CHANNELS = 512


# --------------------------------------------------------------------------- numpy helpers


def _as_sample(sample: Any) -> Sample:
    """A :class:`Sample` from anything with ``image``/``boxes``/``labels`` (e.g. ``ShapeSample``)."""
    if isinstance(sample, Sample):
        return sample
    return Sample(
        image=sample.image, boxes=sample.boxes, labels=sample.labels,
        masks=getattr(sample, "masks", None), iscrowd=getattr(sample, "iscrowd", None),
        semantic=getattr(sample, "semantic", None), image_id=getattr(sample, "image_id", 0),
        file_name=getattr(sample, "file_name", ""),
    )


def _resize_maps(maps: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of ``[N, H, W]`` label maps (instance masks) to ``[N, h, w]``.

    ``INTER_NEAREST_EXACT`` samples at pixel centres, matching the box convention; plain
    ``INTER_NEAREST`` is shifted by up to half an input pixel.
    """
    h, w = size_hw
    if len(maps) == 0:
        return np.zeros((0, h, w), maps.dtype)
    chunks = []
    for start in range(0, len(maps), _CV_MAX_CHANNELS):
        chunk = np.ascontiguousarray(maps[start:start + _CV_MAX_CHANNELS].transpose(1, 2, 0))
        out = cv2.resize(chunk, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
        chunks.append(out.reshape(h, w, -1).transpose(2, 0, 1))
    return np.concatenate(chunks)


def _resize(sample: Sample, size_hw: tuple[int, int], scale_xy: tuple[float, float]) -> Sample:
    """Resize image/masks/semantic to ``size_hw``; boxes are multiplied by ``scale_xy``.

    ``scale_xy`` is passed rather than derived from the sizes so that boxes follow the exact
    affine map of :class:`~detseg.data.geometry.Resize` (the pixel grid differs from it by less than half
    a pixel at the far edge, because sizes are rounded).
    """
    h, w = size_hw
    shrink = h * w < sample.image.shape[0] * sample.image.shape[1]
    image = cv2.resize(sample.image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    masks = None
    if sample.masks is not None:
        masks = _resize_maps(sample.masks.astype(np.uint8), size_hw).astype(bool)
    semantic = None
    if sample.semantic is not None:
        semantic = cv2.resize(sample.semantic, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
    sx, sy = scale_xy
    boxes = sample.boxes * np.array([sx, sy, sx, sy], np.float32)
    return sample.replace(image=image, boxes=boxes.astype(np.float32), masks=masks, semantic=semantic)


def _mask_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight boxes of ``[N, H, W]`` bool masks, xyxy with exclusive ``x2, y2``; empty -> zeros."""
    n, h, w = masks.shape
    cols, rows = masks.any(axis=1), masks.any(axis=2)  # [N, W], [N, H]
    x1, y1 = cols.argmax(axis=1), rows.argmax(axis=1)
    x2, y2 = w - cols[:, ::-1].argmax(axis=1), h - rows[:, ::-1].argmax(axis=1)
    boxes = np.stack([x1, y1, x2, y2], axis=1).astype(np.float32)
    boxes[~cols.any(axis=1)] = 0
    return boxes


def _finalize(sample: Sample, min_size: float, cut: np.ndarray | None = None) -> Sample:
    """Clip boxes to the image, then drop degenerate boxes and empty masks, all paired.

    ``cut``: ``[N]`` bool, the boxes a crop cut. Each is intersected with the box of its mask,
    because a cut may leave a corner with no object pixels and the mask says where the object
    is. Other boxes keep their annotated geometry: the box of a rasterised mask is up to a pixel
    smaller per side, which costs small objects a large share of their area (Detectron2 likewise
    recomputes boxes from masks only when cropping).
    """
    if not sample.num_instances:
        return sample
    boxes = box_ops.clip(sample.boxes, sample.image.shape[:2])
    keep = np.ones(len(boxes), bool)
    if sample.masks is not None:
        keep &= sample.masks.reshape(len(boxes), -1).any(axis=1)
        if cut is not None and cut.any():
            mask_boxes = _mask_boxes(sample.masks[cut])
            boxes[cut, :2] = np.maximum(boxes[cut, :2], mask_boxes[:, :2])
            boxes[cut, 2:] = np.minimum(boxes[cut, 2:], mask_boxes[:, 2:])
    keep &= box_ops.sizes_at_least(boxes, max(min_size, _EPS_SIZE))
    return sample.replace(boxes=boxes).select(keep)


def _cut_boxes(corners: np.ndarray, ids: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Which boxes a crop cut: the unclipped extent of their transformed corners leaves the canvas.

    Args:
        corners: ``[2 N, 2]`` the ``(x1, y1)`` and ``(x2, y2)`` corners of the N input boxes, as
            transformed keypoints (never clipped or dropped).
        ids: indices of the boxes that survived the transform.

    Keypoints flip as ``x -> W - 1 - x`` where boxes flip as ``x -> W - x``, and resized
    images have whole-pixel sizes, so up to :data:`_CUT_TOLERANCE` pixels outside is no cut.
    """
    h, w = size_hw
    pairs = corners.reshape(-1, 2, 2)[ids]                 # [M, corner, xy]
    lo, hi = pairs.min(axis=1), pairs.max(axis=1)           # [M, 2] unclipped extent
    return (lo < -_CUT_TOLERANCE).any(axis=1) | (hi > np.array([w, h]) + _CUT_TOLERANCE).any(axis=1)


def _paste(
    canvas: np.ndarray,
    semantic_canvas: np.ndarray | None,
    sample: Sample,
    offset: tuple[int, int],
    region: tuple[int, int, int, int],
) -> Sample:
    """Paste ``sample`` with its top-left corner at ``offset`` into ``canvas``, inside ``region``.

    Args:
        canvas: ``[Hc, Wc, 3]`` image written in place.
        semantic_canvas: ``[Hc, Wc]`` map written in place, or ``None``.
        sample: the (already resized) sample.
        offset: ``(x, y)`` of the sample's top-left pixel in canvas coordinates (may be negative).
        region: ``(x1, y1, x2, y2)`` part of the canvas the sample may cover.

    Returns:
        The sample's instances in canvas coordinates (``image`` is ``canvas``), boxes clipped to
        the visible part, masks ``[N, Hc, Wc]``; nothing is dropped here.
    """
    h, w = sample.image.shape[:2]
    ox, oy = offset
    x1, y1 = max(region[0], ox), max(region[1], oy)
    x2, y2 = min(region[2], ox + w), min(region[3], oy + h)
    visible = x2 > x1 and y2 > y1
    src = (slice(y1 - oy, y2 - oy), slice(x1 - ox, x2 - ox))
    if visible:
        canvas[y1:y2, x1:x2] = sample.image[src]
        if semantic_canvas is not None:
            semantic_canvas[y1:y2, x1:x2] = sample.semantic[src]
    boxes = sample.boxes + np.array([ox, oy, ox, oy], np.float32)
    boxes[:, 0::2] = boxes[:, 0::2].clip(x1, max(x1, x2))
    boxes[:, 1::2] = boxes[:, 1::2].clip(y1, max(y1, y2))
    masks = None
    if sample.masks is not None:
        masks = np.zeros((sample.num_instances,) + canvas.shape[:2], bool)
        if visible:
            masks[:, y1:y2, x1:x2] = sample.masks[(slice(None),) + src]
    return sample.replace(image=canvas, boxes=boxes, masks=masks, semantic=semantic_canvas)


def _eval_resize(sample: Sample, cfg: AugmentConfig) -> Sample:
    """The deterministic evaluation resize (:class:`~detseg.data.geometry.Resize`)."""
    h, w = sample.image.shape[:2]
    r = Resize.from_config((h, w), cfg)
    resized = _resize(sample, r.content_size, (r.scale_x, r.scale_y))
    if cfg.resize != "letterbox":
        return _finalize(resized, _EPS_SIZE)
    size = cfg.image_size
    canvas = np.full((size, size, 3), cfg.pad_value, np.uint8)
    semantic = None if sample.semantic is None else np.full((size, size), IGNORE_INDEX, np.uint8)
    placed = _paste(canvas, semantic, resized, (int(r.pad_x), int(r.pad_y)), (0, 0, size, size))
    # _paste clips boxes to the pasted image; restore the exact affine map for invertibility.
    placed.boxes = r.boxes(sample.boxes).astype(np.float32)
    return _finalize(placed, _EPS_SIZE)


# --------------------------------------------------------------------------- albumentations


class _RandomCropToMaxSize(BaseCrop):
    """Random crop of the sides longer than ``max_size`` down to ``max_size``; no padding.

    Used by ``keep_ratio`` after scale jitter (albumentations' ``RandomCrop`` needs a fixed
    output size, which ``keep_ratio`` does not have).
    """

    def __init__(self, max_size: int, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.max_size = max_size

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        h, w = params["shape"][:2]
        ch, cw = min(h, self.max_size), min(w, self.max_size)
        y0 = self.py_random.randint(0, h - ch)
        x0 = self.py_random.randint(0, w - cw)
        return {"crop_coords": (x0, y0, x0 + cw, y0 + ch)}


def _train_compose(cfg: AugmentConfig) -> A.Compose:
    size = cfg.image_size
    ops: list[A.BasicTransform] = []
    if cfg.crop_prob > 0:
        ops.append(A.BBoxSafeRandomCrop(erosion_rate=0.0, p=cfg.crop_prob))
    if cfg.resize == "stretch":
        ops.append(A.Resize(size, size, area_for_downscale="image"))
    else:
        ops.append(A.LongestMaxSize(max_size=size, area_for_downscale="image"))
    low, high = cfg.scale_jitter
    if (low, high) != (1.0, 1.0):
        ops.append(A.RandomScale(scale_limit=(low - 1.0, high - 1.0), area_for_downscale="image", p=1.0))
    if cfg.hflip_prob > 0:
        ops.append(A.HorizontalFlip(p=cfg.hflip_prob))
    if cfg.color_jitter > 0:
        s = cfg.color_jitter
        ops.append(A.ColorJitter(brightness=(1 - s, 1 + s), contrast=(1 - s, 1 + s),
                                 saturation=(1 - s, 1 + s), hue=(-s / 10, s / 10), p=1.0))
    if cfg.resize == "keep_ratio":
        ops.append(_RandomCropToMaxSize(size))
    else:
        ops.append(A.RandomCrop(size, size, pad_if_needed=True, pad_position="center",
                                border_mode=cv2.BORDER_CONSTANT, fill=cfg.pad_value, fill_mask=0))
    bbox_params = A.BboxParams(
        format="pascal_voc",
        # instance_ids says which instances (labels, masks ...) go with the boxes that survive
        label_fields=["instance_ids"],
        min_visibility=cfg.min_visibility, min_width=cfg.min_box_size, min_height=cfg.min_box_size,
        clip=True, filter_invalid_bboxes=True,
    )
    keypoint_params = A.KeypointParams(format="xy", remove_invisible=False)
    return A.Compose(ops, bbox_params=bbox_params, keypoint_params=keypoint_params,
                     mask_interpolation=cv2.INTER_NEAREST_EXACT)


class DetectionTransform:
    """``Sample -> Sample`` resize (and, for training, augmentation); see the module docstring.

    Built by :func:`build_transforms`. Training runs the albumentations pipeline ``compose``;
    evaluation runs the exact, invertible resize of :class:`~detseg.data.geometry.Resize`.

    Randomness: ``compose`` owns its random generators (albumentations ignores NumPy's global
    seed). In each process (main or DataLoader worker) they are seeded once, on the first call,
    from ``torch.initial_seed()``, which the DataLoader makes distinct per worker and per epoch
    and derives from ``torch.manual_seed``; forked workers would otherwise all copy one state and
    augment identically. ``__call__(sample, seed=...)`` reseeds for that one call
    (:class:`AugmentedDataset` uses it for per-index determinism).

    Semantic maps: albumentations pads every mask target with one ``fill_mask``, while instance
    masks must be padded with 0 and semantic maps with 255 (ignore). The semantic map therefore
    travels as ``255 - semantic`` (a bijection of uint8 that nearest interpolation preserves), so
    padding with 0 comes back as 255.
    """

    def __init__(self, cfg: AugmentConfig, train: bool) -> None:
        self.cfg = cfg
        self.train = train
        self.compose = _train_compose(cfg) if train else None
        self._seeded_pid: int | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(train={self.train}, cfg={self.cfg})"

    def __call__(self, sample: Sample, seed: int | None = None) -> Sample:
        """Transform one sample (not modified); ``seed`` makes a training call reproducible."""
        sample = _as_sample(sample)
        if not self.train:
            return _eval_resize(sample, self.cfg)
        if seed is not None:
            self.compose.set_random_seed(seed)
            self._seeded_pid = os.getpid()
        elif self._seeded_pid != os.getpid():
            self.compose.set_random_seed(torch.initial_seed() % 2**32)
            self._seeded_pid = os.getpid()
        return self._augment(sample)

    def _augment(self, sample: Sample) -> Sample:
        n = sample.num_instances
        data: dict[str, Any] = {
            "image": sample.image,
            "bboxes": sample.boxes.reshape(-1, 4),
            "instance_ids": np.arange(n, dtype=np.int64),
            "keypoints": sample.boxes.reshape(-1, 2, 2).reshape(-1, 2),  # corners: which boxes a crop cuts
        }
        if sample.masks is not None and n:
            data["masks"] = sample.masks.astype(np.uint8)
        if sample.semantic is not None:
            data["mask"] = (IGNORE_INDEX - sample.semantic).astype(np.uint8)
        out = self.compose(**data)
        image = out["image"]
        ids = np.asarray(out["instance_ids"], np.int64).reshape(-1)
        masks = None
        if sample.masks is not None:
            masks = out["masks"][ids].astype(bool) if n else np.zeros((0,) + image.shape[:2], bool)
        result = sample.select(ids).replace(
            image=image,
            boxes=np.asarray(out["bboxes"], np.float32).reshape(-1, 4),
            masks=masks,
            semantic=None if sample.semantic is None else (IGNORE_INDEX - out["mask"]).astype(np.uint8),
        )
        cut = None
        if masks is not None:
            cut = _cut_boxes(np.asarray(out["keypoints"], np.float32), ids, image.shape[:2])
        return _finalize(result, self.cfg.min_box_size, cut)


def build_transforms(cfg: AugmentConfig, train: bool) -> DetectionTransform:
    """The ``Sample -> Sample`` transform of a dataset.

    Args:
        cfg: resize and augmentation settings.
        train: ``True`` for the random augmentation pipeline; ``False`` for the deterministic,
            invertible resize only (map predictions back with :class:`~detseg.data.geometry.Resize`).

    Returns:
        A :class:`DetectionTransform` (callable ``Sample -> Sample``); the input is not modified.
    """
    return DetectionTransform(cfg, train)


# --------------------------------------------------------------------------- mosaic


def mosaic(samples: Sequence[Sample], cfg: AugmentConfig, rng: np.random.Generator) -> Sample:
    """Combine four samples into one ``image_size x image_size`` mosaic (YOLOv4/v5 style).

    Each sample is resized so its longest side is ``S = image_size`` (objects keep the scale
    they have in single-image training), the mosaic centre ``(cx, cy)`` is drawn uniformly in
    ``[S/4, 3S/4]``, and the samples are placed top-left, top-right, bottom-left, bottom-right
    with a corner at the centre; the parts outside their quadrant are cut. Boxes are clipped
    to their quadrant (and, with masks, a cut box shrinks to its mask's extent), and an
    instance is dropped (with its mask) when it keeps less than
    ``cfg.min_visibility`` of its box area or nothing of its mask. Masks and semantic maps are
    kept only when every sample has them; uncovered canvas is ``pad_value`` / 255 (ignore).

    Args:
        samples: four samples (``None`` entries leave their quadrant empty).
        cfg: ``image_size``, ``pad_value`` and ``min_visibility`` are used.
        rng: draws the centre.

    Returns:
        The mosaic, with ``image_id``/``file_name`` of the first sample and
        ``orig_size = (S, S)`` (a mosaic has no original image).
    """
    if len(samples) != 4:
        raise ValueError(f"mosaic needs 4 samples, got {len(samples)}")
    present = [s for s in samples if s is not None]
    size = cfg.image_size
    cx, cy = (int(v) for v in rng.uniform(0.25 * size, 0.75 * size, size=2))
    canvas = np.full((size, size, 3), cfg.pad_value, np.uint8)
    with_masks = all(s.masks is not None for s in present)
    semantic = None
    if all(s.semantic is not None for s in present):
        semantic = np.full((size, size), IGNORE_INDEX, np.uint8)
    quadrants = [(0, 0, cx, cy), (cx, 0, size, cy), (0, cy, cx, size), (cx, cy, size, size)]
    parts = []
    for k, (sample, region) in enumerate(zip(samples, quadrants)):
        if sample is None:
            continue
        if not with_masks:
            sample = sample.replace(masks=None)
        h, w = sample.image.shape[:2]
        scale = size / max(h, w)
        sample = _resize(sample, scaled_size(h, w, scale, scale), (scale, scale))
        h, w = sample.image.shape[:2]
        offset = (cx - w if k in (0, 2) else cx, cy - h if k in (0, 1) else cy)
        area = (sample.boxes[:, 2] - sample.boxes[:, 0]) * (sample.boxes[:, 3] - sample.boxes[:, 1])
        placed = _paste(canvas, semantic, sample, offset, region)
        kept_area = (placed.boxes[:, 2] - placed.boxes[:, 0]) * (placed.boxes[:, 3] - placed.boxes[:, 1])
        keep = kept_area >= cfg.min_visibility * area
        cut = kept_area < area - 1e-3
        parts.append((placed.boxes[keep], placed.labels[keep], placed.iscrowd[keep],
                      None if placed.masks is None else placed.masks[keep], cut[keep]))
    first = samples[0] if samples[0] is not None else (present[0] if present else None)
    result = Sample(
        image=canvas,
        boxes=np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 4), np.float32),
        labels=np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64),
        iscrowd=np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, bool),
        masks=(np.concatenate([p[3] for p in parts]) if parts else np.zeros((0, size, size), bool))
        if with_masks else None,
        semantic=semantic,
        image_id=first.image_id if first is not None else 0,
        file_name=first.file_name if first is not None else "",
        orig_size=(size, size),
    )
    return _finalize(result, _EPS_SIZE, np.concatenate([p[4] for p in parts]) if parts else None)


class AugmentedDataset(Dataset):
    """The training view of a dataset: optional 4-image mosaics, then the augmenting transform.

    Item ``i`` is, with probability ``cfg.mosaic_prob``, the :func:`mosaic` of sample ``i`` and
    three samples drawn uniformly from the dataset, otherwise sample ``i`` alone; ``transform``
    (normally ``build_transforms(cfg, train=True)``) is applied to the result.

    Raw samples come from ``dataset.load(i)`` followed by
    :func:`~detseg.data.sample.sanitize_boxes` when the dataset has ``load`` (every
    :class:`~detseg.data.sample.DetectionDataset`), otherwise from ``dataset[i]`` (which must then
    have no transform of its own); objects that are not ``Sample`` but have ``image``/``boxes``/
    ``labels``/``masks``/``semantic`` (``ShapeSample``) are converted. Other attributes
    (``class_names``, ``num_classes``) are forwarded to ``dataset``.

    Randomness:
        * ``seed=int`` (what training uses): item ``i`` in epoch ``e`` on DDP rank ``r`` is a
          pure function of ``(seed, r, e, i)``: the mosaic choices and the transform's
          randomness come from ``np.random.default_rng([seed, r, e, i])``, whatever the worker
          layout and wherever a run was interrupted and resumed, and two ranks never draw the
          same augmentation (Detectron2 and Ultralytics seed their workers per rank for the same
          reason). Call :meth:`set_epoch` at the start of each epoch, or every epoch repeats
          the same augmentation.
        * ``seed=None``: the choices come from a generator seeded, once per process, from
          ``torch.initial_seed()`` (distinct per DataLoader worker and epoch); the transform
          seeds itself the same way.

    :meth:`set_epoch` and :meth:`set_mosaic` write to a small shared-memory tensor, so
    DataLoader workers, persistent ones included, see them at once.

    Args:
        dataset: map-style dataset of samples.
        cfg: ``mosaic_prob`` and the :func:`mosaic` settings.
        transform: callable ``Sample -> Sample`` applied last, or ``None``.
        seed: see *Randomness*.
        rank: the DDP rank (part of the seed).

    Example:
        >>> from detseg.data.synthetic import ShapesConfig, ShapesDataset
        >>> cfg = AugmentConfig(image_size=64, mosaic_prob=1.0)
        >>> ds = AugmentedDataset(ShapesDataset(ShapesConfig(num_images=4, image_size=(48, 48),
        ...                       min_size=8, max_size=16)), cfg, build_transforms(cfg, True), seed=0)
        >>> ds[0].image.shape
        (64, 64, 3)
    """

    def __init__(self, dataset, cfg: AugmentConfig, transform=None, *, seed: int | None = None, rank: int = 0) -> None:
        self.dataset = dataset
        self.cfg = cfg
        self.transform = transform
        self.seed = seed
        self.rank = rank
        self._state = torch.tensor([0, 1], dtype=torch.int64).share_memory_()  # epoch, mosaic on
        self._rng: np.random.Generator | None = None
        self._rng_pid: int | None = None

    def __getattr__(self, name: str):
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def epoch(self) -> int:
        return int(self._state[0])

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random choices ``seed`` mode reproduces."""
        self._state[0] = int(epoch)

    def set_mosaic(self, on: bool) -> None:
        """Switch mosaics on or off (``augment.close_mosaic`` turns them off for the last epochs)."""
        self._state[1] = int(bool(on))

    def _raw(self, index: int) -> Sample | None:
        if hasattr(self.dataset, "load"):
            return sanitize_boxes(_as_sample(self.dataset.load(index)), getattr(self.dataset, "counts", None))
        sample = self.dataset[index]
        return None if sample is None else _as_sample(sample)

    def _generator(self, index: int) -> np.random.Generator:
        if self.seed is not None:
            return np.random.default_rng([self.seed, self.rank, self.epoch, index])
        if self._rng is None or self._rng_pid != os.getpid():
            self._rng = np.random.default_rng(torch.initial_seed())
            self._rng_pid = os.getpid()
        return self._rng

    def __getitem__(self, index: int) -> Sample | None:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for AugmentedDataset of length {len(self)}")
        index %= len(self)
        rng = self._generator(index)
        primary = self._raw(index)
        if primary is None:
            return None
        sample = primary
        if self.cfg.mosaic_prob > 0 and rng.random() < self.cfg.mosaic_prob and bool(self._state[1]):
            others = rng.integers(0, len(self), size=3)
            sample = mosaic([primary] + [self._raw(int(i)) for i in others], self.cfg, rng)
        if self.transform is None:
            return sample
        if self.seed is not None and isinstance(self.transform, DetectionTransform):
            return self.transform(sample, seed=int(rng.integers(2**32)))
        return self.transform(sample)
