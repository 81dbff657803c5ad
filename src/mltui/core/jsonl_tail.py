"""Tailing `metrics.jsonl`: metrics from scripts that cannot import mltui.

Each line is a JSON object: an optional integer "step", an optional "time" (Unix seconds) and
metric names mapped to numbers (null, "nan", "inf" and "-inf" are accepted as their floats).
A line that is not that is counted as bad and skipped; it never stops the run.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from mltui.core.values import check_key

_SPECIAL = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "infinity": math.inf,
            "-infinity": -math.inf}
_STEP_MIN, _STEP_MAX = -(2**63), 2**63
MAX_LINE = 1 << 20  # a "line" longer than this is garbage, not metrics


def parse_line(line: bytes) -> tuple[int | None, float | None, dict[str, float]] | None:
    """(step, time, metrics) or None for a bad line."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict):
        return None
    step = obj.pop("step", None)
    if step is not None and (type(step) is not int or not _STEP_MIN <= step < _STEP_MAX):
        return None
    when = obj.pop("time", None)
    if when is not None and (type(when) not in (int, float) or not math.isfinite(when)):
        return None
    values: dict[str, float] = {}
    for key, value in obj.items():
        if type(value) in (int, float):
            values[key] = float(value)
        elif value is None:
            values[key] = math.nan
        elif isinstance(value, str) and value.strip().lower() in _SPECIAL:
            values[key] = _SPECIAL[value.strip().lower()]
        else:
            return None
        try:
            check_key(key)
        except ValueError:
            return None
    if not values:
        return None
    return step, (float(when) if when is not None else None), values


class JsonlTail:
    """Reads the lines appended to a metrics.jsonl since the last call and turns them into columns."""

    def __init__(self, path: Path, next_step: int = 0) -> None:
        self.path = Path(path)
        self.offset = 0
        self.partial = b""
        self.next_step = next_step
        self.bad = 0  # bad lines seen so far
        self._ino: int | None = None

    def read(self, final: bool = False) -> dict[str, tuple[list[int], list[float], list[float]]]:
        """Columns {key: (steps, values, times)} for the complete lines appended since last time.

        With `final`, a last line without a newline is taken too (the writer has exited)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return {}
        try:
            st = os.fstat(fd)
            if self._ino is not None and (st.st_ino != self._ino or st.st_size < self.offset):
                self.offset, self.partial = 0, b""  # replaced or truncated: start over
            self._ino = st.st_ino
            if st.st_size <= self.offset and not (final and self.partial):
                return {}
            chunks = []
            os.lseek(fd, self.offset, os.SEEK_SET)
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
                self.offset += len(chunk)
        finally:
            os.close(fd)
        data = self.partial + b"".join(chunks)
        lines = data.split(b"\n")
        self.partial = lines.pop()
        if final and self.partial:
            lines.append(self.partial)
            self.partial = b""
        elif len(self.partial) > MAX_LINE:
            self.bad += 1
            self.partial = b""
        return self._columns(lines)

    def _columns(self, lines: list[bytes]) -> dict[str, tuple[list[int], list[float], list[float]]]:
        out: dict[str, tuple[list[int], list[float], list[float]]] = {}
        now = time.time()
        for line in lines:
            if not line.strip():
                continue
            parsed = parse_line(line)
            if parsed is None:
                self.bad += 1
                continue
            step, when, values = parsed
            if step is None:
                step = self.next_step
            self.next_step = step + 1
            stamp = now if when is None else when
            for key, value in values.items():
                steps, vals, times = out.setdefault(key, ([], [], []))
                steps.append(step)
                vals.append(value)
                times.append(stamp)
        return out
