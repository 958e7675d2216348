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
from .usage import check_data_keys, dump_used_config, used_config


def load_config(path: str | os.PathLike | None, overrides: Sequence[str] = (), *,
                resolved: bool = False) -> ExperimentConfig:
    """Load an experiment config file (or the defaults, when ``path`` is None) plus overrides.

    Args:
        path: YAML file holding the values that differ from :class:`ExperimentConfig`'s defaults.
        overrides: ``key.sub=value`` strings, applied in order over the file's values before
            anything is checked (so they can replace a path that does not exist here).
        resolved: ``path`` is a resolved config detseg wrote (a run's ``config.yaml``); see
            :func:`config_from_dict`.

    Raises:
        ConfigError: a missing file, unknown key or wrong type, or a data key the data format
            does not read (:func:`~.usage.check_data_keys`), naming the key and the source.
    """
    data = read_yaml(path) if path is not None else {}
    return config_from_dict(data, overrides, str(path) if path else "defaults", resolved=resolved)


def config_from_dict(data: dict, overrides: Sequence[str] = (), source: str = "<dict>", *,
                     resolved: bool = False, check_paths: bool = True) -> ExperimentConfig:
    """An experiment config from a plain mapping (e.g. a checkpoint's ``config``) plus overrides.

    Args:
        data: nested mapping of the values that differ from the defaults (or all of them).
        overrides: as for :func:`load_config`.
        source: names ``data`` in error messages (a file, "the config in RUN/best.pt").
        resolved: ``data`` is a resolved config detseg wrote: its own data keys that the format
            does not read are reset to their defaults instead of refused (only overrides are
            checked), so configs of earlier runs keep loading.
        check_paths: see :func:`~.io.from_dict` (``False``: files need not exist here).

    Raises:
        ConfigError: as for :func:`load_config`.
    """
    data, origin = merge_overrides(data, overrides, source)
    cfg = from_dict(ExperimentConfig, data, source=origin, check_paths=check_paths)
    return check_data_keys(cfg, overrides, origin, resolved=resolved)


__all__ = [
    "BackboneConfig", "ConfigError", "DataConfig", "EvalConfig", "ExperimentConfig", "FPNConfig",
    "ModelConfig", "TrainConfig", "check_data_keys", "config_from_dict", "dump_config", "dump_used_config",
    "load_config", "to_dict", "used_config",
]
