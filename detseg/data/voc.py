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

The helpers ``_save_image``, ``_iter_samples`` and ``IMAGE_EXTENSIONS`` are shared with
:mod:`detseg.data.yolo` and :mod:`detseg.data.mask_folder`.
"""

from __future__ import annotations

import logging
import math
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from .sample import (
    DatasetError, DetectionDataset, ImageReadError, Sample, check_class_names, read_image, read_image_sizes,
    sanitize_boxes,
)

logger = logging.getLogger(__name__)

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
"""The 20 Pascal VOC classes in their conventional order (label ``k`` is ``VOC_CLASSES[k]``)."""

IMAGE_EXTENSIONS: tuple[str, ...] = (".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")
"""File suffixes (lower case) treated as images when a folder is listed."""


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


class _ObjectProblem(DatasetError):
    """A bad ``<object>`` of a VOC XML file: recorded under ``kind`` and the object left out."""


def _text(node: ET.Element, tag: str, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        kind = "invalid_boxes" if tag in ("xmin", "ymin", "xmax", "ymax") else "invalid_annotations"
        raise _ObjectProblem(f"{where}: missing <{tag}>", kind=kind)
    return child.text.strip()


def _number(node: ET.Element, tag: str, where: str) -> float:
    text = _text(node, tag, where)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise _ObjectProblem(f"{where}: <{tag}> is not a finite number: {text!r}", kind="invalid_boxes")
    return value


def _size(root: ET.Element) -> tuple[int, int] | None:
    """``(H, W)`` of an annotation's ``<size>``; ``None`` when missing, not a number or 0 (some
    tools write 0 for "unknown")."""
    try:
        height, width = (float(root.findtext(f"size/{tag}", "")) for tag in ("height", "width"))
    except ValueError:
        return None
    if not (math.isfinite(height) and math.isfinite(width) and height > 0 and width > 0):
        return None
    return int(height), int(width)


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
        strict: raise at the end of the build if a fatal problem was found; ``False`` keeps
            them in ``self.problems`` and the usable images in the dataset (the checker's mode).
        check_image_sizes: read every image header at build time (threads, no decoding):
            unreadable or truncated images, and images whose size differs from the XML's
            ``<size>`` (when it gives one), are problems found before training.

    Problems (recorded in ``self.problems`` naming the file, line or object; the image or
    object is left out): ids listed twice in the split file, missing XML or image files,
    malformed XML (file, line and column), unknown class names (file, object, name and the
    known classes), missing or non-numeric box fields, boxes with ``xmax < xmin`` or
    ``ymax < ymin``, a ``<difficult>`` other than 0/1, and with ``check_image_sizes`` the
    image problems above. Reported, not fatal: boxes that loading will clip or drop because
    they stick out of the image (its header's size, else the XML ``<size>``), each naming the
    XML file and object index.

    Raises:
        DatasetError: a missing split file (listing the split files that exist); with
            ``strict``, one error summarising the problems above.

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
        strict: bool = True,
        check_image_sizes: bool = False,
    ) -> None:
        super().__init__(transform, strict=strict)
        self.root = Path(root)
        self.split = split
        self.class_names = check_class_names(class_names, f"VOC dataset {self.root}")
        self.keep_difficult = keep_difficult
        self._label_of = {name: k for k, name in enumerate(self.class_names)}

        self.ids: list[str] = []
        self.image_paths: list[Path] = []
        self._targets: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._objects: list[np.ndarray] = []  # per image: the kept objects' indices in the XML
        sizes: list[tuple[int, int] | None] = []  # per image: the XML's <size> as (H, W)
        for image_id in self._read_split():
            xml_path = self.root / "Annotations" / f"{image_id}.xml"
            if not xml_path.is_file():
                self.problems.add("missing_annotation_files", f"{xml_path}: annotation XML file not found "
                                  f"(image id {image_id!r} of {self._split_file})", left_out=True)
                continue
            parsed = self._parse(xml_path, image_id)
            if parsed is None:
                continue
            image_path, boxes, labels, difficult, objects, size = parsed
            if not image_path.is_file():
                self.problems.add("missing_images", f"{image_path}: image file not found (named by {xml_path})",
                                  left_out=True)
                continue
            if not keep_difficult:
                boxes, labels, objects, difficult = (boxes[~difficult], labels[~difficult],
                                                     objects[~difficult], difficult[~difficult])
            if not keep_empty and not len(labels):
                continue
            self.ids.append(image_id)
            self.image_paths.append(image_path)
            self._targets.append((boxes, labels, difficult))
            self._objects.append(objects)
            sizes.append(size)
        if check_image_sizes:
            sizes = self._check_images(sizes)
        self._check_boxes([t[0] for t in self._targets], sizes, self.image_paths)
        self.problems.raise_if_fatal(self._split_file)

    def _check_images(self, sizes: list[tuple[int, int] | None]) -> list[tuple[int, int]]:
        """Leave out the images whose header is unreadable or disagrees with the XML ``<size>``;
        the header sizes of the others."""
        chosen, header_sizes = [], []
        for i, header in enumerate(read_image_sizes(self.image_paths)):
            if isinstance(header, ImageReadError):
                self.problems.add("unreadable_images", str(header), left_out=True)
            elif sizes[i] is not None and sizes[i] != header:
                xml = self.root / "Annotations" / f"{self.ids[i]}.xml"
                self.problems.add("size_mismatch", f"{self.image_paths[i]}: image is {header[0]}x{header[1]} (HxW) "
                                  f"but {xml} says {sizes[i][0]}x{sizes[i][1]} in <size>", left_out=True)
            else:
                chosen.append(i)
                header_sizes.append(header)
        self.ids = [self.ids[i] for i in chosen]
        self.image_paths = [self.image_paths[i] for i in chosen]
        self._targets = [self._targets[i] for i in chosen]
        self._objects = [self._objects[i] for i in chosen]
        return header_sizes

    @property
    def _split_file(self) -> Path:
        return self.root / "ImageSets" / "Main" / f"{self.split}.txt"

    def _read_split(self) -> list[str]:
        """Image ids of the split file (a missing file raises; ids listed twice are reported)."""
        path = self._split_file
        if not path.is_file():
            folder = path.parent
            found = sorted(p.stem for p in folder.glob("*.txt")) if folder.is_dir() else []
            hint = f"; split files there: {found[:10]}" if found else f"; {folder} has no split files"
            raise DatasetError(f"VOC split file not found: {path}{hint}")
        ids, seen = [], set()
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            image_id = line.split()[0]
            if image_id in seen:
                self.problems.add("duplicate_images", f"{path}:{lineno}: image id {image_id!r} listed again "
                                  "(left out)")
                continue
            seen.add(image_id)
            ids.append(image_id)
        return ids

    def _parse(self, xml_path: Path, image_id: str):
        """One XML file -> image path, boxes (internal convention), labels, difficult flags, the
        objects' indices in the file and the ``<size>`` as ``(H, W)`` (``None`` when absent or 0);
        ``None`` (problem recorded) when the file cannot be parsed. A bad object is recorded and
        left out."""
        try:
            root = ET.parse(xml_path).getroot()
        except ET.ParseError as exc:
            line, column = exc.position
            self.problems.add("malformed_files", f"{xml_path}:{line}:{column}: malformed XML ({exc})",
                              left_out=True)
            return None
        if root.tag != "annotation":
            self.problems.add("malformed_files", f"{xml_path}: root element is <{root.tag}>, expected <annotation>",
                              left_out=True)
            return None
        filename = root.findtext("filename", "").strip()
        size = _size(root)
        candidates = [self.root / "JPEGImages" / filename] if filename else []
        candidates.append(self.root / "JPEGImages" / f"{image_id}.jpg")
        image_path = next((p for p in candidates if p.is_file()), candidates[0])

        boxes, labels, difficult, objects = [], [], [], []
        for k, obj in enumerate(root.findall("object")):
            try:
                box, label, flag = self._parse_object(obj, f"{xml_path}: object {k}")
            except _ObjectProblem as exc:
                self.problems.add(exc.kind, str(exc))
                continue
            boxes.append(box)
            labels.append(label)
            difficult.append(flag)
            objects.append(k)
        return (
            image_path,
            np.asarray(boxes, np.float32).reshape(-1, 4),
            np.asarray(labels, np.int64),
            np.asarray(difficult, bool),
            np.asarray(objects, np.int64),
            size,
        )

    def _parse_object(self, obj: ET.Element, where: str) -> tuple[tuple, int, bool]:
        """One ``<object>`` -> (box xyxy, label, difficult); raises :class:`_ObjectProblem`."""
        name = _text(obj, "name", where)
        if name not in self._label_of:
            raise _ObjectProblem(f"{where} has unknown class name {name!r}; known classes: "
                                 f"{list(self.class_names)}", kind="unknown_classes")
        where = f"{where} ({name})"
        box = obj.find("bndbox")
        if box is None:
            raise _ObjectProblem(f"{where}: missing <bndbox>", kind="invalid_boxes")
        xmin, ymin, xmax, ymax = (_number(box, t, where) for t in ("xmin", "ymin", "xmax", "ymax"))
        if xmax < xmin or ymax < ymin:
            raise _ObjectProblem(f"{where}: degenerate box xmin={xmin:g} ymin={ymin:g} xmax={xmax:g} "
                                 f"ymax={ymax:g} (max < min; x and y swapped?)", kind="invalid_boxes")
        flag = obj.findtext("difficult", "0").strip() or "0"
        if flag not in ("0", "1"):
            raise _ObjectProblem(f"{where}: <difficult> must be 0 or 1, got {flag!r}", kind="invalid_annotations")
        return (xmin - 1, ymin - 1, xmax, ymax), self._label_of[name], flag == "1"

    def __len__(self) -> int:
        return len(self.ids)

    def instance_names(self, index: int) -> list[str]:
        """``"<xml file>: object <k>"`` (k counts the XML's ``<object>`` elements from 0)."""
        xml = self.root / "Annotations" / f"{self.ids[index]}.xml"
        return [f"{xml.name} object {k}" for k in self._objects[index].tolist()]

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
