import pytest
import torch

from detseg.backbones.build import BACKBONES, build_backbone
from detseg.classification import ImageClassifier


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_classifies_in_both_modes(name):
    torch.manual_seed(0)
    model = ImageClassifier(build_backbone(name, num_classes=3, width=0.125))
    images, labels = torch.rand(2, 3, 67, 75), torch.tensor([0, 2])
    for training in (True, False):
        model.train(training)
        losses = model.loss(images, labels)
        assert set(losses) <= {"loss_cls", "loss_aux"}
        assert all(k.startswith("loss_") and v.ndim == 0 and torch.isfinite(v) for k, v in losses.items())
        pred = model.predict(images)
        assert pred.scores.shape == (2, 3) and pred.labels.shape == (2,)
        torch.testing.assert_close(pred.scores.sum(1), torch.ones(2))
    model.train()
    sum(model.loss(images, labels).values()).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_googlenet_adds_aux_loss_only_in_training():
    model = ImageClassifier(build_backbone("googlenet", num_classes=3, width=0.125))
    images, labels = torch.rand(2, 3, 96, 96), torch.tensor([0, 1])
    assert set(model.train().loss(images, labels)) == {"loss_cls", "loss_aux"}
    assert set(model.eval().loss(images, labels)) == {"loss_cls"}


def test_uint8_images_equal_float_images():
    model = ImageClassifier(build_backbone("resnet18", num_classes=3, width=0.125)).eval()
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    torch.testing.assert_close(model.predict(images).scores, model.predict(images.float() / 255).scores)


def test_bad_labels_and_images_are_clear_errors():
    model = ImageClassifier(build_backbone("resnet18", num_classes=3, width=0.125))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got min 0 max 3"):
        model.loss(torch.rand(2, 3, 32, 32), torch.tensor([0, 3]))
    with pytest.raises(TypeError, match="uint8 images or float images"):
        model.predict(torch.zeros(1, 3, 32, 32, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"Tensor\[N, 3, H, W\]"):
        model.predict(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="num_classes"):
        ImageClassifier(build_backbone("resnet18", width=0.125))
