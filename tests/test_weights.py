"""model.weights: a new run starts from whatever fits (detseg checkpoints of other classes,
torchvision detectors/classifiers, backbone files, torchvision weight names), and says what it took."""

from __future__ import annotations

import pytest
import torch
import torchvision

from detseg.backbones.weights import WeightsError
from detseg.config import load_config
from detseg.models import build_model
from detseg.weights import load_weights


def frcnn(repo, *extra):
    return load_config(repo / "configs/faster_rcnn_shapes.yaml", ["model.backbone.width=0.125", *extra]).model


def test_detseg_checkpoint_of_three_classes_into_five(tmp_path, repo):
    torch.manual_seed(0)
    source = build_model(frcnn(repo))
    torch.save({"model": source.state_dict(), "ema": None, "config": {}}, tmp_path / "best.pt")
    torch.manual_seed(1)
    target = build_model(frcnn(repo, "model.num_classes=5"))
    lines = []
    loaded = load_weights(target, tmp_path / "best.pt", log=lines.append)
    own = target.state_dict()
    assert torch.equal(own["backbone.conv1.weight"], source.state_dict()["backbone.conv1.weight"])
    assert not torch.equal(own["roi_heads.box_predictor.cls_score.weight"][:3],
                           source.state_dict()["roi_heads.box_predictor.cls_score.weight"][:3])
    total = sum(not k.endswith("num_batches_tracked") for k in own)
    assert loaded == total - 4  # the box predictor: class logits and class-specific deltas
    assert lines == [f"[weights] {tmp_path / 'best.pt'}: loaded {loaded}/{total} tensors (same names); "
                     "initialised afresh: roi_heads.box_predictor (4)"]


def test_torchvision_faster_rcnn_file_into_another_class_count(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    torch.save(reference.state_dict(), tmp_path / "tv.pth")
    from detseg.detection import faster_rcnn

    model = faster_rcnn("resnet50", num_classes=4)
    lines = []
    load_weights(model, tmp_path / "tv.pth", log=lines.append)
    assert "(torchvision detector)" in lines[0] and lines[0].endswith("initialised afresh: roi_heads.box_predictor (4)")
    assert torch.equal(model.state_dict()["rpn.head.conv.0.0.weight"], reference.state_dict()["rpn.head.conv.0.0.weight"])


def test_backbone_imagenet_file_into_a_detector_and_nothing_usable_is_refused(tmp_path, repo):
    classifier = torchvision.models.resnet18(weights=None)
    torch.save(classifier.state_dict(), tmp_path / "resnet18.pth")
    model = build_model(frcnn(repo, "model.backbone.width=1.0"))
    lines = []
    load_weights(model, tmp_path / "resnet18.pth", log=lines.append)
    assert "backbone file" in lines[0] and "neck" in lines[0] and "rpn" in lines[0]
    assert torch.equal(model.state_dict()["backbone.layer4.1.conv2.weight"], classifier.state_dict()["layer4.1.conv2.weight"])
    torch.save(torchvision.models.vgg11(weights=None).state_dict(), tmp_path / "vgg.pth")
    with pytest.raises(WeightsError, match=r"nothing in .*vgg.pth fits this TwoStageDetector .*another architecture"):
        load_weights(model, tmp_path / "vgg.pth")
    (tmp_path / "junk.pth").write_bytes(b"not torch")
    with pytest.raises(WeightsError, match="cannot read weights from .*junk.pth"):
        load_weights(model, tmp_path / "junk.pth")


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """A torch hub cache holding torchvision's resnet18 file (random weights written here: no download)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    path = tmp_path / "torch" / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    path.parent.mkdir(parents=True)
    torch.manual_seed(3)
    state = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(state, path)
    return state


def test_torchvision_weight_names_resolve_through_the_cache(torch_home, repo, tmp_path):
    name = "torchvision:ResNet18_Weights.IMAGENET1K_V1"
    cfg = load_config(repo / "configs/classifier_resnet18_shapes.yaml",
                      ["model.backbone.width=1.0", f"model.backbone.pretrained={name}"])
    model = build_model(cfg.model)
    assert torch.equal(model.backbone.conv1.weight, torch_home["conv1.weight"])
    detector = build_model(frcnn(repo, "model.backbone.width=1.0"))
    load_weights(detector, name, log=lambda line: None)
    assert torch.equal(detector.backbone.layer1[0].conv1.weight, torch_home["layer1.0.conv1.weight"])
    with pytest.raises(WeightsError, match="not a torchvision weights name"):
        load_weights(detector, "torchvision:ResNet18_Weights.NOPE")


def test_a_detseg_checkpoint_as_backbone_pretrained_points_to_model_weights(tmp_path, repo):
    from detseg.backbones.build import build_backbone

    torch.save({"model": {}, "config": {}, "rng": {"numpy": __import__("numpy").random.get_state()}}, tmp_path / "best.pt")
    with pytest.raises(WeightsError, match=r"best.pt is a detseg checkpoint: start a new run from it with model.weights="):
        build_backbone("resnet18", width=0.125, pretrained_path=str(tmp_path / "best.pt"))


@pytest.mark.slow
def test_fine_tuning_a_three_class_detector_to_five_classes_beats_training_from_scratch(tmp_path, repo):
    """Faster R-CNN on 3 shape kinds, then 5 (ellipse and cross added): 4 epochs from its weights
    against 4 from scratch (measured: bbox mAP50 0.31 against 0.07)."""
    from detseg.engine.checkpoint import new_run_dir
    from detseg.engine.train_loop import train

    base = ["data.image_size=96", "data.augment.image_size=96", "data.num_train=256", "data.num_val=64",
            "train.device=cpu"]
    config = repo / "configs/faster_rcnn_shapes.yaml"
    pre = new_run_dir(tmp_path, "three")
    train(load_config(config, base + ["train.epochs=12"]), pre, quiet=True)
    five = base + ["data.class_names=[circle,rectangle,triangle,ellipse,cross]", "model.num_classes=null",
                   "train.epochs=4"]
    tuned = train(load_config(config, five + [f"model.weights={pre / 'best.pt'}"]), new_run_dir(tmp_path, "tuned"),
                  quiet=True)
    scratch = train(load_config(config, five), new_run_dir(tmp_path, "scratch"), quiet=True)
    assert tuned["bbox/mAP50"] > max(2 * scratch["bbox/mAP50"], scratch["bbox/mAP50"] + 0.1), (tuned, scratch)
