"""Building a `Config`: YAML files, `--set` overrides, plain dicts, and type coercion.

Values are checked against the dataclasses' type hints (YAML is loose: a date may come
as a date or as text, an amount as a number or as text), then the whole config is
validated by `revseg.config.rules`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Union

import yaml

from revseg.config.model import Config
from revseg.config.rules import validate
from revseg.errors import ConfigError


def load_config(
    path: str | Path | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
) -> Config:
    """Load a YAML config file (or the defaults), apply overrides, validate.

    `overrides` are `KEY=VALUE` strings, each value parsed as YAML (the CLI's `--set`), or
    a mapping of dotted key to a value used as it is: `{"periods.grains": ["month"]}`.
    """
    raw: dict[str, Any] = {}
    where = "the built-in defaults"
    if path is not None:
        where = str(path)
        raw = _read_yaml(Path(path))
    if overrides:
        where += " with the overrides"
    if isinstance(overrides, Mapping):
        for key, value in overrides.items():
            _set_override(raw, key, value)
    else:
        for override in overrides:
            _apply_override(raw, override)
    return _finish(raw, where)


def config_from_dict(raw: Mapping[str, Any]) -> Config:
    """Build and validate a config from nested plain values (as YAML would give them)."""
    return _finish(raw, "config")


# Sections that name a catalog table instead of a path (key of the name): one that names
# one reads no default path.
_NAMED_SECTIONS = (
    (("source",), "table"),
    (("revenue", "fx_rates"), "table"),
    (("output",), "schema"),
)


def _without_default_paths(raw: Any) -> Any:
    """A copy of `raw` with `path: None` in each section that names a table and no path."""
    if not isinstance(raw, Mapping):
        return raw
    raw = copy.deepcopy(dict(raw))
    for keys, name_key in _NAMED_SECTIONS:
        node: Any = raw
        for key in keys:
            child = node.get(key) if isinstance(node, dict) else None
            if isinstance(child, Mapping) and not isinstance(child, dict):
                child = node[key] = dict(child)
            node = child
        if isinstance(node, dict) and node.get(name_key) is not None and "path" not in node:
            node["path"] = None
    return raw


def _finish(raw: Any, where: str) -> Config:
    try:
        config: Config = _build(Config, _without_default_paths(raw), "")
        validate(config)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    return config


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as err:
        raise ConfigError(f"config file {path} cannot be read: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as err:  # ValueError: a date such as 2020-02-30
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {_kind(data)}")
    return data


def _apply_override(raw: dict[str, Any], override: str) -> None:
    """Set one dotted key (`a.b.c=value`, value parsed as YAML) in the raw config."""
    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {override!r}: expected KEY=VALUE, e.g. output.path=/data/out")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except (yaml.YAMLError, ValueError) as err:
        raise ConfigError(f"--set {key}: value is not valid YAML: {err}") from None
    _set_key(raw, key, value, f"--set {key}")


def _set_override(raw: dict[str, Any], key: Any, value: Any) -> None:
    """Set one dotted key of a mapping override to its value, as it is (no YAML parsing)."""
    if not isinstance(key, str) or not key.strip():
        raise ConfigError(f"override {key!r}: expected a dotted config key such as output.path")
    key = key.strip()
    # A copy: a later override of a key inside this value must not change the caller's.
    _set_key(raw, key, copy.deepcopy(value), f"override {key}")


def _set_key(raw: dict[str, Any], key: str, value: Any, label: str) -> None:
    parts = _split_key(key)
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if child is None:  # an optional section left null, e.g. `fx_rates: null`
            child = node[part] = {}
        if isinstance(child, Mapping) and not isinstance(child, dict):
            child = node[part] = dict(child)  # a mapping given as an override's value
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"{label}: '{where}' is not a mapping")
        node = child
    node[parts[-1]] = value


def _split_key(key: str) -> list[str]:
    """Split a dotted key; the keys of free-form maps (spark.*, source.columns) stay whole."""
    parts = key.split(".")
    cls: Any = Config
    for i, part in enumerate(parts):
        hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
        hint = hints.get(part)
        if hint is None:
            return parts
        if _is_mapping(hint):
            return [*parts[: i + 1], ".".join(parts[i + 1 :])] if i + 1 < len(parts) else parts
        cls = strip_optional(hint)
    return parts


def _build(cls: Any, raw: Any, path: str) -> Any:
    if isinstance(raw, cls):  # a dataclass instance, given to from_dict: rebuilt and checked
        raw = {f.name: getattr(raw, f.name) for f in dataclasses.fields(raw)}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"config key '{path.rstrip('.') or '(top level)'}': expected a mapping, "
            f"got {_kind(raw)}"
        )
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in known:
            hint = difflib.get_close_matches(str(key), known, n=1)
            suggestion = f"; did you mean '{path}{hint[0]}'?" if hint else ""
            raise ConfigError(
                f"unknown config key '{path}{key}'{suggestion} (known keys under "
                f"'{path.rstrip('.') or 'the top level'}': {', '.join(known)})"
            )
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in raw:
            raise ConfigError(f"config key '{path}{f.name}': is required")
    values = {name: _coerce(hints[name], raw[name], f"{path}{name}") for name in raw}
    return cls(**values)


def _coerce(hint: Any, value: Any, path: str) -> Any:
    """Check one value against its declared type, converting where YAML is loose."""
    if is_optional(hint):
        if value is None:
            return None
        hint = strip_optional(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{path}.")
    if _is_mapping(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{path}': expected a mapping, got {_kind(value)}")
        return types.MappingProxyType(
            {str(k): _scalar_text(v, f"{path}.{k}") for k, v in value.items()}
        )
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"config key '{path}': expected a list, got {_kind(value)}")
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        return tuple(_coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{path}': expected true or false, got {_kind(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{path}': expected a whole number, got {_kind(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"config key '{path}': expected a number, got {_kind(value)}")
        return float(value)
    if hint is date:
        return _date(value, path)
    if hint is Decimal:
        return _amount(value, path)
    if hint is str and isinstance(value, date):  # YAML reads 2024-01-01 as a date
        return value.isoformat()
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{path}': expected a string, got {_kind(value)}")
        return value
    raise TypeError(f"unsupported config type {hint!r} at {path}")  # a bug in revseg


def _date(value: Any, path: str) -> date:
    """A day: a YAML date, or ISO text (2020-01-01). A date and time is not a day."""
    if isinstance(value, datetime):  # YAML reads 2020-01-01 10:00 as a datetime
        value = value.isoformat()
    elif isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(
        f"config key '{path}': expected a date such as 2020-01-01, got {_shown(value)}"
    )


def _amount(value: Any, path: str) -> Decimal:
    """A finite decimal from text or a number: Decimal(str(value)), so 0.1 stays 0.1."""
    if isinstance(value, Decimal | int | float | str) and not isinstance(value, bool):
        text = str(value)
        try:
            amount = Decimal(text)
        except InvalidOperation:
            amount = Decimal("NaN")
        if amount.is_finite():
            return amount
        value = text
    raise ConfigError(
        f"config key '{path}': expected a positive amount such as 1000000, got {_shown(value)}"
    )


def _scalar_text(value: Any, path: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ConfigError(f"config key '{path}': expected a single value, got {_kind(value)}")


def is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType) and type(None) in typing.get_args(
        hint
    )


def strip_optional(hint: Any) -> Any:
    if is_optional(hint):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return inner
    return hint


def _is_mapping(hint: Any) -> bool:
    return typing.get_origin(strip_optional(hint)) is Mapping


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _shown(value: Any) -> str:
    """Text as it was written (as revseg 0.1.0 showed it); anything else by its kind."""
    return repr(value) if isinstance(value, str) else _kind(value)


__all__ = ["config_from_dict", "load_config"]
