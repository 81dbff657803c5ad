"""What the framework bridges share: opening the run (the launched one, or a new one), and turning a
framework's params and logs into what the store keeps."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from mltui.core.runs.metric_keys import metric_key

PLAIN = (str, int, float, bool)


def open_run(name: str | None, params: Mapping[str, Any] | None, tags: Mapping[str, Any] | None,
             workspace: str | os.PathLike[str] | None, kind: str = "train"):
    """The launched run when there is one (MLTUI_RUN_ID), else a new run in the workspace found from here."""
    from mltui.core.runs.tracking import init

    return init(name=name, params=flat_params(params or {}), tags=flat_params(tags or {}), kind=kind,
                workspace=workspace)


def flat_params(values: Any, prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Nested dicts (and argparse Namespaces, dataclasses with to_dict/as_dict) as one level of
    `a.b.c` keys the store allows; values kept when plain (text, numbers, bools), None as None, the rest as
    their text (lists, tuples, enums, dtypes)."""
    if hasattr(values, "to_dict") and not isinstance(values, Mapping):
        values = values.to_dict()
    elif hasattr(values, "__dict__") and not isinstance(values, Mapping):
        values = vars(values)
    out: dict[str, Any] = {}
    for key, value in dict(values).items():
        full = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flat_params(value, full, sep))
            continue
        if value is None or isinstance(value, PLAIN):
            plain = value
        elif hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            plain = value.item()  # a numpy or torch scalar
        else:
            plain = str(value)
        if isinstance(plain, float) and not math.isfinite(plain):
            plain = str(plain)
        out[metric_key(full)] = plain
    return out


def numbers(logs: Mapping[str, Any] | None, prefix: str = "") -> dict[str, float]:
    """The numeric entries of a framework's logs as metrics (tensors and numpy scalars included); text and
    arrays are left out."""
    out: dict[str, float] = {}
    for key, value in (logs or {}).items():
        if isinstance(value, bool) or isinstance(value, (str, bytes)):
            continue
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            try:
                value = value.item()
            except (TypeError, ValueError, RuntimeError):
                continue
        if isinstance(value, (int, float)):
            out[metric_key(prefix + str(key))] = float(value)
    return out
