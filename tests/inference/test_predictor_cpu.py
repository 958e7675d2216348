"""The Predictor's CPU path: batch norms folded into their convolutions (same outputs, no BN
left in YOLO), channels_last inputs, and ONNX files loaded through the same entry point."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from detseg.checkpoint_io import save_checkpoint
from detseg.config import load_config, to_dict
from detseg.config.schema import AugmentConfig
from detseg.inference import Predictor
from detseg.inference.predictor import fuse_conv_bn
from detseg.models import build_model
from detseg.structures.instances import Detections
from detseg.yolo import yolo


def with_statistics(model: nn.Module) -> nn.Module:
    """Batch norms with non-trivial running statistics and affine parameters, then eval mode."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
            m.weight.data.uniform_(0.5, 1.5, generator=g)
            m.bias.data.normal_(0, 0.2, generator=g)
    return model.eval()


def test_folding_keeps_yolo_outputs_and_removes_every_batch_norm():
    torch.manual_seed(0)
    model = with_statistics(yolo(num_classes=3, scale="nano", backbone_width=0.25))
    folded = copy.deepcopy(model)
    assert fuse_conv_bn(folded) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 0
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        want, got = model.export_outputs(x), folded.export_outputs(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_only_eval_mode_batch_norms_right_after_a_convolution_are_folded():
    apart = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4)).eval()
    training = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    with_bias = with_statistics(nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4)))
    assert fuse_conv_bn(apart) == 0 and fuse_conv_bn(training) == 0
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        want = with_bias(x)
        assert fuse_conv_bn(with_bias) == 1 and isinstance(with_bias[1], nn.Identity)
        torch.testing.assert_close(with_bias(x), want, rtol=1e-5, atol=1e-5)


class Recorder(nn.Module):
    """A detector that remembers the memory format of its input."""

    task, with_masks = "detection", False

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        self.formats = []

    def predict(self, images, image_sizes=None):
        self.formats.append(images.is_contiguous(memory_format=torch.channels_last))
        return [Detections.empty() for _ in images]


def test_cpu_predictions_run_channels_last():
    model = Recorder()
    predictor = Predictor(model, ["a"], AugmentConfig(image_size=64), device="cpu")
    predictor.predict_arrays([np.zeros((40, 50, 3), np.uint8)])
    assert model.formats == [True] and model.conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_from_checkpoint_folds_and_matches_the_unfolded_model(repo, tmp_path):
    cfg = load_config(repo / "configs/yolo_shapes.yaml", ["model.backbone.width=0.25"])
    torch.manual_seed(0)
    model = with_statistics(build_model(cfg.model))
    with torch.no_grad():  # confident random scores: boxes to compare
        for tower in model.head.cls_towers:
            tower[-1].bias += 6.0
    save_checkpoint({"model": model.state_dict(), "config": to_dict(cfg), "class_names": ["a", "b", "c"],
                     "category_ids": [1, 2, 3]}, tmp_path / "best.pt")
    predictor = Predictor.from_checkpoint(tmp_path / "best.pt", device="cpu", score_thresh=0.3)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in predictor.model.modules())
    reference = Predictor(model, ["a", "b", "c"], predictor.resize, device="cpu", score_thresh=0.3)
    image = (np.random.default_rng(0).random((90, 120, 3)) * 255).astype(np.uint8)
    want, got = reference.predict_arrays([image])[0], predictor.predict_arrays([image])[0]
    assert len(want.boxes) == len(got.boxes) > 0
    np.testing.assert_allclose(np.sort(got.scores), np.sort(want.scores), atol=1e-4)
    np.testing.assert_allclose(np.sort(got.boxes.ravel()), np.sort(want.boxes.ravel()), atol=1e-2)


def test_a_checkpoint_from_before_the_distance_bins_loads_with_plain_distances(repo, tmp_path):
    """YOLO checkpoints written before ``model.yolo.dfl_bins`` existed have a 4-output box branch
    and a saved config without the key: they are read as ``dfl_bins: 0``, not the new default 16."""
    from detseg.checkpoint_io import load_checkpoint

    cfg = load_config(repo / "configs/yolo_shapes.yaml", ["model.backbone.width=0.25", "model.yolo.dfl_bins=0"])
    model = build_model(cfg.model)
    saved = to_dict(cfg)
    del saved["model"]["yolo"]["dfl_bins"]
    save_checkpoint({"model": model.state_dict(), "config": saved, "class_names": ["a", "b", "c"],
                     "category_ids": [1, 2, 3]}, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt")["config"]["model"]["yolo"]["dfl_bins"] == 0
    predictor = Predictor.from_checkpoint(tmp_path / "old.pt", device="cpu")
    assert predictor.model.head.dfl_bins == 0 and predictor.model.head.box_towers[0][-1].out_channels == 4
    assert load_config(repo / "configs/yolo_shapes.yaml").model.yolo.dfl_bins == 16  # new runs: the default


def test_onnx_predictor_refuses_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        Predictor.from_checkpoint(tmp_path / "missing.onnx")
