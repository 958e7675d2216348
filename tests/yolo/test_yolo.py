"""YOLO detector: assigner hand cases, losses on empty/crowded images, post-processing and the map
back through the letterbox, shapes and contracts, YOLOv1, coco128 loss decrease, and learning."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from detseg.backbones.build import build_backbone
from detseg.config import load_config
from detseg.config.schema import AugmentConfig
from detseg.config.yolo import YoloConfig
from detseg.data.geometry import Resize
from detseg.models import build_model
from detseg.structures.instances import Instances
from detseg.yolo import YOLO, TaskAlignedAssigner, yolo
from detseg.yolo.model import anchor_points, postprocess
from detseg.yolo.yolov1 import yolov1

TINY = dict(num_classes=3, scale="nano", backbone_width=0.5)


def inst(boxes, labels, size=(128, 128), crowd=None) -> Instances:
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    labels = torch.tensor(labels, dtype=torch.int64).reshape(-1)
    crowd = torch.zeros(len(labels), dtype=torch.bool) if crowd is None else torch.tensor(crowd)
    return Instances(boxes, labels, crowd, size)


def empty(size=(128, 128)) -> Instances:
    return inst([], [], size)


@pytest.fixture(scope="module")
def model() -> YOLO:
    torch.manual_seed(0)
    return yolo(**TINY)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randint(0, 256, (2, 3, 128, 128), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------------------------------- assigner


def grid(k: int = 4, stride: int = 8):
    points, strides = anchor_points([(k, k)], [stride], torch.device("cpu"))
    return points, strides


def test_anchor_points_are_cell_centres_level_after_level():
    points, strides = anchor_points([(2, 3), (1, 2)], [8, 16], torch.device("cpu"))
    assert points.tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12], [8, 8], [24, 8]]
    assert strides.tolist() == [8] * 6 + [16] * 2


def test_assigner_picks_the_best_aligned_anchor_with_iou_soft_target():
    points, strides = grid()                                   # 16 points at 4, 12, 20, 28
    gt = torch.tensor([[[0.0, 0.0, 32.0, 32.0]]])
    pred_boxes = torch.cat([points - 4, points + 4], 1)[None]  # 8 x 8 boxes: IoU 1/16 with gt
    pred_boxes[0, 5] = gt[0, 0]                                # point (12, 12) predicts the gt exactly
    scores = torch.full((1, 16, 3), 0.5)
    a = TaskAlignedAssigner(3, topk=1, center_radius=0.0)(scores, pred_boxes, points, strides, gt,
                                                          torch.tensor([[2]]), torch.tensor([[True]]))
    assert a.fg[0].nonzero().flatten().tolist() == [5]
    assert a.labels[0, 5] == 2 and a.boxes[0, 5].tolist() == [0, 0, 32, 32]
    # the best anchor's target is its IoU (1.0); negatives and other classes get 0
    expected = torch.zeros(16, 3)
    expected[5, 2] = 1.0
    torch.testing.assert_close(a.scores[0], expected)


def test_assigner_soft_targets_scale_with_alignment():
    points, strides = grid()
    gt = torch.tensor([[[0.0, 0.0, 16.0, 16.0]]])
    pred_boxes = torch.cat([points - 4, points + 4], 1)[None]  # (4,4)-centred box: IoU 0.25
    scores = torch.full((1, 16, 1), 0.25)
    scores[0, 1] = 1.0                                         # point (12, 4): IoU 0.25 too
    scores[0, 0] = 0.5
    a = TaskAlignedAssigner(1, topk=2, alpha=1.0, beta=1.0, center_radius=0.0)(
        scores, pred_boxes, points, strides, gt, torch.tensor([[0]]), torch.tensor([[True]]))
    # candidates inside the box: points 0 (4,4), 1 (12,4), 4 (4,12), 5 (12,12); metric = s * IoU
    assert a.fg[0].nonzero().flatten().tolist() == [0, 1]
    # normalised: metric * max IoU / max metric -> 0.25 for the best (1.0 * 0.25), half that for
    # the second (0.5 * 0.25)
    torch.testing.assert_close(a.scores[0, [0, 1], 0], torch.tensor([0.125, 0.25]))


def test_assigner_resolves_anchors_claimed_twice_by_iou():
    points, strides = grid()
    gts = torch.tensor([[[0.0, 0.0, 16.0, 16.0], [0.0, 0.0, 32.0, 32.0]]])
    pred_boxes = torch.cat([points - 8, points + 8], 1)[None]  # 16 x 16 boxes
    scores = torch.full((1, 16, 2), 0.5)
    a = TaskAlignedAssigner(2, topk=4, center_radius=0.0)(scores, pred_boxes, points, strides, gts,
                                                          torch.tensor([[0, 1]]), torch.tensor([[True, True]]))
    # small object: candidates 0, 1, 4, 5 (IoU 0.39 each); large one: top-4 IoU are the inner
    # points 5, 6, 9, 10 (IoU 0.25). Point 5 is claimed twice and goes to the small object.
    fg = a.fg[0].nonzero().flatten()
    assert fg.tolist() == [0, 1, 4, 5, 6, 9, 10]
    assert a.gt_index[0, fg].tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert torch.equal(a.labels[0, fg], a.gt_index[0, fg])


def test_assigner_centre_prior_gives_tiny_objects_a_positive():
    points, strides = grid()
    tiny = torch.tensor([[[9.0, 9.0, 11.0, 11.0]]])            # contains no anchor point
    pred_boxes = torch.cat([points - 4, points + 4], 1)[None]
    scores = torch.full((1, 16, 1), 0.5)
    args = (scores, pred_boxes, points, strides, tiny, torch.tensor([[0]]), torch.tensor([[True]]))
    assert not TaskAlignedAssigner(1, center_radius=0.0)(*args).fg.any()
    a = TaskAlignedAssigner(1, topk=1, center_radius=2.5)(*args)
    # within 2.5 strides of (10, 10): points 0, 1, 4, 5, ...; only the box of (12, 12) overlaps it
    assert a.fg[0].nonzero().flatten().tolist() == [5]


def test_assigner_ignores_invalid_objects_and_empty_batches():
    points, strides = grid()
    pred_boxes = torch.cat([points - 4, points + 4], 1)[None].repeat(2, 1, 1)
    scores = torch.full((2, 16, 3), 0.5)
    gt = torch.tensor([[[0.0, 0.0, 32.0, 32.0]], [[0.0, 0.0, 32.0, 32.0]]])
    a = TaskAlignedAssigner(3)(scores, pred_boxes, points, strides, gt, torch.zeros(2, 1, dtype=torch.long),
                               torch.tensor([[True], [False]]))
    assert a.fg[0].any() and not a.fg[1].any() and a.scores[1].sum() == 0
    none = TaskAlignedAssigner(3)(scores, pred_boxes, points, strides, torch.zeros(2, 0, 4),
                                  torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 0, dtype=torch.bool))
    assert not none.fg.any() and none.scores.shape == (2, 16, 3)


# ------------------------------------------------------------------------------------------ losses


def test_empty_images_give_zero_box_loss_and_finite_gradients(model, images):
    losses = model.loss(images, [empty(), empty()])
    assert set(losses) == {"loss_cls", "loss_box", "loss_dfl"}
    assert losses["loss_box"].item() == losses["loss_dfl"].item() == 0.0 and torch.isfinite(losses["loss_cls"])
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    model.zero_grad()


def test_many_objects_and_crowd_regions(model, images):
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(300, 2, generator=g) * 110
    boxes = torch.cat([xy, xy + 4 + torch.rand(300, 2, generator=g) * 14], 1).clamp(max=128)
    crowded = Instances(boxes, torch.randint(0, 3, (300,), generator=g), torch.zeros(300, dtype=torch.bool), (128, 128))
    crowd_only = inst([[0, 0, 128, 128]], [1], crowd=[True])
    losses = model.loss(images, [crowded, crowd_only])
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    only = model.loss(images[1:], [crowd_only])
    assert only["loss_box"].item() == only["loss_dfl"].item() == 0.0
    # anchors inside the crowd region are ignored: no negative class loss there at all
    assert only["loss_cls"].item() == 0.0


@pytest.mark.parametrize("target, message", [
    (inst([[10, 10, 40, 40]], [3]), r"labels must be in \[0, 3\)"),
    (inst([[40, 10, 10, 40]], [0]), "degenerate box"),
])
def test_bad_targets_fail_at_the_boundary(model, images, target, message):
    with pytest.raises(ValueError, match=message):
        model.loss(images[:1], [target])


# ------------------------------------------------------------------------------ post-processing


def test_postprocess_class_aware_nms_threshold_clip_and_order():
    boxes = torch.tensor([[10.0, 10, 50, 50], [12, 12, 52, 52], [10, 10, 50, 50], [100, 100, 140, 150]])
    scores = torch.tensor([[0.9, 0.0], [0.8, 0.0], [0.0, 0.7], [0.6, 0.0005]])
    det = postprocess(scores, boxes, (120, 130), score_thresh=0.001, nms_iou=0.5, pre_nms_top_n=100, max_det=10)
    # box 1 overlaps box 0 (IoU 0.82, same class): suppressed; box 2 is another class: kept;
    # box 3 clipped to the 120 x 130 image; its 0.0005 class-1 score is under the threshold
    assert det.scores.tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert det.labels.tolist() == [0, 1, 0]
    assert det.boxes.tolist() == [[10, 10, 50, 50], [10, 10, 50, 50], [100, 100, 130, 120]]
    top1 = postprocess(scores, boxes, (120, 130), score_thresh=0.001, nms_iou=0.5, pre_nms_top_n=100, max_det=1)
    assert top1.scores.tolist() == pytest.approx([0.9])
    none = postprocess(scores, boxes, (120, 130), score_thresh=0.95, nms_iou=0.5, pre_nms_top_n=100, max_det=10)
    assert none.boxes.shape == (0, 4) and none.labels.dtype == torch.int64


def test_boxes_map_back_through_the_letterbox():
    cfg = AugmentConfig(image_size=64, resize="letterbox")
    # a 50 x 100 (h x w) image: scale 0.64, resized to 32 x 64, padded 16 px top and bottom
    predicted = torch.tensor([[6.4, 22.4, 19.2, 41.6], [0.0, 0.0, 64.0, 20.0]])
    r = Resize.from_config((50, 100), cfg)
    back = r.boxes_back(predicted)
    torch.testing.assert_close(back, torch.tensor([[10.0, 10.0, 30.0, 40.0], [0.0, 0.0, 100.0, 6.25]]))
    torch.testing.assert_close(r.boxes(back[:1]), predicted[:1])


# ----------------------------------------------------------------------------- shapes, contract


def test_raw_output_shapes_and_odd_sizes(model):
    model.eval()
    x = torch.randint(0, 256, (2, 3, 67, 75), dtype=torch.uint8)
    raw = model.raw_outputs(x)
    assert [tuple(r.shape) for r in raw] == [(2, 67, 9, 10), (2, 67, 5, 5), (2, 67, 3, 3)]  # 4 x 16 bins + 3
    dets = model.predict(x, image_sizes=[(67, 75), (60, 70)])
    for d, (h, w) in zip(dets, [(67, 75), (60, 70)]):
        assert d.boxes.dtype == torch.float32 and d.labels.dtype == torch.int64
        assert (d.boxes[:, 0::2] <= w).all() and (d.boxes[:, 1::2] <= h).all() and (d.boxes >= 0).all()
        assert torch.all(d.scores[:-1] >= d.scores[1:]) and ((d.labels >= 0) & (d.labels < 3)).all()
    model.train()


def test_loss_in_eval_mode_predict_in_train_mode_and_forward(model, images):
    targets = [inst([[10, 20, 60, 70]], [1]), inst([[5, 5, 30, 100], [40, 40, 120, 90]], [0, 2])]
    model.eval()
    assert set(model.loss(images, targets)) == {"loss_cls", "loss_box", "loss_dfl"}
    assert isinstance(model(images), list)
    model.train()
    assert len(model.predict(images)) == 2
    assert set(model(images, targets)) == {"loss_cls", "loss_box", "loss_dfl"}
    with pytest.raises(ValueError, match="needs targets"):
        model(images)


def test_nan_features_give_empty_detections(model, images):
    model.eval()
    raw = [torch.full_like(r, float("nan")) for r in model.raw_outputs(images)]
    assert all(len(d) == 0 for d in model.head.predict(raw, [(128, 128)] * 2))
    model.train()


def test_distribution_focal_loss_is_the_two_bin_cross_entropy():
    from detseg.yolo.losses import distribution_focal_loss

    logits = torch.randn(3, 4, 16, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([[2.3, 0.0, 7.5, 14.0]]).expand(3, 4)
    logp = logits.log_softmax(-1)
    want = -(0.7 * logp[..., 0, 2] + 0.3 * logp[..., 0, 3] + logp[..., 1, 0] + 0.5 * logp[..., 2, 7]
             + 0.5 * logp[..., 2, 8] + logp[..., 3, 14]) / 4
    torch.testing.assert_close(distribution_focal_loss(logits, target), want)
    # distances past the last bin are clamped to it (0.99 / 0.01 between bins 14 and 15)
    far = distribution_focal_loss(logits, torch.full((3, 4), 40.0))
    torch.testing.assert_close(far, -(0.01 * logp[..., 14] + 0.99 * logp[..., 15]).mean(-1))
    # all the mass on the target's bin: (near) zero loss; elsewhere: a large one
    peaked = torch.zeros(1, 4, 16)
    peaked[..., 2] = 50.0
    assert distribution_focal_loss(peaked, torch.full((1, 4), 2.0)).item() < 1e-6
    assert distribution_focal_loss(peaked, torch.full((1, 4), 5.0)).item() > 40


def test_distribution_head_decodes_the_mean_distance(model, images):
    """Equal bin logits decode to the middle of the range, 7.5 strides per side; the initial head
    predicts boxes 2 strides wide (small enough to overlap small objects), with bins or with plain
    distances (``dfl_bins=0``: one softplus per side, no ``loss_dfl``)."""
    raw = [torch.zeros(1, 4 * 16 + 3, 2, 2), torch.zeros(1, 4 * 16 + 3, 1, 1)]
    model.head.strides = (8, 16)
    try:
        _, boxes, points, strides, dist = model.head.decode(raw)
    finally:
        model.head.strides = (8, 16, 32)
    assert dist.shape == (1, 5, 4, 16)
    torch.testing.assert_close(boxes[0], torch.cat([points - 7.5 * strides[:, None], points + 7.5 * strides[:, None]], 1))
    plain = yolo(**TINY, dfl_bins=0)
    assert plain.raw_outputs(images)[0].shape[1] == 4 + 3
    for m in (model, plain):
        bias = m.head.box_towers[0][-1].bias.detach()
        raw = [bias[None, :, None, None].expand(1, -1, 2, 2), bias[None, :, None, None].expand(1, -1, 1, 1)]
        raw = [torch.cat([r, torch.zeros(1, 3, *r.shape[-2:])], 1) for r in raw]
        m.head.strides = (8, 16)
        try:
            _, boxes, _, strides, _ = m.head.decode(raw)
        finally:
            m.head.strides = (8, 16, 32)
        torch.testing.assert_close((boxes[0, :, 2] - boxes[0, :, 0]) / strides, torch.full((5,), 2.0), atol=1e-3, rtol=0)
    targets = [inst([[10, 20, 60, 70]], [1]), empty()]
    assert set(plain.loss(images, targets)) == {"loss_cls", "loss_box"}
    with pytest.raises(ValueError, match="dfl_bins must be 0"):
        YoloConfig(dfl_bins=1)


def test_scale_variants_and_nano_parameter_budget():
    counts = {s: sum(p.numel() for p in yolo(num_classes=80, scale=s).parameters()) for s in ("nano", "small", "medium")}
    assert counts["nano"] <= 3.2e6          # Ultralytics yolov8n: 3.16 M
    assert counts["nano"] < counts["small"] < counts["medium"]
    with pytest.raises(ValueError, match="unknown YOLO scale 'large'"):
        yolo(num_classes=3, scale="large")


def test_configs_build_including_a_resnet_backbone(repo):
    for name in ("yolo_shapes", "yolo_coco", "yolov1_shapes"):
        assert build_model(load_config(repo / f"configs/{name}.yaml").model).task == "detection"
    cfg = load_config(repo / "configs/yolo_shapes.yaml",
                      ["model.backbone.name=resnet18", "model.backbone.width=0.25", "model.yolo.neck_channels=[32,48,64]"])
    m = build_model(cfg.model)
    assert {k: s.channels for k, s in m.neck.feature_specs.items()} == {"p3": 32, "p4": 48, "p5": 64}
    assert set(m.loss(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), [inst([[4, 4, 40, 40]], [0], (64, 64))])) == {"loss_cls", "loss_box", "loss_dfl"}


def test_csp_darknet_feature_specs():
    bb = build_backbone("csp_darknet", width=0.25, depth=0.33, out_features=("c3", "c4", "c5"))
    out = bb(torch.randn(1, 3, 64, 96))
    assert {k: (v.shape[1], 64 // v.shape[2]) for k, v in out.items()} == {
        k: (s.channels, s.stride) for k, s in bb.feature_specs.items()} == {"c3": (64, 8), "c4": (128, 16), "c5": (256, 32)}


# ------------------------------------------------------------------------------------------ YOLOv1


def test_yolov1_encodes_the_centre_cell_and_the_largest_object_wins():
    m = yolov1("resnet18", num_classes=3, width=0.125, grid_size=4, hidden=32, conv_channels=16)
    targets = [inst([[0, 0, 64, 32], [8, 8, 24, 24], [96, 96, 128, 128]], [0, 1, 2])]
    obj, values, boxes, labels = m._encode(targets, (128, 128), torch.device("cpu"))
    # cell 32 px: centres (32, 16) -> row 0 col 1; (16, 16) -> row 0 col 0; (112, 112) -> row 3 col 3
    assert obj[0].nonzero().tolist() == [[0, 0], [0, 1], [3, 3]]
    torch.testing.assert_close(values[0, 0, 1], torch.tensor([0.0, 0.5, 0.5 ** 0.5, 0.25 ** 0.5]))
    assert labels[0, 0, 0] == 1 and labels[0, 3, 3] == 2
    # two objects in one cell: the larger one is the target
    clash = [inst([[0, 0, 30, 30], [10, 10, 20, 20]], [0, 1])]
    obj, _, boxes, labels = m._encode(clash, (128, 128), torch.device("cpu"))
    assert obj[0].sum() == 1 and labels[0, 0, 0] == 0 and boxes[0, 0, 0].tolist() == [0, 0, 30, 30]


def test_yolov1_losses_predictions_and_empty_images():
    torch.manual_seed(0)
    m = yolov1("resnet18", num_classes=3, width=0.125, hidden=32, conv_channels=16)
    x = torch.randint(0, 256, (2, 3, 96, 128), dtype=torch.uint8)
    losses = m.loss(x, [inst([[10, 10, 50, 60], [60, 20, 120, 90]], [0, 2], (96, 128)), empty((96, 128))])
    assert set(losses) == {"loss_box", "loss_obj", "loss_cls"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    none = m.loss(x, [empty((96, 128)), empty((96, 128))])
    assert none["loss_box"] == 0 and none["loss_cls"] == 0 and none["loss_obj"] > 0
    m.eval()
    dets = m(x)
    assert len(dets) == 2 and all((d.boxes[:, 2] <= 128).all() and (d.boxes[:, 3] <= 96).all() for d in dets)


def test_yolov1_post_processing_comes_from_its_own_section(repo):
    from detseg.config import ConfigError

    m = build_model(load_config(repo / "configs/yolov1_shapes.yaml").model)
    assert (m.score_thresh, m.nms_iou, m.max_det) == (0.01, 0.5, 100)
    cfg = load_config(repo / "configs/yolov1_shapes.yaml", ["model.yolo.v1.nms_iou=0.6", "model.yolo.v1.max_det=7"])
    m = build_model(cfg.model)
    assert (m.nms_iou, m.max_det) == (0.6, 7) and cfg.model.yolo.nms_iou == 0.7  # YOLOv8's left alone
    with pytest.raises(ConfigError, match=r"yolov1 does not read model\.yolo\.score_thresh .*model\.yolo\.v1\.score_thresh"):
        load_config(repo / "configs/yolov1_shapes.yaml", ["model.yolo.score_thresh=0.3"])


# ----------------------------------------------------------------------------- real data, learning


@pytest.mark.coco128
def test_loss_decreases_on_a_coco128_batch(repo, monkeypatch):
    from detseg.data.build import build_datasets
    from detseg.data.collate import collate

    monkeypatch.chdir(repo)  # the config's coco128 paths are relative to the repository root
    cfg = load_config(repo / "configs/yolo_coco.yaml", ["data.augment.image_size=256"])
    _, val = build_datasets(cfg.data, "detection")
    batch = collate([val[i] for i in range(4)])
    assert sum(len(t) for t in batch.targets) > 10
    torch.manual_seed(0)
    model = build_model(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    history = []
    for _ in range(15):
        loss = sum(model.loss(batch.images, batch.targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert history[-1] < 0.7 * history[0], history


@pytest.mark.slow
def test_yolo_nano_learns_shapes(tmp_path: Path, repo):
    from detseg.engine.checkpoint import new_run_dir
    from detseg.engine.train_loop import train

    cfg = load_config(repo / "configs/yolo_shapes.yaml", ["train.device=cpu"])
    best = train(cfg, new_run_dir(tmp_path, "run"), quiet=True)
    assert best["bbox/mAP50"] >= 0.85, best


@pytest.mark.slow
@pytest.mark.coco128
def test_yolo_nano_learns_real_images_with_the_configs_recipe(tmp_path: Path, repo, coco128_subset):
    """configs/yolo_coco.yaml's recipe (Nesterov SGD at lr 0.01, momentum 0.937, weight decay 5e-4,
    losses summed over the nominal batch) fits 32 coco128 images at 256 px: bbox mAP50 measured
    0.32-0.64 after 60 epochs (seeds 0-4: 0.50, 0.60, 0.64, 0.55, 0.54; this seed fell from 0.50
    to 0.32 when the box decoding changed its float summation order: SGD on 32 images is that
    sensitive; 0.36 with plain box distances, ``dfl_bins=0``; Ultralytics' YOLOv8n with this
    recipe: 0.56-0.64); the nominal batch is the batch here, since 32 images hold only four of
    them. Mosaic, scale and colour jitter are off:
    this checks targets, assigner, losses and the optimiser, not augmentation."""
    from detseg.engine.checkpoint import new_run_dir
    from detseg.engine.train_loop import train

    cfg = load_config(repo / "configs/yolo_coco.yaml", [
        *coco128_subset(32), "data.augment.image_size=256", "data.augment.mosaic_prob=0", "data.augment.scale_jitter=[1.0,1.0]",
        "data.augment.color_jitter=0", "data.batch_size=8", "data.num_workers=0", "train.nominal_batch_size=8",
        "train.epochs=60", "train.device=cpu", "eval.interval=60", "eval.metric=bbox/mAP50"])
    best = train(cfg, new_run_dir(tmp_path, "run"), quiet=True)
    assert best["bbox/mAP50"] >= 0.25, best


@pytest.mark.slow
@pytest.mark.coco128
def test_yolo_nano_fits_real_images_with_adamw(tmp_path: Path, repo, coco128_subset):
    """The same 32 images with AdamW at lr 1e-3 on mean losses (Ultralytics' ``optimizer=auto`` also
    switches to AdamW for runs under 10,000 iterations): bbox mAP50 measured 0.91 after 60 epochs
    at this seed (0.78 at seed 1; small-object AP 0.53), against 0.61 with plain box distances
    (``dfl_bins=0``) and 0.66 with YOLOv8's equal initial bin logits, whose boxes start 15 strides
    wide and miss small objects (small-object AP 0.01); Ultralytics' YOLOv8n trained the same way
    scores 0.67 (small 0.05) by pycocotools on its predictions."""
    from detseg.engine.checkpoint import new_run_dir
    from detseg.engine.train_loop import train

    cfg = load_config(repo / "configs/yolo_coco.yaml", [
        *coco128_subset(32), "data.augment.image_size=256", "data.augment.mosaic_prob=0", "data.augment.scale_jitter=[1.0,1.0]",
        "data.augment.color_jitter=0", "data.batch_size=8", "data.num_workers=0", "train.optimizer=adamw", "train.lr=0.001",
        "train.nominal_batch_size=null",
        "train.warmup_iters=20", "train.epochs=60", "train.device=cpu", "train.tensorboard=false", "eval.interval=60",
        "eval.metric=bbox/mAP50"])
    best = train(cfg, new_run_dir(tmp_path, "run"), quiet=True)
    assert best["bbox/mAP50"] >= 0.7, best
