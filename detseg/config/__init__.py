"""Typed configs: dataclass schema, strict YAML loading, dotted overrides."""

from __future__ import annotations

import os
from typing import Sequence

from .io import ConfigError, dump_config, from_dict, merge_overrides, read_yaml, to_dict
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
        overrides: ``key.sub=value`` strings, applied in order over the file's values before
            anything is checked (so they can replace a path that does not exist here).

    Raises:
        ConfigError: a missing file, unknown key or wrong type, naming the key and the source.
    """
    data = read_yaml(path) if path is not None else {}
    data, source = merge_overrides(data, overrides, str(path) if path else "defaults")
    return from_dict(ExperimentConfig, data, source=source)


__all__ = [
    "BackboneConfig", "ConfigError", "DataConfig", "EvalConfig", "ExperimentConfig", "FPNConfig",
    "ModelConfig", "TrainConfig", "dump_config", "load_config", "to_dict",
]
