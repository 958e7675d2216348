"""Train a model from a config file.

Usage:
    python tools/train.py CONFIG [--out DIR] [--quiet] [key.sub=value ...]

Example:
    python tools/train.py configs/classifier_resnet18_shapes.yaml train.epochs=2 model.backbone.width=0.25

The resolved config is printed and written to the run folder (``train.out_dir/<name>``, or DIR),
next to ``last.pt``, ``best.pt`` and ``metrics.csv``. Earlier runs are never overwritten.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detseg.config import ConfigError, dump_config, load_config
from detseg.engine.checkpoint import new_run_dir
from detseg.engine.train_loop import NonFiniteLossError, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="YAML experiment config (see configs/)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.epochs=12")
    parser.add_argument("--out", help="run folder (default: train.out_dir/<train.name or config name>)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (for logs)")
    args = parser.parse_intermixed_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    name = cfg.train.name or Path(args.config).stem
    run_dir = new_run_dir(Path(args.out).parent, Path(args.out).name) if args.out else new_run_dir(cfg.train.out_dir, name)
    print(f"# run folder: {run_dir}\n{dump_config(cfg)}", flush=True)
    try:
        best = train(cfg, run_dir, quiet=args.quiet)
    except NonFiniteLossError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("best: " + "  ".join(f"{k}={v:.4f}" for k, v in best.items() if isinstance(v, float)))
    print(f"saved: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
