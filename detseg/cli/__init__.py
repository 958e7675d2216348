"""The ``detseg`` command: every tool behind one entry point, ``detseg COMMAND [ARGS ...]``.

Each subcommand runs one tool's ``main(argv)`` with the rest of the command line, so it takes
exactly the arguments of that tool (``detseg train CONFIG ...`` is ``python tools/train.py
CONFIG ...`` in a checkout) and returns its exit status. The tools live in this package
(``detseg/cli/<tool>.py``; ``tools/<tool>.py`` are thin wrappers kept for checkouts), so every
command works from a plain ``pip install``. A tool is imported only when its subcommand runs, so
``detseg --help`` answers without loading torch.

Exit status: the tool's; 2 for an unknown command or bad arguments (argparse's convention).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__

#: subcommand -> (the module with its ``main(argv)``, one line of help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("detseg.cli.train", "train a model from a config file (or --resume a run)"),
    "eval": ("detseg.cli.eval", "evaluate a checkpoint: metrics.json, table, plots"),
    "infer": ("detseg.cli.infer", "predict on images or video: pictures, json, datasets"),
    "export": ("detseg.cli.export", "export to ONNX or TorchScript, checked against PyTorch"),
    "check": ("detseg.cli.check_dataset", "check a dataset: every problem of its files in one pass"),
    "convert": ("detseg.cli.convert", "convert datasets between COCO, VOC, YOLO, mask folders"),
    "summary": ("detseg.cli.summary", "per-layer table of a backbone: shapes, params, FLOPs"),
    "demo": ("detseg.cli.demo", "train and draw a small detector and segmenter (shapes)"),
}


def config_parser(doc: str, config_help: str, overrides_example: str) -> argparse.ArgumentParser:
    """A tool's parser taking ``[CONFIG] [key.sub=value ...]``: description and epilog from the
    tool's docstring (first paragraph / the rest); read it with :func:`parse_config_args`."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0], epilog="\n\n".join(doc.split("\n\n")[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", help=config_help)
    parser.add_argument("overrides", nargs="*", help=f"dotted overrides, e.g. {overrides_example}")
    return parser


def parse_config_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Options and positionals in any order; without a CONFIG the first override lands in
    ``config`` (``--resume X key=value``), so it is moved back to ``overrides``."""
    args = parser.parse_intermixed_args(argv)
    if args.config and "=" in args.config:
        args.overrides.insert(0, args.config)
        args.config = None
    return args


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


def main(argv: list[str] | None = None) -> int:
    """``detseg COMMAND [ARGS ...]``: run the command's tool; ``--help``/``--version`` otherwise."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        parser = build_parser()
        parser.parse_args(argv)  # prints the help or the version, or names the problem; exits either way
        parser.error("the command comes first: detseg COMMAND [ARGS ...]")
    name, rest = argv[0], argv[1:]
    tool = importlib.import_module(COMMANDS[name][0])
    saved = sys.argv[0]
    sys.argv[0] = f"detseg {name}"  # argparse names the program after it: "usage: detseg train ..."
    try:
        return tool.main(rest)
    finally:
        sys.argv[0] = saved
