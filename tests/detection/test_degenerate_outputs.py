"""Every detector survives a diverged model: NaN weights (so no proposal survives) give empty detections."""

from __future__ import annotations

import pytest
import torch

from detseg.config import load_config
from detseg.models import build_model
from detseg.structures.instances import Detections

DETECTORS = ["rcnn", "fast_rcnn", "faster_rcnn", "mask_rcnn", "yolo", "yolov1"]


@pytest.mark.parametrize("arch", DETECTORS)
def test_nan_weights_give_empty_detections_not_a_crash(repo, arch):
    cfg = load_config(repo / f"configs/{arch}_shapes.yaml", ["model.backbone.width=0.125"])
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    results = model.predict(images, image_sizes=[(64, 64), (48, 64)])
    assert len(results) == 2 and all(isinstance(r, Detections) and len(r) == 0 for r in results)


def test_roi_postprocess_with_no_proposals_at_all(repo):
    cfg = load_config(repo / "configs/faster_rcnn_shapes.yaml", ["model.backbone.width=0.125"])
    heads = build_model(cfg.model).roi_heads
    k = heads.num_classes
    results = heads.postprocess(torch.zeros(0, k + 1), torch.zeros(0, 4 * (k + 1)), [torch.zeros(0, 4)] * 2,
                                [(64, 64)] * 2)
    assert [len(r) for r in results] == [0, 0] and results[0].boxes.shape == (0, 4)
