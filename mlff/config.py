"""YAML configs mapped onto dataclasses: unknown keys and wrong types are errors that name them.

Field types are checked when a config is read: ``int``, ``float``, ``str``, ``bool``, lists, optional
values, nested dataclasses and ``Literal[...]`` choices, whose error names the key and the allowed
values (``model.options.norm: 'layer_nrom' is not one of 'layer_norm_sh', 'rms_norm_sh'``). A
dataclass may check relations between its fields in ``__post_init__`` by raising
:class:`~mlff.errors.ConfigError`; the message is prefixed with where the dataclass sits.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from pathlib import Path

import numpy as np
import yaml

from mlff.errors import ConfigError


def from_dict(cls, data: dict | None, where: str = ""):
    """Build dataclass ``cls`` from ``data``, recursing into nested dataclass fields."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key {where + '.' if where else ''}{unknown[0]}; allowed: {', '.join(sorted(names))}")
    values = {}
    for key, value in data.items():
        values[key] = _convert(hints[key], value, f"{where + '.' if where else ''}{key}")
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}" if where else str(exc)) from exc
    except TypeError as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from exc


def _convert(hint, value, where: str):
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        if not any(type(value) is type(a) and value == a for a in allowed):
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1] or (typing.Any,)
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return value
    if hint is typing.Any:
        return value
    if hint is float and isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return float(value)
    if hint is int and isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        return int(value)  # numpy integers too, e.g. species from atoms.numbers
    if hint in (int, str, bool) and type(value) is not hint:
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def load_yaml(cls, path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def choose(table: dict, name, key: str):
    """``table[name]``, or a :class:`ConfigError` naming ``key`` and the allowed names."""
    try:
        return table[name]
    except (KeyError, TypeError):
        raise ConfigError(f"{key}: {name!r} is not one of {', '.join(map(repr, table))}") from None
