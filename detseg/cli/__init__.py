"""The ``detseg`` command: every tool behind one entry point, ``detseg COMMAND [ARGS ...]``.

Each subcommand runs one tool's ``main(argv)`` with the rest of the command line, so it takes
exactly the arguments of that tool (``detseg train CONFIG ...`` is ``python tools/train.py
CONFIG ...`` in a checkout) and returns its exit status. The tools live in this package
(``detseg/cli/<tool>.py``; ``tools/<tool>.py`` are thin wrappers kept for checkouts), except
``infer`` and ``export``, which still live in ``tools/`` and so need a checkout (an editable
install) until they move here too. A tool is imported only when its subcommand runs, so
``detseg --help`` answers without loading torch.

Exit status: the tool's; 2 for an unknown command or bad arguments (argparse's convention).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from .. import __version__

#: the repository a checkout or editable install runs from (``tools/`` lives there)
CHECKOUT = Path(__file__).resolve().parents[2]

#: subcommand -> (the module with its ``main(argv)``, or a script of the checkout; one line of help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("detseg.cli.train", "train a model from a config file (or --resume a run)"),
    "eval": ("detseg.cli.eval", "evaluate a checkpoint: metrics.json, table, plots"),
    "infer": ("tools/infer.py", "predict on images or video: pictures, json, datasets"),
    "export": ("tools/export.py", "export to ONNX or TorchScript, checked against PyTorch"),
    "check": ("detseg.cli.check_dataset", "check a dataset: every problem of its files in one pass"),
    "convert": ("detseg.cli.convert", "convert datasets between COCO, VOC, YOLO, mask folders"),
    "summary": ("detseg.cli.summary", "per-layer table of a backbone: shapes, params, FLOPs"),
    "demo": ("detseg.cli.demo", "train and draw a small detector and segmenter (shapes)"),
}


def build_parser() -> argparse.ArgumentParser:
    """``detseg --help`` / ``--version``; the subcommands' own arguments are their tools'."""
    parser = argparse.ArgumentParser(
        prog="detseg", description="Object detection and segmentation on classic CNN backbones.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'detseg COMMAND --help' for the arguments of a command.\n"
               "Example: detseg train configs/yolo_shapes.yaml train.epochs=2")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    for name, (_, line) in COMMANDS.items():
        commands.add_parser(name, help=line, add_help=False)
    return parser


class CommandUnavailable(RuntimeError):
    """A subcommand whose tool is a script of a checkout that this installation does not have."""


def load_tool(name: str) -> ModuleType:
    """The module holding subcommand ``name``'s ``main(argv)``.

    Raises:
        CommandUnavailable: the tool is a ``tools/`` script and detseg runs from a wheel.
    """
    target = COMMANDS[name][0]
    if not target.endswith(".py"):
        return importlib.import_module(target)
    path = CHECKOUT / target
    if not path.is_file():
        raise CommandUnavailable(f"'detseg {name}' runs {target} of a detseg checkout, and this installation "
                                 f"({CHECKOUT}) has none; install from a clone with 'pip install -e .'")
    spec = importlib.util.spec_from_file_location(f"_detseg_tool_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    """``detseg COMMAND [ARGS ...]``: run the command's tool; ``--help``/``--version`` otherwise."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        parser = build_parser()
        parser.parse_args(argv)  # prints the help or the version, or names the problem; exits either way
        parser.error("the command comes first: detseg COMMAND [ARGS ...]")
    name, rest = argv[0], argv[1:]
    try:
        tool = load_tool(name)
    except CommandUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    saved = sys.argv[0]
    sys.argv[0] = f"detseg {name}"  # argparse names the program after it: "usage: detseg train ..."
    try:
        return tool.main(rest)
    finally:
        sys.argv[0] = saved
