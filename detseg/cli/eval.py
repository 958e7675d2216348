"""Evaluate a checkpoint on the validation split of its config.

Usage (``python tools/eval.py`` in a checkout takes the same arguments):
    detseg eval --checkpoint RUN/best.pt [--out DIR] [--quiet] [key.sub=value ...]
    detseg eval CONFIG --checkpoint RUN/best.pt [...]     (another config's data)

Without CONFIG, the config stored in the checkpoint is used (the one the run trained with);
overrides apply either way, e.g. ``data.val.images=...`` where the data lives elsewhere.
Writes ``metrics.json`` (stable keys: ``bbox/mAP``, ``bbox/mAP50``, ``segm/mAP``, ``miou``,
``accuracy`` ... plus per-class values, and for detectors the F1-optimal score thresholds), and
for detectors the COCO results json and the precision-recall, F1 and confusion-matrix pictures,
into DIR (default: the checkpoint's folder ``eval/``), and prints a compact table: the overall
metrics, then one row per class. EMA weights are used when the checkpoint has them. On
COCO-format data, detections are mapped back to the image files and scored against the
annotation json itself, so the numbers are pycocotools'.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from detseg.checkpoint_io import CheckpointError, load_checkpoint
from detseg.cli import config_parser, parse_config_args
from detseg.config import ExperimentConfig, config_from_dict, load_config
from detseg.data.build import build_datasets, make_loader
from detseg.engine.evaluate import build_evaluator, validate
from detseg.evaluation import CocoEvaluator, format_metrics
from detseg.errors import InputError, one_line
from detseg.models import build_model, model_spec
from detseg.utils.device import resolve_device


def eval_config(config: str | None, overrides: list[str], state: dict, checkpoint: str) -> ExperimentConfig:
    """``config`` plus overrides, or the checkpoint's own config plus overrides.

    A config without ``model.num_classes`` (taken from the data when training) gets the
    checkpoint's classes, so the model matches the saved weights.
    """
    if config is None:
        # its weights files need not exist here (the checkpoint holds the weights); missing data is
        # named when the datasets are built
        return config_from_dict(state["config"], overrides, f"the config in {checkpoint}", resolved=True,
                                check_paths=False)
    cfg = load_config(config, overrides)
    if cfg.model.num_classes is None:
        saved = state["config"]["model"]
        cfg = replace(cfg, model=replace(cfg.model, num_classes=saved["num_classes"],
                                         class_names=cfg.model.class_names or saved.get("class_names")))
    return cfg


def load_weights(model: torch.nn.Module, state: dict, checkpoint: str, config: str | None) -> None:
    """The checkpoint's EMA (else raw) weights into ``model``; a misfit is a one-line CheckpointError."""
    try:
        model.load_state_dict(state.get("ema") or state["model"])
    except RuntimeError as exc:
        source = config or f"the config in {checkpoint}"
        raise CheckpointError(f"{checkpoint} does not fit the model of {source}: {one_line(exc)}") from exc


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    parser = config_parser(__doc__, "YAML experiment config; default: the checkpoint's", "data.batch_size=8")
    parser.add_argument("--checkpoint", required=True, help="a last.pt / best.pt written by tools/train.py")
    parser.add_argument("--out", help="output folder (default: <checkpoint folder>/eval)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parse_config_args(parser, argv)
    try:
        state = load_checkpoint(args.checkpoint)
        cfg = eval_config(args.config, args.overrides, state, args.checkpoint)
        device = resolve_device(cfg.train.device)
        model = build_model(cfg.model, pretrained=False)
        load_weights(model, state, args.checkpoint, args.config)
        model.to(device)
        spec = model_spec(cfg.model.arch)
        _, val_set = build_datasets(cfg.data, spec.task, with_masks=spec.with_masks)
        class_names = cfg.model.class_names or tuple(val_set.class_names)
        original_frame = spec.task == "detection" and cfg.data.format == "coco"
        if original_frame:  # score against the json itself, with predictions mapped back to the image files
            evaluator = CocoEvaluator(cfg.data.val.annotations, val_set.category_ids, class_names,
                                      iou_types=("bbox", "segm") if spec.with_masks else ("bbox",))
        else:
            evaluator = build_evaluator(spec.task, cfg.model.num_classes, class_names, with_masks=spec.with_masks)
    except (InputError, ValueError, KeyError) as exc:  # ValueError: train.device, a json evaluation refuses
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    loader = make_loader(val_set, cfg.data, train=False, pin_memory=device.type == "cuda")
    metrics = validate(model, loader, evaluator, device, quiet=args.quiet, resize=cfg.data.augment,
                       original_frame=original_frame)
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / "eval"
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    for method, name in (("write_results", "results.json"), ("save_plots", None)):
        if hasattr(evaluator, method):
            getattr(evaluator, method)(out / name if name else out)
    print(format_metrics(metrics, spec.task, counts=evaluator.class_counts()))
    print(f"saved: {out} (every value in metrics.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
