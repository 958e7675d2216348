"""Faster R-CNN: anchors, coder, matcher/sampler, RPN/RoI shapes, the model contract, torchvision parity."""

import math

import pytest
import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn
from torchvision.models.detection._utils import BoxCoder as TVBoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator as TVAnchorGenerator
from torchvision.models.detection.image_list import ImageList

from detseg.config import load_config
from detseg.config.schema import BackboneConfig, ModelConfig
from detseg.detection import AnchorGenerator, BoxCoder, Matcher, faster_rcnn, load_torchvision_faster_rcnn, sample_balanced
from detseg.detection.matcher import PaddedTargets, ignore_crowd, pairwise_iou
from detseg.models import build_model
from detseg.structures.instances import Detections, Instances

TINY = dict(width=0.125, fpn_features=("c3", "c4", "c5"), fpn_channels=16, anchor_sizes=((16,), (32,), (64,), (128,)),
            representation_size=32, rpn_pre_nms_top_n={"train": 200, "test": 100},
            rpn_post_nms_top_n={"train": 100, "test": 50}, roi_batch_size_per_image=32)


def inst(boxes, labels, crowd=None, size=(64, 64)):
    boxes = torch.tensor(boxes, dtype=torch.float32).view(-1, 4)
    labels = torch.tensor(labels, dtype=torch.int64)
    crowd = torch.zeros(len(labels), dtype=torch.bool) if crowd is None else torch.tensor(crowd)
    return Instances(boxes, labels, crowd, size)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return faster_rcnn("resnet18", num_classes=3, **TINY)


@pytest.fixture
def images():
    return torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


# ---- components ----------------------------------------------------------------------------
def test_anchors_hand_computed():
    gen = AnchorGenerator(((32,),), ((0.5, 1.0, 2.0),))
    (anchors,) = gen([(2, 2)], (32, 32))
    # ratio 0.5 (h/w): w = 32 * sqrt(2) = 45.25, h = 22.63 -> half sizes rounded 23, 11
    cell = torch.tensor([[-23, -11, 23, 11], [-16, -16, 16, 16], [-11, -23, 11, 23]], dtype=torch.float32)
    assert anchors.shape == (2 * 2 * 3, 4)
    assert torch.equal(anchors[:3], cell)
    assert torch.equal(anchors[3:6], cell + torch.tensor([16.0, 0, 16, 0]))  # next location: x + stride
    assert torch.equal(anchors[6:9], cell + torch.tensor([0.0, 16, 0, 16]))  # next row


def test_anchors_match_torchvision():
    sizes, ratios = ((16, 24), (32, 48), (64, 96)), ((0.5, 1.0, 2.0),) * 3
    feats = [torch.zeros(1, 1, 13, 17), torch.zeros(1, 1, 7, 9), torch.zeros(1, 1, 4, 5)]
    tv = TVAnchorGenerator(sizes, ratios)(ImageList(torch.zeros(1, 3, 104, 136), [(100, 130)]), feats)[0]
    ours = torch.cat(AnchorGenerator(sizes, ratios)([f.shape[-2:] for f in feats], (104, 136)))
    assert torch.equal(ours, tv)


def test_box_coder_round_trip_and_torchvision_parity():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(50, 2, generator=g) * 100
    ref = torch.cat([ref, ref + 1 + torch.rand(50, 2, generator=g) * 50], 1)
    gt = torch.rand(50, 2, generator=g) * 100
    gt = torch.cat([gt, gt + 1 + torch.rand(50, 2, generator=g) * 50], 1)
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    deltas = coder.encode(gt, ref)
    assert torch.allclose(coder.decode(deltas, ref), gt, atol=1e-3)
    tv = TVBoxCoder((10.0, 10.0, 5.0, 5.0))
    assert torch.allclose(deltas, tv.encode_single(gt, ref), atol=1e-6)
    many = torch.randn(50, 4 * 3, generator=g)
    assert torch.equal(coder.decode(many.view(50, 3, 4), ref[:, None]), tv.decode_single(many, ref).view(50, 3, 4))


def test_matcher_thresholds_and_low_quality_matches():
    iou = torch.tensor([[0.8, 0.1], [0.5, 0.2], [0.1, 0.25], [0.0, 0.05]])  # 4 anchors x 2 gts
    matched, labels = Matcher(0.7, 0.3, allow_low_quality_matches=False)(iou, torch.tensor([True, True]))
    assert labels.tolist() == [1, -1, 0, 0] and matched[0] == 0
    matched, labels = Matcher(0.7, 0.3, allow_low_quality_matches=True)(iou, torch.tensor([True, True]))
    assert labels.tolist() == [1, -1, 1, 0] and matched[2] == 1  # gt 1's best anchor becomes positive
    _, labels = Matcher(0.7, 0.3, True)(iou, torch.tensor([True, False]))  # gt 1 is padding/crowd
    assert labels.tolist() == [1, -1, 0, 0]


def test_sampler_per_image_budget():
    torch.manual_seed(0)
    labels = torch.tensor([1] * 10 + [0] * 10 + [-1] * 5 + [0] * 3, dtype=torch.int8)
    groups = torch.tensor([0] * 20 + [1] * 8)
    pos, neg = sample_balanced(labels, groups, 2, batch_size_per_image=8, positive_fraction=0.25)
    assert torch.bincount(groups[pos], minlength=2).tolist() == [2, 0]
    assert torch.bincount(groups[neg], minlength=2).tolist() == [6, 3]
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()


def test_crowd_regions_are_ignored_not_negative():
    anchors = torch.tensor([[0.0, 0, 10, 10], [40, 40, 50, 50], [10, 20, 50, 60]])
    gt = PaddedTargets.from_instances([inst([[0, 0, 10, 10], [30, 30, 60, 60]], [0, 1], [False, True])], "cpu")
    _, labels = Matcher(0.7, 0.3, True)(pairwise_iou(anchors[None], gt.boxes), gt.valid)
    labels = ignore_crowd(labels, anchors, gt)
    assert labels.tolist() == [[1, -1, 0]]  # inside the crowd box: ignored; mostly outside: negative


# ---- the model -------------------------------------------------------------------------------
def test_rpn_and_roi_output_shapes(model, images):
    model.eval()
    features = model.extract(images)
    assert list(features) == ["p3", "p4", "p5", "p6"]
    out = model.rpn([features[k] for k in model.rpn_features], images.shape[-2:])
    total = sum(f.shape[-2] * f.shape[-1] * 3 for f in features.values())
    assert out.objectness.shape == (2, total) and out.deltas.shape == (2, total, 4)
    assert out.anchors.shape == (total, 4) and sum(out.num_per_level) == total
    proposals = model.rpn.proposals(out, [(64, 64), (50, 40)], train=False)
    assert len(proposals) == 2 and all(p.shape[1] == 4 and len(p) <= 50 for p in proposals)
    assert (proposals[1][:, 2] <= 40).all() and (proposals[1][:, 3] <= 50).all()
    logits, deltas = model.roi_heads({k: features[k] for k in model.roi_features}, proposals, [(64, 64), (50, 40)])
    r = sum(len(p) for p in proposals)
    assert logits.shape == (r, 4) and deltas.shape == (r, 16)


def test_loss_in_eval_mode_and_backward(model, images):
    model.eval()
    targets = [inst([[5, 5, 30, 40], [35, 10, 60, 30]], [0, 2]), inst([[10, 20, 50, 60]], [1])]
    losses = model.loss(images, targets)
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_box", "loss_roi_cls", "loss_roi_box"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.roi_heads.box_predictor.cls_score.weight.grad is not None
    assert model.backbone.conv1.weight.grad.abs().sum() > 0
    model.zero_grad()


def test_predict_in_train_mode(model, images):
    model.train()
    dets = model.predict(images, image_sizes=[(64, 64), (48, 56)])
    model.eval()
    assert len(dets) == 2 and all(isinstance(d, Detections) for d in dets)
    for d, (h, w) in zip(dets, [(64, 64), (48, 56)]):
        assert d.boxes.shape == (len(d), 4) and d.labels.dtype == torch.int64
        assert ((d.labels >= 0) & (d.labels < 3)).all()
        assert (d.scores[:-1] >= d.scores[1:]).all()
        assert (d.boxes[:, 0::2] <= w).all() and (d.boxes[:, 1::2] <= h).all() and (d.boxes >= 0).all()


def test_empty_images_give_zero_box_losses(model, images):
    model.train()
    empty = [inst([], []), inst([], [])]
    losses = model.loss(images, empty)
    assert losses["loss_rpn_box"] == 0 and losses["loss_roi_box"] == 0
    assert losses["loss_rpn_cls"] > 0 and torch.isfinite(losses["loss_roi_cls"])
    sum(losses.values()).backward()
    model.zero_grad()


def test_crowd_only_image_has_no_positives(model, images):
    model.train()
    losses = model.loss(images, [inst([[0, 0, 64, 64]], [1], [True]), inst([], [])])
    assert losses["loss_rpn_box"] == 0 and losses["loss_roi_box"] == 0


def test_single_tiny_box(model, images):
    model.train()
    losses = model.loss(images[:1], [inst([[30, 30, 33, 32]], [2])])
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_rpn_box"] > 0  # the best anchor is a (low-quality) positive
    assert losses["loss_roi_box"] >= 0


@pytest.mark.parametrize("target, message", [
    (inst([[5, 5, 30, 40]], [3]), r"labels must be in \[0, 3\)"),
    (inst([[30, 5, 5, 40]], [0]), "image 0, box 0: degenerate box"),
])
def test_bad_targets_fail_at_the_boundary(model, images, target, message):
    with pytest.raises(ValueError, match=message):
        model.loss(images[:1], [target])


def test_single_feature_map_c4():
    torch.manual_seed(0)
    cfg = ModelConfig(arch="faster_rcnn", num_classes=3,
                      backbone=BackboneConfig(name="resnet18", width=0.125, out_features=("c4",)))
    cfg.two_stage.rpn.anchor_sizes = ((16, 32, 64),)
    cfg.two_stage.roi_heads.representation_size = 32
    model = build_model(cfg)
    assert model.neck is None and model.rpn_features == model.roi_features == ("c4",)
    assert model.rpn.anchor_generator.num_anchors_per_location == [9]
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    losses = model.loss(images, [inst([[5, 5, 30, 40]], [0]), inst([], [])])
    assert all(torch.isfinite(v) for v in losses.values())
    assert len(model.predict(images)) == 2


def test_config_builds_with_torchvision_names(repo):
    model = build_model(load_config(repo / "configs/faster_rcnn_shapes.yaml").model)
    keys = set(model.state_dict())
    for key in ("rpn.head.conv.0.0.weight", "rpn.head.cls_logits.weight", "rpn.head.bbox_pred.weight",
                "roi_heads.box_head.fc6.weight", "roi_heads.box_head.fc7.weight",
                "roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.bbox_pred.weight",
                "neck.inner_blocks.0.0.weight", "neck.layer_blocks.2.0.weight"):
        assert key in keys
    assert model.task == "detection" and model.with_masks is False


def test_torchvision_fasterrcnn_resnet50_fpn_state_dict_gives_same_detections():
    torch.manual_seed(0)
    tv = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=5, min_size=250, max_size=1333).eval()
    g = torch.Generator().manual_seed(0)
    state = {}
    for k, v in tv.state_dict().items():
        if k.endswith("running_var"):
            v = torch.rand(v.shape, generator=g) + 0.5
        elif k.endswith("running_mean"):
            v = torch.randn(v.shape, generator=g) * 0.1
        elif k.startswith("roi_heads.box_predictor.cls_score"):
            v = v * 30  # peaked class scores: detections above the 0.05 threshold
        state[k] = v
    tv.load_state_dict(state)
    ours = faster_rcnn("resnet50", num_classes=4).eval()
    # torchvision's COCO checkpoint has FrozenBatchNorm2d layers: no num_batches_tracked entries
    load_torchvision_faster_rcnn(ours, {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")})
    # 250 x 300 at min_size: torchvision's resize is the identity; both pad to 256 x 320, torchvision
    # with 0 after normalising; detseg's batch holds noise there, which must not matter
    image = torch.rand(3, 250, 300, generator=g)
    batch = torch.rand(1, 3, 256, 320, generator=g)
    batch[0, :, :250, :300] = image
    with torch.no_grad():
        expected = tv([image])[0]
    got = ours.predict(batch, [(250, 300)])[0]
    assert len(expected["boxes"]) > 10 and len(got) == len(expected["boxes"])
    assert torch.allclose(got.boxes, expected["boxes"], atol=1e-3)
    assert torch.equal(got.labels, expected["labels"] - 1)
    assert torch.allclose(got.scores, expected["scores"], atol=1e-5)


def test_wrong_checkpoint_is_reported():
    ours = faster_rcnn("resnet18", num_classes=3, **TINY)
    with pytest.raises(RuntimeError, match="missing"):
        load_torchvision_faster_rcnn(ours, {"rpn.head.cls_logits.weight": torch.zeros(1)})


# ---- learning ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_faster_rcnn_learns_shapes(tmp_path, repo):
    from detseg.engine.checkpoint import new_run_dir
    from detseg.engine.train_loop import train

    cfg = load_config(repo / "configs/faster_rcnn_shapes.yaml", ["train.device=cpu"])
    best = train(cfg, new_run_dir(tmp_path, "run"), quiet=True)
    assert best["bbox/mAP50"] >= 0.8, best
    assert not math.isnan(best["bbox/mAP"])
