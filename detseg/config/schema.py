"""Typed experiment configuration: one small dataclass per component.

A YAML file in ``configs/`` holds only the values that differ from these defaults; the loader
(:mod:`detseg.config.io`) checks every key and type. Modules never receive a config object:
builders map these fields to explicit constructor arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .io import ExistingFile

STAGES = ("c1", "c2", "c3", "c4", "c5")


@dataclass
class BackboneConfig:
    """Which CNN, how wide, which stages it returns, and what is frozen.

    Attributes:
        name: a key of ``detseg.backbones.build.BACKBONES`` (e.g. ``resnet50``).
        out_features: stages returned to the neck/heads; ``None`` = all.
        width: channel multiplier; below 1 gives tiny CPU/test variants.
        output_stride: 32, or 16/8 (dilated ResNet/VGG) for dense prediction.
        pretrained: local torchvision-format ``.pth`` file (ImageNet weights); ``None`` trains
            from scratch. Nothing is ever downloaded.
        frozen_stages: number of leading stages (``c1`` ..) to freeze.
        freeze_bn: use frozen batch norm (small detection batches).
    """

    name: str = "resnet18"
    out_features: tuple[str, ...] | None = None
    width: float = 1.0
    output_stride: Literal[8, 16, 32] = 32
    pretrained: ExistingFile | None = None
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
        arch: a key of ``detseg.models.MODELS`` (``classifier`` until the heads land).
        num_classes: number of foreground classes (heads add background internally).
        class_names: optional names, one per class, used in logs and pictures.
    """

    arch: str = "classifier"
    num_classes: int = 3
    class_names: tuple[str, ...] | None = None
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    neck: FPNConfig | None = None

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"class_names has {len(self.class_names)} names for num_classes={self.num_classes}"
            )


@dataclass
class DataConfig:
    """Where the images come from and how they are batched.

    Attributes:
        format: ``shapes`` generates the embedded synthetic dataset in memory.
        image_size: side of the (square) synthetic images in pixels.
        num_train / num_val: synthetic images in each split (different seeds).
        max_objects: most shapes per synthetic image (1 makes it a classification set).
        batch_size / num_workers: DataLoader settings.
        seed: generator seed of the synthetic data.
    """

    format: Literal["shapes"] = "shapes"
    image_size: int = 64
    num_train: int = 512
    num_val: int = 128
    max_objects: int = 1
    batch_size: int = 32
    num_workers: int = 0
    seed: int = 0


@dataclass
class TrainConfig:
    """Optimisation and run bookkeeping.

    Attributes:
        epochs: passes over the training set.
        optimizer: ``sgd`` (momentum) or ``adamw``.
        lr / momentum / weight_decay: optimiser settings (no decay on norm layers and biases).
        warmup_iters: linear warm-up iterations before the cosine schedule.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1`` ...
        seed: seeds Python, NumPy and torch.
        out_dir / name: runs go to ``out_dir/name`` (``name`` defaults to the config file's stem).
    """

    epochs: int = 10
    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 0
    device: str = "auto"
    seed: int = 0
    out_dir: str = "runs"
    name: str | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


@dataclass
class EvalConfig:
    """Validation during training.

    Attributes:
        interval: validate every N epochs (and always after the last one).
        metric: the metric that picks ``best.pt`` (higher is better).
    """

    interval: int = 1
    metric: str = "accuracy"


@dataclass
class ExperimentConfig:
    """Everything one training run needs, one section per concern."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
