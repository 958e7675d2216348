import json
import subprocess
import sys

import pytest
import torch


def run(repo, *args):
    return subprocess.run([sys.executable, "tools/train.py", *args], cwd=repo,
                          capture_output=True, text=True, timeout=600)


def test_train_cli_end_to_end(tmp_path, repo):
    out = tmp_path / "demo"
    proc = run(repo, "configs/classifier_resnet18_shapes.yaml", "--out", str(out), "--quiet",
               "model.backbone.width=0.125", "data.image_size=32", "data.num_train=32",
               "data.num_val=16", "train.epochs=1", "train.device=cpu")
    assert proc.returncode == 0, proc.stderr
    assert "backbone:" in proc.stdout and "best epoch (by accuracy):" in proc.stdout and "\naccuracy  0." in proc.stdout
    assert (out / "best.pt").is_file() and (out / "config.yaml").is_file()


def test_train_cli_rejects_bad_key_before_work(tmp_path, repo):
    proc = run(repo, "configs/classifier_resnet18_shapes.yaml", "--out", str(tmp_path / "x"), "train.epcohs=1")
    assert proc.returncode == 2
    assert "unknown key 'train.epcohs'" in proc.stderr and "did you mean 'epochs'" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_train_then_eval_then_resume_cli(tmp_path, repo):
    out = tmp_path / "run"
    tiny = ["model.backbone.width=0.125", "data.image_size=32", "data.num_train=32", "data.num_val=16",
            "train.device=cpu"]
    assert run(repo, "configs/classifier_resnet18_shapes.yaml", "--out", str(out), "--quiet",
               "train.epochs=1", *tiny).returncode == 0
    proc = subprocess.run([sys.executable, "tools/eval.py", "configs/classifier_resnet18_shapes.yaml",
                           "--checkpoint", str(out / "best.pt"), "--quiet", *tiny],
                          cwd=repo, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert {"accuracy", "val/loss", "accuracy/circle"} <= set(metrics)
    assert "accuracy" in proc.stdout
    resumed = run(repo, "--resume", str(out / "last.pt"), "train.epochs=2", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert "epoch 2/2" in resumed.stdout and "epoch 1/2" not in resumed.stdout


def test_eval_cli_names_a_bad_checkpoint(tmp_path, repo):
    (tmp_path / "x.pt").write_text("nope")
    proc = subprocess.run([sys.executable, "tools/eval.py", "configs/classifier_resnet18_shapes.yaml",
                           "--checkpoint", str(tmp_path / "x.pt")], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 2 and "x.pt" in proc.stderr


@pytest.mark.parametrize("config,size", [("faster_rcnn_shapes", 64), ("unet_shapes", 32)])
def test_a_diverging_lr_stops_with_one_line(tmp_path, repo, config, size):
    """lr 1000: Faster R-CNN used to crash in validation (no proposals), U-Net to finish with rc 0."""
    proc = run(repo, f"configs/{config}.yaml", "--out", str(tmp_path / "run"), "--quiet", "train.lr=1000",
               "train.epochs=2", "data.num_train=32", "data.num_val=8", f"data.image_size={size}",
               f"data.augment.image_size={size}", "train.device=cpu")
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: training diverged at epoch 1, iteration "), lines
    assert "loss_" in lines[0] and not (tmp_path / "run" / "last.pt").exists()


def test_resume_refuses_a_model_change_in_one_line(tmp_path, repo):
    out = tmp_path / "run"
    tiny = ["model.backbone.width=0.125", "data.image_size=32", "data.num_train=16", "data.num_val=8", "train.device=cpu"]
    assert run(repo, "configs/classifier_resnet18_shapes.yaml", "--out", str(out), "--quiet", "train.epochs=1",
               *tiny).returncode == 0
    proc = run(repo, "--resume", str(out / "last.pt"), "train.epochs=2", "model.backbone.name=vgg11")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "--resume cannot change model.backbone.name ('resnet18' -> 'vgg11')" in proc.stderr
    (out / "last.pt").write_bytes((out / "last.pt").read_bytes()[:1000])  # truncated by a full disk
    proc = run(repo, "--resume", str(out / "last.pt"))
    assert proc.returncode == 2 and "cannot read checkpoint" in proc.stderr and "Traceback" not in proc.stderr


def test_device_cuda_without_a_gpu_is_one_line_before_any_folder(tmp_path, repo):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = run(repo, "configs/classifier_resnet18_shapes.yaml", "--out", str(tmp_path / "x"), "train.device=cuda")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no CUDA GPU" in proc.stderr
    assert not (tmp_path / "x").exists() and "backbone:" not in proc.stdout


def test_unknown_arch_is_one_line_and_leaves_no_folder(tmp_path, repo):
    proc = run(repo, "configs/classifier_resnet18_shapes.yaml", "--out", str(tmp_path / "x"), "model.arch=yolov9")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "unknown model arch 'yolov9'" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_num_classes_comes_from_the_data_and_a_mismatch_is_one_line(tmp_path, repo):
    tiny = ["model.backbone.width=0.125", "data.image_size=32", "data.num_train=16", "data.num_val=8",
            "train.device=cpu", "train.epochs=1"]
    out = tmp_path / "run"
    proc = run(repo, "configs/classifier_resnet18_shapes.yaml", "--out", str(out), "--quiet", "model.num_classes=null",
               *tiny)
    assert proc.returncode == 0, proc.stderr
    assert "[train] 3 classes from the data: circle, rectangle, triangle" in proc.stdout
    assert "num_classes: 3" in (out / "config.yaml").read_text()
    proc = run(repo, "configs/classifier_resnet18_shapes.yaml", "--out", str(tmp_path / "bad"), "model.num_classes=5",
               *tiny)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "model.num_classes=5 but the training data has 3 classes (circle, rectangle, triangle)" in proc.stderr
    assert not (tmp_path / "bad").exists() and "epoch 1/1" not in proc.stdout


def test_a_data_key_the_format_does_not_read_is_one_line_before_any_folder(tmp_path, repo):
    proc = run(repo, "configs/faster_rcnn_shapes.yaml", "--out", str(tmp_path / "x"), "data.format=voc",
               f"data.train.root={tmp_path}", f"data.val.root={tmp_path}", "data.image_size=32")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr == ("error: data.image_size (in command-line override 'data.image_size=32') does nothing for "
                           "data.format=voc: the model input size is data.augment.image_size\n")
    assert not (tmp_path / "x").exists()
