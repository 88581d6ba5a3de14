"""Typed configuration: frozen dataclasses, documented field by field, built from YAML mappings.

Every config class is a frozen dataclass whose fields carry ``metadata={"doc": ...}``. YAML only
overrides defaults; an unknown key is an error naming the file and the key (no silent dead keys).
"""
from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Any, Mapping

from ccoma.errors import ConfigError, excerpt


def doc(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING):
    """A dataclass field with its documentation attached (``field.metadata["doc"]``)."""
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata={"doc": text})
    return dataclasses.field(default=default, metadata={"doc": text})


# Limits on what a YAML file may hold: a config, map, unit or scenario file is small and shallow.
MAX_FILE_BYTES = 1 << 20      # 1 MiB
MAX_DEPTH = 32                # nesting of mappings and lists
MAX_NODES = 100_000           # values after expanding YAML aliases (stops "billion laughs")
MAX_INT = 2 ** 53             # larger integers are not step counts, sizes or seeds


def _loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader that refuses a key given twice in one mapping (YAML keeps the last one silently)."""

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    dup = key in seen
                except TypeError:
                    continue  # unhashable: the base class reports it
                if dup:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {excerpt(key)}",
                                                            key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep)

    return Loader


def _decode(data: bytes, where: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(where, "file is UTF-16 text; save it as UTF-8")
    if b"\x00" in data:
        raise ConfigError(where, "binary file, not YAML text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(where, f"not UTF-8 text (bad byte at offset {exc.start})") from None


def _check_flow_depth(text: str, where: str) -> None:
    """Refuse deep ``[[[...`` / ``{{{...`` before PyYAML sees them: its scanner and composer slow down
    quadratically and recurse with depth. Brackets inside quoted text count too (a harmless over-count)."""
    depth = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            if depth > 2 * MAX_DEPTH:
                raise ConfigError(where, f"nested more than {MAX_DEPTH} levels deep")
        elif ch in "]}":
            depth = max(0, depth - 1)


def check_tree(value: Any, where: str) -> Any:
    """Every loaded file passes here: depth, size after aliases, text keys, finite numbers.

    Walks iteratively with a visit budget, so an alias bomb or a deep nest costs at most
    ``MAX_NODES`` steps; the error names the field (``a.b[2].c``)."""
    import math

    stack = [(value, "", 0)]
    visits = 0
    while stack:
        node, field, depth = stack.pop()
        visits += 1
        name = field or "(top level)"
        if visits > MAX_NODES:
            raise ConfigError(where, f"more than {MAX_NODES} values (after expanding aliases); not a ccoma file")
        if depth > MAX_DEPTH:
            raise ConfigError(where, f"field '{name}' is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, float) and not math.isfinite(node):
            raise ConfigError(where, f"field '{name}' should be a finite number, got {node}")
        if isinstance(node, int) and not isinstance(node, bool) and abs(node) > MAX_INT:
            raise ConfigError(where, f"field '{name}' is out of range, got {excerpt(node)}")
        if isinstance(node, dict):
            for key, child in node.items():
                if not isinstance(key, str):
                    raise ConfigError(where, f"field '{name}': key {excerpt(key)} should be text (quote it)")
                stack.append((child, f"{field}.{key}" if field else key, depth + 1))
        elif isinstance(node, list):
            stack.extend((child, f"{field}[{i}]", depth + 1) for i, child in enumerate(node))
    return value


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file; a missing, unreadable, non-UTF-8, oversized, malformed, duplicate-key,
    too deep or non-finite file is a one-line ConfigError naming the file (and the field)."""
    import yaml

    path = Path(path)
    where = str(path)
    try:
        if path.is_dir():
            raise ConfigError(where, "is a folder, not a YAML file")
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(where, f"cannot read file ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(where, f"file is larger than {MAX_FILE_BYTES // 1024} KiB; not a ccoma file")
    text = _decode(data, where)
    _check_flow_depth(text, where)
    try:
        raw = yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise ConfigError(where, f"nested more than {MAX_DEPTH} levels deep") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or "syntax error"
        raise ConfigError(where, f"malformed YAML{at}: {str(problem).splitlines()[0][:120] if str(problem) else 'syntax error'}") from None
    return check_tree(raw, where)


def _coerce(tp: Any, value: Any, where: str, name: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where, prefix=f"{name}.")
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            raise ConfigError(where, f"field '{name}' should be a finite number, got {value}")
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > MAX_INT:
            raise ConfigError(where, f"field '{name}' is out of range, got {excerpt(value)}")
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
    if (tp is dict or origin is dict) and isinstance(value, Mapping):
        return dict(value)
    raise ConfigError(where, f"field '{name}' should be {getattr(tp, '__name__', tp)}, got {excerpt(value)}")


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
