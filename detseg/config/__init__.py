"""Typed configs: dataclass schema, strict YAML loading, dotted overrides."""

from __future__ import annotations

import os
from typing import Sequence

from .io import ConfigError, apply_overrides, dump_config, from_dict, read_yaml, to_dict
from .schema import (
    BackboneConfig,
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    FPNConfig,
    ModelConfig,
    TrainConfig,
)


def load_config(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Load an experiment config file (or the defaults, when ``path`` is None) plus overrides.

    Args:
        path: YAML file holding the values that differ from :class:`ExperimentConfig`'s defaults.
        overrides: ``key.sub=value`` strings, applied in order after the file.

    Raises:
        ConfigError: a missing file, unknown key or wrong type, naming the key and the source.
    """
    data = read_yaml(path) if path is not None else {}
    cfg = from_dict(ExperimentConfig, data, source=str(path) if path else "defaults")
    return apply_overrides(ExperimentConfig, cfg, overrides)


__all__ = [
    "BackboneConfig", "ConfigError", "DataConfig", "EvalConfig", "ExperimentConfig", "FPNConfig",
    "ModelConfig", "TrainConfig", "dump_config", "load_config", "to_dict",
]
