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

from mltui.base.values import check_key

_SPECIAL = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "infinity": math.inf,
            "-infinity": -math.inf}
_STEP_MIN, _STEP_MAX = -(2**63), 2**63
MAX_LINE = 1 << 20  # a "line" longer than this is garbage, not metrics
MAX_READ = 16 << 20  # bytes taken per call, so memory stays bounded however far behind we are


class JsonlTail:
    """Reads the lines appended to a metrics.jsonl since the last call and turns them into columns."""

    def __init__(self, path: Path, next_step: int = 0) -> None:
        self.path = Path(path)
        self.offset = 0
        self.partial = b""
        self.next_step = next_step
        self.bad = 0  # bad lines seen so far
        self._known_keys: set[tuple] = set()  # key sets already checked
        self.more = False  # the last read stopped at MAX_READ with more in the file
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
            taken = 0
            self.more = False
            while True:  # a supervisor far behind catches up in bounded steps
                if taken >= MAX_READ:
                    self.more = True
                    break
                chunk = os.read(fd, min(1 << 20, MAX_READ - taken))
                if not chunk:
                    break
                chunks.append(chunk)
                taken += len(chunk)
                self.offset += len(chunk)
        finally:
            os.close(fd)
        data = self.partial + b"".join(chunks)
        lines = data.split(b"\n")
        self.partial = lines.pop()
        if final and self.partial and not self.more:
            lines.append(self.partial)
            self.partial = b""
        elif len(self.partial) > MAX_LINE:
            self.bad += 1
            self.partial = b""
        return self._columns(lines)

    def _columns(self, lines: list[bytes]) -> dict[str, tuple[list[int], list[float], list[float]]]:
        texts = [line.decode("utf-8", errors="replace") for line in lines if line.strip()]
        if not texts:
            return {}
        objs = None
        try:  # one parse for the whole chunk (most lines are good; 40% cheaper than line by line), each line
            # in a list of its own so that a line holding two values, or two lines holding one, is noticed
            wrapped = json.loads("[[" + "],\n[".join(texts) + "]]")
            if len(wrapped) == len(texts) and all(type(w) is list and len(w) == 1 for w in wrapped):
                objs = [w[0] for w in wrapped]
        except ValueError:
            pass
        if objs is None:  # a bad line somewhere: line by line
            objs = []
            for text in texts:
                try:
                    objs.append(json.loads(text))
                except ValueError:
                    objs.append(None)
        # runs of consecutive rows with the same key set, so columns come out of one zip per run
        # while every series keeps the order its points arrived in
        groups: list[tuple[tuple, list[tuple]]] = []
        now = time.time()
        known = self._known_keys
        for obj in objs:
            if type(obj) is not dict or not obj:
                self.bad += 1
                continue
            step = obj.pop("step", None)
            when = obj.pop("time", None)
            if step is None:
                step = self.next_step
            elif type(step) is not int or not _STEP_MIN <= step < _STEP_MAX:
                self.bad += 1
                continue
            if when is not None and (type(when) not in (int, float) or not math.isfinite(when)):
                self.bad += 1
                continue
            keys = tuple(obj)
            if keys not in known:
                if not keys or not _keys_ok(keys):
                    self.bad += 1
                    continue
                known.add(keys)
            values = tuple(obj.values())
            for value in values:
                if type(value) is not float and type(value) is not int:
                    break
            else:
                _add(groups, keys, (step, now if when is None else float(when), values))
                self.next_step = step + 1
                continue
            fixed = _fix_values(values)  # null, "nan", "inf": rarer, so checked only when needed
            if fixed is None:
                self.bad += 1
                continue
            _add(groups, keys, (step, now if when is None else float(when), fixed))
            self.next_step = step + 1
        return _to_columns(groups)


def _add(groups: list[tuple[tuple, list[tuple]]], keys: tuple, row: tuple) -> None:
    if groups and groups[-1][0] == keys:
        groups[-1][1].append(row)
    else:
        groups.append((keys, [row]))


def _keys_ok(keys: tuple) -> bool:
    try:
        for key in keys:
            check_key(key)
    except ValueError:
        return False
    return True


def _fix_values(values: tuple) -> tuple | None:
    out = []
    for value in values:
        if type(value) in (int, float):
            out.append(value)
        elif value is None:
            out.append(math.nan)
        elif isinstance(value, str) and value.strip().lower() in _SPECIAL:
            out.append(_SPECIAL[value.strip().lower()])
        else:
            return None
    return tuple(out)


def _to_columns(groups: list[tuple[tuple, list[tuple]]]) -> dict[str, tuple[list[int], list[float], list[float]]]:
    out: dict[str, tuple[list[int], list[float], list[float]]] = {}
    for keys, rows in groups:
        steps, times, values = zip(*rows)
        columns = list(zip(*values))
        for key, column in zip(keys, columns):
            series = out.get(key)
            if series is None:
                series = out[key] = ([], [], [])
            series[0].extend(steps)
            series[1].extend(float(v) for v in column)
            series[2].extend(times)
    return out
