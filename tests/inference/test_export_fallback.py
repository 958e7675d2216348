"""Which exporter wrote a file is said and stored: the TorchScript-based one on request or when
the dynamo exporter fails, and a file that does not reproduce PyTorch is never kept."""

from __future__ import annotations

import pytest
import torch

from detseg.config import load_config
from detseg.config.schema import AugmentConfig
from detseg.inference import export as export_module
from detseg.inference.export import ExportError, check_images, export_checked, export_metadata, read_metadata
from detseg.models import build_model
from detseg.yolo import yolo

pytest.importorskip("onnxscript")


def tiny_yolo():
    torch.manual_seed(0)
    return yolo(num_classes=3, scale="nano", backbone_width=0.25).eval()


def test_dynamo_failure_falls_back_to_the_torchscript_exporter_and_says_why(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("pretend torch.export cannot trace this model")

    monkeypatch.setattr(export_module, "_export_dynamo", broken)
    model = tiny_yolo()
    meta = export_metadata(model, ["a", "b", "c"], AugmentConfig(image_size=64))
    written, result = export_checked(model, tmp_path / "m.onnx", images=check_images(model, 64), image_size=(64, 64),
                                     metadata=meta)
    assert written.exporter == "torchscript" and "pretend torch.export" in written.note
    assert read_metadata(written.path)["exporter"] == "torchscript" and result.max_difference < 1e-3


def test_a_file_that_does_not_reproduce_pytorch_is_not_kept(tmp_path, monkeypatch):
    """A dynamo file fixed to the example's size fails the check at the second size: it is deleted,
    the reason is said, and the next exporter's file, which passes, is kept."""
    real = export_module._export_dynamo

    def fixed_size(graph, example, path, names, dynamic, *rest):
        real(graph, example, path, names, False, *rest)

    monkeypatch.setattr(export_module, "_export_dynamo", fixed_size)
    model = tiny_yolo()
    written, _ = export_checked(model, tmp_path / "m.onnx", images=check_images(model, 64), image_size=(64, 64))
    assert written.exporter == "torchscript" and "dynamo" in written.note and "fails on an input" in written.note


def test_two_stage_detector_without_an_exporter_leaves_no_file(repo, tmp_path, monkeypatch):
    """The TorchScript-based exporter cannot trace a two-stage detector's data-dependent counts: with
    the dynamo exporter failing too, the error gives both reasons and no file is left."""
    def broken(*args, **kwargs):
        raise RuntimeError("pretend torch.export cannot trace this model")

    monkeypatch.setattr(export_module, "_export_dynamo", broken)
    model = build_model(load_config(repo / "configs/faster_rcnn_shapes.yaml", ["model.backbone.width=0.125"]).model)
    path = tmp_path / "frcnn.onnx"
    with pytest.raises(ExportError, match="dynamo.*pretend.*torchscript"):
        export_checked(model.eval(), path, images=check_images(model, 128), image_size=(128, 128))
    assert not path.exists()
