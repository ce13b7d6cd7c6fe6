"""Field checks shared by every ``from_wire``: the reader's words for a bad record.

A record missing a field the report needs, or holding a value of the wrong type, raises
:class:`SchemaError` (``missing field 'client'``, ``field 'cpu_percent' must be a number, got
'high'``); the loader adds the file and line. Optional numbers that are not finite (NaN written by a
buggy writer) read as None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["Obj", "SchemaError", "flag", "num", "opt_int", "opt_num", "opt_text", "req_num", "req_text"]

Obj = Mapping[str, Any]


class SchemaError(ValueError):
    """A record does not follow the schema (the message names the field)."""


def opt_num(obj: Obj, key: str) -> float | None:
    """An optional number (None when absent, null or not finite)."""
    return num(obj, key, optional=True)


def num(obj: Obj, key: str, *, optional: bool = False) -> float | None:
    """A number field; ``optional`` allows absence (and reads a non-finite value as None)."""
    value = obj.get(key)
    if value is None:
        if optional:
            return None
        raise SchemaError(f"missing field {key!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError(f"field {key!r} must be a number, got {value!r}")
    if not math.isfinite(value):
        if optional:
            return None
        raise SchemaError(f"field {key!r} must be finite, got {value!r}")
    return float(value)


def req_num(obj: Obj, key: str) -> float:
    """A required finite number."""
    value = num(obj, key)
    assert value is not None
    return value


def opt_int(obj: Obj, key: str) -> int | None:
    """An optional integer (a number on the wire, truncated)."""
    value = num(obj, key, optional=True)
    return None if value is None else int(value)


def opt_text(obj: Obj, key: str) -> str | None:
    """An optional text field (None when absent or null; a number reads as its text)."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise SchemaError(f"field {key!r} must be a string, got {value!r}")
    return str(value)


def req_text(obj: Obj, key: str) -> str:
    """A required text field."""
    value = opt_text(obj, key)
    if value is None:
        raise SchemaError(f"missing field {key!r}")
    return value


def flag(obj: Obj, key: str, default: bool) -> bool:
    """A true/false field (``default`` when absent or null)."""
    value = obj.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise SchemaError(f"field {key!r} must be true/false, got {value!r}")
    return value
