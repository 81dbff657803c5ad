"""The language of a rule's `when`: comparisons of a metric with a number, joined by `and` / `or`
(`and` binds tighter). Never Python: a condition is parsed, not evaluated."""

from __future__ import annotations

import math
import re

from mltui.base.errors import MltuiError

_TERM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[^\s<>=!]+)?)\s*(<=|>=|==|!=|<|>)\s*(-?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)\s*$")


def parse_when(text: str) -> list[list[tuple[str, str, float]]]:
    """`a > 1 and b < 2 or c == 0` as [[(a, >, 1), (b, <, 2)], [(c, ==, 0)]] (an OR of ANDs)."""
    alternatives = []
    for part in re.split(r"\s+or\s+", text.strip()):
        terms = []
        for piece in re.split(r"\s+and\s+", part):
            match = _TERM.match(piece)
            if not match:
                raise MltuiError(f"cannot read the condition {piece.strip()!r}: write METRIC OP NUMBER, e.g. "
                                 "\"drift_share > 0.3\" or \"accuracy < 0.85\", joined by and / or.")
            terms.append((match.group(1), match.group(2), float(match.group(3))))
        alternatives.append(terms)
    return alternatives


_OPS = {"<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b,
        "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


def holds(parsed, values: dict[str, float]) -> bool:
    """A term whose metric the window lacks (no labels yet, say) does not hold."""
    for terms in parsed:
        ok = True
        for name, op, limit in terms:
            value = values.get(name)
            if value is None or (isinstance(value, float) and math.isnan(value)) or not _OPS[op](value, limit):
                ok = False
                break
        if ok:
            return True
    return False
