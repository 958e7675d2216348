"""Export to ONNX and TorchScript, checked against PyTorch.

A model is exportable when it has ``export_outputs(images) -> Tensor`` (or a tuple of them): the
network's dense output with no data-dependent control flow, which runtimes handle well.
Post-processing that changes shape with the data (NMS, a variable number of boxes) stays
outside the graph, as Ultralytics and MMDeploy do by default:

* single-shot detector: ``Tensor[N, A, 4 + K]``: xyxy boxes in input pixels, then per-class
  scores, for every anchor point A (apply a score threshold and NMS, e.g.
  ``torchvision.ops.batched_nms``, or :func:`detseg.yolo.postprocess`);
* segmenters: ``Tensor[N, K + 1, H, W]`` logits at the input size (``argmax(1)`` is the label
  map, 0 background).

The exported graph takes ``images``: Tensor[N, 3, H, W] float32 RGB in ``[0, 1]``
(normalisation is inside), with dynamic batch (and, where the model allows, image size).
Two-stage detectors are not exportable this way (their second stage runs on a data-dependent
number of proposals); :func:`export` says so.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
from torch import Tensor, nn


class ExportError(ValueError):
    """The model cannot be exported, or the exported file does not reproduce PyTorch."""


class _Graph(nn.Module):
    """The traced function: float images in [0, 1] -> ``model.export_outputs``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor):
        return self.model.export_outputs(images)


def _outputs(x) -> list[Tensor]:
    return list(x) if isinstance(x, (tuple, list)) else [x]


def export(model: nn.Module, path: str | Path, *, format: Literal["onnx", "torchscript"] = "onnx",
           image_size: tuple[int, int] = (640, 640), batch_size: int = 1, dynamic: bool = True,
           opset: int = 17, metadata: dict | None = None) -> Path:
    """Write ``model`` as ONNX or TorchScript (CPU, float32, eval mode).

    Args:
        path: output file (``.onnx`` / ``.torchscript``).
        image_size: ``(H, W)`` of the example input; multiples of the model's stride.
        dynamic: ONNX: batch, height and width are dynamic axes.
        metadata: stored with the file (ONNX ``metadata_props``, TorchScript ``extra_files``
            as ``metadata.json``), e.g. class names and the training image size.

    Raises:
        ExportError: the model has no ``export_outputs``.
    """
    if not hasattr(model, "export_outputs"):
        raise ExportError(f"{type(model).__name__} cannot be exported: only models with export_outputs() can "
                          "(the single-shot detector and the segmenters); two-stage detectors run a "
                          "data-dependent number of proposals")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = _Graph(model).cpu().eval()
    example = torch.rand(batch_size, 3, *image_size, generator=torch.Generator().manual_seed(0))
    names = [f"output{i}" for i in range(len(_outputs(graph(example))))]
    meta = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in (metadata or {}).items()}
    if format == "onnx":
        axes = {"images": {0: "batch", 2: "height", 3: "width"}, **{n: {0: "batch"} for n in names}} if dynamic else None
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notice
            torch.onnx.export(graph, (example,), str(path), input_names=["images"], output_names=names,
                              dynamic_axes=axes, opset_version=opset, dynamo=False)
        if meta:
            import onnx

            proto = onnx.load(str(path))
            for k, v in meta.items():
                proto.metadata_props.add(key=k, value=v)
            onnx.save(proto, str(path))
    elif format == "torchscript":
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TorchScript's deprecation notice
            traced = torch.jit.trace(graph, example, check_trace=False)
            torch.jit.save(traced, str(path), _extra_files={"metadata.json": json.dumps(meta)})
    else:
        raise ExportError(f"format must be onnx or torchscript, got {format!r}")
    return path


def check_export(model: nn.Module, path: str | Path, images: Tensor, *, atol: float = 1e-3) -> float:
    """Run the exported file (onnxruntime / TorchScript) and PyTorch on ``images``; max abs difference.

    Raises:
        ExportError: outputs differ by more than ``atol`` (relative to their scale) or in shape.
        ImportError: ``onnxruntime`` is needed for ``.onnx`` files (``pip install onnxruntime``).
    """
    path = Path(path)
    with torch.no_grad():
        expected = [t.float().numpy() for t in _outputs(_Graph(model).cpu().eval()(images.cpu()))]
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {"images": images.cpu().numpy().astype(np.float32)})
    else:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.load(str(path))
            got = [t.float().numpy() for t in _outputs(traced(images.cpu()))]
    worst = 0.0
    for i, (e, g) in enumerate(zip(expected, got)):
        if e.shape != g.shape:
            raise ExportError(f"{path}: output {i} has shape {g.shape}, PyTorch gives {e.shape}")
        diff = float(np.abs(e - g).max()) / max(1.0, float(np.abs(e).max()))
        worst = max(worst, diff)
    if worst > atol:
        raise ExportError(f"{path}: outputs differ from PyTorch by {worst:.2e} (relative), more than {atol}")
    return worst


def export_metadata(class_names: Sequence[str], image_size: int, task: str) -> dict:
    """What a runtime needs next to the graph: class names by label, input size, task."""
    return {"class_names": list(class_names), "image_size": image_size, "task": task,
            "input": "images: float32 [N, 3, H, W] RGB in [0, 1]"}


__all__ = ["ExportError", "check_export", "export", "export_metadata"]
