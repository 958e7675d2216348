"""The ``detseg`` command: help and version, each subcommand wired to its tool, the installed script.

Subcommands are called in-process through :func:`detseg.cli.main` on tiny inputs (a subprocess
each would cost more than the work); the installed script runs once, a real one-epoch training.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

import detseg
from detseg import cli
from detseg.checkpoint_io import save_checkpoint
from detseg.config import load_config, to_dict
from detseg.data.synthetic import ShapesConfig, write_coco
from detseg.models import build_model

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "detseg"
#: a one-epoch classifier run on a handful of 32-px images (about a second)
TINY_TRAIN = ["train.epochs=1", "train.device=cpu", "data.num_train=8", "data.num_val=4", "data.batch_size=4",
              "data.image_size=32", "data.num_workers=0", "model.backbone.width=0.125"]


def run(capsys, *argv) -> tuple[int, str, str]:
    """``detseg ARGV`` in-process: exit status (argparse's SystemExit included), stdout, stderr."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_every_command_on_one_line(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and out.startswith("usage: detseg")
    assert list(cli.COMMANDS) == ["train", "eval", "infer", "export", "check", "convert", "summary", "demo"]
    lines = out.splitlines()
    for name, (_, summary) in cli.COMMANDS.items():
        assert any(line.split() == [name, *summary.split()] for line in lines), f"{name}: {summary!r} not one line"


def test_version_is_the_packages(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"detseg {detseg.__version__}"
    assert importlib.metadata.version("detseg") == detseg.__version__  # pyproject reads it from detseg/__init__.py
    module = subprocess.run([sys.executable, "-m", "detseg", "--version"], capture_output=True, text=True)
    assert module.stdout.strip() == f"detseg {detseg.__version__}"  # python -m detseg: the same command


def test_no_or_unknown_command_is_a_usage_error(capsys):
    code, _, err = run(capsys)
    assert code == 2 and "COMMAND" in err
    code, _, err = run(capsys, "trian", "x.yaml")
    assert code == 2 and "invalid choice: 'trian'" in err and "train" in err


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_each_command_has_its_tools_help_under_its_own_name(name, capsys):
    code, out, _ = run(capsys, name, "--help")
    assert code == 0 and out.startswith(f"usage: detseg {name} ")
    assert sys.argv[0] != f"detseg {name}"  # the program name is put back afterwards


def test_every_command_is_a_module_of_the_package():
    # a plain (non-editable) install has no tools/ folder: every command must live in detseg.cli
    assert all(module.startswith("detseg.cli.") for module, _ in cli.COMMANDS.values())


def tiny_detector(path: Path) -> Path:
    """A random-weight YOLO nano checkpoint as tools/train.py saves it (no training)."""
    cfg = load_config(REPO / "configs/yolo_shapes.yaml", ["model.backbone.width=0.125", "data.augment.image_size=64"])
    save_checkpoint({"model": build_model(cfg.model).state_dict(), "config": to_dict(cfg),
                     "class_names": ["circle", "rectangle", "triangle"], "category_ids": [1, 2, 3]}, path)
    return path


def test_each_command_runs_its_tool(tmp_path, capsys):
    """One cheap real call per command (training through the installed script: see below)."""
    shapes = tmp_path / "shapes"
    write_coco(ShapesConfig(num_images=4, image_size=(48, 64), max_objects=2, seed=3), shapes)
    ann = shapes / "annotations.json"
    assert run(capsys, "check", ann, shapes / "images", "--quiet")[0] == 0
    assert run(capsys, "convert", "--from", "coco", "--images", shapes / "images", "--annotations", ann,
               "--to", "yolo", "--out", tmp_path / "yolo", "--quiet")[0] == 0
    assert (tmp_path / "yolo" / "data.yaml").is_file()
    code, out, _ = run(capsys, "summary", "resnet18", "--width", "0.125", "--input-size", "32", "--max-rows", "2")
    assert code == 0 and out.startswith("resnet18 (classifier")

    ckpt = tiny_detector(tmp_path / "yolo.pt")
    assert run(capsys, "infer", "--checkpoint", ckpt, "--source", shapes / "images", "--out", tmp_path / "infer",
               "--device", "cpu", "--no-save", "--quiet")[0] == 0
    assert (tmp_path / "infer" / "predictions.json").is_file()
    assert run(capsys, "demo", "--draw", ckpt, "--out", tmp_path / "demo")[0] == 0
    assert (tmp_path / "demo" / f"{tmp_path.name}.png").is_file()  # DIR/<run folder name>.png
    code, _, err = run(capsys, "export", "--checkpoint", tmp_path / "missing.pt")
    assert code == 2 and "missing.pt" in err


def test_installed_script_trains_and_evaluates(tmp_path, capsys):
    """``pip install`` put ``detseg`` next to the interpreter: a real run through it, then ``detseg eval``."""
    assert SCRIPT.is_file(), f"{SCRIPT} is missing: run `bash tools/setup.sh` (pip install -e .) again"
    assert subprocess.run([SCRIPT, "--version"], capture_output=True, text=True).stdout.strip() == \
        f"detseg {detseg.__version__}"
    proc = subprocess.run([SCRIPT, "train", "configs/classifier_resnet18_shapes.yaml", "--quiet", "--out",
                           tmp_path / "run", *TINY_TRAIN], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "run" / "best.pt").is_file() and list((tmp_path / "run").glob("events.out.tfevents.*"))
    code, out, _ = run(capsys, "eval", "--checkpoint", tmp_path / "run" / "best.pt", "--quiet", "--out",
                       tmp_path / "eval")
    assert code == 0 and (tmp_path / "eval" / "metrics.json").is_file() and "accuracy" in out
