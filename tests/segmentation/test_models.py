"""Contract tests of every registered segmentation model: odd sizes, losses, modes, bad input."""

import pytest
import torch

from detseg.backbones.build import build_backbone
from detseg.config import load_config
from detseg.models import MODELS, build_model
from detseg.segmentation import FCN, SemanticSegmenter, predict_sliding
from detseg.structures.instances import Instances

ARCHS = ["fcn32s", "fcn16s", "fcn8s", "unet", "unet_backbone", "deeplabv3"]
TINY = ["model.backbone.width=0.125", "model.segmentation.unet.base_channels=4",
        "model.segmentation.unet.depth=3", "model.segmentation.aspp.channels=8"]


def tiny_model(arch: str, extra=()) -> SemanticSegmenter:
    dilate = ["model.backbone.output_stride=16"] if arch == "deeplabv3" else []
    overrides = [f"model.arch={arch}", "model.num_classes=3", *TINY, *dilate, *extra]
    return build_model(load_config(None, overrides).model)


def targets_for(images: torch.Tensor, num_classes: int = 3, seed: int = 0) -> list[Instances]:
    g = torch.Generator().manual_seed(seed)
    n, _, h, w = images.shape
    out = []
    for _ in range(n):
        sem = torch.randint(0, num_classes + 1, (h, w), generator=g)
        sem[-3:, :] = 255  # padding rows
        out.append(Instances(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.bool),
                             image_size=(h - 3, w), semantic=sem))
    return out


def test_all_archs_registered():
    assert set(ARCHS) <= set(MODELS)


@pytest.mark.parametrize("arch", ARCHS)
def test_odd_input_sizes_give_input_sized_outputs(arch):
    model = tiny_model(arch).eval()
    assert model.task == "segmentation" and model.with_masks is False
    for h, w in [(67, 93), (33, 31), (64, 64)]:
        images = torch.randint(0, 256, (2, 3, h, w), dtype=torch.uint8)
        pred = model.predict(images, image_sizes=[(h, w)] * 2)
        assert pred.shape == (2, h, w) and pred.dtype == torch.int64
        assert int(pred.min()) >= 0 and int(pred.max()) <= 3
        assert model.logits(images.float() / 255).shape == (2, 4, h, w)
        assert torch.equal(model(images), pred)  # eval-mode forward = predict


@pytest.mark.parametrize("arch", ARCHS)
def test_loss_in_both_modes_backprops(arch):
    model = tiny_model(arch, ["model.segmentation.loss.dice_weight=0.5"])
    images = torch.randint(0, 256, (2, 3, 35, 41), dtype=torch.uint8)
    targets = targets_for(images)
    for mode in (True, False):
        model.train(mode)
        losses = model.loss(images, targets)
        assert set(losses) == {"loss_seg", "loss_dice"}
        assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    model.train()
    losses = model(images, targets)
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    pred = model.predict(images)  # predict in training mode too
    assert pred.shape == (2, 35, 41)


def test_empty_images_and_fully_ignored_batches():
    model = tiny_model("fcn8s")
    images = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)  # batch of 1: c5 must be > 1x1 for BN
    background = Instances(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.bool),
                           image_size=(64, 64), semantic=torch.zeros(64, 64, dtype=torch.int64))
    assert torch.isfinite(model.loss(images, [background])["loss_seg"])
    background.semantic = torch.full((64, 64), 255)
    loss = model.loss(images, [background])["loss_seg"]
    assert loss.item() == 0.0
    loss.backward()


def test_bad_targets_fail_at_the_boundary():
    model = tiny_model("fcn8s")
    images = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    t = targets_for(images)[0]
    t.semantic[0, 0] = 4  # num_classes=3 -> valid 0..3 and 255
    with pytest.raises(ValueError, match=r"semantic labels \[4\] are outside \[0, 3\]"):
        model.loss(images, [t])
    t.semantic = None
    with pytest.raises(ValueError, match="no semantic map"):
        model.loss(images, [t])
    t.semantic = torch.zeros(30, 32, dtype=torch.int64)
    with pytest.raises(ValueError, match="does not match the padded image"):
        model.loss(images, [t])
    with pytest.raises(ValueError, match="needs targets"):
        model.train()(images)


def test_fcn_on_vgg16_and_config_errors():
    bb = build_backbone("vgg16", out_features=("c3", "c4", "c5"), width=0.125)
    model = FCN(bb, num_classes=2, variant="8s", head_channels=16).eval()
    assert model.predict(torch.zeros(1, 3, 45, 77, dtype=torch.uint8)).shape == (1, 45, 77)
    with pytest.raises(ValueError, match="half the stride"):
        FCN(build_backbone("resnet18", out_features=("c3", "c4", "c5"), width=0.125, output_stride=16), 2)
    with pytest.raises(ValueError, match="output_stride"):
        tiny_model("fcn8s", ["model.backbone.output_stride=16"])
    with pytest.raises(ValueError, match="class_weights has 2 values for 4 classes"):
        tiny_model("unet", ["model.segmentation.loss.class_weights=[1.0, 2.0]"])


def test_deeplab_rates_follow_output_stride():
    assert tiny_model("deeplabv3").rates == (6, 12, 18)
    assert tiny_model("deeplabv3", ["model.backbone.output_stride=8"]).rates == (12, 24, 36)


def test_sliding_window_covers_large_images():
    model = tiny_model("unet").eval()
    images = torch.randint(0, 256, (2, 3, 70, 101), dtype=torch.uint8)
    pred = predict_sliding(model, images, window=48, overlap=0.25)
    assert pred.shape == (2, 70, 101)
    # a window larger than the image is one plain forward pass
    assert torch.equal(predict_sliding(model, images, window=128), model.predict(images))


def test_vgg_fc6_fc7_become_convolutions_that_compute_the_same(tmp_path):
    from detseg.backbones.vgg import vgg16

    classifier = vgg16(num_classes=10, width=0.125).eval()  # torchvision key names, fc width 512
    path = tmp_path / "vgg16_imagenet.pth"
    torch.save(classifier.state_dict(), path)
    model = tiny_model("fcn8s", ["model.backbone.name=vgg16", f"model.backbone.pretrained={path}",
                                 "model.segmentation.fcn.fc_channels=512"]).eval()
    pool5 = torch.randn(2, 64, 7, 7)
    with torch.no_grad():
        fc7 = classifier.classifier[:5](pool5.flatten(1))      # fc6, ReLU, dropout, fc7, ReLU
        conv7 = model.head(pool5)[:, :, 3, 3]                 # the same layers, slid; centre position
    torch.testing.assert_close(conv7, fc7, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        assert model.head(torch.randn(1, 64, 11, 13)).shape == (1, 512, 11, 13)  # any map size
    with pytest.raises(ValueError, match="expected \\[F, 32 \\* 7 \\* 7\\]"):
        FCN(build_backbone("vgg16", out_features=("c5",), width=0.0625), 2, variant="32s",
            fc_channels=512).load_vgg_classifier(classifier.state_dict())
    with pytest.raises(ValueError, match="needs the fc6/fc7 head"):
        tiny_model("fcn8s", ["model.backbone.name=vgg16"]).load_vgg_classifier(classifier.state_dict())
    with pytest.raises(ValueError, match="not both"):
        tiny_model("fcn8s", ["model.segmentation.fcn.fc_channels=8", "model.segmentation.fcn.head_channels=8"])
