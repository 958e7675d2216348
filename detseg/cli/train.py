"""Train a model from a config file.

Usage (``python tools/train.py`` in a checkout takes the same arguments):
    detseg train CONFIG [--out DIR] [--quiet] [key.sub=value ...]
    detseg train --resume RUN/last.pt [key.sub=value ...]
    torchrun --nproc_per_node=N -m detseg train CONFIG ...      (multi-GPU / multi-node)

Examples:
    detseg train configs/classifier_resnet18_shapes.yaml train.epochs=2 model.backbone.width=0.25
    detseg train --resume runs/classifier_resnet18_shapes/last.pt train.epochs=4 train.lr=0.0005

The resolved config is printed and written to the run folder (``train.out_dir/<name>``, or DIR),
next to ``last.pt``, ``best.pt``, ``metrics.csv``, ``curves.png`` and TensorBoard event files
(``tensorboard --logdir runs``; ``train.tensorboard=false`` turns them off). Earlier runs are never
overwritten. Ctrl-C stops after the batch in flight and saves ``last.pt`` (twice: at once).
``--resume`` continues a run in its own folder, exactly where it stopped; overrides of the
optimiser, schedule, epochs and evaluation apply, changes to the model or data are refused.

Exit status: 0 done, 1 training stopped (non-finite or diverging loss), 2 bad config, data or
checkpoint (one line naming it), 130 interrupted.
"""

from __future__ import annotations

import sys
from pathlib import Path

from detseg.cli import config_parser, parse_config_args
from detseg.config import dump_used_config, load_config
from detseg.engine.checkpoint import new_run_dir
from detseg.engine.distributed import is_main_process
from detseg.engine.train_loop import TrainingStopped, train
from detseg.errors import InputError, one_line
from detseg.evaluation import format_metrics
from detseg.utils.device import resolve_device


def main(argv: list[str] | None = None) -> int:
    parser = config_parser(__doc__, "YAML experiment config (see configs/)", "train.epochs=12")
    parser.add_argument("--out", help="run folder (default: train.out_dir/<train.name or config name>)")
    parser.add_argument("--resume", help="last.pt of a run to continue (its config.yaml is used)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (for logs)")
    args = parse_config_args(parser, argv)
    if not args.config and not args.resume:
        parser.error("give a CONFIG, or --resume RUN/last.pt")
    config = args.config or str(Path(args.resume).parent / "config.yaml")
    try:
        cfg = load_config(config, args.overrides)
        resolve_device(cfg.train.device)  # before a run folder exists
    except (InputError, ValueError) as exc:  # ValueError: an unusable train.device
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    created = None
    if args.resume:
        run_dir = Path(args.resume).parent
    elif not is_main_process_env():
        run_dir = Path(args.out or Path(cfg.train.out_dir) / (cfg.train.name or Path(config).stem))
    else:
        name = cfg.train.name or Path(config).stem
        run_dir = new_run_dir(Path(args.out).parent, Path(args.out).name) if args.out else new_run_dir(cfg.train.out_dir, name)
        created = run_dir
    if is_main_process_env():
        print(f"# run folder: {run_dir} (config.yaml there holds every key)\n{dump_used_config(cfg)}", flush=True)
    try:
        best = train(cfg, run_dir, quiet=args.quiet, resume=args.resume)
    except TrainingStopped as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (InputError, KeyError) as exc:
        # a config, data, weights or checkpoint problem; KeyError: an unknown model.arch or
        # backbone name (the message lists the valid ones)
        if created is not None and not any(created.iterdir()):
            created.rmdir()
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if is_main_process():
        print(f"best epoch (by {cfg.eval.metric}):\n{format_metrics(best)}")
        print(f"saved: {run_dir}")
    return 0


def is_main_process_env() -> bool:
    """Rank 0 (or no torchrun): only it creates the run folder, before the process group exists."""
    import os
    return os.environ.get("RANK", "0") == "0"


if __name__ == "__main__":
    sys.exit(main())
