"""Pascal VOC detection annotations: :class:`VOCDataset` reads them, :func:`write_voc` writes them.

Layout (the VOCdevkit one; ``root`` is e.g. ``VOCdevkit/VOC2012``)::

    root/Annotations/<id>.xml          one XML file per image
    root/JPEGImages/<filename>         the image named by the XML <filename> (else <id>.jpg)
    root/ImageSets/Main/<split>.txt    image ids of the split, one a line

Box convention: VOC ``<bndbox>`` values are **1-based inclusive pixel indices** (a box covering
the first ten pixel columns is ``xmin=1, xmax=10``). detseg boxes are 0-based with an exclusive
far edge (that box is ``x1=0, x2=10``), so reading maps ``(xmin, ymin, xmax, ymax)`` to
``(xmin - 1, ymin - 1, xmax, ymax)`` and writing maps back. Some converters write
``xmin - 1, ..., xmax - 1`` instead; that would shrink every box by one pixel on both far edges,
which matters for the small objects VOC is full of.

``difficult`` objects: the VOC protocol neither rewards nor penalises detections of them. detseg
has exactly one such notion, the ``iscrowd`` "ignore region" of :class:`~detseg.data.sample.Sample`
(not a positive in training, matched-but-not-counted in evaluation), so difficult objects are
exposed as ``iscrowd=True`` when ``keep_difficult`` is set and dropped otherwise.

The helpers ``_save_image``, ``_iter_samples``, ``_missing_error`` and ``IMAGE_EXTENSIONS`` are
shared with :mod:`detseg.data.yolo` and :mod:`detseg.data.mask_folder`.
"""

from __future__ import annotations

import logging
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from .sample import DatasetError, DetectionDataset, Sample, check_class_names, read_image, sanitize_boxes

logger = logging.getLogger(__name__)

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
"""The 20 Pascal VOC classes in their conventional order (label ``k`` is ``VOC_CLASSES[k]``)."""

IMAGE_EXTENSIONS: tuple[str, ...] = (".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")
"""File suffixes (lower case) treated as images when a folder is listed."""

_MAX_LISTED = 5  # how many missing files an error message names


def _missing_error(source: str | Path, what: str, paths: Sequence[str | Path]) -> DatasetError:
    """One error for all missing files of a kind: how many, and the first few."""
    first = ", ".join(str(p) for p in paths[:_MAX_LISTED])
    more = f" (and {len(paths) - _MAX_LISTED} more)" if len(paths) > _MAX_LISTED else ""
    return DatasetError(f"{source}: {len(paths)} {what} missing: {first}{more}")


def _iter_samples(dataset) -> Iterator[Sample]:
    """Untransformed samples of any dataset with ``load(i)`` (else ``dataset[i]``), in order."""
    get = dataset.load if hasattr(dataset, "load") else dataset.__getitem__
    for index in range(len(dataset)):
        yield get(index)


def _save_image(sample: Sample, stem: Path) -> Path:
    """Write ``sample.image`` to ``stem`` + suffix and return the path.

    A sample read from an existing JPEG file is copied byte for byte (re-encoding would lose
    quality again); anything else is written as PNG, which is lossless, so written datasets read
    back pixel-identical.
    """
    source = Path(getattr(sample, "file_name", "") or "")
    if source.suffix.lower() in (".jpg", ".jpeg") and source.is_file():
        dest = stem.with_suffix(source.suffix.lower())
        shutil.copyfile(source, dest)
        return dest
    dest = stem.with_suffix(".png")
    if not cv2.imwrite(str(dest), cv2.cvtColor(np.ascontiguousarray(sample.image), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {dest}")
    return dest


def _text(node: ET.Element, tag: str, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DatasetError(f"{where}: missing <{tag}>")
    return child.text.strip()


def _number(node: ET.Element, tag: str, where: str) -> float:
    text = _text(node, tag, where)
    try:
        return float(text)
    except ValueError:
        raise DatasetError(f"{where}: <{tag}> is not a number: {text!r}") from None


class VOCDataset(DetectionDataset):
    """Pascal VOC detection dataset (boxes, no masks).

    Every XML file of the split is parsed when the dataset is built, so annotation errors show
    up before training starts; images are decoded in :meth:`load`.

    Output: :class:`~detseg.data.sample.Sample` with ``boxes`` ``[N, 4]`` float32 xyxy absolute
    pixels (from VOC's 1-based inclusive ``(xmin, ymin, xmax, ymax)`` as
    ``(xmin - 1, ymin - 1, xmax, ymax)``), ``labels`` ``[N]`` indices into ``class_names``,
    ``iscrowd`` ``[N]`` True for ``difficult`` objects (ignore regions), ``image_id`` = index in
    the split, ``file_name`` = image path.

    Args:
        root: the folder holding ``Annotations/``, ``JPEGImages/`` and ``ImageSets/Main/``.
        split: name of the id list ``ImageSets/Main/{split}.txt`` (``train``, ``val``,
            ``trainval``, ``test``); lines may carry a second column (per-class lists), which is
            ignored.
        class_names: class names in label order; an object whose ``<name>`` is not listed is an
            error (list a subset deliberately by filtering the XML, not by accident).
        keep_difficult: keep ``difficult`` objects as ignore regions (``iscrowd=True``);
            False drops them.
        keep_empty: keep images without (kept) objects as negatives; False leaves them out.
        transform: callable ``Sample -> Sample`` applied after box sanitising.

    Raises:
        DatasetError: missing split file, XML or image files (how many and the first few),
            malformed XML (file and line), unknown class names (file, name and the known
            classes), missing or non-numeric box fields, boxes with ``xmax < xmin`` or
            ``ymax < ymin``.

    Example:
        >>> ds = VOCDataset("VOCdevkit/VOC2012", "val")  # doctest: +SKIP
        >>> s = ds[0]; s.boxes.shape, s.labels.dtype, ds.class_names[s.labels[0]]  # doctest: +SKIP
        ((2, 4), dtype('int64'), 'person')
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        class_names: Sequence[str] = VOC_CLASSES,
        keep_difficult: bool = True,
        keep_empty: bool = True,
        transform=None,
    ) -> None:
        super().__init__(transform)
        self.root = Path(root)
        self.split = split
        self.class_names = check_class_names(class_names, f"VOC dataset {self.root}")
        self.keep_difficult = keep_difficult
        self._label_of = {name: k for k, name in enumerate(self.class_names)}

        ids = self._read_split()
        xml_paths = [self.root / "Annotations" / f"{i}.xml" for i in ids]
        missing = [p for p in xml_paths if not p.is_file()]
        if missing:
            raise _missing_error(self._split_file, "annotation XML files", missing)

        self.ids: list[str] = []
        self.image_paths: list[Path] = []
        self._targets: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        missing_images = []
        for image_id, xml_path in zip(ids, xml_paths):
            image_path, boxes, labels, difficult = self._parse(xml_path, image_id)
            if not image_path.is_file():
                missing_images.append(image_path)
                continue
            if not keep_difficult:
                boxes, labels, difficult = boxes[~difficult], labels[~difficult], difficult[~difficult]
            if not keep_empty and not len(labels):
                continue
            self.ids.append(image_id)
            self.image_paths.append(image_path)
            self._targets.append((boxes, labels, difficult))
        if missing_images:
            raise _missing_error(self._split_file, "image files", missing_images)

    @property
    def _split_file(self) -> Path:
        return self.root / "ImageSets" / "Main" / f"{self.split}.txt"

    def _read_split(self) -> list[str]:
        path = self._split_file
        if not path.is_file():
            folder = path.parent
            found = sorted(p.stem for p in folder.glob("*.txt")) if folder.is_dir() else []
            hint = f"; split files there: {found[:10]}" if found else f"; {folder} has no split files"
            raise DatasetError(f"VOC split file not found: {path}{hint}")
        ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise DatasetError(f"{path}: duplicate image ids {dupes[:_MAX_LISTED]}")
        return ids

    def _parse(self, xml_path: Path, image_id: str):
        """Read one XML file: image path, boxes (internal convention), labels, difficult flags."""
        try:
            root = ET.parse(xml_path).getroot()
        except ET.ParseError as exc:
            line, column = exc.position
            raise DatasetError(f"{xml_path}:{line}:{column}: malformed XML ({exc})") from None
        if root.tag != "annotation":
            raise DatasetError(f"{xml_path}: root element is <{root.tag}>, expected <annotation>")
        filename = root.findtext("filename", "").strip()
        candidates = [self.root / "JPEGImages" / filename] if filename else []
        candidates.append(self.root / "JPEGImages" / f"{image_id}.jpg")
        image_path = next((p for p in candidates if p.is_file()), candidates[0])

        boxes, labels, difficult = [], [], []
        for k, obj in enumerate(root.findall("object")):
            where = f"{xml_path}: object {k}"
            name = _text(obj, "name", where)
            if name not in self._label_of:
                raise DatasetError(
                    f"{xml_path}: object {k} has unknown class name {name!r}; "
                    f"known classes: {list(self.class_names)}"
                )
            where = f"{xml_path}: object {k} ({name})"
            box = obj.find("bndbox")
            if box is None:
                raise DatasetError(f"{where}: missing <bndbox>")
            xmin, ymin, xmax, ymax = (_number(box, t, where) for t in ("xmin", "ymin", "xmax", "ymax"))
            if xmax < xmin or ymax < ymin:
                raise DatasetError(
                    f"{where}: degenerate box xmin={xmin:g} ymin={ymin:g} xmax={xmax:g} ymax={ymax:g} "
                    "(max < min; x and y swapped?)"
                )
            flag = obj.findtext("difficult", "0").strip() or "0"
            if flag not in ("0", "1"):
                raise DatasetError(f"{where}: <difficult> must be 0 or 1, got {flag!r}")
            boxes.append((xmin - 1, ymin - 1, xmax, ymax))
            labels.append(self._label_of[name])
            difficult.append(flag == "1")
        return (
            image_path,
            np.asarray(boxes, np.float32).reshape(-1, 4),
            np.asarray(labels, np.int64),
            np.asarray(difficult, bool),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> Sample:
        boxes, labels, difficult = self._targets[index]
        return Sample(
            image=read_image(self.image_paths[index]),
            boxes=boxes.copy(), labels=labels.copy(), iscrowd=difficult.copy(),
            image_id=index, file_name=str(self.image_paths[index]),
        )


def write_voc(dataset, root: str | Path, split: str = "train") -> Path:
    """Write a detection dataset in Pascal VOC layout (see the module docstring).

    Images are named ``{split}_{index:06d}`` (so several splits can share one ``root``) and
    listed in ``ImageSets/Main/{split}.txt``; source JPEGs are copied, other images written as
    PNG (the XML ``<filename>`` keeps the suffix). Boxes are
    clipped to the image (zero-area ones dropped, as :func:`sanitize_boxes` does) and converted
    to VOC's 1-based inclusive integers ``(round(x1) + 1, round(y1) + 1, round(x2), round(y2))``,
    so fractional boxes are rounded; ``iscrowd`` instances are written as ``difficult``. Masks
    are not written.

    Args:
        dataset: anything with ``class_names``, ``__len__`` and ``load(i) -> Sample`` (or
            ``__getitem__``): e.g. any :class:`~detseg.data.sample.DetectionDataset`.
        root: output folder, created if needed.
        split: name of the id list to write.

    Returns:
        Path of the split file.
    """
    root = Path(root)
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    names = check_class_names(dataset.class_names, f"write_voc({type(dataset).__name__})")
    ids = []
    for index, sample in enumerate(_iter_samples(dataset)):
        image_id = f"{split}_{index:06d}"
        image_path = _save_image(sample, root / "JPEGImages" / image_id)
        height, width = sample.image.shape[:2]
        iscrowd = getattr(sample, "iscrowd", None)
        clean = sanitize_boxes(Sample(image=sample.image, boxes=sample.boxes, labels=sample.labels,
                                      iscrowd=iscrowd))

        ann = ET.Element("annotation")
        ET.SubElement(ann, "folder").text = "JPEGImages"
        ET.SubElement(ann, "filename").text = image_path.name
        size = ET.SubElement(ann, "size")
        for tag, value in (("width", width), ("height", height), ("depth", 3)):
            ET.SubElement(size, tag).text = str(value)
        ET.SubElement(ann, "segmented").text = "0"
        for box, label, crowd in zip(clean.boxes, clean.labels, clean.iscrowd):
            x1, y1, x2, y2 = (int(round(float(v))) for v in box)
            # A sub-pixel box still covers the one pixel it starts in, inside the image.
            x1, y1 = min(x1, width - 1), min(y1, height - 1)
            x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
            obj = ET.SubElement(ann, "object")
            ET.SubElement(obj, "name").text = names[int(label)]
            ET.SubElement(obj, "pose").text = "Unspecified"
            ET.SubElement(obj, "truncated").text = "0"
            ET.SubElement(obj, "difficult").text = "1" if crowd else "0"
            bnd = ET.SubElement(obj, "bndbox")
            for tag, value in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
                ET.SubElement(bnd, tag).text = str(value)
        ET.indent(ann)
        ET.ElementTree(ann).write(root / "Annotations" / f"{image_id}.xml", encoding="utf-8")
        ids.append(image_id)
    split_file = root / "ImageSets" / "Main" / f"{split}.txt"
    split_file.write_text("".join(f"{i}\n" for i in ids))
    return split_file
