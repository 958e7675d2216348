"""Inference for people: load a checkpoint in one call, predict on arrays, files or tiles.

Example:
    >>> predictor = Predictor.from_checkpoint("runs/yolo_shapes/best.pt")
    >>> result = predictor("street.jpg")[0]
    >>> result.names, result.scores                # ["car", "person"], array([0.91, 0.77])
    >>> cv2.imwrite("out.jpg", result.plot()[..., ::-1])

Predictions come back in the coordinates of the original image: the predictor applies the
checkpoint's evaluation resize (``data.augment``), runs the model, and maps boxes, masks and
label maps back through that resize's exact inverse (:class:`~detseg.data.geometry.Resize`:
``nearest-exact`` sampling at pixel centres, as the forward resize does; plain ``nearest``
shifts maps by up to half a pixel).

COCO results use the dataset's own category ids: a checkpoint's ``category_ids`` table (COCO
ids are not contiguous: coco128's label 11 "stop sign" is id 13), or ``1..K`` for checkpoints
written before that table existed.

An ONNX file written by ``tools/export.py`` loads the same way (``from_checkpoint("model.onnx")``)
and runs with onnxruntime (:class:`~detseg.inference.export.OnnxModel`): the resize, class
names, category ids and thresholds come from the file's metadata, and the same pre- and
post-processing apply, so results match the checkpoint's.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torchvision.ops import batched_nms

from ..checkpoint_io import load_checkpoint
from ..config.io import from_dict
from ..config.schema import AugmentConfig, ExperimentConfig
from ..data.collate import collate
from ..data.sample import Sample, read_image
from ..data.geometry import Resize
from ..data.transforms import build_transforms
from ..models import build_model
from ..segmentation.sliding import predict_sliding
from ..structures.instances import DEFAULT_SCORE_THRESH, Detections
from ..utils.device import resolve_device
from ..utils.visualize import draw_detections, overlay_semantic
from .export import OnnxModel

logger = logging.getLogger(__name__)


@torch.no_grad()
def fuse_conv_bn(model: torch.nn.Module) -> int:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d in an ``nn.Sequential`` into
    that convolution (inference only); returns how many were folded.

    ``y = gamma * (conv(x) - mean) / sqrt(var + eps) + beta`` is one convolution with scaled
    weights and a bias, so the normalisation pass over every activation disappears: YOLO nano has
    57 of them, 10-25% of its CPU time in PyTorch eager (Ultralytics' predictor folds them the
    same way). Only pairs inside a Sequential are folded (YOLO's conv blocks, ResNet's downsample
    branches): there the BatchNorm is certainly applied to that convolution's output alone, and
    replacing it by ``nn.Identity`` leaves no other reference running it.
    """
    folded = 0
    for seq in [m for m in model.modules() if isinstance(m, torch.nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if not (type(conv) is torch.nn.Conv2d and type(bn) is torch.nn.BatchNorm2d and not bn.training
                    and bn.track_running_stats and conv.out_channels == bn.num_features):
                continue
            scale = bn.running_var.add(bn.eps).rsqrt()
            if bn.affine:
                scale = scale * bn.weight
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            shift = (bias - bn.running_mean) * scale + (bn.bias if bn.affine else 0.0)
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            conv.bias = torch.nn.Parameter(shift)
            seq[i + 1] = torch.nn.Identity()
            folded += 1
    return folded


@dataclass
class Result:
    """Predictions for one image, in its own pixel coordinates (numpy arrays).

    Attributes:
        image: ``[H, W, 3]`` uint8 RGB (the input).
        boxes: ``[M, 4]`` float32 xyxy; scores ``[M]``; labels ``[M]`` 0-based; masks
            ``[M, H, W]`` bool or None (detectors); semantic ``[H, W]`` int64 label map or None
            (segmenters: 0 background, k + 1 class k).
        class_names: names by label.
        source: where the image came from (path, or ``video.mp4#frame``).
        category_ids: the dataset's category id of each label (COCO results), or None (``1..K``).
    """

    image: np.ndarray
    class_names: tuple[str, ...]
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    masks: np.ndarray | None = None
    semantic: np.ndarray | None = None
    source: str = ""
    category_ids: tuple[int, ...] | None = None

    @property
    def names(self) -> list[str]:
        """Class name of each detection."""
        return [self.class_names[int(k)] for k in self.labels]

    @property
    def areas(self) -> dict[str, int]:
        """Segmenters: pixels of each class present in the label map, by class name (no background)."""
        if self.semantic is None:
            return {}
        values, counts = np.unique(self.semantic, return_counts=True)
        return {self.class_names[int(v) - 1]: int(n) for v, n in zip(values, counts) if 0 < v <= len(self.class_names)}

    def plot(self, score_thresh: float = 0.0) -> np.ndarray:
        """The image with boxes, names, scores and masks (or the label map and its key) drawn, RGB."""
        out = self.image if self.semantic is None else overlay_semantic(self.image, self.semantic,
                                                                         class_names=self.class_names)
        return draw_detections(out, self.boxes, self.labels, self.scores, self.masks,
                               class_names=self.class_names, score_thresh=score_thresh)

    def to_coco(self, image_id: int, category_ids: Sequence[int] | None = None) -> list[dict]:
        """COCO results entries: ``bbox`` as xywh, ``category_id`` = ``category_ids[label]``.

        ``category_ids`` defaults to the result's own table (the checkpoint's), else ``1..K``.
        """
        table = category_ids if category_ids is not None else self.category_ids
        entries = []
        for box, score, label in zip(self.boxes.tolist(), self.scores.tolist(), self.labels.tolist()):
            cat = table[label] if table is not None else label + 1
            entries.append({"image_id": image_id, "category_id": int(cat), "score": round(score, 5),
                            "bbox": [round(box[0], 2), round(box[1], 2), round(box[2] - box[0], 2), round(box[3] - box[1], 2)]})
        return entries

    def to_dict(self) -> dict:
        """JSON-friendly summary: the source, and one entry per detection (name, score, xyxy box).

        Segmenters instead give the image size and ``areas`` (pixels per class name, see :attr:`areas`).
        """
        if self.semantic is not None:
            h, w = self.semantic.shape
            return {"source": self.source, "height": h, "width": w, "areas": self.areas}
        return {"source": self.source, "detections": [
            {"label": int(k), "name": n, "score": round(float(s), 5), "box": [round(float(v), 2) for v in b]}
            for k, n, s, b in zip(self.labels, self.names, self.scores, self.boxes)]}


class Predictor:
    """A model plus its preprocessing, callable on images; one lock per predictor, so threads may share it.

    Args:
        model: a detection or segmentation model (``predict(images, image_sizes)``), or an
            :class:`~detseg.inference.export.OnnxModel`.
        class_names: names by label.
        resize: the evaluation resize the model was validated with (``data.augment``).
        device: ``auto``, ``cpu``, ``cuda`` ...
        half: run under fp16/bf16 autocast on CUDA.
        score_thresh: drop detections below this score.
        classes: keep only these labels (``None``: all; detections only).
        category_ids: the dataset's category id of each label, used by :meth:`Result.to_coco`
            (``None``: ``1..K``).

    Attributes:
        category_ids: ``K`` category ids in label order.
        memory_format: ``torch.channels_last`` for a PyTorch model on the CPU, where oneDNN's
            convolutions are 10-15% faster on NHWC tensors (no layout reorder around each
            convolution; measured on YOLO nano and Faster R-CNN R50-FPN); otherwise contiguous.
    """

    def __init__(self, model: torch.nn.Module, class_names: Sequence[str], resize: AugmentConfig, *,
                 device: str = "auto", half: bool = False, score_thresh: float = DEFAULT_SCORE_THRESH,
                 classes: Sequence[int] | None = None, category_ids: Sequence[int] | None = None) -> None:
        if getattr(model, "task", None) not in ("detection", "segmentation"):
            raise ValueError(f"Predictor needs a detection or segmentation model, got task {getattr(model, 'task', None)!r}")
        self.device = resolve_device(device)
        on_cpu = isinstance(model, torch.nn.Module) and self.device.type == "cpu"
        self.memory_format = torch.channels_last if on_cpu else torch.contiguous_format
        if isinstance(model, torch.nn.Module):
            model = model.to(self.device, memory_format=self.memory_format).eval()
        self.model = model
        self.class_names = tuple(class_names)
        self.category_ids = tuple(int(c) for c in category_ids) if category_ids is not None \
            else tuple(range(1, len(self.class_names) + 1))
        if len(self.category_ids) != len(self.class_names) or len(set(self.category_ids)) != len(self.category_ids):
            raise ValueError(f"need {len(self.class_names)} distinct category ids (one per class), "
                             f"got {list(self.category_ids)}")
        self.resize = resize
        self.transform = build_transforms(resize, train=False)
        self.half = half and self.device.type == "cuda"
        self.score_thresh = score_thresh
        self.classes = None if classes is None else torch.as_tensor(list(classes))
        self._lock = threading.Lock()

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, image_size: int | None = None, **kwargs) -> "Predictor":
        """Build the model a ``tools/train.py`` checkpoint describes and load its (EMA) weights.

        The checkpoint's ``category_ids`` become :attr:`category_ids`; a checkpoint written
        before that entry existed gets ``1..K``, with one warning saying so. Batch norms that
        follow a convolution are folded into it (:func:`fuse_conv_bn`). A ``.onnx`` path is
        loaded with :meth:`from_onnx`.

        Raises:
            ValueError: not a detseg checkpoint, a classifier checkpoint, weights that do not fit
                the model of the saved config, or a checkpoint without class names.
        """
        if Path(path).suffix == ".onnx":
            return cls.from_onnx(path, image_size=image_size, **kwargs)
        state = load_checkpoint(path)
        # the training data and weights files need not exist where the model is deployed
        cfg = from_dict(ExperimentConfig, state["config"], source=f"{path} (saved config)", check_paths=False)
        model = build_model(cfg.model, pretrained=False)
        try:
            model.load_state_dict(state.get("ema") or state["model"])
        except RuntimeError as exc:
            raise ValueError(f"{path}: weights do not fit the model of its own config ({cfg.model.arch}): {exc}") from exc
        names = state.get("class_names") or cfg.model.class_names
        if not names:
            raise ValueError(f"{path} has no class-name table")
        category_ids = state.get("category_ids")
        if category_ids is None:
            logger.warning("%s has no category-id table (written by an older detseg): results use "
                           "category ids 1..%d; for COCO data with gaps in its ids they will be wrong", path, len(names))
        resize = cfg.data.augment if image_size is None else AugmentConfig(**{**vars(cfg.data.augment), "image_size": image_size})
        fuse_conv_bn(model.eval())  # this model is the predictor's own: folding cannot surprise a trainer
        return cls(model, names, resize, category_ids=category_ids, **kwargs)

    @classmethod
    def from_onnx(cls, path: str | Path, *, image_size: int | None = None, device: str = "auto",
                  threads: int | None = None, **kwargs) -> "Predictor":
        """An ONNX file from ``tools/export.py``, run by onnxruntime; settings from its metadata.

        Args:
            image_size: resize images to this instead of the file's training size (the graph
                takes any size).
            device: ``cpu``; ``cuda`` uses onnxruntime's CUDA provider when it has one.
            threads: onnxruntime intra-op threads (default: ``torch.get_num_threads()``).
            **kwargs: as the constructor; ``score_thresh`` defaults to the file's.

        Raises:
            ValueError: the file has no detseg metadata.
        """
        resolved = resolve_device(device)
        model = OnnxModel(path, device=resolved.type, threads=threads)
        meta = model.metadata
        resize = AugmentConfig(image_size=image_size or meta["image_size"], resize=meta["resize"],
                               pad_value=meta.get("pad_value", 114))
        kwargs.setdefault("score_thresh", meta.get("score_threshold", DEFAULT_SCORE_THRESH))
        kwargs.pop("half", None)  # the graph's precision is fixed at export
        return cls(model, meta["class_names"], resize, device=device, category_ids=meta.get("category_ids"), **kwargs)

    def __call__(self, images, batch_size: int = 8) -> list[Result]:
        """Predict on one image or a list: RGB uint8 arrays or paths (read as RGB)."""
        items = images if isinstance(images, (list, tuple)) else [images]
        out: list[Result] = []
        for start in range(0, len(items), batch_size):
            chunk = items[start: start + batch_size]
            arrays = [read_image(x) if isinstance(x, (str, Path)) else x for x in chunk]
            sources = [str(x) if isinstance(x, (str, Path)) else "" for x in chunk]
            out.extend(self.predict_arrays(arrays, sources))
        return out

    @torch.no_grad()
    def predict_arrays(self, arrays: Sequence[np.ndarray], sources: Sequence[str] | None = None) -> list[Result]:
        """One batched forward pass over ``[H, W, 3]`` uint8 RGB arrays (any sizes)."""
        for a in arrays:
            if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
                raise ValueError(f"expected HxWx3 uint8 RGB images, got {a.shape} {a.dtype}")
        samples = [self.transform(Sample(np.ascontiguousarray(a))) for a in arrays]
        batch = collate(samples).to(self.device)
        sizes = batch.image_sizes
        with self._lock, torch.autocast(self.device.type, dtype=torch.float16, enabled=self.half):
            raw = self.model.predict(batch.images.contiguous(memory_format=self.memory_format), image_sizes=sizes)
        sources = sources or [""] * len(arrays)
        resizes = [Resize.from_config(a.shape[:2], self.resize) for a in arrays]
        if self.model.task == "segmentation":
            return [Result(a, self.class_names, semantic=r.maps_back(label_map[None])[0].long().cpu().numpy(),
                           source=s, category_ids=self.category_ids)
                    for label_map, a, r, s in zip(raw, arrays, resizes, sources)]
        results = []
        for det, a, r, s in zip(raw, arrays, resizes, sources):
            det = r.detections_back(self._filter(det))
            results.append(Result(
                a, self.class_names, det.boxes.float().cpu().numpy(), det.scores.float().cpu().numpy(),
                det.labels.cpu().numpy(), None if det.masks is None else det.masks.cpu().numpy(),
                source=s, category_ids=self.category_ids))
        return results

    def _filter(self, det: Detections) -> Detections:
        keep = det.scores >= self.score_thresh
        if self.classes is not None:
            keep &= torch.isin(det.labels, self.classes.to(det.labels.device))
        return det[keep]

    def predict_tiled(self, image: np.ndarray, tile: int | None = None, overlap: float = 0.2,
                      iou: float = 0.5, batch_size: int = 8) -> Result:
        """Sliced inference on a large image at its own resolution.

        Small objects that vanish when a 4000 px photo is shrunk to the model's input size stay
        visible in ``tile``-sized crops (default: the model input size, so tiles are not resized).
        Detectors: detections of the tiles and of the whole image merged with class-wise NMS.
        Segmenters: class probabilities averaged where tiles overlap (sliding window), then arg-max.
        """
        tile = tile or self.resize.image_size
        if self.model.task == "segmentation":
            x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(self.device)
            x = x.contiguous(memory_format=self.memory_format)
            with self._lock, torch.autocast(self.device.type, dtype=torch.float16, enabled=self.half):
                label_map = predict_sliding(self.model, x, tile, overlap, batch_size)[0]
            return Result(image, self.class_names, semantic=label_map.cpu().numpy(), category_ids=self.category_ids)
        h, w = image.shape[:2]
        step = max(1, int(tile * (1 - overlap)))
        ys = sorted({min(y, max(0, h - tile)) for y in range(0, max(1, h - tile + step), step)})
        xs = sorted({min(x, max(0, w - tile)) for x in range(0, max(1, w - tile + step), step)})
        offsets = [(x, y) for y in ys for x in xs]
        crops = [np.ascontiguousarray(image[y: y + tile, x: x + tile]) for x, y in offsets]
        parts = []
        for start in range(0, len(crops), batch_size):
            parts += self.predict_arrays(crops[start: start + batch_size])
        whole = self.predict_arrays([image])[0]  # large objects that no tile holds whole
        boxes = [whole.boxes] + [r.boxes + np.array([x, y, x, y], np.float32) for r, (x, y) in zip(parts, offsets)]
        scores = np.concatenate([whole.scores] + [r.scores for r in parts])
        labels = np.concatenate([whole.labels] + [r.labels for r in parts])
        boxes = np.concatenate(boxes).reshape(-1, 4)
        keep = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(labels), iou).numpy()
        return Result(image, self.class_names, boxes[keep], scores[keep], labels[keep], category_ids=self.category_ids)
