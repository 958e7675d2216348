"""tools/eval.py: the checkpoint's own config when no CONFIG is given, and the compact table."""

import importlib.util
import json
from pathlib import Path

from detseg.checkpoint_io import save_checkpoint
from detseg.config import load_config, to_dict
from detseg.engine.checkpoint import new_run_dir
from detseg.engine.train_loop import train
from detseg.models import build_model

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("_detseg_tool_eval", REPO / "tools" / "eval.py")
eval_tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(eval_tool)

TINY = ["model.backbone.width=0.125", "data.image_size=64", "data.augment.image_size=64", "data.num_val=4",
        "data.batch_size=4", "train.device=cpu"]


def test_eval_without_config_uses_the_checkpoints_and_prints_a_table_per_class(tmp_path, repo, capsys):
    """A random-weight Mask R-CNN saved as tools/train.py saves it; overrides still apply."""
    names = "model.class_names=[circle, rectangle, triangle]"
    cfg = load_config(repo / "configs/mask_rcnn_shapes.yaml", [*TINY, names])
    ckpt = tmp_path / "run" / "best.pt"
    ckpt.parent.mkdir()
    save_checkpoint({"model": build_model(cfg.model).state_dict(), "config": to_dict(cfg),
                     "class_names": list(cfg.model.class_names)}, ckpt)
    assert eval_tool.main(["--checkpoint", str(ckpt), "--quiet", "model.class_names=[a, b, c]"]) == 0
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert {"bbox/mAP", "segm/mAP", "segm/AP50/a", "bbox/AP/c"} <= set(metrics)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) <= 20 + 3 and lines[-1].startswith("saved: ")
    assert lines[1].split() == ["box", "mask"]
    header = lines.index(next(line for line in lines if line.startswith("class ")))
    assert lines[header].split()[:2] == ["class", "instances"] and lines[header + 1].startswith("all ")
    listed = {line.split()[0] for line in lines[header + 2:-1] if not line.startswith("(")}
    assert listed <= {"a", "b", "c"} and listed  # the override renamed the classes


def test_eval_of_a_trained_run_needs_only_the_checkpoint(tmp_path, repo, capsys):
    cfg = load_config(repo / "configs/classifier_resnet18_shapes.yaml", [
        "model.backbone.width=0.125", "data.image_size=32", "data.num_train=16", "data.num_val=8", "train.epochs=1",
        "train.device=cpu"])
    run_dir = new_run_dir(tmp_path, "run")
    train(cfg, run_dir, quiet=True)
    capsys.readouterr()
    assert eval_tool.main(["--checkpoint", str(run_dir / "best.pt"), "--quiet", "--out", str(tmp_path / "eval")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("accuracy  ") and lines[3].split() == ["class", "images", "accuracy"]
    assert [line.split()[0] for line in lines[4:7]] == ["circle", "rectangle", "triangle"]
    assert sum(int(line.split()[1]) for line in lines[4:7]) == 8
