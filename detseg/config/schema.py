"""Typed experiment configuration: one small dataclass per component.

A YAML file in ``configs/`` holds only the values that differ from these defaults; the loader
(:mod:`detseg.config.io`) checks every key and type. Modules never receive a config object:
builders map these fields to explicit constructor arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .io import ExistingDir, ExistingFile, WeightsSource
from .two_stage import TwoStageConfig
from .segmentation import SegmentationConfig
from .yolo import YoloConfig

STAGES = ("c1", "c2", "c3", "c4", "c5")


@dataclass
class BackboneConfig:
    """Which CNN, how wide, which stages it returns, and what is frozen.

    Attributes:
        name: a key of ``detseg.backbones.build.BACKBONES`` (e.g. ``resnet50``).
        out_features: stages returned to the neck/heads; ``None`` = all.
        width: channel multiplier; below 1 gives tiny CPU/test variants.
        output_stride: 32, or 16/8 (dilated ResNet/VGG) for dense prediction.
        pretrained: ImageNet weights of the backbone: a torchvision-format ``.pth`` file, or a
            torchvision weights name such as ``torchvision:ResNet50_Weights.IMAGENET1K_V2``
            (taken from torch's cache, downloaded into it when missing); ``None`` trains from
            scratch.
        frozen_stages: number of leading stages (``c1`` ..) to freeze.
        freeze_bn: use frozen batch norm (small detection batches).
    """

    name: str = "resnet18"
    out_features: tuple[str, ...] | None = None
    width: float = 1.0
    output_stride: Literal[8, 16, 32] = 32
    pretrained: WeightsSource | None = None
    frozen_stages: int = 0
    freeze_bn: bool = False

    def __post_init__(self) -> None:
        bad = [s for s in self.out_features or () if s not in STAGES]
        if bad:
            raise ValueError(f"out_features {bad} are not stage names {list(STAGES)}")
        if self.width <= 0:
            raise ValueError(f"width must be > 0, got {self.width}")


@dataclass
class FPNConfig:
    """Feature Pyramid Network neck on the backbone stages ``in_features``.

    Attributes:
        in_features: backbone stages fused top-down (``c3..c5`` -> ``p3..p5``).
        out_channels: channels of every pyramid level.
        extra_levels: ``"none"``; ``"p6p7"`` adds stride-64/128 levels by 3x3 stride-2 convs
            (RetinaNet/FCOS); ``"pool"`` adds ``p6`` by max-pooling ``p5`` (Faster R-CNN's RPN).
    """

    in_features: tuple[str, ...] = ("c3", "c4", "c5")
    out_channels: int = 256
    extra_levels: Literal["none", "p6p7", "pool"] = "none"


@dataclass
class ModelConfig:
    """The model: an architecture name, the classes, and one field per component.

    Attributes:
        arch: a key of ``detseg.models.MODELS``.
        num_classes: number of foreground classes (heads add background internally); ``None``:
            the training data's (a number that disagrees with the data stops training in one line).
        class_names: optional names, one per class, used in logs and pictures; ``None``: the
            data's.
        weights: a new run starts from these weights (fine-tuning): a detseg checkpoint of any
            class count, a torchvision detection / segmentation / classification state dict of
            the same architecture, a backbone's ImageNet file, or a torchvision weights name
            (``torchvision:FasterRCNN_ResNet50_FPN_Weights.COCO_V1``). Every tensor whose name
            and shape fit is loaded and the rest (heads of another class count) keep their fresh
            initialisation; one line says which. Not used by ``--resume``.
    """

    arch: str = "classifier"
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    weights: WeightsSource | None = None
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    neck: FPNConfig | None = None
    two_stage: TwoStageConfig = field(default_factory=TwoStageConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    yolo: YoloConfig = field(default_factory=YoloConfig)

    def __post_init__(self) -> None:
        if self.num_classes is None and self.class_names is not None:
            self.num_classes = len(self.class_names)
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"class_names has {len(self.class_names)} names for num_classes={self.num_classes}"
            )
        if self.arch == "yolov1":  # its post-processing is in yolo.v1; the yolo.* values are YOLOv8's
            default = YoloConfig()
            stale = [k for k in ("score_thresh", "nms_iou", "max_det") if getattr(self.yolo, k) != getattr(default, k)]
            if stale:
                raise ValueError(f"arch yolov1 does not read model.yolo.{stale[0]} (arch yolo's); "
                                 f"set model.yolo.v1.{stale[0]}")


ResizeMode = Literal["letterbox", "keep_ratio", "stretch"]


@dataclass
class AugmentConfig:
    """Resizing and augmentation of detection/segmentation samples (YAML: ``data.augment``).

    Attributes:
        image_size: output size ``S`` in pixels: the longest side (``letterbox``,
            ``keep_ratio``) or both sides (``stretch``); ``letterbox`` outputs are ``S x S``.
        resize: ``letterbox`` (keep ratio, pad to ``S x S``), ``keep_ratio`` (keep ratio, no pad;
            batches are padded by the collate function) or ``stretch`` (``S x S``, ratio lost).
        hflip_prob: probability of a horizontal flip (training).
        scale_jitter: ``(min, max)`` factor applied after resizing to ``S`` (training); above 1
            the image is randomly cropped back to the ``S`` canvas (large-scale jitter), below 1
            it is padded. ``(1.0, 1.0)`` disables it.
        crop_prob: probability of a random crop, taken *before* resizing, that keeps every box
            whole (albumentations ``BBoxSafeRandomCrop``; training).
        color_jitter: strength ``s`` of brightness/contrast/saturation jitter (factors in
            ``[1 - s, 1 + s]``) and hue jitter (``+-s / 10`` of the colour circle); 0 disables.
        mosaic_prob: probability that the training set builds a 4-image mosaic
            (:class:`~detseg.data.transforms.AugmentedDataset`; single-shot detectors).
        close_mosaic: mosaics are switched off for the last ``close_mosaic`` epochs, so the
            model ends on images that look like the test ones (YOLOX/Ultralytics do the same).
        pad_value: grey level of image padding (114, as YOLO).
        min_box_size: training boxes narrower or shorter than this (pixels) after augmentation
            are dropped with their masks.
        min_visibility: a training box keeping less than this fraction of its area after a
            crop is dropped with its mask.
    """

    image_size: int = 640
    resize: ResizeMode = "letterbox"
    hflip_prob: float = 0.5
    scale_jitter: tuple[float, float] = (1.0, 1.0)
    crop_prob: float = 0.0
    color_jitter: float = 0.0
    mosaic_prob: float = 0.0
    close_mosaic: int = 0
    pad_value: int = 114
    min_box_size: float = 2.0
    min_visibility: float = 0.1

    def __post_init__(self) -> None:
        self.scale_jitter = tuple(float(v) for v in self.scale_jitter)  # type: ignore[assignment]
        problems = []
        if self.image_size < 8:
            problems.append(f"image_size must be >= 8, got {self.image_size}")
        if self.resize not in ("letterbox", "keep_ratio", "stretch"):
            problems.append(f"resize must be letterbox, keep_ratio or stretch, got {self.resize!r}")
        for name in ("hflip_prob", "crop_prob", "mosaic_prob", "min_visibility"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.close_mosaic < 0:
            problems.append(f"close_mosaic must be >= 0 epochs, got {self.close_mosaic}")
        if len(self.scale_jitter) != 2 or not 0 < self.scale_jitter[0] <= self.scale_jitter[1]:
            problems.append(f"scale_jitter must be (min, max) with 0 < min <= max, got {self.scale_jitter}")
        if not 0.0 <= self.color_jitter <= 1.0:
            problems.append(f"color_jitter must be in [0, 1], got {self.color_jitter}")
        if not 0 <= self.pad_value <= 255:
            problems.append(f"pad_value must be in [0, 255], got {self.pad_value}")
        if self.min_box_size < 0:
            problems.append(f"min_box_size must be >= 0, got {self.min_box_size}")
        if problems:
            raise ValueError("invalid AugmentConfig: " + "; ".join(problems))


@dataclass
class SplitConfig:
    """Where one split's files are; which fields a format needs is checked when datasets are built.

    Attributes:
        images: image folder (``coco``, ``masks``).
        annotations: COCO instances json (``coco``) or Ultralytics data yaml (``yolo``).
        masks: folder of index PNG label maps, matched to images by file stem (``masks``).
        root: VOC root with Annotations/, JPEGImages/, ImageSets/Main/ (``voc``).
        split: split name inside ``root`` / the data yaml (``voc``, ``yolo``).
    """

    images: ExistingDir | None = None
    annotations: ExistingFile | None = None
    masks: ExistingDir | None = None
    root: ExistingDir | None = None
    split: str = "train"


@dataclass
class DataConfig:
    """Where the images come from, how they are augmented, and how they are batched.

    Attributes:
        format: ``shapes`` generates the embedded synthetic dataset in memory; ``coco``,
            ``voc``, ``yolo`` and ``masks`` (semantic label folders) read files given in
            ``train`` / ``val``.
        train / val: file locations of the two splits (not used by ``shapes``).
        class_names: class names of ``voc`` (default: the 20 VOC classes) and ``masks`` data;
            the shape kinds of ``shapes`` data (default circle, rectangle, triangle; also
            ellipse, cross).
        keep_empty: keep images without objects as negatives.
        keep_difficult: VOC ``difficult`` objects become ignore regions (else dropped).
        ignore_index: label value of unlabelled pixels in ``masks`` data.
        mask_values: ``masks`` data whose files do not follow the default rule (0 background,
            ``k + 1`` class ``k``, ``ignore_index`` unlabelled): ``{stored value: meaning}``
            with a class name, ``background`` or ``ignore`` as meaning, listing every value
            the files hold; e.g. ``{0: background, 255: cell}`` for 0/255 binary masks.
        image_size: side of the (square) synthetic images in pixels.
        num_train / num_val: synthetic images in each split (different seeds).
        max_objects: most shapes per synthetic image (1 makes it a classification set).
        seed: generator seed of the synthetic data.
        augment: resizing (train and eval) and augmentation (train) of detection and
            segmentation samples.
        batch_size / num_workers: DataLoader settings; workers are capped to the CPU cores this
            process may use (said at start when that changes the number).
        max_bad_fraction: images that become unreadable during training are skipped with a
            warning; more than this fraction stops the run with an error.
        bad_samples: what to do with images found unusable before epoch 1 (the image file
            is missing, unreadable or truncated, its size differs from the annotation's, its
            mask is missing, of another size or holds values that are no class): ``error``
            stops with one line naming the first files; ``skip`` trains without them, prints
            how many of each kind and the first few, and writes the full list to a file.
            Annotation errors (unknown classes, malformed boxes or lines) stop the run either way.
    """

    format: Literal["shapes", "coco", "voc", "yolo", "masks"] = "shapes"
    train: SplitConfig = field(default_factory=SplitConfig)
    val: SplitConfig = field(default_factory=lambda: SplitConfig(split="val"))
    class_names: tuple[str, ...] | None = None
    keep_empty: bool = True
    keep_difficult: bool = True
    ignore_index: int = 255
    mask_values: dict[str, str] | None = None
    image_size: int = 64
    num_train: int = 512
    num_val: int = 128
    max_objects: int = 1
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    batch_size: int = 32
    num_workers: int = 0
    max_bad_fraction: float = 0.1
    bad_samples: Literal["error", "skip"] = "error"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.max_bad_fraction <= 1:
            raise ValueError(f"max_bad_fraction must be in [0, 1], got {self.max_bad_fraction}")
        if self.mask_values is not None:
            bad = [k for k in self.mask_values if not k.isdigit()]
            if bad:
                raise ValueError(f"mask_values keys must be stored pixel values (integers), got {bad}")
            if self.ignore_index != 255:
                raise ValueError("mask_values lists every stored value (mark unlabelled ones 'ignore'); "
                                 "leave ignore_index at its default")


@dataclass
class TrainConfig:
    """Optimisation and run bookkeeping.

    Attributes:
        epochs: passes over the training set.
        optimizer: ``sgd`` (momentum) or ``adamw``.
        lr / momentum / weight_decay: optimiser settings (no decay on norm layers and biases).
        nesterov: Nesterov momentum (``sgd``; YOLOv5/v8 use it).
        schedule: after warm-up: ``cosine`` (to 1% of lr), ``step`` (x ``gamma`` at each of
            ``milestones`` epochs), ``poly`` (``(1 - t) ** power``, segmentation) or ``constant``.
        warmup_iters: linear warm-up over this many optimiser steps (from 0.1% of lr).
        accumulate: optimiser step every N batches (effective batch = batch_size x N x GPUs); a
            last, shorter window of an epoch is stepped too, its gradient averaged over its size.
        nominal_batch_size: the YOLOv5/v8 convention (Ultralytics ``nbs``): gradients are *sums*
            over the images of an optimiser step instead of means (the loss is multiplied by the
            effective batch), weight decay is multiplied by effective batch / nominal batch, and
            ``accumulate`` is derived as ``round(nominal / (batch_size x GPUs))``. With SGD this
            is the recipe whose ``lr: 0.01`` and ``weight_decay: 5e-4`` the YOLO configs cite;
            ``None`` = mean losses (torchvision, Detectron2). Set it or ``accumulate``, not both.
        lr_scaling: ``linear`` multiplies lr by effective batch / ``base_batch_size``; the lr
            actually used is printed at start.
        clip_grad_norm: clip the global gradient norm to this value; ``None`` = no clipping.
        ema_decay: keep an exponential moving average of the weights (validated and saved as
            the model) with this decay; ``None`` = off.
        ema_warmup: the decay ramps up as ``ema_decay * (1 - exp(-updates / ema_warmup))``
            (YOLOv5/v8), so early epochs do not validate a stale average of random weights;
            0 = constant decay from the first step.
        amp: ``auto`` = bf16 autocast on GPUs with bf16, fp16 + grad scaler on older GPUs, fp32
            on CPU; ``bf16`` / ``fp16`` force one on GPUs; ``off`` = always fp32.
        max_nonfinite_steps: under mixed precision, non-finite steps are skipped and counted;
            after this many the run switches to fp32 (logged) instead of producing a NaN model.
        on_nonfinite: what a non-finite loss or gradient does in fp32: ``error`` stops (naming
            epoch, iteration and loss terms; the last good checkpoint is kept), ``skip`` skips
            the step and counts it (and stops after ``max_nonfinite_steps`` in a row).
        divergence_factor: stop (keeping the last good checkpoint) when the training loss,
            smoothed over about 10 iterations, exceeds this multiple of the run's first loss: a
            diverging run often stays finite (normalisation layers hide it) while its weights
            explode. ``None`` = only non-finite losses stop a run.
        deterministic: seeded, deterministic algorithms only (slower; for debugging and tests).
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1`` ...
        seed: seeds Python, NumPy and torch; every epoch reseeds with ``seed + epoch``, so a
            resumed run replays exactly.
        out_dir / name: runs go to ``out_dir/name`` (``name`` defaults to the config file's stem).
        tensorboard: write TensorBoard event files into the run folder (losses and learning rate
            per batch; validation losses, metrics and pictures of predictions per evaluation; tags
            in :mod:`detseg.engine.tensorboard`); view with ``tensorboard --logdir runs``.
    """

    epochs: int = 10
    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    schedule: Literal["cosine", "step", "poly", "constant"] = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    power: float = 0.9
    warmup_iters: int = 0
    accumulate: int = 1
    nominal_batch_size: int | None = None
    lr_scaling: Literal["none", "linear"] = "none"
    base_batch_size: int = 16
    clip_grad_norm: float | None = None
    ema_decay: float | None = None
    ema_warmup: float = 2000.0
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    max_nonfinite_steps: int = 3
    on_nonfinite: Literal["error", "skip"] = "error"
    divergence_factor: float | None = 100.0
    deterministic: bool = False
    device: str = "auto"
    seed: int = 0
    out_dir: str = "runs"
    name: str | None = None
    tensorboard: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.accumulate < 1:
            raise ValueError(f"accumulate must be >= 1, got {self.accumulate}")
        if self.nominal_batch_size is not None:
            if self.nominal_batch_size < 1:
                raise ValueError(f"nominal_batch_size must be >= 1, got {self.nominal_batch_size}")
            if self.accumulate != 1:
                raise ValueError("set train.accumulate or train.nominal_batch_size (which derives it), not both")
        if self.divergence_factor is not None and self.divergence_factor <= 1:
            raise ValueError(f"divergence_factor must be > 1, got {self.divergence_factor}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        if self.ema_warmup < 0:
            raise ValueError(f"ema_warmup must be >= 0 updates, got {self.ema_warmup}")


@dataclass
class EvalConfig:
    """Validation during training.

    Attributes:
        interval: validate every N epochs (and always after the last one).
        metric: the metric that picks ``best.pt`` (e.g. ``accuracy``, ``bbox/mAP``, ``miou``,
            ``val/loss``).
        mode: ``max`` (higher is better) or ``min`` (losses).
        patience: stop after this many validations without improvement; ``None`` = never.
    """

    interval: int = 1
    metric: str = "accuracy"
    mode: Literal["max", "min"] = "max"
    patience: int | None = None


@dataclass
class ExperimentConfig:
    """Everything one training run needs, one section per concern."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
