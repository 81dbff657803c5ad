"""Output for every command: `emit` (the one place --json is decided and JSON encoded) and the
plain-text helpers (tables, ages, times). No Rich here: listing must start fast."""

from __future__ import annotations

import json
import shutil
import sys
import time
from typing import Any, Callable, Iterable, Sequence

from mltui.base.text import age as text_age
from mltui.base.text import safe, span
from mltui.base.values import jsonable

__all__ = ["safe", "jsonable", "wants_json", "emit", "print_json", "stream_json", "age", "span", "when", "table"]


def wants_json(args: Any) -> bool:
    """Whether a command was asked for JSON: the parsed arguments' --json (a command without the flag
    never is), or a bool where a caller passes the choice on."""
    if isinstance(args, bool):
        return args
    return bool(getattr(args, "json", False))


def emit(args: Any, data: Any, text: Callable[[], int | None] | None = None, *, code: int = 0,
         lines: bool = False) -> int:
    """Print a command's result and return its exit code.

    With --json (see `wants_json`): `data` as JSON, indented, NaN and infinities as strings; with
    `lines`, one compact line flushed at once (what `--watch` writes, a line per snapshot). `data` may
    be a function, called only then, for JSON that costs a query to build. Without --json: `text()`
    prints the plain form. The exit code is what `text()` returns, where it returns one, else `code`."""
    if wants_json(args):
        value = data() if callable(data) else data
        if lines:
            sys.stdout.write(json.dumps(value) + "\n")
            sys.stdout.flush()
        else:
            print_json(value)
        return code
    if text is not None:
        result = text()
        if result is not None:
            return result
    return code


def _compact(item: Any) -> str:
    try:  # the C encoder; only an item holding NaN or an infinity goes through jsonable
        return json.dumps(item, ensure_ascii=False, allow_nan=False)
    except ValueError:
        return json.dumps(jsonable(item), ensure_ascii=False)


def stream_json(batches: Iterable[Iterable[Any]], lines: bool = False) -> int:
    """Items as they come, a batch at a time: one JSON array with an item per line, or with `lines` JSON
    lines (one item per line, no array). An item may be a JSON text already (a str). Nothing holds more
    than a batch, so a whole-result output stays flat in memory at any size. Returns the item count."""
    out = sys.stdout
    count = 0
    for batch in batches:
        for item in batch:
            text = item if isinstance(item, str) else _compact(item)
            if lines:
                out.write(text + "\n")
            else:
                out.write(("[\n  " if count == 0 else ",\n  ") + text)
            count += 1
    if not lines:
        out.write("[]\n" if count == 0 else "\n]\n")
    out.flush()
    return count


def print_json(data: Any) -> None:
    """`data` as indented JSON on stdout; commands go through `emit`, which calls this."""
    sys.stdout.write(json.dumps(jsonable(data), indent=2, ensure_ascii=False) + "\n")


def age(ts: float | None, now: float | None = None) -> str:
    return "-" if ts is None else text_age(ts, now) + " ago"


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], max_width: int | None = None) -> str:
    """Columns padded to fit; the widest columns are cut (with …) to fit the terminal."""
    rows = [[safe(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    limit = max_width or shutil.get_terminal_size((120, 24)).columns
    while sum(widths) + 2 * (len(widths) - 1) > limit and max(widths) > 8:
        widest = widths.index(max(widths))
        widths[widest] -= 1
    def fit(cell: str, w: int) -> str:
        return cell if len(cell) <= w else cell[: max(0, w - 1)] + "…"
    lines = ["  ".join(fit(h, w).ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(fit(c, w).ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def metric_table(summary: dict[str, dict]) -> str:
    """One line per metric of a run: last, min, max, last step, number of points."""
    from mltui.base.values import display

    return table(
        ["KEY", "LAST", "MIN", "MAX", "STEP", "POINTS"],
        [[k, display(s["last"]), display(s["min"]), display(s["max"]), str(s["last_step"]), str(s["count"])]
         for k, s in summary.items()],
    )
