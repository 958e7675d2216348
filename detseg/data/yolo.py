"""Ultralytics YOLO text labels: :class:`YOLODataset` reads them, :func:`write_yolo` writes them.

Layout (the Ultralytics one)::

    data.yaml                 path: <root>, train: images/train, val: images/val, names: {0: cat, ...}
    <root>/images/train/a.jpg
    <root>/labels/train/a.txt one object a line: "class cx cy w h", normalised to [0, 1]

The label file of an image is found as Ultralytics does: the last ``/images/`` folder of the
image path becomes ``/labels/`` and the suffix becomes ``.txt`` (an image path without an
``images`` folder has its label next to it). A missing label file means an image without
objects (the YOLO convention for negatives), not an error.

Label lines are parsed when the dataset is built, so a malformed line fails before training,
naming the file and line. Segment lines ``class x1 y1 x2 y2 x3 y3 ...`` (a normalised polygon
of 3 or more points) are accepted too: the box is the polygon's extent, and when *every* object
of the split is a polygon the samples also get instance masks (rasterised as COCO polygons are,
with pycocotools). A split mixing box and polygon lines gets boxes only, with a warning, since
a box line has no mask to pair with the polygons. Pose labels (``kpt_shape`` in the yaml) are
not supported.

Normalised ``cx cy w h`` become absolute xyxy pixels only in :meth:`YOLODataset.load`, once the
image is decoded and its size known (reading every image header at build time would cost a
pass over the data for nothing).
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path

import numpy as np
import yaml

from .sample import (
    DatasetError, DetectionDataset, ImageReadError, ProblemLog, Sample, check_class_names, read_image,
    read_image_sizes, sanitize_boxes,
)
from .voc import IMAGE_EXTENSIONS, _iter_samples, _save_image

logger = logging.getLogger(__name__)

COORD_TOLERANCE = 1e-3
"""Normalised coordinates may exceed ``[0, 1]`` by this much (float round-off of exporters);
the excess is clipped away with the box. Anything further out is an error."""


def image_to_label_path(image_path: str | Path) -> Path:
    """The label file of an image: last ``/images/`` -> ``/labels/``, suffix -> ``.txt``."""
    text = str(image_path)
    images, labels = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if images in text:
        text = labels.join(text.rsplit(images, 1))
    return Path(text).with_suffix(".txt")


def _load_yaml(path: Path) -> dict:
    if not path.is_file():
        raise DatasetError(f"YOLO data yaml not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise DatasetError(f"{where}: malformed YAML ({exc})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a mapping with 'path', 'train', 'val', 'names'")
    return data


def _class_names(data: dict, source: Path) -> tuple[str, ...]:
    """``names`` as a list, or as an ``{id: name}`` dict whose ids are exactly ``0..K-1``."""
    names = data.get("names")
    if isinstance(names, dict):
        try:
            by_id = {int(k): v for k, v in names.items()}
        except (TypeError, ValueError):
            raise DatasetError(
                f"{source}: 'names' keys must be integer class ids, got {list(names)}"
            ) from None
        if sorted(by_id) != list(range(len(by_id))):
            raise DatasetError(
                f"{source}: 'names' ids must be 0..{len(by_id) - 1} without gaps, got {sorted(by_id)}"
            )
        names = [by_id[k] for k in range(len(by_id))]
    if not isinstance(names, (list, tuple)):
        raise DatasetError(f"{source}: 'names' must be a list or an {{id: name}} mapping, got {names!r}")
    result = check_class_names(names, str(source))
    if "nc" in data and data["nc"] != len(result):
        raise DatasetError(f"{source}: nc={data['nc']} but 'names' lists {len(result)} classes")
    return result


def _parse_labels(path: Path, num_classes: int, problems: ProblemLog):
    """One label file -> ``(classes [N], boxes [N, 4] normalised xyxy, polygons or None, line
    numbers [N])``; ``None`` when the file is not text.

    ``polygons`` is a list of ``[P, 2]`` normalised arrays, one per object (``None`` for box
    lines), or ``None`` when the file has no polygon line. A malformed line is recorded in
    ``problems`` (naming ``file:line``) and left out.
    """
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        problems.add("malformed_files", f"{path}: not a text file ({exc})", left_out=True)
        return None
    classes, boxes, polygons, lines = [], [], [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        where = f"{path}:{lineno}"
        if len(parts) != 5 and (len(parts) < 7 or len(parts) % 2 == 0):
            problems.add("malformed_lines",
                         f"{where}: expected 5 columns 'class cx cy w h' or a polygon 'class x1 y1 x2 y2 x3 "
                         f"y3 ...' (an odd count >= 7), got {len(parts)}: {line.strip()!r}")
            continue
        values = []
        for token in parts:
            try:
                value = float(token)
            except ValueError:
                value = math.nan
            values.append(value)
        bad = [t for t, v in zip(parts, values) if not math.isfinite(v)]
        if bad:
            problems.add("malformed_lines", f"{where}: not a finite number: {bad[0]!r} in {line.strip()!r}")
            continue
        cls = values[0]
        if cls != int(cls) or not 0 <= cls < num_classes:
            problems.add("unknown_classes", f"{where}: class id {parts[0]} is not an integer in "
                         f"[0, {num_classes}) (the yaml names {num_classes} classes)")
            continue
        coords = np.asarray(values[1:], np.float64)
        if coords.min() < -COORD_TOLERANCE or coords.max() > 1 + COORD_TOLERANCE:
            problems.add("coords_outside", f"{where}: coordinates must be normalised to [0, 1] (pixels "
                         f"divided by the image size), got {line.strip()!r}")
            continue
        if len(parts) == 5:
            cx, cy, w, h = coords
            boxes.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
            polygons.append(None)
        else:
            points = coords.reshape(-1, 2)
            boxes.append((*points.min(0), *points.max(0)))
            polygons.append(points)
        classes.append(int(cls))
        lines.append(lineno)
    has_polygons = any(p is not None for p in polygons)
    return (
        np.asarray(classes, np.int64),
        np.asarray(boxes, np.float64).reshape(-1, 4),
        polygons if has_polygons else None,
        np.asarray(lines, np.int64),
    )


def _rasterize(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Normalised polygons -> ``[N, H, W]`` bool masks, with COCO's polygon rasterisation."""
    from pycocotools import mask as mask_utils

    if not polygons:
        return np.zeros((0, height, width), bool)
    rles = mask_utils.frPyObjects([(p * [width, height]).ravel().tolist() for p in polygons], height, width)
    with warnings.catch_warnings():
        # pycocotools <= 2.0.8 under numpy 2 warns about its own __array__ on every decode.
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        masks = mask_utils.decode(rles)  # [H, W, N] uint8
    return np.ascontiguousarray(masks.transpose(2, 0, 1)).astype(bool)


class YOLODataset(DetectionDataset):
    """A split of an Ultralytics-format YOLO dataset (see the module docstring for the layout).

    Output: :class:`~detseg.data.sample.Sample` with ``boxes`` ``[N, 4]`` float32 xyxy absolute
    pixels of the decoded image (from normalised ``cx cy w h``), ``labels`` ``[N]`` (the YOLO
    class ids, already contiguous ``0..K-1``), ``masks`` ``[N, H, W]`` bool only when every
    object of the split is a polygon (``self.with_masks``), ``image_id`` = index, ``file_name``
    = image path. YOLO has no crowd / difficult flag, so ``iscrowd`` is all False.

    Args:
        data_yaml: the dataset yaml. ``path`` is the dataset root; a relative ``path`` is taken
            relative to the yaml's folder (Ultralytics takes it relative to its global
            datasets folder), and no ``path`` means the yaml's folder. ``names`` is a list or an
            ``{id: name}`` mapping with ids ``0..K-1``.
        split: key of the yaml naming the split (``train``, ``val``, ``test``). Its value, or
            each value of a list, is an image folder (searched recursively, sorted) or a
            ``.txt`` file listing image paths one a line (relative ones resolved against the
            ``.txt``'s folder; Ultralytics does so only for lines starting with ``./``),
            relative to the root.
        keep_empty: keep images without objects (no or empty label file) as negatives.
        transform: callable ``Sample -> Sample`` applied after box sanitising.
        strict: raise at the end of the build if a fatal problem was found; ``False`` keeps
            them in ``self.problems`` and the usable rest in the dataset (the checker's mode).
        check_image_sizes: read every image header at build time (threads, no decoding):
            unreadable or truncated images are problems found before training, and the sizes
            let the boxes that loading will drop be reported then.

    Problems (recorded in ``self.problems``, the line or image left out): listed images that
    do not exist, label files that are not text, and malformed label lines: wrong column
    count, a non-number, coordinates outside ``[0, 1]`` by more than :data:`COORD_TOLERANCE`,
    class id out of range (each naming ``file:line``); with ``check_image_sizes``, unreadable
    images. Reported, not fatal (with ``check_image_sizes``): lines whose box loading will drop
    (zero width or height) or clip (within the tolerance outside ``[0, 1]``), naming ``file:line``.

    Raises:
        DatasetError: unreadable yaml, bad ``names``, a missing split key or folder (the
            dataset cannot be read at all); with ``strict``, one error summarising the problems.

    Example:
        >>> ds = YOLODataset("coco128/coco128.yaml", "train")  # doctest: +SKIP
        >>> ds[0].boxes.shape, ds.class_names[:2]  # doctest: +SKIP
        ((8, 4), ('person', 'bicycle'))
    """

    def __init__(
        self,
        data_yaml: str | Path,
        split: str = "train",
        *,
        keep_empty: bool = True,
        transform=None,
        strict: bool = True,
        check_image_sizes: bool = False,
    ) -> None:
        super().__init__(transform, strict=strict)
        self.data_yaml = Path(data_yaml).absolute()
        data = _load_yaml(self.data_yaml)
        if "kpt_shape" in data:
            raise DatasetError(f"{self.data_yaml}: pose (keypoint) datasets are not supported")
        self.class_names = _class_names(data, self.data_yaml)
        root = Path(os.path.expanduser(str(data.get("path") or ".")))
        self.root = root if root.is_absolute() else self.data_yaml.parent / root
        self.split = split

        self.image_paths: list[Path] = []
        self._targets: list[tuple[np.ndarray, np.ndarray, list | None]] = []
        self._lines: list[np.ndarray] = []  # per image: label file line of each object
        missing_labels = 0
        num_boxes = num_polygons = 0
        for image_path in self._list_images(data, split):
            label_path = image_to_label_path(image_path)
            if label_path.is_file():
                parsed = _parse_labels(label_path, self.num_classes, self.problems)
                if parsed is None:
                    continue
                classes, boxes, polygons, lines = parsed
            else:
                missing_labels += 1
                classes, boxes, polygons, lines = np.zeros(0, np.int64), np.zeros((0, 4)), None, np.zeros(0, np.int64)
            if not keep_empty and not len(classes):
                continue
            polygon_count = 0 if polygons is None else sum(p is not None for p in polygons)
            num_polygons += polygon_count
            num_boxes += len(classes) - polygon_count
            self.image_paths.append(image_path)
            self._targets.append((classes, boxes, polygons))
            self._lines.append(lines)
        if check_image_sizes:
            self._check_images()
        self.counts["missing_label_files"] = missing_labels
        if self.image_paths and missing_labels == len(self.image_paths):
            logger.warning(
                "%s: no label file found for any of %d images of split %r (expected e.g. %s)",
                self.data_yaml, missing_labels, split, image_to_label_path(self.image_paths[0]),
            )
        self.with_masks = num_polygons > 0 and num_boxes == 0
        if num_polygons and num_boxes:
            logger.warning(
                "%s: split %r mixes %d box lines and %d polygon lines; masks are left out",
                self.data_yaml, split, num_boxes, num_polygons,
            )
        self.problems.raise_if_fatal(f"{self.data_yaml} (split {split!r})")

    def _check_images(self) -> None:
        """Leave out the images whose header is unreadable; record the boxes loading will change."""
        chosen, sizes = [], []
        for i, header in enumerate(read_image_sizes(self.image_paths)):
            if isinstance(header, ImageReadError):
                self.problems.add("unreadable_images", str(header), left_out=True)
            else:
                chosen.append(i)
                sizes.append(header)
        self.image_paths = [self.image_paths[i] for i in chosen]
        self._targets = [self._targets[i] for i in chosen]
        self._lines = [self._lines[i] for i in chosen]
        pixel_boxes = [(boxes * [w, h, w, h]).astype(np.float32) for (_, boxes, _), (h, w) in zip(self._targets, sizes)]
        self._check_boxes(pixel_boxes, sizes, self.image_paths)

    def _list_images(self, data: dict, split: str) -> list[Path]:
        entries = data.get(split)
        if not entries:
            known = [k for k in ("train", "val", "test") if data.get(k)]
            raise DatasetError(f"{self.data_yaml}: no {split!r} entry; splits given: {known}")
        images: list[Path] = []
        for entry in entries if isinstance(entries, (list, tuple)) else [entries]:
            path = Path(os.path.expanduser(str(entry)))
            path = path if path.is_absolute() else self.root / path
            if path.is_dir():
                found = sorted(
                    p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
                )
                if not found:
                    raise DatasetError(f"{self.data_yaml}: no images in {split} folder {path}")
                images += found
            elif path.is_file() and path.suffix == ".txt":
                listed = [Path(line.strip()) for line in path.read_text().splitlines() if line.strip()]
                listed = [p if p.is_absolute() else path.parent / p for p in listed]
                for p in listed:
                    if not p.is_file():
                        self.problems.add("missing_images", f"{p}: image file not found (listed in {path})",
                                          left_out=True)
                images += [p for p in listed if p.is_file()]
            else:
                raise DatasetError(
                    f"{self.data_yaml}: {split} entry {entry!r} -> {path} is neither an image folder "
                    "nor a .txt list of images"
                )
        return images

    def __len__(self) -> int:
        return len(self.image_paths)

    def instance_names(self, index: int) -> list[str]:
        """``"<label file>:<line>"`` of each object of ``load(index)``."""
        name = image_to_label_path(self.image_paths[index]).name
        return [f"{name}:{n}" for n in self._lines[index].tolist()]

    def load(self, index: int) -> Sample:
        classes, boxes, polygons = self._targets[index]
        image = read_image(self.image_paths[index])
        height, width = image.shape[:2]
        masks = None
        if self.with_masks:
            masks = _rasterize(polygons or [], height, width)
        return Sample(
            image=image, boxes=(boxes * [width, height, width, height]).astype(np.float32),
            labels=classes.copy(), masks=masks, image_id=index, file_name=str(self.image_paths[index]),
        )


def write_yolo(dataset, root: str | Path, split: str = "train") -> Path:
    """Write a detection dataset as Ultralytics YOLO boxes (see the module docstring).

    Writes ``root/images/{split}/{index:06d}.png`` (source JPEGs are copied as ``.jpg``),
    ``root/labels/{split}/{index:06d}.txt`` (one ``class cx cy w h`` line per object, 8
    significant digits; an empty file for a negative image) and ``root/data.yaml`` with
    ``path`` (absolute), ``{split}: images/{split}`` and ``names`` as ``{id: name}``. An
    existing ``data.yaml`` is updated, so splits can be written one after the other; its class
    names must match.

    Boxes are clipped to the image first (zero-area ones dropped). YOLO has no ignore regions,
    so ``iscrowd`` instances are *left out* (a crowd box written as a normal object would
    become a positive); masks are not written (box labels only).

    Args:
        dataset: anything with ``class_names``, ``__len__`` and ``load(i) -> Sample`` (or
            ``__getitem__``).
        root: output dataset root, created if needed.
        split: split name (folder name and yaml key).

    Returns:
        Path of ``data.yaml``.
    """
    root = Path(root).absolute()
    names = check_class_names(dataset.class_names, f"write_yolo({type(dataset).__name__})")
    yaml_path = root / "data.yaml"
    data = _load_yaml(yaml_path) if yaml_path.is_file() else {}
    if "names" in data and _class_names(data, yaml_path) != names:
        raise DatasetError(
            f"{yaml_path}: existing class names {list(_class_names(data, yaml_path))} differ from "
            f"the dataset's {list(names)}"
        )
    image_dir, label_dir = root / "images" / split, root / "labels" / split
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    skipped_crowd = 0
    for index, sample in enumerate(_iter_samples(dataset)):
        stem = f"{index:06d}"
        _save_image(sample, image_dir / stem)
        height, width = sample.image.shape[:2]
        clean = sanitize_boxes(Sample(image=sample.image, boxes=sample.boxes, labels=sample.labels,
                                      iscrowd=getattr(sample, "iscrowd", None)))
        skipped_crowd += int(clean.iscrowd.sum())
        lines = []
        for (x1, y1, x2, y2), label in zip(clean.boxes[~clean.iscrowd], clean.labels[~clean.iscrowd]):
            cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
            w, h = (x2 - x1) / width, (y2 - y1) / height
            lines.append(f"{int(label)} {cx:.8g} {cy:.8g} {w:.8g} {h:.8g}\n")
        (label_dir / f"{stem}.txt").write_text("".join(lines))
    if skipped_crowd:
        logger.info("write_yolo: left out %d crowd/difficult instances (YOLO has no ignore regions)",
                    skipped_crowd)
    data.update({"path": str(root), split: f"images/{split}", "names": dict(enumerate(names))})
    yaml_path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return yaml_path
