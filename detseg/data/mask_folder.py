"""Semantic segmentation from two folders: images, and PNG label maps of the same stem.

Layout::

    image_dir/a.jpg     any image format cv2 reads (see ``IMAGE_EXTENSIONS``)
    mask_dir/a.png      the label map of a.jpg

Label maps are either *index maps* (single-channel PNG, 8 or 16 bit) in the project convention
-- 0 background, ``k + 1`` for class ``k``, ``ignore_index`` for unlabelled pixels -- or, when
a ``palette`` is given, *colour maps* (RGB PNG) whose colours the palette maps to those
indices. Note that cv2 expands palette-mode ("P") PNGs such as VOC's ``SegmentationClass`` to
colours, so read them with their colour palette.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np

from .sample import (
    IGNORE_INDEX, DatasetError, DetectionDataset, ImageReadError, Sample, check_class_names, read_image,
)
from .coco import semantic_map
from .voc import IMAGE_EXTENSIONS, _iter_samples, _missing_error, _save_image

logger = logging.getLogger(__name__)


def _colour_keys(rgb: np.ndarray) -> np.ndarray:
    """``[..., 3]`` RGB -> one int32 per colour (``r << 16 | g << 8 | b``)."""
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


class MaskFolderDataset(DetectionDataset):
    """Images paired by file stem with PNG label maps, for semantic segmentation.

    Output: :class:`~detseg.data.sample.Sample` with ``semantic`` ``[H, W]`` uint8 (0
    background, ``k + 1`` class ``k``, 255 (:data:`~detseg.data.sample.IGNORE_INDEX`) for
    unlabelled pixels, whatever ``ignore_index`` the files use) and no boxes; ``image_id`` =
    index, ``file_name`` = image path.

    Args:
        image_dir: folder of images (not searched recursively; sorted by name).
        mask_dir: folder of ``<stem>.png`` label maps; masks without an image are ignored.
        class_names: foreground class names; label value ``k + 1`` is ``class_names[k]``.
        ignore_index: the value marking unlabelled pixels in the files (mapped to 255 in the
            samples); must be greater than ``len(class_names)``.
        palette: ``{(r, g, b): index}`` for colour label maps; ``index`` is 0, ``k + 1`` or
            ``ignore_index``. Pixels of colours not in the palette become ignore and are
            counted in ``self.counts["unknown_colour_pixels"]`` (with a warning the first
            time), since anti-aliased edges and stray colours are common in hand-made maps.
        transform: callable ``Sample -> Sample``.

    Raises:
        DatasetError: at build time, images without a mask (how many and the first few), two
            images of one stem, a bad palette; at load time, a mask whose size differs from its
            image, a colour map without palette or vice versa, and index values above
            ``len(class_names)`` other than ``ignore_index`` (naming the file and the values).
        ImageReadError: an image or mask file that cannot be decoded (at load time).

    Example:
        >>> ds = MaskFolderDataset("imgs", "masks", class_names=["road", "car"])  # doctest: +SKIP
        >>> ds[0].semantic.shape, ds[0].semantic.dtype  # doctest: +SKIP
        ((512, 1024), dtype('uint8'))
    """

    def __init__(
        self,
        image_dir: str | Path,
        mask_dir: str | Path,
        *,
        class_names: Sequence[str],
        ignore_index: int = IGNORE_INDEX,
        palette: Mapping[tuple[int, int, int], int] | None = None,
        transform=None,
    ) -> None:
        super().__init__(transform)
        self.image_dir, self.mask_dir = Path(image_dir), Path(mask_dir)
        self.class_names = check_class_names(class_names, f"mask folder {self.mask_dir}")
        if self.num_classes >= IGNORE_INDEX:
            raise ValueError(f"at most {IGNORE_INDEX - 1} classes fit a uint8 label map with 255 as ignore")
        if not self.num_classes < ignore_index <= 65535:
            raise ValueError(
                f"ignore_index must be above the largest class value {self.num_classes} "
                f"(0 is background, k + 1 class k) and fit 16 bits, got {ignore_index}"
            )
        self.ignore_index = ignore_index
        self.palette = None if palette is None else self._check_palette(palette)
        self.counts["unknown_colour_pixels"] = 0

        for folder in (self.image_dir, self.mask_dir):
            if not folder.is_dir():
                raise DatasetError(f"folder not found: {folder}")
        images = sorted(
            p for p in self.image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        )
        if not images:
            raise DatasetError(f"{self.image_dir}: no images (suffixes {IMAGE_EXTENSIONS})")
        stems: dict[str, Path] = {}
        for path in images:
            if path.stem in stems:
                raise DatasetError(f"{self.image_dir}: two images share the stem {path.stem!r}: "
                                   f"{stems[path.stem].name}, {path.name}")
            stems[path.stem] = path
        self.image_paths = images
        self.mask_paths = [self.mask_dir / f"{p.stem}.png" for p in images]
        missing = [m for m in self.mask_paths if not m.is_file()]
        if missing:
            what = f"masks (of {len(images)} images in {self.image_dir})"
            raise _missing_error(self.mask_dir, what, missing)

    def _check_palette(self, palette: Mapping) -> tuple[np.ndarray, np.ndarray]:
        """Palette as sorted colour keys and their uint8 output values."""
        keys, values = [], []
        for colour, index in palette.items():
            colour = tuple(int(c) for c in colour)
            if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
                raise ValueError(f"palette colours must be (r, g, b) in 0..255, got {colour}")
            if not (0 <= index <= self.num_classes or index == self.ignore_index):
                raise ValueError(
                    f"palette maps {colour} to {index}, which is neither 0..{self.num_classes} "
                    f"nor ignore_index {self.ignore_index}"
                )
            keys.append(_colour_keys(np.array(colour)))
            values.append(IGNORE_INDEX if index == self.ignore_index else index)
        order = np.argsort(keys)
        return np.asarray(keys, np.int32)[order], np.asarray(values, np.uint8)[order]

    def __len__(self) -> int:
        return len(self.image_paths)

    def _read_mask(self, path: Path) -> np.ndarray:
        data = np.fromfile(path, np.uint8) if path.is_file() else None
        mask = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size else None
        if mask is None:
            raise ImageReadError(f"cannot read mask (missing, corrupt or not an image): {path}")
        if self.palette is not None:
            if mask.ndim != 3:
                raise DatasetError(f"{path}: single-channel mask, but a palette was given for colour masks")
            if mask.dtype != np.uint8:
                raise DatasetError(f"{path}: colour mask must be 8-bit, got {mask.dtype}")
            return self._from_colours(cv2.cvtColor(mask[..., :3], cv2.COLOR_BGR2RGB), path)
        if mask.ndim == 3:
            channels = mask[..., :3]
            if not ((channels == channels[..., :1]).all()):
                raise DatasetError(f"{path}: colour mask, but no palette given to map colours to classes")
            mask = channels[..., 0]  # a grey index map saved as RGB
        valid = (mask <= self.num_classes) | (mask == self.ignore_index)
        if not valid.all():
            bad = np.unique(mask[~valid])
            raise DatasetError(
                f"{path}: label values {bad[:10].tolist()} are neither 0..{self.num_classes} "
                f"(0 background, k + 1 class k of {self.num_classes}) nor ignore_index {self.ignore_index}"
            )
        out = mask.astype(np.uint8) if self.ignore_index == IGNORE_INDEX else np.where(
            mask == self.ignore_index, IGNORE_INDEX, mask).astype(np.uint8)
        return out

    def _from_colours(self, rgb: np.ndarray, path: Path) -> np.ndarray:
        keys, values = self.palette
        pixel_keys = _colour_keys(rgb)
        pos = np.searchsorted(keys, pixel_keys).clip(0, len(keys) - 1)
        known = keys[pos] == pixel_keys
        unknown = int((~known).sum())
        if unknown:
            if not self.counts["unknown_colour_pixels"]:
                colours = np.unique(rgb[~known].reshape(-1, 3), axis=0)[:5].tolist()
                logger.warning("%s: %d pixels of colours not in the palette (e.g. %s) set to ignore",
                               path, unknown, colours)
            self.counts["unknown_colour_pixels"] += unknown
        return np.where(known, values[pos], IGNORE_INDEX).astype(np.uint8)

    def load(self, index: int) -> Sample:
        image = read_image(self.image_paths[index])
        semantic = self._read_mask(self.mask_paths[index])
        if semantic.shape != image.shape[:2]:
            raise DatasetError(
                f"{self.mask_paths[index]}: mask size {semantic.shape} differs from image "
                f"{self.image_paths[index]} size {image.shape[:2]}"
            )
        return Sample(image=image, semantic=semantic, image_id=index, file_name=str(self.image_paths[index]))


def _semantic_of(sample) -> np.ndarray:
    """The sample's semantic map, or one painted from its instance masks by COCO's rule."""
    semantic = getattr(sample, "semantic", None)
    if semantic is not None:
        return np.asarray(semantic, np.uint8)
    masks = getattr(sample, "masks", None)
    if masks is None:
        where = getattr(sample, "file_name", "") or f"image {getattr(sample, 'image_id', '?')}"
        raise DatasetError(f"{where}: sample has neither a semantic map nor instance masks to write")
    iscrowd = getattr(sample, "iscrowd", None)
    iscrowd = np.zeros(len(masks), bool) if iscrowd is None else np.asarray(iscrowd, bool)
    return semantic_map(np.asarray(masks, bool), np.asarray(sample.labels), iscrowd)


def write_mask_folder(
    dataset,
    image_dir: str | Path,
    mask_dir: str | Path,
    *,
    palette: Mapping[tuple[int, int, int], int] | None = None,
) -> list[Path]:
    """Write a dataset as an image folder and a folder of PNG label maps of the same stems.

    Files are named ``{index:06d}``; images as in :func:`detseg.data.voc.write_voc` (JPEG
    sources copied, others PNG). The label map is ``sample.semantic`` when present, else painted
    from the instance masks with :func:`detseg.data.coco.semantic_map` (``k + 1`` per instance;
    255 ignore where instances of different classes overlap or only a crowd region is).

    Args:
        dataset: anything with ``class_names``, ``__len__`` and ``load(i)`` (or ``__getitem__``)
            returning samples with ``semantic`` or ``masks``.
        image_dir: output image folder, created if needed.
        mask_dir: output label folder, created if needed.
        palette: ``{(r, g, b): index}``; when given, label maps are written as RGB colour PNGs
            (every index that occurs must have a colour), else as 8-bit index PNGs.

    Returns:
        The mask paths written, in dataset order.

    Raises:
        DatasetError: a sample without semantic map or masks, or an index missing from
            ``palette``.
    """
    image_dir, mask_dir = Path(image_dir), Path(mask_dir)
    image_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    colour_of = None
    if palette is not None:
        colour_of = np.zeros((256, 3), np.uint8)
        has_colour = np.zeros(256, bool)
        for colour, index in palette.items():
            colour_of[int(index)], has_colour[int(index)] = colour, True
    written = []
    for index, sample in enumerate(_iter_samples(dataset)):
        stem = f"{index:06d}"
        _save_image(sample, image_dir / stem)
        semantic = _semantic_of(sample)
        out = semantic
        if colour_of is not None:
            absent = sorted(set(np.unique(semantic).tolist()) - set(np.flatnonzero(has_colour).tolist()))
            if absent:
                raise DatasetError(
                    f"write_mask_folder: image {index} has label values {absent} without a palette colour"
                )
            out = cv2.cvtColor(colour_of[semantic], cv2.COLOR_RGB2BGR)
        path = mask_dir / f"{stem}.png"
        if not cv2.imwrite(str(path), out):
            raise OSError(f"could not write {path}")
        written.append(path)
    return written
