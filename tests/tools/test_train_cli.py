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
