import csv
from dataclasses import replace

import pytest

from detseg.checkpoint_io import CheckpointError, load_checkpoint, save_checkpoint
from detseg.classification import ImageClassifier
from detseg.config import load_config
from detseg.engine.checkpoint import new_run_dir
from detseg.engine.train_loop import NonFiniteLossError, train

TINY = [
    "model.backbone.width=0.125", "data.image_size=32", "data.num_train=64", "data.num_val=32",
    "data.batch_size=16", "train.epochs=2", "train.device=cpu",
]


def test_run_folder_contents(tmp_path, repo):
    cfg = load_config(repo / "configs/classifier_resnet18_shapes.yaml", TINY)
    run = new_run_dir(tmp_path, "run")
    best = train(cfg, run, quiet=True)
    names = {p.name for p in run.iterdir()}
    events = {n for n in names if n.startswith("events.out.tfevents.")}  # TensorBoard
    assert names - events == {"config.yaml", "last.pt", "best.pt", "metrics.csv", "curves.png"} and len(events) == 1
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"train/loss", "val/loss_cls", "accuracy", "accuracy/circle"} <= set(rows[0])
    state = load_checkpoint(run / "last.pt")
    assert state["epoch"] == 2 and state["config"]["train"]["epochs"] == 2
    assert 0.0 <= best["accuracy"] <= 1.0
    saved = load_config(run / "config.yaml")  # the resolved config, with the classes the data gave
    assert saved.model.class_names == ("circle", "rectangle", "triangle")
    assert replace(saved, model=replace(saved.model, class_names=None)) == cfg


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, repo, monkeypatch):
    cfg = load_config(repo / "configs/classifier_resnet18_shapes.yaml", TINY)
    calls = {"n": 0}
    original = ImageClassifier.loss

    def poisoned(self, images, labels):
        losses = original(self, images, labels)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 6:  # epoch 2 (4 iterations per epoch)
                losses["loss_cls"] = losses["loss_cls"] * float("nan")
        return losses

    monkeypatch.setattr(ImageClassifier, "loss", poisoned)
    run = new_run_dir(tmp_path, "run")
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, iteration 5: \{'loss_cls': nan\}"):
        train(cfg, run, quiet=True)
    assert load_checkpoint(run / "last.pt")["epoch"] == 1


def test_checkpoint_write_is_atomic_and_runs_are_kept(tmp_path):
    save_checkpoint({"model": {}, "config": {}}, tmp_path / "a.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]
    first, second = new_run_dir(tmp_path, "x"), new_run_dir(tmp_path, "x")
    assert (first.name, second.name) == ("x", "x-2")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.slow
def test_classifier_learns_shapes(tmp_path, repo):
    """The demo config as shipped: a tiny ResNet-18 names the shape in >= 90% of val images."""
    cfg = load_config(repo / "configs/classifier_resnet18_shapes.yaml",
                      ["train.device=cpu"])
    best = train(cfg, new_run_dir(tmp_path, "run"), quiet=True)
    assert best["accuracy"] >= 0.9, best
