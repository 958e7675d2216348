"""Semantic segmentation from two folders: images, and PNG label maps of the same stem.

Layout::

    image_dir/a.jpg     any image format cv2 reads (see ``IMAGE_EXTENSIONS``)
    mask_dir/a.png      the label map of a.jpg

Label maps are either *index maps* (single-channel PNG, 8 or 16 bit) in the project convention
-- 0 background, ``k + 1`` for class ``k``, ``ignore_index`` for unlabelled pixels -- or in
another one declared value by value with ``mask_values`` (e.g. a binary mask saved as 0/255,
where 255 is a class and not "unlabelled"), or, when a ``palette`` is given, *colour maps*
(RGB PNG) whose colours the palette maps to those indices. Note that cv2 expands palette-mode
("P") PNGs such as VOC's ``SegmentationClass`` to colours, so read them with their colour
palette.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np

from .sample import (
    IGNORE_INDEX, DatasetError, DetectionDataset, ImageReadError, Sample, check_class_names, image_size,
    read_image,
)
from .coco import semantic_map
from .voc import IMAGE_EXTENSIONS, _iter_samples, _save_image

logger = logging.getLogger(__name__)


def _colour_keys(rgb: np.ndarray) -> np.ndarray:
    """``[..., 3]`` RGB -> one int32 per colour (``r << 16 | g << 8 | b``)."""
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


RESERVED_NAMES = ("background", "ignore")
"""Meanings a ``mask_values`` entry may give besides a class name."""


@dataclass
class _MaskScan:
    """What one pass over a mask found: its values with pixel counts, or the problem."""

    values: np.ndarray  # [V] stored values present (label-map values for palette masks)
    pixels: np.ndarray  # [V] pixels of each
    problem: tuple[str, str] | None = None  # (kind, text)


class MaskFolderDataset(DetectionDataset):
    """Images paired by file stem with PNG label maps, for semantic segmentation.

    Output: :class:`~detseg.data.sample.Sample` with ``semantic`` ``[H, W]`` uint8 (0
    background, ``k + 1`` class ``k``, 255 (:data:`~detseg.data.sample.IGNORE_INDEX`) for
    unlabelled pixels, whatever values the files use) and no boxes; ``image_id`` = index,
    ``file_name`` = image path.

    What a stored value means: by default the project convention (0 background, ``k + 1`` class
    ``k``, ``ignore_index`` unlabelled); ``mask_values`` declares it instead, value by value, for
    files that follow another convention, e.g. a binary mask exported as 0/255 where 255 is a
    class (``{0: "background", 255: "cell"}``) or two classes (``{0: "membrane", 255: "cell"}``).

    Every mask is read once when the dataset is built (in a few threads; the label maps of a
    dataset decode in seconds to a minute), so that training never starts on masks it cannot
    use: the values each mask holds (``value_counts``, reported by ``tools/check_dataset.py``),
    and the mask's size against its image's header. Problems, each naming a file, go to
    ``self.problems`` and the pair is left out: images without a mask, two images of one stem,
    unreadable masks or images, a mask whose size differs from its image, a colour mask without
    palette (or a grey one with), values that are neither background, a class nor ignore (one
    example per value, with the files' count), and a folder whose masks hold no pixel of any
    class (e.g. 0/255 masks read with 255 as ignore). Masks without an image are reported, not
    fatal. ``load`` applies the same rules again to the file it reads.

    Args:
        image_dir: folder of images (not searched recursively; sorted by name).
        mask_dir: folder of ``<stem>.png`` label maps.
        class_names: foreground class names; label value ``k + 1`` is ``class_names[k]``.
        ignore_index: the value marking unlabelled pixels in the files (mapped to 255 in the
            samples); must be greater than ``len(class_names)``. Not used with ``mask_values``.
        mask_values: ``{stored value: meaning}``, the meaning a class name, ``"background"`` or
            ``"ignore"``; every value the files hold must be listed. Keys may be int strings
            (as a YAML config gives them). Class names are used rather than indices so that
            "class 0" cannot be mistaken for background.
        palette: ``{(r, g, b): index}`` for colour label maps; ``index`` is 0, ``k + 1`` or
            ``ignore_index``. Pixels of colours not in the palette become ignore and are
            counted in ``self.counts["unknown_colour_pixels"]`` (with a warning the first
            time), since anti-aliased edges and stray colours are common in hand-made maps.
        transform: callable ``Sample -> Sample``.
        strict: raise one :class:`DatasetError` at the end of the build if a fatal problem was
            found; ``False`` keeps them in ``self.problems`` and the good pairs in the dataset.

    Raises:
        DatasetError: a folder is missing or holds no image; with ``strict``, the problems above
            (one line naming the first files). At load time, the same per-mask rules (with the
            problem's ``kind``).
        ValueError: bad ``ignore_index``, ``palette`` or ``mask_values`` arguments.
        ImageReadError: an image or mask file that cannot be decoded (at load time).

    Example:
        >>> ds = MaskFolderDataset("isbi/images", "isbi/labels", class_names=["membrane", "cell"],
        ...                        mask_values={0: "membrane", 255: "cell"})  # doctest: +SKIP
        >>> ds[0].semantic.shape, sorted(ds.value_counts)  # doctest: +SKIP
        ((512, 512), [0, 255])
    """

    def __init__(
        self,
        image_dir: str | Path,
        mask_dir: str | Path,
        *,
        class_names: Sequence[str],
        ignore_index: int = IGNORE_INDEX,
        mask_values: Mapping[int | str, str] | None = None,
        palette: Mapping[tuple[int, int, int], int] | None = None,
        transform=None,
        strict: bool = True,
    ) -> None:
        super().__init__(transform, strict=strict)
        self.image_dir, self.mask_dir = Path(image_dir), Path(mask_dir)
        self.class_names = check_class_names(class_names, f"mask folder {self.mask_dir}")
        if self.num_classes >= IGNORE_INDEX:
            raise ValueError(f"at most {IGNORE_INDEX - 1} classes fit a uint8 label map with 255 as ignore")
        if not self.num_classes < ignore_index <= 65535:
            raise ValueError(
                f"ignore_index must be above the largest class value {self.num_classes} "
                f"(0 is background, k + 1 class k) and fit 16 bits, got {ignore_index}"
            )
        if mask_values is not None and (palette is not None or ignore_index != IGNORE_INDEX):
            raise ValueError("mask_values lists every stored value (use 'ignore' there); it cannot be "
                             "combined with palette or ignore_index")
        self.ignore_index = ignore_index
        self.mask_values = None if mask_values is None else self._check_mask_values(mask_values)
        self._lut, self._valid = self._value_table()
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
        self.image_paths, self.mask_paths = self._pair(images)
        self.value_counts: dict[int, tuple[int, int]] = {}
        self._scan_masks()
        self.problems.raise_if_fatal(self.mask_dir)

    # ----------------------------------------------------------------------------- build time

    def _check_mask_values(self, mask_values: Mapping) -> dict[int, int]:
        """``{stored: meaning}`` -> ``{stored: label-map value}`` (0, ``k + 1`` or 255)."""
        clash = sorted(set(self.class_names) & set(RESERVED_NAMES))
        if clash:
            raise ValueError(f"class names {clash} are reserved words of mask_values; rename the classes")
        out_of = {name: k + 1 for k, name in enumerate(self.class_names)}
        out_of.update(background=0, ignore=IGNORE_INDEX)
        table = {}
        for stored, meaning in mask_values.items():
            try:
                value = int(stored)
            except (TypeError, ValueError):
                raise ValueError(f"mask_values: key {stored!r} is not an integer pixel value") from None
            if not 0 <= value <= 65535:
                raise ValueError(f"mask_values: {value} is not a 16-bit pixel value")
            if meaning not in out_of:
                raise ValueError(f"mask_values: {value} -> {meaning!r} is neither a class name "
                                 f"{list(self.class_names)} nor one of {list(RESERVED_NAMES)}")
            table[value] = out_of[meaning]
        if not any(0 < v < IGNORE_INDEX for v in table.values()):
            raise ValueError(f"mask_values {dict(mask_values)} maps no value to a class")
        return table

    def _value_table(self) -> tuple[np.ndarray, np.ndarray]:
        """Stored value -> label-map value, and which stored values are allowed ([65536] each)."""
        lut = np.zeros(65536, np.uint8)
        valid = np.zeros(65536, bool)
        if self.mask_values is not None:
            for stored, out in self.mask_values.items():
                lut[stored], valid[stored] = out, True
        else:
            lut[: self.num_classes + 1] = np.arange(self.num_classes + 1)
            valid[: self.num_classes + 1] = True
            lut[self.ignore_index], valid[self.ignore_index] = IGNORE_INDEX, True
        return lut, valid

    @property
    def value_rule(self) -> str:
        """What stored values mean, in words (quoted by the problems)."""
        if self.mask_values is not None:
            return "mask_values {" + ", ".join(f"{v}: {self._meaning(v)}" for v in self.mask_values) + "}"
        return (f"0 background, k + 1 class k (1..{self.num_classes}), {self.ignore_index} ignore")

    def _meaning(self, stored: int) -> str:
        """What a stored value stands for: a class name, background, ignore or not allowed."""
        return self._label_meaning(int(self._lut[stored])) if self._valid[stored] else "NOT ALLOWED"

    def _label_meaning(self, out: int) -> str:
        return {0: "background", IGNORE_INDEX: "ignore"}.get(out) or self.class_names[out - 1]

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

    def _pair(self, images: list[Path]) -> tuple[list[Path], list[Path]]:
        """(image, mask) paths of the images that have a mask; the rest are reported."""
        image_paths, mask_paths, stems = [], [], {}
        for path in images:
            if path.stem in stems:
                self.problems.add("duplicate_images", f"{path}: two images share the stem {path.stem!r} "
                                  f"({stems[path.stem].name}, {path.name}); the second is left out", left_out=True)
                continue
            stems[path.stem] = path
            mask = self.mask_dir / f"{path.stem}.png"
            if not mask.is_file():
                self.problems.add("missing_masks", f"{mask}: mask not found for image {path}", left_out=True)
                continue
            image_paths.append(path)
            mask_paths.append(mask)
        for mask in sorted(self.mask_dir.glob("*.png")):
            if mask.stem not in stems:
                self.problems.add("unpaired_masks", f"{mask}: no image {mask.stem}.* in {self.image_dir}")
        return image_paths, mask_paths

    def _scan_one(self, image_path: Path, mask_path: Path) -> _MaskScan:
        """Decode one mask and read its image's header: values present, or the problem."""
        none = np.zeros(0, np.int64)
        try:
            raw = self._decode_mask(mask_path)
            height, width = image_size(image_path)
            labels = self._index_map(raw, mask_path)
        except ImageReadError as exc:
            return _MaskScan(none, none, ("unreadable_images", str(exc)))
        except DatasetError as exc:
            return _MaskScan(none, none, (exc.kind, str(exc)))
        if labels.shape[:2] != (height, width):
            return _MaskScan(none, none, ("mask_size_mismatch", self._size_text(mask_path, labels.shape[:2],
                                                                                image_path, (height, width))))
        if self.palette is not None:
            labels, _ = self._from_colours(labels)
        if labels.dtype == np.uint8:
            pixels = np.bincount(labels.ravel(), minlength=256)
            values = np.flatnonzero(pixels)
            return _MaskScan(values, pixels[values])
        values, pixels = np.unique(labels, return_counts=True)
        return _MaskScan(values.astype(np.int64), pixels)

    def _scan_masks(self) -> None:
        """Read every mask once (see the class docstring); leave out the pairs with a problem."""
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            scans = list(pool.map(self._scan_one, self.image_paths, self.mask_paths))
        stats: dict[int, list] = {}  # value -> [masks, pixels]
        bad_values: dict[int, list] = {}
        keep, class_pixels = [], 0
        for mask_path, scan in zip(self.mask_paths, scans):
            if scan.problem is not None:
                self.problems.add(*scan.problem, left_out=True)
                keep.append(False)
                continue
            for value, pixels in zip(scan.values.tolist(), scan.pixels.tolist()):
                entry = stats.setdefault(value, [0, 0])
                entry[0], entry[1] = entry[0] + 1, entry[1] + pixels
            allowed = self._valid[scan.values] if self.palette is None else np.ones(len(scan.values), bool)
            for value in scan.values[~allowed].tolist():
                bad_values.setdefault(value, []).append(mask_path)
            out = self._lut[scan.values] if self.palette is None else scan.values
            class_pixels += int(scan.pixels[allowed & (out > 0) & (out < IGNORE_INDEX)].sum())
            keep.append(bool(allowed.all()))
            if not keep[-1]:
                self.problems.leave_out(f"{mask_path}: values {scan.values[~allowed].tolist()} are not allowed by "
                                        f"{self.value_rule}")
        self.value_counts = {v: (n, px) for v, (n, px) in sorted(stats.items())}
        bad_masks = len({p for paths in bad_values.values() for p in paths})
        for i, (value, paths) in enumerate(sorted(bad_values.items())):
            self.problems.add("mask_values", f"{paths[0]}: value {value} (in {len(paths)} masks) is not allowed "
                              f"by {self.value_rule}{self._hint(value)}", bad_masks if i == 0 else 0)
        self.image_paths = [p for p, k in zip(self.image_paths, keep) if k]
        self.mask_paths = [p for p, k in zip(self.mask_paths, keep) if k]
        if self.mask_paths and not class_pixels:
            values = list(self.value_counts)
            self.problems.add("no_class_pixels", f"{self.mask_paths[0]} and the other masks hold only values "
                              f"{values}, none of them a class under {self.value_rule}"
                              f"{self._hint(IGNORE_INDEX) if IGNORE_INDEX in values else ''}")

    def _hint(self, value: int) -> str:
        example = f"{{0: background, {value}: {self.class_names[-1]}}}"
        return (f"; declare what each stored value means with mask_values (config: data.mask_values), "
                f"e.g. {example}")

    @staticmethod
    def _size_text(mask_path: Path, mask_hw: tuple, image_path: Path, image_hw: tuple) -> str:
        return (f"{mask_path}: mask size {tuple(int(v) for v in mask_hw)} differs from image {image_path} "
                f"size {tuple(int(v) for v in image_hw)}")

    def notes(self) -> list[str]:
        """The stored values found in the masks, how common they are and what they mean."""
        if not self.value_counts:
            return []
        total = sum(px for _, px in self.value_counts.values()) or 1
        kind = "label-map values after the palette" if self.palette is not None else "stored values"
        lines = [f"mask {kind} ({self.value_rule}):"]
        lines += [f"  {v:>5}: {n} masks, {100 * px / total:.1f}% of pixels -> "
                  f"{self._meaning(v) if self.palette is None else self._label_meaning(v)}"
                  for v, (n, px) in self.value_counts.items()]
        return lines

    # ----------------------------------------------------------------------------- load time

    def __len__(self) -> int:
        return len(self.image_paths)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.image_dir)!r}, {str(self.mask_dir)!r}, {len(self)} images, "
                f"{self.num_classes} classes)")

    @staticmethod
    def _decode_mask(path: Path) -> np.ndarray:
        data = np.fromfile(path, np.uint8) if path.is_file() else None
        mask = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size else None
        if mask is None:
            raise ImageReadError(f"cannot read mask (missing, corrupt or not an image): {path}")
        return mask

    def _index_map(self, mask: np.ndarray, path: Path) -> np.ndarray:
        """A decoded mask as the dataset expects it: RGB with a palette, else one channel."""
        if self.palette is not None:
            if mask.ndim != 3:
                raise DatasetError(f"{path}: single-channel mask, but a palette was given for colour masks",
                                   kind="mask_format")
            if mask.dtype != np.uint8:
                raise DatasetError(f"{path}: colour mask must be 8-bit, got {mask.dtype}", kind="mask_format")
            return cv2.cvtColor(mask[..., :3], cv2.COLOR_BGR2RGB)
        if mask.ndim == 3:
            channels = mask[..., :3]
            if not ((channels == channels[..., :1]).all()):
                raise DatasetError(f"{path}: colour mask, but no palette given to map colours to classes",
                                   kind="mask_format")
            mask = channels[..., 0]  # a grey index map saved as RGB
        return mask

    def _read_mask(self, path: Path) -> np.ndarray:
        labels = self._index_map(self._decode_mask(path), path)
        if self.palette is not None:
            semantic, unknown = self._from_colours(labels)
            if unknown:
                if not self.counts["unknown_colour_pixels"]:
                    known = _colour_keys(labels)
                    odd = labels[~np.isin(known, self.palette[0])]
                    colours = np.unique(odd.reshape(-1, 3), axis=0)[:5].tolist()
                    logger.warning("%s: %d pixels of colours not in the palette (e.g. %s) set to ignore",
                                   path, unknown, colours)
                self.counts["unknown_colour_pixels"] += unknown
            return semantic
        valid = self._valid[labels]
        if not valid.all():
            bad = np.unique(labels[~valid])
            raise DatasetError(f"{path}: label values {bad[:10].tolist()} are not allowed by {self.value_rule}",
                               kind="mask_values")
        return self._lut[labels]

    def _from_colours(self, rgb: np.ndarray) -> tuple[np.ndarray, int]:
        """RGB colour map -> (uint8 label map, pixels of colours not in the palette, set to ignore)."""
        keys, values = self.palette
        pixel_keys = _colour_keys(rgb)
        pos = np.searchsorted(keys, pixel_keys).clip(0, len(keys) - 1)
        known = keys[pos] == pixel_keys
        return np.where(known, values[pos], IGNORE_INDEX).astype(np.uint8), int((~known).sum())

    def load(self, index: int) -> Sample:
        image = read_image(self.image_paths[index])
        semantic = self._read_mask(self.mask_paths[index])
        if semantic.shape != image.shape[:2]:
            raise DatasetError(self._size_text(self.mask_paths[index], semantic.shape,
                                               self.image_paths[index], image.shape[:2]),
                               kind="mask_size_mismatch")
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
