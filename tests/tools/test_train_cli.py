import json
import subprocess
import sys


def run(repo, *args):
    return subprocess.run([sys.executable, "tools/train.py", *args], cwd=repo,
                          capture_output=True, text=True, timeout=600)


def test_train_cli_end_to_end(tmp_path, repo):
    out = tmp_path / "demo"
    proc = run(repo, "configs/classifier_resnet18_shapes.yaml", "--out", str(out), "--quiet",
               "model.backbone.width=0.125", "data.image_size=32", "data.num_train=32",
               "data.num_val=16", "train.epochs=1", "train.device=cpu")
    assert proc.returncode == 0, proc.stderr
    assert "backbone:" in proc.stdout and "best: " in proc.stdout and "accuracy=" in proc.stdout
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
