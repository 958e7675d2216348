"""Which config keys a run reads: strict checks of data-format keys, and the printed config.

The schema holds every section of every model and data format, so a resolved config lists many
values the chosen ``model.arch`` and ``data.format`` never read. Two things follow from knowing
which keys those are:

* :func:`check_data_keys`: a data key the format does not read, set to something other than
  its default, is an error naming the key, the format and what to use instead (it would
  otherwise be silently ignored, e.g. ``data.image_size`` for COCO data).
* :func:`dump_used_config`: the resolved config as YAML with only what the run reads, for
  printing; ``config.yaml`` in the run folder stays the complete :func:`~.io.dump_config`.

The tables below mirror the builders (``detseg/models.py``, ``detseg/data/build.py``); tests
fail when an architecture or format is missing from them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from .io import ConfigError, Source, dump_yaml, parse_override, to_dict
from .schema import DataConfig, ExperimentConfig
from .yolo import YoloConfig

#: model.arch -> parts of ``model`` it reads (dotted, below ``model``), besides ``arch``,
#: ``num_classes`` and ``class_names``; an arch missing here is shown whole
MODEL_PARTS: dict[str, tuple[str, ...]] = {
    "classifier": ("backbone",),
    "rcnn": ("backbone", "two_stage.roi_heads", "two_stage.proposals", "two_stage.warp_size",
             "two_stage.warp_context"),
    "fast_rcnn": ("backbone", "neck", "two_stage.roi_heads", "two_stage.proposals"),
    "faster_rcnn": ("backbone", "neck", "two_stage.rpn", "two_stage.roi_heads"),
    "mask_rcnn": ("backbone", "neck", "two_stage.rpn", "two_stage.roi_heads", "two_stage.mask"),
    **{arch: ("backbone", "segmentation.fcn", "segmentation.loss") for arch in ("fcn32s", "fcn16s", "fcn8s")},
    "unet": ("segmentation.unet.base_channels", "segmentation.unet.depth", "segmentation.unet.use_bn",
             "segmentation.loss"),
    "unet_backbone": ("backbone", "segmentation.unet.use_bn", "segmentation.unet.max_decoder_channels",
                      "segmentation.loss"),
    "deeplabv3": ("backbone", "segmentation.aspp", "segmentation.loss"),
    "yolo": ("backbone", *(f"yolo.{f.name}" for f in dataclasses.fields(YoloConfig) if f.name != "v1")),
    "yolov1": ("backbone", "yolo.v1"),
}

#: data.format -> the ``data.train`` / ``data.val`` fields its reader reads
SPLIT_KEYS: dict[str, tuple[str, ...]] = {
    "shapes": (),
    "coco": ("images", "annotations"),
    "voc": ("root", "split"),
    "yolo": ("annotations", "split"),
    "masks": ("images", "masks"),
}

#: data keys only some formats read: key below ``data`` -> (those formats, what to use instead)
FORMAT_KEYS: dict[str, tuple[tuple[str, ...], str]] = {
    "image_size": (("shapes",), "the model input size is data.augment.image_size"),
    "num_train": (("shapes",), "the training images are all those data.train holds"),
    "num_val": (("shapes",), "the validation images are all those data.val holds"),
    "max_objects": (("shapes",), "the objects are those the annotations hold"),
    "seed": (("shapes",), "it seeds generated images only; train.seed seeds the run"),
    "keep_difficult": (("voc",), "only data.format=voc marks objects difficult"),
    "class_names": (("voc", "masks", "shapes"), "this format names its classes itself (model.class_names renames them)"),
    "keep_empty": (("coco", "voc", "yolo"), "only the coco, voc and yolo readers can drop images without objects"),
    "ignore_index": (("masks",), "it is the unlabelled value of data.format=masks label maps "
                                 "(the loss's is model.segmentation.loss.ignore_index)"),
    "mask_values": (("masks",), "it maps the stored values of data.format=masks label maps"),
    "bad_samples": (("coco", "voc", "yolo", "masks"), "generated images are never bad"),
}

#: train keys read only under another train setting: key -> (setting, values that read it)
TRAIN_KEYS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "momentum": ("optimizer", ("sgd",)),
    "nesterov": ("optimizer", ("sgd",)),
    "milestones": ("schedule", ("step",)),
    "gamma": ("schedule", ("step",)),
    "power": ("schedule", ("poly",)),
    "base_batch_size": ("lr_scaling", ("linear",)),
}


def unused_data_keys(data: DataConfig) -> dict[str, str]:
    """Data keys ``data.format`` does not read whose value differs from the default.

    Returns:
        dotted key (``data.image_size``, ``data.train.images`` ...) -> what to use instead.
    """
    fmt, default = data.format, DataConfig()
    out = {}
    for key, (formats, hint) in FORMAT_KEYS.items():
        if fmt not in formats and getattr(data, key) != getattr(default, key):
            out[f"data.{key}"] = hint
    reads = SPLIT_KEYS.get(fmt)
    if reads is None:
        return out
    if reads:
        hint = f"data.format={fmt} reads " + " and ".join(f"data.<split>.{k}" for k in reads)
    else:
        hint = f"data.format={fmt} generates its images"
    for split in ("train", "val"):
        given, usual = getattr(data, split), getattr(default, split)
        for f in dataclasses.fields(given):
            if f.name not in reads and getattr(given, f.name) != getattr(usual, f.name):
                out[f"data.{split}.{f.name}"] = hint.replace("<split>", split)
    return out


def _set_by(key: str, paths: Sequence[str]) -> int:
    """1 + index of the last override that set ``key`` (itself or a section around it); 0: the file."""
    for i in reversed(range(len(paths))):
        if key == paths[i] or key.startswith(paths[i] + "."):
            return i + 1
    return 0


def _with_defaults(cfg: ExperimentConfig, keys: Sequence[str]) -> ExperimentConfig:
    default = DataConfig()
    data = cfg.data
    for key in keys:
        parts = key.split(".")[1:]
        if len(parts) == 1:
            data = dataclasses.replace(data, **{parts[0]: getattr(default, parts[0])})
        else:
            split, name = parts
            new = dataclasses.replace(getattr(data, split), **{name: getattr(getattr(default, split), name)})
            data = dataclasses.replace(data, **{split: new})
    return dataclasses.replace(cfg, data=data)


def check_data_keys(cfg: ExperimentConfig, overrides: Sequence[str] = (), source: Source = "the config", *,
                    resolved: bool = False) -> ExperimentConfig:
    """Refuse data keys that do nothing for ``data.format``; reset those a later format made idle.

    A key set (to a non-default value) in the same place as the format, or after it, is an error:
    the user asked for something the format cannot do. A key set *before* an override changed the
    format (``configs/faster_rcnn_shapes.yaml data.format=coco ...``: the file's
    ``data.image_size`` served the file's own format) goes back to its default, so the resolved
    config written to the run folder says what the run reads and loads back cleanly.

    Args:
        cfg: the config built from a file (or mapping) plus ``overrides``.
        overrides: the ``key.sub=value`` strings, in order, that were merged into it.
        source: names where each key came from in the message (see :func:`~.io.merge_overrides`).
        resolved: the file is a resolved config detseg wrote (``config.yaml``, a checkpoint's),
            whose idle keys are reset rather than refused: only overrides are checked.

    Returns:
        ``cfg``, with the keys a format override made idle reset to their defaults.

    Raises:
        ConfigError: one line naming each refused key, where it was set, the format, and what to
            use instead (e.g. ``data.image_size ... does nothing for data.format=coco: the model
            input size is data.augment.image_size``).
    """
    unused = unused_data_keys(cfg.data)
    if not unused:
        return cfg
    paths = [".".join(parse_override(text)[0]) for text in overrides]
    format_set = _set_by("data.format", paths)
    refused, reset = [], []
    for key in unused:
        set_at = _set_by(key, paths)
        (reset if set_at < format_set or (resolved and set_at == 0) else refused).append(key)
    if refused:
        origin = source if callable(source) else (lambda _key: source)
        raise ConfigError("; ".join(f"{key} (in {origin(key)}) does nothing for data.format={cfg.data.format}: "
                                    f"{unused[key]}" for key in refused))
    return _with_defaults(cfg, reset)


def _keep(tree: dict, parts: Sequence[str]) -> dict:
    """The sub-tree of ``tree`` holding only the dotted ``parts`` (a part keeps all below it)."""
    out: dict = {}
    for key, value in tree.items():
        below = [p.partition(".")[2] for p in parts if p.partition(".")[0] == key]
        if below:
            out[key] = value if "" in below or not isinstance(value, dict) else _keep(value, below)
    return out


def used_config(cfg: ExperimentConfig) -> dict:
    """``to_dict(cfg)`` without what ``model.arch``, ``data.format`` and the train settings do not read.

    Model: only the sections of :data:`MODEL_PARTS` (no ``yolo`` for a U-Net). Data: no keys of
    other formats (no ``num_train`` for COCO, no split paths for shapes). Train: optimiser and
    schedule settings only under the optimiser / schedule that reads them, ``ema_warmup`` only
    with ``ema_decay``.
    """
    tree = to_dict(cfg)
    model = tree["model"]
    parts = MODEL_PARTS.get(cfg.model.arch)
    if parts is not None:
        head = {k: model[k] for k in ("arch", "num_classes", "class_names", "weights")
                if k != "weights" or model[k] is not None}
        tree["model"] = {**head, **_keep(model, parts)}
    fmt = cfg.data.format
    data = tree["data"]
    for key, (formats, _) in FORMAT_KEYS.items():
        if fmt not in formats:
            data.pop(key, None)
    reads = SPLIT_KEYS.get(fmt)
    if reads is not None:
        for split in ("train", "val"):
            if reads:
                data[split] = {k: v for k, v in data[split].items() if k in reads}
            else:
                del data[split]
    train = tree["train"]
    for key, (setting, values) in TRAIN_KEYS.items():
        if train[setting] not in values:
            del train[key]
    if train["ema_decay"] is None:
        del train["ema_warmup"]
    return tree


def dump_used_config(cfg: ExperimentConfig) -> str:
    """The resolved config as YAML, only what the run reads (:func:`used_config`), for printing."""
    return dump_yaml(used_config(cfg))
