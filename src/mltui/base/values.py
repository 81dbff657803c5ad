"""Typed values for params and tags, and the checks on metric keys and values."""

from __future__ import annotations

import math
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (import mltui stays lean)

if TYPE_CHECKING:
    from typing import Any

_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_REST = _FIRST | frozenset(".:/-")


def check_key(key: object, what: str = "metric") -> str:
    if not isinstance(key, str) or not 0 < len(key) <= 200 or key[0] not in _FIRST or not _REST.issuperset(key):
        raise ValueError(
            f"{what} key {key!r} is not allowed: use 1-200 letters, digits, '_', '.', ':', '/' or '-', "
            "starting with a letter, digit or '_'."
        )
    return key


def metric_value(key: str, value: object) -> float:
    """A float for a metric value; NaN and +-inf are fine, anything non-numeric is a ValueError."""
    if isinstance(value, (str, bytes, bytearray)) or value is None:
        raise ValueError(f"metric {key!r} must be a number, not {type(value).__name__} {value!r:.40}.")
    try:
        out = float(value)  # int, bool, numpy and torch scalars
    except OverflowError:
        raise ValueError(f"metric {key!r} is an integer too large for a float.") from None
    except (TypeError, ValueError):
        raise ValueError(f"metric {key!r} must be a number, not {type(value).__name__}.") from None
    return out


def step_value(step: object) -> int:
    if isinstance(step, bool):
        raise ValueError("step must be an integer, not a bool.")
    try:
        value = step.__index__()  # int, numpy integers
    except AttributeError:
        raise ValueError(f"step must be an integer, not {type(step).__name__}.") from None
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"step {value} is outside the 64-bit range the store keeps.")
    return value


def encode(value: Any) -> tuple[Any, str]:
    """(stored value, type name) for a param or tag value, keeping its type."""
    if value is None:
        return None, "null"
    if isinstance(value, bool):
        return int(value), "bool"
    if isinstance(value, int):
        return (value, "int") if -(2**63) <= value < 2**63 else (str(value), "bigint")
    if isinstance(value, float):
        return (None if math.isnan(value) else value), "float"
    if isinstance(value, str):
        return value, "str"
    if isinstance(value, (list, tuple, dict)):
        import json

        return json.dumps(value, default=str, allow_nan=True), "json"
    item = getattr(value, "item", None)  # numpy / torch scalars
    if callable(item):
        try:
            return encode(item())
        except (TypeError, ValueError, RuntimeError):
            pass
    return str(value), "str"


def decode(value: Any, kind: str) -> Any:
    if kind == "bool":
        return bool(value)
    if kind == "float":
        return math.nan if value is None else float(value)
    if kind == "json":
        import json

        return json.loads(value)
    if kind == "bigint":
        return int(value)
    return value


def display(value: Any) -> str:
    """A short plain-text form of a param, tag or metric value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.4g}"
    if value is None:
        return "-"
    if isinstance(value, (list, dict)):
        import json

        return json.dumps(value)
    return str(value)


def jsonable(value):
    """JSON has no NaN or infinity: they become the strings "nan", "inf" and "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
