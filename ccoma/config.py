"""Typed configuration: frozen dataclasses, documented field by field, built from YAML mappings.

Every config class is a frozen dataclass whose fields carry ``metadata={"doc": ...}``. YAML only
overrides defaults; an unknown key is an error naming the file and the key (no silent dead keys).
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Mapping

from ccoma.errors import ConfigError


def doc(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING):
    """A dataclass field with its documentation attached (``field.metadata["doc"]``)."""
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata={"doc": text})
    return dataclasses.field(default=default, metadata={"doc": text})


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file; malformed YAML or a missing file is a one-line ConfigError."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read file ({exc.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(str(path), f"malformed YAML{at}: {problem}") from None


def _coerce(tp: Any, value: Any, where: str, name: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where, prefix=f"{name}.")
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str):
        return value
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return tuple(_coerce(inner, v, where, name) for v in value)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where, name)
            except ConfigError:
                continue
    if tp is Any:
        return value
    if origin is dict and isinstance(value, Mapping):
        return dict(value)
    raise ConfigError(where, f"field '{name}' should be {getattr(tp, '__name__', tp)}, got {value!r}")


def build(cls: type, data: Mapping[str, Any] | None, where: str, prefix: str = ""):
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types are ConfigErrors."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(where, f"'{prefix.rstrip('.') or cls.__name__}' should be a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(where, f"unknown key '{prefix}{unknown[0]}' (known: {', '.join(sorted(fields))})")
    kwargs = {k: _coerce(hints[k], v, where, prefix + k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(where, str(exc)) from None


def describe(cls: type) -> list[tuple[str, str, Any]]:
    """(name, doc, default) for each field (a factory's value for factory defaults, None when the
    field has no default): used by docs/gen_config_doc.py."""
    rows = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        rows.append((f.name, f.metadata.get("doc", ""), default))
    return rows
