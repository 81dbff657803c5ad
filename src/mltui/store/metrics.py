"""Metric points in packed chunks, and the per-(run, key) summary kept current on ingest."""

from __future__ import annotations

import math
import sqlite3
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence

_SWAP = sys.byteorder != "little"  # blobs are little-endian on every machine

INSERT_CHUNK = (
    "INSERT INTO metrics(run_id, key, first_step, last_step, n, steps, vals, times) VALUES (?,?,?,?,?,?,?,?)"
)
UPSERT_SUMMARY = """
INSERT INTO metric_summary(run_id, key, last, last_step, last_time, min, max, count)
VALUES (?,?,?,?,?,?,?,?)
ON CONFLICT(run_id, key) DO UPDATE SET
  last = CASE WHEN excluded.last_step >= last_step THEN excluded.last ELSE last END,
  last_time = CASE WHEN excluded.last_step >= last_step THEN excluded.last_time ELSE last_time END,
  last_step = max(last_step, excluded.last_step),
  min = CASE WHEN min IS NULL THEN excluded.min WHEN excluded.min IS NULL THEN min
             ELSE min(min, excluded.min) END,
  max = CASE WHEN max IS NULL THEN excluded.max WHEN excluded.max IS NULL THEN max
             ELSE max(max, excluded.max) END,
  count = count + excluded.count
"""


def _pack(typecode: str, items: Iterable) -> bytes:
    arr = array(typecode, items)
    if _SWAP:
        arr.byteswap()
    return arr.tobytes()


def _unpack(typecode: str, blob: bytes) -> array:
    arr = array(typecode)
    arr.frombytes(blob)
    if _SWAP:
        arr.byteswap()
    return arr


def _finite_min_max(values: Sequence[float]) -> tuple[float | None, float | None]:
    lo, hi = min(values), max(values)
    # min/max only go wrong when a NaN comes first; then filter the NaNs out.
    if lo != lo or hi != hi:
        real = [v for v in values if v == v]
        if not real:
            return None, None
        lo, hi = min(real), max(real)
    return lo, hi


def chunk_rows(run_id: str, key: str, steps: Sequence[int], values: Sequence[float], times: Sequence[float]):
    """The metrics row and the summary row for one batch of one series."""
    n = len(steps)
    top = max(steps)
    last_i = n - 1 if steps[-1] == top else max(i for i in range(n) if steps[i] == top)
    lo, hi = _finite_min_max(values)
    chunk = (run_id, key, min(steps), top, n, _pack("q", steps), _pack("d", values), _pack("d", times))
    summary = (run_id, key, values[last_i], top, times[last_i], lo, hi, n)
    return chunk, summary


def write_batch(conn: sqlite3.Connection, run_id: str, series: Mapping[str, tuple[list, list, list]]) -> int:
    """Insert each series' points as one chunk and fold them into the summary. Caller owns the transaction."""
    chunks, summaries = [], []
    for key, (steps, values, times) in series.items():
        if steps:
            chunk, summary = chunk_rows(run_id, key, steps, values, times)
            chunks.append(chunk)
            summaries.append(summary)
    conn.executemany(INSERT_CHUNK, chunks)
    conn.executemany(UPSERT_SUMMARY, summaries)
    return sum(c[4] for c in chunks)


def read_series(conn: sqlite3.Connection, run_id: str, key: str) -> tuple[array, array, array]:
    """All points of one series ordered by step; a step logged twice keeps its latest write."""
    steps, values, times = array("q"), array("d"), array("d")
    for s, v, t in conn.execute(  # insertion order, so "later" below means written later
        "SELECT steps, vals, times FROM metrics WHERE run_id = ? AND key = ? ORDER BY rowid",
        (run_id, key),
    ):
        steps.extend(_unpack("q", s))
        values.extend(_unpack("d", v))
        times.extend(_unpack("d", t))
    if all(steps[i] < steps[i + 1] for i in range(len(steps) - 1)):
        return steps, values, times  # the common case: appended in step order, no repeats
    latest: dict[int, int] = {}
    for i, s in enumerate(steps):
        latest[s] = i
    order = sorted(latest.values(), key=steps.__getitem__)
    return (
        array("q", (steps[i] for i in order)),
        array("d", (values[i] for i in order)),
        array("d", (times[i] for i in order)),
    )


def summary_value(value: float | None) -> float:
    """The store keeps NaN as NULL (SQLite's rule); a summary row always has a value, so NULL is NaN."""
    return math.nan if value is None else value


def summaries(conn: sqlite3.Connection, run_ids: Sequence[str]) -> dict[str, dict[str, dict]]:
    """run id -> key -> {last, last_step, last_time, min, max, count}."""
    out: dict[str, dict[str, dict]] = {rid: {} for rid in run_ids}
    if not run_ids:
        return out
    for rid, key, last, last_step, last_time, lo, hi, count in conn.execute(
        "SELECT run_id, key, last, last_step, last_time, min, max, count FROM metric_summary "
        "WHERE run_id IN (SELECT value FROM json_each(?)) ORDER BY run_id, key",
        (_json_list(run_ids),),
    ):
        out[rid][key] = {
            "last": summary_value(last),
            "last_step": last_step,
            "last_time": last_time,
            "min": lo,
            "max": hi,
            "count": count,
        }
    return out


def delete_for_runs(conn: sqlite3.Connection, run_ids_json: str) -> None:
    """Delete every metric chunk and summary row of the runs in `run_ids_json` (a JSON list of ids), one
    table at a time: the run removal (store/runs.py delete_runs) calls this before deleting the runs rows,
    which is quicker than the cascade's lookups run by run. Caller owns the transaction."""
    conn.execute("DELETE FROM metric_summary WHERE run_id IN (SELECT value FROM json_each(?))", (run_ids_json,))
    conn.execute("DELETE FROM metrics WHERE run_id IN (SELECT value FROM json_each(?))", (run_ids_json,))


def _json_list(items: Sequence[str]) -> str:
    import json

    return json.dumps(list(items))
