"""A detector's predictions over image files, written as a dataset: pre-annotations for labelling.

Labelling tools import a dataset's annotations onto the images they hold and match the two by
file name (CVAT's "Upload annotations", Label Studio's converters), so every image keeps its
own name (a stem that two images share gets ``_2``, ``_3`` ...). Under ``out``:

======== ====================================================================================
format   files
======== ====================================================================================
``coco`` ``images/<name>``, ``annotations/instances_default.json`` (boxes; instance masks as
         RLE when the model predicts them; the checkpoint's category ids)
``yolo`` ``images/train/<name>``, ``labels/train/<stem>.txt``, ``data.yaml`` (boxes)
``voc``  ``JPEGImages/<name>``, ``Annotations/<stem>.xml``, ``ImageSets/Main/train.txt``,
         ``classes.txt`` (boxes, whole pixels)
======== ====================================================================================

The files are written by the writers ``tools/convert.py`` uses
(:func:`~detseg.data.coco.write_coco`, :func:`~detseg.data.yolo.write_yolo`,
:func:`~detseg.data.voc.write_voc`), so detseg's readers and ``tools/check_dataset.py`` read the
result back, and boxes are what those formats hold (VOC: whole pixels). Boxes are clipped to the
image and those left without area dropped before any writer sees them, as every reader would
drop them. The YOLO and VOC writers number their files; they are renamed to the images' names
afterwards. Images without a detection above the score threshold are written too, without
objects: a labeller still has to look at them.

Example:
    >>> dataset = PredictionDataset.for_predictor(predictor, min_score=0.5)  # doctest: +SKIP
    >>> for path in paths:
    ...     dataset.add(path, predictor(path)[0])
    >>> dataset.write("yolo", "pre_annotations/yolo")          # -> its data.yaml
"""

from __future__ import annotations

import copy
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.coco import write_coco
from ..data.sample import Sample, read_image, sanitize_boxes
from ..data.voc import write_voc
from ..data.yolo import write_yolo
from .predictor import Result

FORMATS = ("coco", "yolo", "voc")
#: the split the YOLO and VOC files are written as (the readers' and checker's default)
SPLIT = "train"
#: CVAT's name for a COCO json of a task's one subset
COCO_FILE = "annotations/instances_default.json"
#: written into every dataset folder this module makes; only such a folder is ever replaced
MARKER = ".detseg-predictions"


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """Each path's stem, with ``_2``, ``_3`` ... added to a stem an earlier path already has."""
    seen: dict[str, int] = {}
    taken: set[str] = set()
    stems = []
    for path in paths:
        stem = path.stem
        while stem in taken:
            seen[path.stem] = seen.get(path.stem, 1) + 1
            stem = f"{path.stem}_{seen[path.stem]}"
        taken.add(stem)
        stems.append(stem)
    return stems


def _rename_all(pairs: Sequence[tuple[Path, Path]]) -> None:
    """Rename every ``src -> dst``; safe when a ``dst`` is another pair's ``src`` (two passes)."""
    staged = []
    for i, (src, dst) in enumerate(pairs):
        tmp = src.with_name(f".renaming-{i}{src.suffix}")
        src.rename(tmp)
        staged.append((tmp, dst))
    for tmp, dst in staged:
        tmp.rename(dst)


class PredictionDataset:
    """Detections over image files, gathered one image at a time, then written as a dataset.

    It is a dataset itself (``class_names``, ``category_ids``, ``__len__``, ``load(i) -> Sample``
    with the image read again from its file), which is what the writers take. Masks are kept
    bit-packed (1 bit a pixel) until written.

    Args:
        class_names: names by label (the checkpoint's).
        category_ids: the dataset's category id of each label (COCO keeps them); ``None``: ``1..K``.
        min_score: detections below it are left out.
    """

    def __init__(self, class_names: Sequence[str], category_ids: Sequence[int] | None = None, *,
                 min_score: float = 0.5) -> None:
        self.class_names = tuple(class_names)
        self.category_ids = list(category_ids) if category_ids is not None else list(range(1, len(class_names) + 1))
        self.min_score = min_score
        self.files: list[Path] = []
        self._detections: list[tuple[np.ndarray, np.ndarray, tuple | None]] = []

    @classmethod
    def for_predictor(cls, predictor, min_score: float) -> "PredictionDataset":
        """An empty dataset with ``predictor``'s classes and category ids.

        Raises:
            ValueError: a segmenter (its label maps are a mask-folder dataset already), or a
                ``min_score`` below the predictor's own threshold (those detections never arrive).
        """
        if predictor.model.task != "detection":
            raise ValueError("predictions are written as a dataset for detectors only; a segmenter's label maps "
                             "(masks/<name>.png) with the source images are a mask-folder dataset already")
        if min_score < predictor.score_thresh:
            raise ValueError(f"a dataset score threshold of {min_score:g} is below the predictor's "
                             f"{predictor.score_thresh:g} (--score), whose lower detections are dropped first; "
                             "lower --score too")
        return cls(predictor.class_names, predictor.category_ids, min_score=min_score)

    def add(self, file_name: str | Path, result: Result) -> None:
        """Keep ``result``'s detections at or above ``min_score`` for the image file ``file_name``.

        Boxes are clipped to the image and those left without area dropped (with their masks), as
        every reader would drop them: the three formats then hold the same objects.
        """
        keep = result.scores >= self.min_score
        kept = sanitize_boxes(Sample(result.image, result.boxes[keep], result.labels[keep],
                                     masks=None if result.masks is None else result.masks[keep]))
        masks = None
        if kept.masks is not None:
            masks = (np.packbits(kept.masks.reshape(len(kept.masks), -1), axis=1), kept.masks.shape)
        self.files.append(Path(file_name))
        self._detections.append((kept.boxes, kept.labels, masks))

    @property
    def num_objects(self) -> int:
        return sum(len(labels) for _, labels, _ in self._detections)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> Sample:
        """Image ``index`` (read from its file) with its kept detections as annotations."""
        boxes, labels, packed = self._detections[index]
        masks = None
        if packed is not None:
            bits, shape = packed
            masks = np.unpackbits(bits, axis=1, count=int(np.prod(shape[1:]))).reshape(shape).astype(bool)
        return Sample(read_image(self.files[index]), boxes, labels, masks=masks, image_id=index + 1,
                      file_name=str(self.files[index]))

    def write(self, format: str, out: str | Path) -> Path:
        """Write the dataset as ``format`` under ``out`` (replacing a folder this module wrote before).

        Returns:
            What names the dataset: the COCO json, the YOLO data yaml, or the VOC root.

        Raises:
            FileExistsError: ``out`` holds files this module did not write.
            ValueError: an unknown format.
        """
        if format not in FORMATS:
            raise ValueError(f"unknown dataset format {format!r}; choose one of {', '.join(FORMATS)}")
        out = Path(out)
        if out.exists() and any(out.iterdir()):
            if not (out / MARKER).is_file():
                raise FileExistsError(f"{out} exists and was not written by detseg's predictions; "
                                      "choose another output folder")
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text(json.dumps({"format": format, "images": len(self), "objects": self.num_objects,
                                              "min_score": self.min_score}) + "\n")
        stems = unique_stems(self.files)
        if format == "coco":
            return self._write_coco(out, stems)
        if format == "yolo":
            yaml_path = write_yolo(self, out, SPLIT)
            images, labels = out / "images" / SPLIT, out / "labels" / SPLIT
            written = [next(images.glob(f"{i:06d}.*")) for i in range(len(stems))]  # 000000.jpg / .png ...
            _rename_all([(path, images / f"{stem}{path.suffix}") for path, stem in zip(written, stems)])
            _rename_all([(labels / f"{i:06d}.txt", labels / f"{stem}.txt") for i, stem in enumerate(stems)])
            return yaml_path
        write_voc(self, out, SPLIT)
        self._rename_voc(out, stems)
        (out / "classes.txt").write_text("".join(f"{name}\n" for name in self.class_names), encoding="utf-8")
        return out

    def _write_coco(self, out: Path, stems: list[str]) -> Path:
        """Copy the images (byte for byte, own names) and write the json referring to them."""
        image_dir = out / "images"
        image_dir.mkdir()
        copies = []
        for path, stem in zip(self.files, stems):
            copies.append(image_dir / f"{stem}{path.suffix}")
            shutil.copyfile(path, copies[-1])
        view = copy.copy(self)
        view.files = copies
        return write_coco(view, out / COCO_FILE, image_root=image_dir)

    def _rename_voc(self, root: Path, stems: list[str]) -> None:
        """The writer's ``train_000000`` files -> the images' stems, in the XML and the split file too."""
        ids = (root / "ImageSets" / "Main" / f"{SPLIT}.txt").read_text().split()
        images, xmls = root / "JPEGImages", root / "Annotations"
        image_pairs, xml_pairs = [], []
        for image_id, stem in zip(ids, stems):
            tree = ET.parse(xmls / f"{image_id}.xml")
            written = images / tree.find("filename").text
            image_pairs.append((written, images / f"{stem}{written.suffix}"))
            tree.find("filename").text = f"{stem}{written.suffix}"
            tree.write(xmls / f"{image_id}.xml", encoding="utf-8")
            xml_pairs.append((xmls / f"{image_id}.xml", xmls / f"{stem}.xml"))
        _rename_all(image_pairs)
        _rename_all(xml_pairs)
        (root / "ImageSets" / "Main" / f"{SPLIT}.txt").write_text("".join(f"{stem}\n" for stem in stems))

    def summary(self, format: str, path: Path) -> str:
        """One line for the console: what was written, and the command that checks it."""
        check = f"python tools/check_dataset.py {path}"
        if format == "voc":
            check += f" --class-names {path / 'classes.txt'}"
        return (f"dataset ({format}): {path}: {len(self)} images, {self.num_objects} objects at score >= "
                f"{self.min_score:g}; check it with: {check}")
