"""One contract for every entry of the model table (detseg.models.MODELS).

Tiny build from the arch's shapes config; ``loss`` in train and eval mode gives finite scalars
named ``loss_*`` that backpropagate; ``predict`` works on a blank image and on a batch of two
sizes, in eval and train mode, with outputs of the spec's task; a state-dict round trip gives
the same predictions; the spec's task and masks match the model's own attributes.
"""

from __future__ import annotations

import io

import pytest
import torch

from detseg.backbones.base import Backbone
from detseg.classification.classifier import Classifications
from detseg.config import load_config
from detseg.data.build import build_datasets, make_loader
from detseg.data.sample import DetectionDataset
from detseg.engine.evaluate import to_device
from detseg.models import MODELS, ModelSpec, build_model
from detseg.segmentation.base import SemanticSegmenter
from detseg.structures.instances import Detections

#: arch -> (shapes config, extra overrides)
CONFIGS = {
    "classifier": ("classifier_resnet18_shapes", []),
    "rcnn": ("rcnn_shapes", []),
    "fast_rcnn": ("fast_rcnn_shapes", []),
    "faster_rcnn": ("faster_rcnn_shapes", []),
    "mask_rcnn": ("mask_rcnn_shapes", []),
    "fcn32s": ("fcn8s_shapes", ["model.arch=fcn32s"]),
    "fcn16s": ("fcn8s_shapes", ["model.arch=fcn16s"]),
    "fcn8s": ("fcn8s_shapes", []),
    "unet": ("unet_shapes", []),
    "unet_backbone": ("fcn8s_shapes", ["model.arch=unet_backbone"]),
    "deeplabv3": ("deeplab_shapes", []),
    "yolo": ("yolo_shapes", []),
    "yolov1": ("yolov1_shapes", []),
}
TINY = ["model.backbone.width=0.125", "data.image_size=64", "data.augment.image_size=64", "data.num_train=4",
        "data.num_val=2", "data.batch_size=2", "data.max_objects=3"]


def test_every_arch_is_covered():
    assert set(CONFIGS) == set(MODELS)


@pytest.mark.parametrize("base, args", [(Backbone, ()), (SemanticSegmenter, (1,)), (DetectionDataset, ())])
def test_a_subclass_missing_a_hook_is_refused_when_made_not_when_first_used(base, args):
    incomplete = type("Incomplete", (base,), {})
    with pytest.raises(TypeError, match="abstract"):
        incomplete(*args)


def test_a_spec_names_one_of_the_three_tasks():
    with pytest.raises(ValueError, match="task must be one of classification, detection, segmentation"):
        ModelSpec(MODELS["unet"].build, "instance_segmentation")


@pytest.fixture(params=sorted(MODELS))
def built(request, repo):
    arch = request.param
    name, extra = CONFIGS[arch]
    cfg = load_config(repo / f"configs/{name}.yaml", TINY + extra)
    spec = MODELS[arch]
    train_set, _ = build_datasets(cfg.data, spec.task, with_masks=spec.with_masks)
    batch = next(iter(make_loader(train_set, cfg.data, train=False)))
    torch.manual_seed(0)
    return arch, spec, cfg, build_model(cfg.model), to_device(batch, torch.device("cpu"))


def predict(model, spec, images, sizes):
    if spec.task == "classification":
        return model.predict(images)
    return model.predict(images, image_sizes=sizes)


def test_spec_agrees_with_the_model(built):
    arch, spec, _, model, _ = built
    assert model.task == spec.task
    assert bool(getattr(model, "with_masks", False)) == spec.with_masks


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_loss_is_finite_named_and_backpropagates(built, mode):
    arch, spec, _, model, (images, targets) = built
    model.train(mode == "train")
    losses = model.loss(images, targets)
    assert losses and all(k.startswith("loss_") for k in losses), list(losses)
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_predict_on_a_blank_image_and_on_two_sizes(built, mode):
    arch, spec, _, model, (images, _) = built
    model.train(mode == "train")
    blank = torch.full((1, 3, 64, 64), 127, dtype=torch.uint8)
    two = torch.zeros((2, 3, 64, 64), dtype=torch.uint8)
    two[:, :, :, :] = images[:1]
    for batch, sizes in ((blank, [(64, 64)]), (two, [(64, 64), (40, 56)])):
        out = predict(model, spec, batch, sizes)
        if spec.task == "classification":
            assert isinstance(out, Classifications) and out.scores.shape == (len(batch), 3)
        elif spec.task == "detection":
            assert len(out) == len(batch) and all(isinstance(d, Detections) for d in out)
            for d, (h, w) in zip(out, sizes):
                assert d.boxes.shape[1:] == (4,) and len(d.scores) == len(d.labels) == len(d.boxes)
                if len(d):
                    assert (d.boxes[:, 0::2] >= -1e-3).all() and (d.boxes[:, 2] <= w + 1e-3).all()
                    assert (d.boxes[:, 3] <= h + 1e-3).all() and int(d.labels.max()) < 3
                assert (d.masks is not None) == spec.with_masks
        else:
            assert out.shape == (len(batch), 64, 64) and int(out.max()) <= 3


def test_state_dict_round_trip_gives_the_same_predictions(built):
    arch, spec, cfg, model, (images, _) = built
    model.eval()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    torch.manual_seed(123)
    other = build_model(cfg.model).eval()
    buffer.seek(0)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    sizes = [(64, 64)] * len(images)
    a, b = predict(model, spec, images, sizes), predict(other, spec, images, sizes)
    if spec.task == "classification":
        assert torch.equal(a.scores, b.scores)
    elif spec.task == "detection":
        assert all(torch.equal(x.boxes, y.boxes) and torch.equal(x.scores, y.scores) for x, y in zip(a, b))
    else:
        assert torch.equal(a, b)
