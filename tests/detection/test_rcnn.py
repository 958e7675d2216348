"""R-CNN, Fast R-CNN and Mask R-CNN: proposals, region warping, the model contract, learning."""

import json
import math

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from detseg.config import load_config
from detseg.data.synthetic import ShapesConfig, generate_sample
from detseg.detection.proposals import load_proposals, selective_search
from detseg.detection.rcnn import WarpRegions
from detseg.models import build_model
from detseg.structures.instances import Detections, Instances

FAST = ["model.backbone.width=0.125", "model.neck.out_channels=16", "model.two_stage.roi_heads.representation_size=32"]


def inst(boxes, labels, size=(64, 64), masks=None):
    boxes = torch.tensor(boxes, dtype=torch.float32).view(-1, 4)
    return Instances(boxes, torch.tensor(labels, dtype=torch.int64), torch.zeros(len(boxes), dtype=torch.bool), size,
                     masks=masks)


@pytest.fixture
def images():
    return torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def build(repo, name, overrides=()):
    torch.manual_seed(0)
    return build_model(load_config(repo / f"configs/{name}_shapes.yaml", list(overrides)).model)


def test_selective_search_finds_the_shapes():
    cfg = ShapesConfig(num_images=20, image_size=(128, 128), max_objects=4)
    hits = total = 0
    for i in range(20):
        s = generate_sample(cfg, i)
        proposals = selective_search(s.image)
        assert proposals.dtype == np.float32 and proposals.shape[1] == 4 and len(proposals) <= 300
        assert (proposals[:, 2:] > proposals[:, :2]).all() and proposals.min() >= 0 and proposals.max() <= 128
        if len(s.boxes):
            hits += int((box_iou(torch.as_tensor(s.boxes), torch.from_numpy(proposals)).max(1).values >= 0.7).sum())
            total += len(s.boxes)
    assert hits / total >= 0.9, hits / total  # measured 0.97 at IoU 0.7 with ~57 proposals per image


def test_selective_search_is_deterministic_and_checks_input():
    image = generate_sample(ShapesConfig(num_images=1, image_size=(96, 80)), 0).image
    assert np.array_equal(selective_search(image), selective_search(image))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        selective_search(image.astype(np.float32))


def test_load_proposals(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"a.jpg": [[0, 0, 10, 10], [5, 5, 20, 30]], "b.jpg": []}))
    p = load_proposals(path)
    assert p["a.jpg"].shape == (2, 4) and p["b.jpg"].shape == (0, 4)
    path.write_text(json.dumps({"a.jpg": [[10, 0, 5, 10]]}))
    with pytest.raises(ValueError, match="'a.jpg'"):
        load_proposals(path)


def test_warp_regions_is_a_resize_of_the_crop():
    image = torch.arange(64.0).view(1, 1, 8, 8).expand(1, 3, 8, 8).contiguous()
    crop = WarpRegions(4, context=0.0)({"image": image}, [torch.tensor([[0.0, 0, 8, 8], [2, 2, 6, 6]])], [(8, 8)])
    assert crop.shape == (2, 3, 4, 4)
    assert torch.allclose(crop[0, 0], torch.nn.functional.avg_pool2d(image[:, :1], 2)[0, 0])  # 2x downscale
    assert torch.allclose(crop[1, 0], image[0, 0, 2:6, 2:6])  # same-size crop: the pixels themselves


@pytest.mark.parametrize("name", ["rcnn", "fast_rcnn"])
def test_proposal_detectors_contract(repo, images, name):
    model = build(repo, name, ["model.backbone.width=0.125", "model.two_stage.roi_heads.representation_size=32"]
                  + (["model.neck.out_channels=16"] if name == "fast_rcnn" else ["model.two_stage.warp_size=32"]))
    targets = [inst([[5, 5, 30, 40], [35, 10, 60, 30]], [0, 2]), inst([], [])]
    model.eval()
    losses = model.loss(images, targets)  # validation loss in eval mode
    assert set(losses) == {"loss_roi_cls", "loss_roi_box"} and all(torch.isfinite(v) for v in losses.values())
    model.train()
    sum(model(images, targets).values()).backward()
    dets = model.predict(images, image_sizes=[(64, 64), (40, 50)])
    assert len(dets) == 2 and all(isinstance(d, Detections) for d in dets)
    assert (dets[1].boxes[:, 0::2] <= 50).all() and (dets[1].boxes[:, 1::2] <= 40).all()
    # explicit proposals replace selective search; an image without proposals still works
    given = [torch.tensor([[4.0, 4, 31, 41], [30, 30, 60, 60]]), torch.zeros(0, 4)]
    dets = model.predict(images, proposals=given)
    assert len(dets[1]) == 0 and len(dets[0]) <= 2 * 3
    with pytest.raises(ValueError, match="proposal lists"):
        model.predict(images, proposals=given[:1])


def test_mask_rcnn_contract(repo, images):
    model = build(repo, "mask_rcnn", FAST + ["model.two_stage.mask.conv_channels=8"])
    assert model.with_masks
    mask = torch.zeros(1, 64, 64, dtype=torch.bool)
    mask[0, 10:40, 5:30] = True
    targets = [inst([[5, 10, 30, 40]], [1], masks=mask), inst([], [], masks=torch.zeros(0, 64, 64, dtype=torch.bool))]
    losses = model.loss(images, targets)
    assert "loss_mask" in losses and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.mask_branch.mask_predictor.mask_fcn_logits.weight.grad.abs().sum() > 0
    dets = model.predict(images, image_sizes=[(64, 64), (48, 40)])
    assert dets[0].masks.shape == (len(dets[0]), 64, 64) and dets[0].masks.dtype == torch.bool
    assert dets[1].masks.shape == (len(dets[1]), 48, 40)
    with pytest.raises(ValueError, match="one mask per box"):
        model.loss(images, [inst([[5, 10, 30, 40]], [1]), inst([], [])])


def test_mask_rcnn_empty_batch_keeps_graph(repo, images):
    model = build(repo, "mask_rcnn", FAST + ["model.two_stage.mask.conv_channels=8"])
    empty = [inst([], [], masks=torch.zeros(0, 64, 64, dtype=torch.bool))] * 2
    losses = model.loss(images, empty)
    assert losses["loss_mask"] == 0 and losses["loss_mask"].requires_grad


@pytest.mark.slow
@pytest.mark.parametrize("name, metric, bar", [
    ("fast_rcnn", "bbox/mAP50", 0.5), ("rcnn", "bbox/mAP50", 0.5), ("mask_rcnn", "segm/mAP50", 0.5)])
def test_rcnn_family_learns_shapes(tmp_path, repo, name, metric, bar):
    from detseg.engine.checkpoint import new_run_dir
    from detseg.engine.train_loop import train

    cfg = load_config(repo / f"configs/{name}_shapes.yaml", ["train.device=cpu"])
    best = train(cfg, new_run_dir(tmp_path, "run"), quiet=True)
    assert best[metric] >= bar, best
    assert not math.isnan(best["bbox/mAP"])
