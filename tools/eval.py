"""Evaluate a checkpoint on the validation split of its config.

Usage:
    python tools/eval.py CONFIG --checkpoint RUN/best.pt [--out DIR] [--quiet] [key.sub=value ...]

Writes ``metrics.json`` (stable keys: ``bbox/mAP``, ``bbox/mAP50``, ``segm/mAP``, ``miou``,
``accuracy`` ... plus per-class values, and for detectors the F1-optimal score thresholds), and
for detectors the COCO results json and the precision-recall, F1 and confusion-matrix pictures,
into DIR (default: the checkpoint's folder ``eval/``), and prints a readable table. EMA weights
are used when the checkpoint has them. On COCO-format data, detections are mapped back to the
image files and scored against the annotation json itself, so the numbers are pycocotools'.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from detseg.config import ConfigError, load_config
from detseg.data.build import build_datasets, make_loader
from detseg.engine.checkpoint import load_checkpoint
from detseg.engine.evaluate import build_evaluator, validate
from detseg.engine.train_loop import resolve_device
from detseg.evaluation import CocoEvaluator
from detseg.models import build_model


def format_table(metrics: dict[str, float]) -> str:
    """Headline metrics first, then per-class values, one per line."""
    width = max((len(k) for k in metrics), default=0)
    headline = [k for k in metrics if k.count("/") <= 1 and not k.startswith(("bbox/AP/", "segm/AP/"))]
    rest = [k for k in metrics if k not in headline]
    return "\n".join(f"{k:<{width}}  {metrics[k]:.4f}" for k in headline + rest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="YAML experiment config (its data section picks the split)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. data.batch_size=8")
    parser.add_argument("--checkpoint", required=True, help="a last.pt / best.pt written by tools/train.py")
    parser.add_argument("--out", help="output folder (default: <checkpoint folder>/eval)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_intermixed_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        state = load_checkpoint(args.checkpoint)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    device = resolve_device(cfg.train.device)
    model = build_model(cfg.model)
    try:
        model.load_state_dict(state["ema"] or state["model"])
    except RuntimeError as exc:
        print(f"error: {args.checkpoint} does not fit the model of {args.config}: {exc}", file=sys.stderr)
        return 2
    model.to(device)
    _, val_set = build_datasets(cfg.data, model.task, with_masks=getattr(model, "with_masks", False))
    class_names = cfg.model.class_names or tuple(val_set.class_names)
    with_masks = getattr(model, "with_masks", False)
    original_frame = False
    if model.task == "detection" and cfg.data.format == "coco":
        # score against the json itself, with predictions mapped back to the image files
        evaluator = CocoEvaluator(cfg.data.val.annotations, val_set.category_ids, class_names,
                                  iou_types=("bbox", "segm") if with_masks else ("bbox",))
        original_frame = True
    else:
        evaluator = build_evaluator(model.task, cfg.model.num_classes, class_names, with_masks=with_masks)
    loader = make_loader(val_set, cfg.data, train=False, pin_memory=device.type == "cuda")
    metrics = validate(model, loader, evaluator, device, quiet=args.quiet, resize=cfg.data.augment,
                       original_frame=original_frame)
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / "eval"
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    for method, name in (("write_results", "results.json"), ("save_plots", None)):
        if hasattr(evaluator, method):
            getattr(evaluator, method)(out / name if name else out)
    print(format_table(metrics))
    print(f"saved: {out}")
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
