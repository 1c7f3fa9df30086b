"""Typed-config machinery: config dataclasses to and from JSON dicts, field-by-field differences, range checks.

`from_dict` checks every value against the field's type and names the dotted field path in its errors; the
dataclasses themselves live in `config.py`, the named presets in `presets.py`.
"""

from __future__ import annotations

import dataclasses
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")


def to_dict(config: Any) -> dict:
    """Convert a (possibly nested) config dataclass into JSON-friendly dicts and lists."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = [to_dict(v) if dataclasses.is_dataclass(v) else v for v in value]
        out[f.name] = value
    return out


def from_dict(cls: type[T], data: dict) -> T:
    """Build config `cls` from a dict (e.g. parsed JSON), checking every value against the field's type.

    Unknown keys are an error (they signal a mismatched file); so is a value of the wrong type, with the
    field's dotted path in the message (`tokenizer.image_size must be an int, got '28'`). JSON lists become
    tuples and ints given for float fields become floats.
    """
    return _from_dict(cls, data, "")


MISSING = "<missing>"  # how `config_differences` shows a field one side lacks


def config_differences(old: dict, new: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted field path, old value, new value) for every field where two `to_dict` configs differ.

    A field present on one side only shows `MISSING` on the other.
    """
    out = []
    for name in sorted(set(old) | set(new)):
        a, b, path = old.get(name, MISSING), new.get(name, MISSING), f"{prefix}{name}"
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(config_differences(a, b, f"{path}."))
        elif a != b:
            out.append((path, a, b))
    return out


def _from_dict(cls: type[T], data: Any, path: str) -> T:
    where = f"{path}: " if path else f"{cls.__name__}: "
    if not isinstance(data, dict):
        raise ValueError(f"{where}expected a JSON object of {cls.__name__} fields, got {data!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}unknown field(s) {unknown}; known fields are {sorted(names)}")
    hints = get_type_hints(cls)
    kwargs = {name: _check_value(value, hints[name], f"{path}.{name}" if path else name)
              for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ValueError as err:
        if path:  # say which nested config a __post_init__ check refers to
            raise ValueError(f"{path}: {err}") from err
        raise


def _describe(hint: Any) -> str:
    """How a value of type `hint` is spelled in JSON, for error messages."""
    origin, args = get_origin(hint), get_args(hint)
    if dataclasses.is_dataclass(hint):
        return f"a JSON object of {hint.__name__} fields"
    if origin in (Union, UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    if origin in (tuple, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_PLURALS.get(args[0], 'values')}"
        return f"a list of {len(args)} {_PLURALS.get(args[0], 'values')}" if args else "a list"
    return _SINGULARS.get(hint, getattr(hint, "__name__", str(hint)))


_SINGULARS = {int: "an int", float: "a number", str: "a string", bool: "true or false"}
_PLURALS = {int: "ints", float: "numbers", str: "strings", bool: "booleans"}


def _check_value(value: Any, hint: Any, path: str) -> Any:
    """Return `value` as field type `hint` stores it, or raise a ValueError naming `path`."""
    wrong = ValueError(f"{path} must be {_describe(hint)}, got {value!r}")
    origin, args = get_origin(hint), get_args(hint)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise wrong
        return _from_dict(hint, value, path)
    if origin in (Union, UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _check_value(value, option, path)
            except ValueError:
                continue
        raise wrong
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise wrong
        if len(args) == 2 and args[1] is Ellipsis:
            item_hints = [args[0]] * len(value)
        elif args:
            if len(value) != len(args):
                raise wrong
            item_hints = list(args)
        else:
            return tuple(value) if origin is tuple else list(value)
        items = [_check_value(v, h, f"{path}[{i}]") for i, (v, h) in enumerate(zip(value, item_hints))]
        return tuple(items) if origin is tuple else items
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    else:  # Any and other hints are not checked
        ok = True
    if not ok:
        raise wrong
    return value


def check_ranges(config: Any, *, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = (),
                  fraction: tuple[str, ...] = ()) -> None:
    """Raise a ValueError for the first field outside its range (positive: > 0; fraction: in [0, 1]).

    A name may index a tuple field: `betas[0]`.
    """
    def value(name: str) -> Any:
        field_name, _, index = name.partition("[")
        found = getattr(config, field_name)
        return found[int(index.rstrip("]"))] if index else found

    for names, ok, wanted in ((positive, lambda v: v > 0, "positive"), (non_negative, lambda v: v >= 0, ">= 0"),
                              (fraction, lambda v: 0 <= v <= 1, "in [0, 1]")):
        for name in names:
            if not ok(value(name)):
                raise ValueError(f"{name} must be {wanted}, got {value(name)!r}")
