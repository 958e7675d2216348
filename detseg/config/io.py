"""YAML <-> typed dataclasses: strict loading, dotted command-line overrides, resolved dumps.

A config file lists only what differs from the dataclass defaults. Every value is checked against
its field's type annotation, so unknown keys, wrong types and missing files fail at load time,
before any work starts, with the key, the file and a "did you mean" suggestion.

Example:
    >>> cfg = load_config("configs/classifier_resnet18_shapes.yaml", ["train.epochs=2"])
    >>> print(dump_config(cfg))
"""

from __future__ import annotations

import contextvars
import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Annotated, Callable, Literal, Sequence, TypeVar, Union, get_args, get_origin

import yaml

from ..errors import InputError

T = TypeVar("T")
#: where values came from, for error messages: one name, or a function of the dotted key
Source = Union[str, Callable[[str], str]]


@dataclass(frozen=True)
class MustExist:
    """Marker for string fields naming a file or folder that must exist when the config loads.

    ``weights``: an existing file, or a ``torchvision:<Weights>.<NAME>`` name (resolved, and
    downloaded into torch's cache when missing, by :mod:`detseg.weights`).
    """

    kind: Literal["file", "dir", "weights"] = "file"


#: a path to an existing file / folder (relative paths are taken from the working directory)
ExistingFile = Annotated[str, MustExist("file")]
ExistingDir = Annotated[str, MustExist("dir")]
WeightsSource = Annotated[str, MustExist("weights")]

#: whether MustExist paths are checked; off while rebuilding a saved run's config (see from_dict)
_CHECK_PATHS: contextvars.ContextVar[bool] = contextvars.ContextVar("check_paths", default=True)


class ConfigError(InputError):
    """A config value that does not fit the schema; the message names key and source."""


def from_dict(cls: type[T], data: Any, *, source: Source = "<dict>", prefix: str = "", check_paths: bool = True) -> T:
    """Build dataclass ``cls`` from a plain dict, checking every key and value.

    Args:
        cls: the dataclass type.
        data: mapping of field name -> value (nested mappings for nested dataclasses).
        source: where the values came from, for error messages: a file path, or a function
            ``dotted key -> origin`` when values were merged from several places.
        prefix: dotted key of ``data`` inside the whole config, for error messages.

        check_paths: check that files and folders exist; ``False`` rebuilds the config of a
            saved run on a machine without its training data or weights files (inference).

    Raises:
        ConfigError: unknown key (with suggestions), wrong type, or missing file.
    """
    token = _CHECK_PATHS.set(check_paths)
    try:
        return _convert(cls, data, source, prefix or "")
    finally:
        _CHECK_PATHS.reset(token)


def _origin(source: Source, key: str) -> str:
    return source(key) if callable(source) else source


def _where(key: str, source: Source) -> str:
    return f"'{key}' in {_origin(source, key)}" if key else _origin(source, key)


def _convert(tp: Any, value: Any, source: Source, key: str) -> Any:
    origin = get_origin(tp)
    if origin is Annotated:
        base, *marks = get_args(tp)
        value = _convert(base, value, source, key)
        for mark in marks:
            if isinstance(mark, MustExist) and value is not None and _CHECK_PATHS.get():
                if mark.kind == "weights" and value.startswith("torchvision:"):
                    continue
                ok = os.path.isdir(value) if mark.kind == "dir" else os.path.isfile(value)
                if not ok:
                    raise ConfigError(f"{_where(key, source)}: {'dir' if mark.kind == 'dir' else 'file'} "
                                      f"not found: {value}")
        return value
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, source, key)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, source, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{_where(key, source)}: {value!r} fits none of {_name(tp)}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            hint = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ConfigError(f"{_where(key, source)}: {value!r} is not one of {list(choices)}{extra}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{_where(key, source)}: expected a list ({_name(tp)}), got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{_where(key, source)}: expected {len(args)} values, got {len(value)}")
            items = [_convert(a, v, source, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value))]
        else:
            item_tp = args[0] if args else Any
            items = [_convert(item_tp, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{_where(key, source)}: expected a mapping, got {value!r}")
        _, vt = get_args(tp) or (Any, Any)
        return {str(k): _convert(vt, v, source, f"{key}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        # PyYAML (YAML 1.1) reads "1e-3" without a dot as a string; accept what float() accepts.
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool):
        if type(value) is not tp:
            raise ConfigError(f"{_where(key, source)}: expected {tp.__name__}, got {value!r} ({type(value).__name__})")
        return value
    raise ConfigError(f"{_where(key, source)}: unsupported field type {tp!r}")


def _convert_dataclass(cls: type, value: Any, source: Source, key: str) -> Any:
    if dataclasses.is_dataclass(value) and isinstance(value, cls):
        return value
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"{_where(key, source)}: expected a mapping for {cls.__name__}, got {value!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for name, raw in value.items():
        full = f"{key}.{name}" if key else str(name)
        if name not in fields:
            hint = difflib.get_close_matches(str(name), list(fields), n=1)
            extra = f"; did you mean '{hint[0]}'?" if hint else f"; valid keys: {', '.join(fields)}"
            raise ConfigError(f"unknown key '{full}' in {_origin(source, full)}{extra}")
        default = _default(fields[name])
        if isinstance(raw, dict) and dataclasses.is_dataclass(default):
            # a section lists what differs from *this field's* default, which can differ from
            # the class defaults: data.val's split is "val", SplitConfig's is "train"
            raw = {**{f.name: to_dict(getattr(default, f.name)) for f in dataclasses.fields(default) if f.init}, **raw}
        kwargs[name] = _convert(hints[name], raw, source, full)
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{_where(key, source)}: {exc}") from exc
    return obj


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def to_dict(cfg: Any) -> Any:
    """Dataclass -> plain dict of YAML-friendly values (tuples become lists)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


class _Dumper(yaml.SafeDumper):
    """Block-style sections with short lists kept on one line: ``out_features: [c3, c4, c5]``."""


_Dumper.add_representer(
    list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


def dump_config(cfg: Any) -> str:
    """The fully resolved config as YAML (written next to checkpoints as ``config.yaml``)."""
    return dump_yaml(to_dict(cfg))


def dump_yaml(tree: dict) -> str:
    """A plain config mapping as YAML, in field order, with short lists on one line."""
    return yaml.dump(tree, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"model.rpn.nms_iou=0.6"`` -> (["model", "rpn", "nms_iou"], 0.6); values parse as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: bad key {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: cannot parse value: {exc}") from exc
    return key.split("."), value


def merge_overrides(data: dict, overrides: Sequence[str], source: str) -> tuple[dict, Source]:
    """Write ``key.sub=value`` strings into the raw mapping ``data`` (later ones win).

    Merged before anything is checked, so an override can replace a file's value that would not
    pass on its own (a data folder that exists on another machine, say).

    Returns:
        the merged mapping and a :data:`Source` that names, for each key, the override that set
        it (or that set a section around it, or inside it) and ``source`` for the rest.
    """
    data = dict(data)
    origins: dict[str, str] = {}
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            node[part] = dict(node[part]) if isinstance(node.get(part), dict) else {}
            node = node[part]
        node[path[-1]] = value
        origins[".".join(path)] = f"command-line override {text!r}"

    def origin(key: str) -> str:
        for k in reversed(origins):
            if key == k or key.startswith((k + ".", k + "[")):
                return origins[k]
        inside = [origins[k] for k in origins if k.startswith(key + ".")] if key else []
        return f"{source} with {', '.join(inside)}" if inside else source
    return data, origin


def read_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data
