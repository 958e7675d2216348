"""The embedded "shapes" dataset: procedurally drawn circles, rectangles and triangles.

It is the default dataset of the project: the demo and the fast tests of every model family
(backbone classifier, two-stage and one-shot detectors, instance and semantic segmentation)
train on it. It needs no download, is learnable by tiny CNNs on a CPU at 64-128 px, and is
not trivial: shape colours are random and carry no class information, backgrounds are
textured, shapes are shaded and noisy, and they may occlude each other.

Conventions (the project-wide ones, see ``STYLE.md``):

* images are ``uint8`` RGB arrays ``[H, W, 3]``;
* ``boxes`` are float32 ``[N, 4]`` xyxy in absolute pixels, with ``x2, y2`` the exclusive
  edge: the box of a mask whose pixels span columns ``xmin..xmax`` and rows ``ymin..ymax`` is
  ``(xmin, ymin, xmax + 1, ymax + 1)``;
* ``labels`` are contiguous ``0..K-1`` indices into ``ShapesConfig.classes`` (by default
  :data:`CLASS_NAMES`: 0 circle, 1 rectangle, 2 triangle);
* ``masks`` are the *visible* parts of each instance (later shapes occlude earlier ones), so
  instance masks never overlap;
* ``semantic`` maps use **0 for background and ``k + 1`` for class ``k``** (the segmentation
  convention of the project); COCO ``category_id`` is likewise ``k + 1``.

Every image is a pure function of ``(cfg, index)``: its random generator is seeded with
``np.random.default_rng([cfg.seed, index])``, so any image can be regenerated alone and two
datasets with different seeds share no image. (Seeding with ``seed + index`` instead would
make image 1 of seed 0 equal to image 0 of seed 1, so a "train seed 0 / val seed 1" split
would leak almost every image.)

Example:
    >>> cfg = ShapesConfig(num_images=8, image_size=(64, 64), max_size=32)
    >>> sample = generate_sample(cfg, 0)
    >>> sample.image.shape, sample.boxes.shape[1], sample.masks.shape[1:]
    ((64, 64, 3), 4, (64, 64))
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
from torch.utils.data import Dataset

from .sample import DetectionDataset, Sample

CLASS_NAMES: tuple[str, ...] = ("circle", "rectangle", "triangle")
"""Default classes, in label order (label ``k`` is ``CLASS_NAMES[k]``)."""

SHAPE_KINDS: tuple[str, ...] = CLASS_NAMES + ("ellipse", "cross")
"""Every kind ``ShapesConfig.classes`` may list; ``ellipse`` and ``cross`` are optional extras."""


@dataclass
class ShapesConfig:
    """How to generate the shapes dataset.

    Args:
        num_images: dataset length (``ShapesDataset`` and ``write_coco``).
        image_size: ``(H, W)`` in pixels.
        min_objects: fewest shapes placed on a non-negative image.
        max_objects: most shapes placed on an image. The count is drawn uniformly from
            ``min_objects..max_objects``; a shape that finds no place in
            ``max_placement_tries`` attempts (crowded small images) is skipped, so an image can
            hold fewer than ``min_objects`` shapes.
        min_size: smallest shape size in pixels (circle/ellipse/triangle/cross diameter,
            geometric-mean side of a rectangle).
        max_size: largest shape size in pixels; clipped to ``min(H, W)``.
        seed: base seed; image ``i`` uses ``np.random.default_rng([seed, i])``.
        negative_fraction: probability that an image has no objects (background only).
        classes: shape kinds in label order, a subset/reordering of :data:`SHAPE_KINDS`.
        min_visible_fraction: a placement is rejected if it would leave an earlier instance
            with less than this fraction of its full area visible.
        min_visible_pixels: same, as an absolute number of pixels.
        min_contrast: wanted RGB distance between a shape colour and both the background under
            it and the shapes it touches (best of 20 draws is kept when none reaches it).
        noise_std: standard deviation of the per-pixel Gaussian noise added to the image.
        max_placement_tries: attempts to place one shape before skipping it.
    """

    num_images: int = 256
    image_size: tuple[int, int] = (128, 128)
    min_objects: int = 1
    max_objects: int = 4
    min_size: int = 16
    max_size: int = 48
    seed: int = 0
    negative_fraction: float = 0.0
    classes: tuple[str, ...] = CLASS_NAMES
    min_visible_fraction: float = 0.3
    min_visible_pixels: int = 16
    min_contrast: float = 60.0
    noise_std: float = 6.0
    max_placement_tries: int = 20

    def __post_init__(self) -> None:
        # YAML gives lists; keep the dataclass hashable-looking and comparable.
        self.image_size = tuple(int(v) for v in self.image_size)  # type: ignore[assignment]
        self.classes = tuple(self.classes)
        problems = []
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            problems.append(f"image_size must be (H, W) with both >= 8, got {self.image_size}")
        if self.num_images < 0:
            problems.append(f"num_images must be >= 0, got {self.num_images}")
        if not 0 <= self.min_objects <= self.max_objects:
            problems.append(
                f"need 0 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}"
            )
        if not 4 <= self.min_size <= self.max_size:
            problems.append(
                f"need 4 <= min_size <= max_size, got {self.min_size}, {self.max_size}"
            )
        if not 0.0 <= self.negative_fraction <= 1.0:
            problems.append(f"negative_fraction must be in [0, 1], got {self.negative_fraction}")
        if not 0.0 <= self.min_visible_fraction <= 1.0:
            problems.append(
                f"min_visible_fraction must be in [0, 1], got {self.min_visible_fraction}"
            )
        if self.max_placement_tries < 1:
            problems.append(f"max_placement_tries must be >= 1, got {self.max_placement_tries}")
        unknown = [c for c in self.classes if c not in SHAPE_KINDS]
        if not self.classes or unknown or len(set(self.classes)) != len(self.classes):
            problems.append(
                f"classes must be distinct names from {SHAPE_KINDS}, got {self.classes}"
            )
        if problems:
            raise ValueError("invalid ShapesConfig: " + "; ".join(problems))

    @property
    def num_classes(self) -> int:
        """Number of foreground classes K (no background)."""
        return len(self.classes)


@dataclass
class ShapeSample:
    """One generated image with its ground truth.

    Attributes:
        image: ``[H, W, 3]`` uint8 RGB.
        boxes: ``[N, 4]`` float32, xyxy absolute pixels, ``x2, y2`` exclusive (box of the
            visible mask).
        labels: ``[N]`` int64 in ``[0, K)``.
        masks: ``[N, H, W]`` bool, visible part of each instance (pairwise disjoint). Instances
            are in drawing order, back to front.
        semantic: ``[H, W]`` uint8, 0 = background, ``k + 1`` = class ``k``.
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    semantic: np.ndarray


@dataclass
class _Instance:
    label: int
    full: np.ndarray  # [H, W] bool, the whole shape before occlusion
    visible: np.ndarray  # [H, W] bool
    min_keep: float  # visible pixels this instance must keep
    colour: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth random colour gradient plus low-frequency blobs, ``[H, W, 3]`` float32 in 0..255."""
    corners = rng.uniform(30.0, 225.0, size=(2, 2, 3)).astype(np.float32)
    ty = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    tx = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    top = corners[0, 0] * (1 - tx) + corners[0, 1] * tx
    bottom = corners[1, 0] * (1 - tx) + corners[1, 1] * tx
    gradient = top * (1 - ty) + bottom * ty
    grid = rng.normal(0.0, 22.0, size=(int(rng.integers(3, 6)), int(rng.integers(3, 6)), 3))
    blobs = cv2.resize(grid.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    return gradient + blobs


def _outline(kind: str, size: int, rng: np.random.Generator, height: int, width: int):
    """Pick a random pose for one shape, centred at the origin.

    Returns:
        ``("circle", radius)`` or ``("poly", points)`` with ``points: [P, 2]`` int32 (x, y).
    """
    if kind == "circle":
        return "circle", max(2, size // 2)
    if kind == "rectangle":
        aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
        w = int(np.clip(round(size * math.sqrt(aspect)), 4, width))
        h = int(np.clip(round(size / math.sqrt(aspect)), 4, height))
        # fillPoly includes both end pixels, so these corners cover exactly w x h pixels.
        pts = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]) - [w // 2, h // 2]
        return "poly", pts.astype(np.int32)
    theta = rng.uniform(0.0, 2.0 * math.pi)
    if kind == "triangle":
        # Near-equilateral with jitter: random triangles are often unrecognisable slivers.
        angles = theta + np.array([0.0, 2.0, 4.0]) * math.pi / 3 + rng.uniform(-0.3, 0.3, 3)
        radii = size / 2 * rng.uniform(0.8, 1.0, 3)
        pts = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
        return "poly", np.round(pts).astype(np.int32)
    if kind == "ellipse":
        a = max(2, size // 2)
        b = max(2, int(round(a * rng.uniform(0.4, 0.65))))
        pts = cv2.ellipse2Poly((0, 0), (a, b), int(math.degrees(theta)), 0, 360, 5)
        return "poly", pts.astype(np.int32)
    if kind == "cross":
        arm, half = size * rng.uniform(0.14, 0.2), size / 2
        xs = np.array([arm, arm, half, half, arm, arm, -arm, -arm, -half, -half, -arm, -arm])
        ys = np.array([half, arm, arm, -arm, -arm, -half, -half, -arm, -arm, arm, arm, half])
        c, s = math.cos(theta), math.sin(theta)
        pts = np.stack([c * xs - s * ys, s * xs + c * ys], axis=1)
        return "poly", np.round(pts).astype(np.int32)
    raise ValueError(f"unknown shape kind {kind!r}; expected one of {SHAPE_KINDS}")


def _draw_shape(
    kind: str, size: int, rng: np.random.Generator, height: int, width: int
) -> np.ndarray:
    """Draw one randomly posed and placed shape, fully inside the image; ``[H, W]`` bool."""
    form, geom = _outline(kind, size, rng, height, width)
    if form == "circle":
        lo = np.array([-geom, -geom])
        hi = np.array([geom, geom])
    else:
        lo, hi = geom.min(axis=0), geom.max(axis=0)
    # Centre range keeping the whole shape inside; if it cannot fit, centre it (cv2 clips).
    cx_lo, cx_hi = -lo[0], width - 1 - hi[0]
    cy_lo, cy_hi = -lo[1], height - 1 - hi[1]
    cx = int(rng.integers(cx_lo, cx_hi + 1)) if cx_lo <= cx_hi else width // 2
    cy = int(rng.integers(cy_lo, cy_hi + 1)) if cy_lo <= cy_hi else height // 2
    mask = np.zeros((height, width), np.uint8)
    # LINE_8 (no anti-aliasing) so the painted pixels are exactly the mask pixels.
    if form == "circle":
        cv2.circle(mask, (cx, cy), int(geom), 1, thickness=-1, lineType=cv2.LINE_8)
    else:
        cv2.fillPoly(mask, [geom + np.array([cx, cy], np.int32)], 1, lineType=cv2.LINE_8)
    return mask.astype(bool)


def _pick_colour(
    rng: np.random.Generator, avoid: list[np.ndarray], min_contrast: float
) -> np.ndarray:
    """Random RGB colour at least ``min_contrast`` from every colour in ``avoid`` (best of 20)."""
    best, best_score = None, -1.0
    for _ in range(20):
        colour = rng.uniform(0.0, 255.0, size=3).astype(np.float32)
        score = min(float(np.linalg.norm(colour - a)) for a in avoid)
        if score > best_score:
            best, best_score = colour, score
        if score >= min_contrast:
            break
    return best


def _mask_box(mask: np.ndarray) -> list[float]:
    """Box of a non-empty ``[H, W]`` bool mask, xyxy with exclusive ``x2, y2``."""
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]


def generate_sample(cfg: ShapesConfig, index: int) -> ShapeSample:
    """Generate image ``index`` of the dataset described by ``cfg``.

    The result depends only on ``(cfg, index)``; ``index`` may exceed ``cfg.num_images``.

    Occlusion: a placement that would leave an earlier instance with less than
    ``max(min_visible_fraction * full_area, min_visible_pixels)`` visible pixels is rejected
    and retried, instead of dropping the occluded instance afterwards: a dropped instance
    would leave an unlabelled fragment of a shape painted in the image.

    Args:
        cfg: dataset configuration.
        index: image index, ``>= 0``.

    Returns:
        The sample; ``N`` may be 0 (negative image or no room to place anything).
    """
    if index < 0:
        raise IndexError(f"index must be >= 0, got {index}")
    rng = np.random.default_rng([cfg.seed, index])
    height, width = cfg.image_size
    background = _background(rng, height, width)
    negative = rng.random() < cfg.negative_fraction
    num_objects = 0 if negative else int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    max_size = min(cfg.max_size, height, width)
    min_size = min(cfg.min_size, max_size)
    kernel = np.ones((3, 3), np.uint8)

    instances: list[_Instance] = []
    for _ in range(num_objects):
        label = int(rng.integers(cfg.num_classes))
        for _attempt in range(cfg.max_placement_tries):
            size = int(rng.integers(min_size, max_size + 1))
            full = _draw_shape(cfg.classes[label], size, rng, height, width)
            area = int(full.sum())
            if area >= cfg.min_visible_pixels and all(
                np.count_nonzero(inst.visible & ~full) >= inst.min_keep for inst in instances
            ):
                break
        else:
            continue  # no room: skip this shape rather than bury another one
        # Colour must stand out from the background under the shape and from the shapes it
        # overlaps or touches (dilated by 1 px), otherwise instances would merge visually.
        near = cv2.dilate(full.astype(np.uint8), kernel).astype(bool)
        avoid = [background[full].mean(axis=0)]
        avoid += [inst.colour for inst in instances if (inst.visible & near).any()]
        colour = _pick_colour(rng, avoid, cfg.min_contrast)
        for inst in instances:
            inst.visible &= ~full
        min_keep = max(cfg.min_visible_fraction * area, cfg.min_visible_pixels)
        instances.append(_Instance(label, full, full.copy(), min_keep, colour))

    image = background
    for inst in instances:
        # Mild linear shading across the shape so that fills are not perfectly flat.
        x0, y0, x1, y1 = (int(v) for v in _mask_box(inst.full))
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        direction = rng.uniform(0.0, 2.0 * math.pi)
        extent = max(x1 - x0, y1 - y0) / 2
        ramp = ((xx - (x0 + x1) / 2) * math.cos(direction)
                + (yy - (y0 + y1) / 2) * math.sin(direction)) / extent
        shaded = inst.colour + rng.uniform(0.0, 25.0) * ramp[..., None]
        region = image[y0:y1, x0:x1]
        region_mask = inst.full[y0:y1, x0:x1]
        region[region_mask] = shaded[region_mask]
    image = image + rng.normal(0.0, cfg.noise_std, size=image.shape).astype(np.float32)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)

    semantic = np.zeros((height, width), np.uint8)
    for inst in instances:
        semantic[inst.visible] = inst.label + 1
    if instances:
        boxes = np.array([_mask_box(inst.visible) for inst in instances], np.float32)
        masks = np.stack([inst.visible for inst in instances])
    else:
        boxes = np.zeros((0, 4), np.float32)
        masks = np.zeros((0, height, width), bool)
    labels = np.array([inst.label for inst in instances], np.int64)
    return ShapeSample(image=image, boxes=boxes, labels=labels, masks=masks, semantic=semantic)


def classification_label(sample: ShapeSample) -> int:
    """Label of the largest visible object (the image-level class for classifier demos).

    With ``min_objects = max_objects = 1`` this is the only shape. Ties go to the object drawn
    first.

    Raises:
        ValueError: if the sample has no objects.
    """
    if len(sample.labels) == 0:
        raise ValueError(
            "sample has no objects, so no classification label; use negative_fraction=0 and "
            "min_objects >= 1 for classification"
        )
    areas = sample.masks.reshape(len(sample.labels), -1).sum(axis=1)
    return int(sample.labels[int(np.argmax(areas))])


class ShapesDataset(Dataset):
    """Map-style dataset of generated shapes, generated on first access.

    Args:
        cfg: dataset configuration; ``None`` means ``ShapesConfig()``.
        transform: optional callable applied to each :class:`ShapeSample` (e.g. conversion to
            tensors / ``Instances``); its result is what ``__getitem__`` returns.
        cache: keep generated samples in memory (about 70 KB per 128 x 128 image with 4
            objects; each ``DataLoader`` worker keeps its own cache).

    Example:
        >>> ds = ShapesDataset(ShapesConfig(num_images=4, image_size=(64, 64), max_size=32))
        >>> len(ds), ds[0].image.dtype, ds.class_names
        (4, dtype('uint8'), ('circle', 'rectangle', 'triangle'))
    """

    def __init__(
        self,
        cfg: ShapesConfig | None = None,
        *,
        transform: Callable[[ShapeSample], Any] | None = None,
        cache: bool = True,
    ) -> None:
        self.cfg = cfg if cfg is not None else ShapesConfig()
        self.transform = transform
        self.cache = cache
        self._samples: dict[int, ShapeSample] = {}

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names in label order."""
        return self.cfg.classes

    @property
    def num_classes(self) -> int:
        """Number of foreground classes K."""
        return self.cfg.num_classes

    def __len__(self) -> int:
        return self.cfg.num_images

    def __getitem__(self, index: int) -> Any:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for ShapesDataset of length {len(self)}")
        sample = self._samples.get(index)
        if sample is None:
            sample = generate_sample(self.cfg, index)
            if self.cache:
                self._samples[index] = sample
        return self.transform(sample) if self.transform is not None else sample


def _encode_rle(mask: np.ndarray) -> dict:
    """COCO RLE of a ``[H, W]`` bool mask, with ``counts`` as str so it is JSON-serialisable."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def write_coco(cfg: ShapesConfig, out_dir: str | Path) -> Path:
    """Write the dataset to disk in COCO format.

    Layout::

        out_dir/images/000000.png      RGB images (PNG, lossless)
        out_dir/masks/000000.png       semantic maps, uint8: 0 background, k + 1 class k
        out_dir/annotations.json       COCO instances; file_name is relative to images/

    Categories have ``id = k + 1`` and ``name = cfg.classes[k]``; annotations carry ``bbox``
    (xywh, from the visible mask), ``area`` (visible pixel count), ``iscrowd = 0`` and an RLE
    ``segmentation``. Images without objects are listed with no annotations. Image ids are
    ``index + 1`` (COCO tools treat id 0 as suspicious).

    Args:
        cfg: dataset configuration (all ``cfg.num_images`` images are written).
        out_dir: output folder, created if needed.

    Returns:
        Path of ``annotations.json``.
    """
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    height, width = cfg.image_size
    images, annotations = [], []
    for index in range(cfg.num_images):
        sample = generate_sample(cfg, index)
        file_name = f"{index:06d}.png"
        image_path, mask_path = out_dir / "images" / file_name, out_dir / "masks" / file_name
        if not cv2.imwrite(str(image_path), cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {image_path}")
        if not cv2.imwrite(str(mask_path), sample.semantic):
            raise OSError(f"could not write {mask_path}")
        image_id = index + 1
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        for box, label, mask in zip(sample.boxes, sample.labels, sample.masks):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": int(label) + 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": float(mask.sum()),
                "iscrowd": 0,
                "segmentation": _encode_rle(mask),
            })
    categories = [
        {"id": k + 1, "name": name, "supercategory": "shape"} for k, name in enumerate(cfg.classes)
    ]
    coco = {
        "info": {"description": "detseg synthetic shapes", "config": asdict(cfg)},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    ann_path = out_dir / "annotations.json"
    ann_path.write_text(json.dumps(coco))
    return ann_path


class ShapesDetection(DetectionDataset):
    """The shapes set as a detection/segmentation dataset of :class:`~detseg.data.sample.Sample`.

    Boxes, labels, instance masks and the semantic map come from the generator; image ids are
    ``index + 1`` as in :func:`write_coco`. Generated images are cached like :class:`ShapesDataset`.

    Args:
        cfg: generator settings.
        with_masks: include instance masks (memory: N x H x W bools per image).
        transform: ``Sample -> Sample`` callable (augmentation), applied last.
    """

    def __init__(self, cfg: ShapesConfig | None = None, *, with_masks: bool = True, transform=None) -> None:
        super().__init__(transform)
        self.shapes = ShapesDataset(cfg)
        self.with_masks = with_masks
        self.class_names = self.shapes.class_names

    def __len__(self) -> int:
        return len(self.shapes)

    def load(self, index: int) -> Sample:
        s = self.shapes[index]
        return Sample(
            image=s.image, boxes=s.boxes, labels=s.labels,
            masks=s.masks if self.with_masks else None, semantic=s.semantic,
            image_id=index + 1, file_name=f"shapes/{self.shapes.cfg.seed}/{index:06d}",
        )
