"""Export to ONNX and TorchScript, checked against PyTorch, and exported ONNX files run back.

A model is exportable when it has ``export_outputs(images)``. Every graph takes ``images``:
float32 ``[N, 3, H, W]`` RGB in ``[0, 1]`` (normalisation is inside) and returns, by family:

* single-shot detector (YOLO): ``predictions`` Tensor[N, A, 4 + K]: xyxy boxes in input
  pixels, then per-class probabilities, for every anchor point A, before threshold and NMS
  (:func:`detseg.yolo.model.postprocess` finishes it, as Ultralytics and MMDeploy leave NMS out of
  the graph by default); dynamic batch and size;
* segmenters: ``logits`` Tensor[N, K + 1, H, W] at the input size (``argmax(1)`` is the label
  map, 0 background); dynamic batch and size (padding to the network's stride is in the graph);
* two-stage detectors (Faster / Mask R-CNN): **one image** ``[1, 3, H, W]`` of any size ->
  ``boxes`` Tensor[M, 4] xyxy input pixels, ``scores`` Tensor[M], ``labels`` Tensor[M] int64
  (0-based) and, for Mask R-CNN, ``masks`` Tensor[M, 28, 28] probabilities of each box's class
  (paste them with ``torchvision.models.detection.roi_heads.paste_masks_in_image``). The whole
  of ``predict`` is in the graph: RPN top-k, NMS, RoIAlign, score threshold, class-wise NMS, the
  top detections; M is data-dependent, 0 included. One image per run: proposals and detections
  are per image, and a batch would have to pad them to a common count.

The file is written by the current exporter (``torch.export``, ``dynamo=True``) with symbolic
image sizes; where that fails, by the TorchScript-based one (``dynamo=False``), and
:class:`Exported` says which and why. Its metadata (ONNX ``metadata_props``, TorchScript
``metadata.json``) carries what inference needs besides the graph: see :func:`export_metadata`.

:class:`OnnxModel` runs such a file with onnxruntime behind the interface of the model it came
from (``task``, ``predict(images, image_sizes)``, ``logits``), so
:class:`~detseg.inference.Predictor` and ``tools/infer.py`` apply the same pre- and
post-processing as with a checkpoint.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..structures.instances import DEFAULT_SCORE_THRESH, Detections
from ..structures.normalize import IMAGENET_MEAN

class ExportError(ValueError):
    """The model cannot be exported, or the exported file does not reproduce PyTorch."""


def graph_kind(model) -> Literal["two_stage", "segmenter", "single_shot"]:
    """Which output contract a model's exported graph has (see the module docstring)."""
    if getattr(model, "export_batch_size", None) == 1:
        return "two_stage"
    return "segmenter" if model.task == "segmentation" else "single_shot"


class _Graph(nn.Module):
    """The exported function: float images in [0, 1] -> ``model.export_outputs``.

    Segmenters are padded here to a multiple of their stride with the mean colour (zero once
    normalised, the padding the model applies itself) and cropped back: their own padding is a
    Python branch, which ``torch.export`` would freeze at the example's size.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.pad_to = getattr(model, "size_divisibility", 1) if graph_kind(model) == "segmenter" else 1
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor):
        if self.pad_to == 1:
            return self.model.export_outputs(images)
        h, w = images.shape[-2:]
        d = self.pad_to
        x = F.pad(images - self.mean, (0, (-w) % d, 0, (-h) % d)) + self.mean
        return self.model.export_outputs(x)[..., :h, :w]


def _outputs(x) -> list[Tensor]:
    return list(x) if isinstance(x, (tuple, list)) else [x]


def output_names(model) -> list[str]:
    """Names of the graph's outputs, in order."""
    kind = graph_kind(model)
    if kind == "two_stage":
        return list(model.export_output_names)
    return ["logits"] if kind == "segmenter" else ["predictions"]


def min_side(model) -> int:
    """Smallest image side the exported graph takes: its coarsest feature map must be at least 2
    cells (``torch.export`` specialises sizes of 1, so they cannot stay symbolic)."""
    kind = graph_kind(model)
    if kind == "two_stage":
        specs = model.neck.feature_specs if model.neck is not None else model.backbone.feature_specs
        return max(specs[k].stride for k in model.rpn_features) + 1
    if kind == "single_shot":
        return max(model.head.strides) + 1
    return getattr(model, "size_divisibility", 32) + 1


@dataclass
class Exported:
    """What :func:`export` wrote.

    Attributes:
        path: the file.
        exporter: ``dynamo`` (``torch.export``), ``torchscript`` (the TorchScript-based ONNX
            exporter) or ``trace`` (``torch.jit.trace`` for ``format="torchscript"``).
        note: why the first choice was not used ("" when it was).
    """

    path: Path
    exporter: str
    note: str = ""


def export(model: nn.Module, path: str | Path, *, format: Literal["onnx", "torchscript"] = "onnx",
           image_size: tuple[int, int] = (640, 640), dynamic: bool = True, opset: int | None = None,
           exporter: Literal["auto", "dynamo", "torchscript"] = "auto", metadata: dict | None = None) -> Exported:
    """Write ``model`` as ONNX or TorchScript (CPU, float32, eval mode).

    Args:
        path: output file (``.onnx`` / ``.torchscript``).
        image_size: ``(H, W)`` of the example input, at least :func:`min_side`.
        dynamic: ONNX: batch (except two-stage detectors: 1), height and width are dynamic.
        opset: ONNX opset; ``None``: the exporter's default (18 or later for dynamo, 17 for
            the TorchScript-based exporter).
        exporter: ``auto`` tries ``dynamo`` first and falls back to ``torchscript``.
        metadata: stored with the file (ONNX ``metadata_props``, values JSON-encoded;
            TorchScript ``extra_files`` as ``metadata.json``), e.g. :func:`export_metadata`;
            ``exporter`` is added.

    Raises:
        ExportError: the model has no ``export_outputs``, or no exporter could write it.
    """
    if not hasattr(model, "export_outputs"):
        raise ExportError(f"{type(model).__name__} cannot be exported: it has no export_outputs() (single-shot "
                          "detectors, two-stage detectors and segmenters have one)")
    kind = graph_kind(model)
    smallest = min_side(model)
    if min(image_size) < smallest:
        raise ExportError(f"example image size {image_size} is below the {smallest} px the graph needs "
                          f"(two cells on its coarsest map)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = _Graph(model).cpu().eval()
    batch = 1 if kind == "two_stage" or not dynamic else 2  # torch.export specialises a batch of 1
    example = torch.rand(batch, 3, *image_size, generator=torch.Generator().manual_seed(0))
    names = output_names(model)
    if format == "torchscript":
        if kind == "two_stage":
            raise ExportError("two-stage detectors export to ONNX only: a TorchScript trace freezes the number "
                              "of proposals and detections of the example")
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TorchScript's deprecation notice
            traced = torch.jit.trace(graph, example, check_trace=False)
            meta = _encode({**(metadata or {}), "exporter": "trace"})
            torch.jit.save(traced, str(path), _extra_files={"metadata.json": json.dumps(meta)})
        return Exported(path, "trace")
    if format != "onnx":
        raise ExportError(f"format must be onnx or torchscript, got {format!r}")
    choices = ("dynamo", "torchscript") if exporter == "auto" else (exporter,)
    notes = []
    for name in choices:
        try:
            if name == "dynamo":
                _export_dynamo(graph, example, path, names, dynamic, smallest, opset, kind)
            else:
                _export_torchscript(graph, example, path, names, dynamic, opset or 17, kind)
        except Exception as exc:  # noqa: BLE001 - any exporter failure means: try the next one, say why
            notes.append(f"{name} exporter failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
            continue
        _write_onnx_metadata(path, {**(metadata or {}), "exporter": name})
        return Exported(path, name, "; ".join(notes))
    raise ExportError(f"{type(model).__name__} could not be exported to ONNX: " + "; ".join(notes))


def _export_dynamo(graph, example, path, names, dynamic, smallest, opset, kind) -> None:
    """``torch.export`` (non-strict) with symbolic sizes, then ONNX. Exporting the program
    directly, rather than letting ``torch.onnx.export`` retry in strict mode, keeps a failure
    visible instead of a graph silently fixed to the example's size."""
    shapes = None
    if dynamic:
        dims = {2: torch.export.Dim("height", min=smallest, max=8192),
                3: torch.export.Dim("width", min=smallest, max=8192)}
        if kind != "two_stage":
            dims[0] = torch.export.Dim("batch", min=1, max=1024)
        shapes = {"images": dims}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.export.export(graph, (example,), dynamic_shapes=shapes, strict=False)
        onnx_program = torch.onnx.export(program, (example,), input_names=["images"], output_names=names,
                                         opset_version=opset, dynamo=True, verbose=False)
    onnx_program.save(str(path))


def _export_torchscript(graph, example, path, names, dynamic, opset, kind) -> None:
    """The TorchScript-based exporter (``dynamo=False``): traces one run, so data-dependent
    counts may be frozen; the comparison with PyTorch at other sizes is what catches that."""
    axes = None
    if dynamic:
        axes = {"images": {2: "height", 3: "width"} if kind == "two_stage" else {0: "batch", 2: "height", 3: "width"}}
        axes.update({n: {0: "count" if kind == "two_stage" else "batch"} for n in names})
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # its deprecation notice
        torch.onnx.export(graph, (example,), str(path), input_names=["images"], output_names=names,
                          dynamic_axes=axes, opset_version=opset, dynamo=False)


def _encode(meta: dict) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


def _write_onnx_metadata(path: Path, meta: dict) -> None:
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for k, v in _encode(meta).items():
        proto.metadata_props.add(key=k, value=v)
    onnx.save(proto, str(path))


def read_metadata(path: str | Path) -> dict:
    """An exported file's metadata, JSON values decoded (``{}`` when it has none)."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        raw = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    else:
        files = {"metadata.json": ""}
        torch.jit.load(str(path), _extra_files=files)
        raw = json.loads(files["metadata.json"] or "{}")
    return _decode(raw)


def _decode(raw: dict[str, str]) -> dict:
    out = {}
    for k, v in raw.items():
        try:
            out[k] = json.loads(v)
        except (json.JSONDecodeError, TypeError):
            out[k] = v
    return out


def export_metadata(model: nn.Module, class_names: Sequence[str], resize, *, category_ids: Sequence[int] | None = None,
                    score_thresh: float = DEFAULT_SCORE_THRESH) -> dict:
    """What inference needs next to the graph, so an exported file runs like its checkpoint.

    Args:
        model: the exported model (its family's post-processing settings are recorded).
        class_names: names by label.
        resize: the checkpoint's evaluation resize (``AugmentConfig``: ``image_size``,
            ``resize`` mode, ``pad_value``).
        category_ids: the dataset's category id of each label (COCO results); ``None``: ``1..K``.
        score_thresh: the default display/filter threshold of :class:`~detseg.inference.Predictor`
            (its ``score_thresh``), stored under the key ``score_threshold``, the spelling of files
            already written.

    Returns:
        ``class_names``, ``category_ids``, ``task``, ``arch`` (the graph kind), ``image_size``,
        ``resize``, ``pad_value``, ``score_threshold``, ``outputs``, ``batch`` (``dynamic`` or
        1), ``min_side``, ``input``, and the kind's post-processing: YOLO ``postprocess``
        (``score_thresh``, ``nms_iou``, ``pre_nms_top_n``, ``max_det``: what
        :func:`detseg.yolo.model.postprocess` takes), Mask R-CNN ``mask_thresh``.
    """
    kind = graph_kind(model)
    ids = category_ids if category_ids is not None else range(1, len(class_names) + 1)
    meta = {
        "class_names": list(class_names), "category_ids": [int(c) for c in ids],
        "task": model.task, "arch": kind, "image_size": int(resize.image_size), "resize": resize.resize,
        "pad_value": int(resize.pad_value), "score_threshold": float(score_thresh),
        "outputs": output_names(model), "batch": 1 if kind == "two_stage" else "dynamic", "min_side": min_side(model),
        "input": "images: float32 [N, 3, H, W] RGB in [0, 1]",
    }
    if kind == "single_shot":
        head = model.head
        meta["postprocess"] = {"score_thresh": head.score_thresh, "nms_iou": head.nms_iou,
                               "pre_nms_top_n": head.pre_nms_top_n, "max_det": head.max_det}
    if getattr(model, "with_masks", False):
        meta["mask_thresh"] = float(model.mask_branch.mask_thresh)
    return meta


# ---- checking -------------------------------------------------------------------------------
@dataclass
class CheckResult:
    """How close the exported file came to PyTorch.

    Attributes:
        max_difference: dense outputs: the largest absolute difference relative to the output's
            scale; detections: the largest score difference of matched detections.
        max_box_difference: detections: the largest box-coordinate difference in pixels.
        detections: detections compared (two-stage detectors), summed over the images.
    """

    max_difference: float
    max_box_difference: float | None = None
    detections: int | None = None

    def __str__(self) -> str:
        if self.detections is None:
            return f"max relative difference {self.max_difference:.1e}"
        return (f"{self.detections} detections matched, boxes within {self.max_box_difference:.1e} px, "
                f"scores within {self.max_difference:.1e}")


def match_detections(expected: Sequence[Tensor], got: Sequence[Tensor], *, box_tol: float = 1.0,
                     score_tol: float = 1e-3, score_floor: float = 0.0, max_count: int | None = None,
                     ) -> tuple[int, float, float]:
    """Pair two sets of detections of one image (``boxes, scores, labels[, masks]``), order aside.

    Each detection must have a partner of the same label, with every box coordinate within
    ``box_tol`` pixels and a score within ``score_tol`` (masks: probabilities within
    ``10 * score_tol``). Near-equal scores may come out in another order, so detections are
    matched, not compared by position. Only a detection at a cut may lack a partner, its score
    within ``score_tol`` of ``score_floor`` (the score threshold) or, for a list cut at
    ``max_count``, of its lowest score: the other runtime's rounding put it on the other side.

    Returns:
        ``(matched, worst box difference px, worst score difference)``.

    Raises:
        ExportError: a detection without a partner, or different mask probabilities.
    """
    e_boxes, e_scores, e_labels = (t.detach().float().cpu() for t in expected[:3])
    g_boxes, g_scores, g_labels = (torch.as_tensor(np.asarray(t)).float() for t in got[:3])
    floor = score_floor
    for scores in (e_scores, g_scores):
        if max_count is not None and len(scores) >= max_count:
            floor = max(floor, float(scores.min()))
    used = torch.zeros(len(g_boxes), dtype=torch.bool)
    worst_box = worst_score = 0.0
    matched = 0
    masks = None
    if len(expected) > 3:
        masks = expected[3].detach().float().cpu(), torch.as_tensor(np.asarray(got[3])).float()
    for i in torch.argsort(e_scores, descending=True).tolist():
        diff = (g_boxes - e_boxes[i]).abs().amax(1) if len(g_boxes) else g_scores
        ok = ~used & (g_labels == e_labels[i]) & (diff <= box_tol) & ((g_scores - e_scores[i]).abs() <= score_tol)
        if not bool(ok.any()):
            if float(e_scores[i]) <= floor + score_tol:
                continue
            raise ExportError(f"detection {e_boxes[i].tolist()} (label {int(e_labels[i])}, score "
                              f"{float(e_scores[i]):.4f}) of PyTorch has no match in the exported file's "
                              f"{len(g_boxes)} detections")
        j = int(torch.nonzero(ok)[torch.argmin((g_scores[ok] - e_scores[i]).abs())])
        used[j] = True
        matched += 1
        worst_box = max(worst_box, float(diff[j]))
        worst_score = max(worst_score, float((g_scores[j] - e_scores[i]).abs()))
        if masks is not None:
            mask_diff = float((masks[0][i] - masks[1][j]).abs().max())
            if mask_diff > 10 * score_tol:
                raise ExportError(f"mask probabilities of detection {i} differ from PyTorch by {mask_diff:.2e}")
    extra = ~used & (g_scores > floor + score_tol)
    if bool(extra.any()):
        j = int(torch.nonzero(extra)[0])
        raise ExportError(f"the exported file finds {g_boxes[j].tolist()} (label {int(g_labels[j])}, score "
                          f"{float(g_scores[j]):.4f}), which PyTorch does not")
    return matched, worst_box, worst_score


def check_export(model: nn.Module, path: str | Path, images: Tensor | Sequence[Tensor], *, atol: float = 1e-3,
                 box_tol: float = 1.0) -> CheckResult:
    """Run the exported file (onnxruntime / TorchScript) and PyTorch on ``images``; how close they are.

    Args:
        images: a batch Tensor[N, 3, H, W] float in [0, 1], or a list of single images
            Tensor[1, 3, H, W] of different sizes (two-stage detectors take one image at a time).
        atol: dense outputs: largest difference relative to the output's scale; detections:
            largest score difference.
        box_tol: detections: largest box-coordinate difference in pixels.

    Raises:
        ExportError: outputs differ by more than the tolerances, in shape, or in detections.
        ImportError: ``onnxruntime`` is needed for ``.onnx`` files.
    """
    path = Path(path)
    batches = list(images) if isinstance(images, (list, tuple)) else [images]
    if graph_kind(model) == "two_stage":
        batches = [b[i: i + 1] for b in batches for i in range(len(b))]
    run = _runner(path)
    graph = _Graph(model).cpu().eval()
    worst, worst_box, count = 0.0, 0.0, 0
    for x in batches:
        with torch.no_grad():
            expected = _outputs(graph(x.cpu().float()))
        try:
            got = run(x.cpu().float())
        except Exception as exc:  # noqa: BLE001 - onnxruntime/TorchScript raise their own types
            raise ExportError(f"{path} fails on an input of shape {list(x.shape)}: "
                              f"{' '.join(str(exc).split())[:300]}") from exc
        if graph_kind(model) == "two_stage":
            n, box, score = match_detections(expected, got, box_tol=box_tol, score_tol=atol,
                                             score_floor=model.roi_heads.score_thresh,
                                             max_count=model.roi_heads.detections_per_img)
            count, worst_box, worst = count + n, max(worst_box, box), max(worst, score)
            continue
        for i, (e, g) in enumerate(zip(expected, got)):
            e = e.float().numpy()
            if e.shape != g.shape:
                raise ExportError(f"{path}: output {i} has shape {g.shape}, PyTorch gives {e.shape}")
            worst = max(worst, float(np.abs(e - g).max()) / max(1.0, float(np.abs(e).max())))
        if worst > atol:
            raise ExportError(f"{path}: outputs differ from PyTorch by {worst:.2e} (relative), more than {atol}")
    if graph_kind(model) == "two_stage":
        return CheckResult(worst, worst_box, count)
    return CheckResult(worst)


def check_images(model: nn.Module, size: int) -> list[Tensor]:
    """Images to compare an exported file with PyTorch on, float in [0, 1].

    Two-stage detectors: synthetic shapes scenes (objects a detector finds) at ``size`` and at
    an odd size (no multiple of 32: the size must stay symbolic and the padding be in the
    graph), and a blank grey image (few or no detections). Segmenters and YOLO's dense outputs:
    random images, a batch of two and one at the odd size.
    """
    from ..data.synthetic import ShapesConfig, generate_sample

    odd = (max(min_side(model), size * 3 // 4 + 5), size + 7)
    if graph_kind(model) != "two_stage":
        g = torch.Generator().manual_seed(1)
        return [torch.rand(2, 3, size, size, generator=g), torch.rand(1, 3, *odd, generator=g)]
    out = []
    for i, (h, w) in enumerate([(size, size), (size, size), odd]):
        image = generate_sample(ShapesConfig(num_images=3, image_size=(h, w), max_objects=4, seed=11), i).image
        out.append(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)
    return out + [torch.full((1, 3, size, size), 0.5)]


def export_checked(model: nn.Module, path: str | Path, *, images: Sequence[Tensor], format: str = "onnx",
                   image_size: tuple[int, int] = (640, 640), exporter: str = "auto",
                   metadata: dict | None = None) -> tuple[Exported, CheckResult]:
    """:func:`export`, then :func:`check_export` on ``images``; a file that fails the check is
    deleted and, with ``exporter="auto"``, the next exporter tried (dynamo, then TorchScript).

    Raises:
        ExportError: no exporter wrote a file that reproduces PyTorch (the reasons, in order).
    """
    path = Path(path)
    choices = ("dynamo", "torchscript") if format == "onnx" and exporter == "auto" else (exporter,)
    notes = []
    for name in choices:
        try:
            written = export(model, path, format=format, image_size=image_size, exporter=name, metadata=metadata)
            result = check_export(model, path, images)
        except ExportError as exc:
            notes.append(f"{name}: {' '.join(str(exc).split())}")
            path.unlink(missing_ok=True)
            continue
        written.note = "; ".join(notes)
        return written, result
    raise ExportError("; ".join(notes))


def _runner(path: Path):
    """``images Tensor -> list of numpy outputs`` for an exported file."""
    if path.suffix == ".onnx":
        session = _session(path, "cpu", threads=None)
        return lambda x: session.run(None, {"images": x.numpy().astype(np.float32)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.load(str(path))

    def run(x):
        with torch.no_grad():
            return [t.float().numpy() for t in _outputs(traced(x))]
    return run


# ---- running exported files -----------------------------------------------------------------
def _session(path: Path, device: str, threads: int | None):
    """An onnxruntime session with every graph optimisation, on ``threads`` intra-op threads
    (default: torch's, so both runtimes get the same share of the machine)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or torch.get_num_threads()
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), options, providers=providers)


class OnnxModel:
    """An exported ONNX file behind the interface of the model it came from.

    ``predict(images, image_sizes)`` returns what the PyTorch model's ``predict`` does (a list of
    :class:`~detseg.structures.Detections` in the input frame, or label maps), by running the
    graph with onnxruntime and applying the post-processing that stayed outside it, with the
    settings stored in the file: YOLO's threshold and NMS (:func:`detseg.yolo.model.postprocess`),
    Mask R-CNN's mask pasting. Two-stage graphs run one image at a time, each cropped to its
    true size.

    Args:
        path: a ``.onnx`` file written by :func:`export` (its metadata is required).
        device: ``cpu``, or ``cuda`` when onnxruntime has the CUDA provider.
        threads: onnxruntime intra-op threads (default: ``torch.get_num_threads()``).

    Raises:
        ValueError: the file has no detseg metadata.
    """

    def __init__(self, path: str | Path, *, device: str = "cpu", threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path} not found")
        try:
            self.session = _session(self.path, device, threads)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for unreadable files
            raise ValueError(f"{self.path}: onnxruntime cannot load it: {exc}") from exc
        self.metadata = _decode(self.session.get_modelmeta().custom_metadata_map)
        missing = [k for k in ("class_names", "task", "arch", "image_size", "resize") if k not in self.metadata]
        if missing:
            raise ValueError(f"{self.path} has no detseg metadata ({', '.join(missing)} missing); "
                             "export it with tools/export.py")
        self.task = self.metadata["task"]
        self.kind = self.metadata["arch"]
        self.num_classes = len(self.metadata["class_names"])
        self.with_masks = "masks" in self.metadata.get("outputs", [])
        self.min_side = int(self.metadata.get("min_side", 1))

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, {self.kind})"

    def run(self, images: Tensor) -> list[np.ndarray]:
        """The graph's raw outputs for Tensor[N, 3, H, W] uint8 or float in [0, 1]."""
        x = images.cpu()
        x = (x.float() / 255 if x.dtype == torch.uint8 else x.float()).numpy()
        return self.session.run(None, {"images": x})

    def _padded(self, images: Tensor) -> Tensor:
        """Images below the graph's smallest side, padded to it at the bottom/right with the mean colour."""
        h, w = images.shape[-2:]
        if h >= self.min_side and w >= self.min_side:
            return images
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        return F.pad(x.cpu() - mean, (0, max(0, self.min_side - w), 0, max(0, self.min_side - h))) + mean

    def logits(self, images: Tensor) -> Tensor:
        """Segmenters: Tensor[N, K + 1, H, W] float logits."""
        h, w = images.shape[-2:]
        return torch.from_numpy(self.run(self._padded(images))[0])[..., :h, :w]

    def predict(self, images: Tensor, image_sizes: Sequence[tuple[int, int]] | None = None):
        """What the exported model's ``predict`` returns, for a padded batch Tensor[N, 3, Hp, Wp]."""
        if image_sizes is None:
            image_sizes = [tuple(images.shape[-2:])] * len(images)
        if self.kind == "segmenter":
            return self.logits(images).argmax(1)
        if self.kind == "single_shot":
            from ..yolo.model import postprocess

            out = torch.from_numpy(self.run(self._padded(images))[0])
            settings = self.metadata["postprocess"]
            return [postprocess(o[:, 4:], o[:, :4], tuple(size), **settings) for o, size in zip(out, image_sizes)]
        return [self._predict_one(images[i: i + 1, :, : int(h), : int(w)]) for i, (h, w) in enumerate(image_sizes)]

    def _predict_one(self, image: Tensor) -> Detections:
        h, w = image.shape[-2:]
        padded = self._padded(image)
        outs = [torch.from_numpy(o) for o in self.run(padded)]
        boxes, scores, labels = outs[0], outs[1], outs[2].long()
        if padded is not image:  # padded up to min_side: clip to the true size
            boxes = torch.stack([boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h),
                                 boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)], 1)
        if not self.with_masks:
            return Detections(boxes, scores, labels)
        if len(boxes):
            from torchvision.models.detection.roi_heads import paste_masks_in_image

            masks = paste_masks_in_image(outs[3][:, None], boxes, (h, w))[:, 0] > self.metadata.get("mask_thresh", 0.5)
        else:
            masks = torch.zeros((0, h, w), dtype=torch.bool)
        return Detections(boxes, scores, labels, masks=masks)



__all__ = ["CheckResult", "ExportError", "Exported", "OnnxModel", "check_export",
           "check_images", "export", "export_checked", "export_metadata", "graph_kind", "match_detections", "min_side",
           "output_names", "read_metadata"]
