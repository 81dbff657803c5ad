"""Runs as JSON texts written by SQLite, for outputs of every run (`runs list --json --limit 0`).

Building a dict per run, param and metric in Python and encoding it again is what made `runs list --json
--limit 0` take 29 s at 100,000 runs; here one statement per batch writes each run's whole object (its
columns, params, tags and metric summary) by string concatenation in C, and Python only writes the texts
out. The text decodes to what `mltui.base.values.jsonable` gives for the run as `runs_by_id(...,
details=True)` reads it: booleans as true/false, JSON columns and params as JSON, NaN and infinities as
"nan", "inf", "-inf", reals with 15 significant digits when that reads back as the same double and 17
otherwise. A run SQLite cannot write exactly (a BLOB value, a JSON text SQLite refuses, such as one holding
NaN) comes back as None: the caller encodes that one in Python.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from mltui.store.runs import RUN_COLUMNS

_BIG = "1.7976931348623157e308"
BAD = "\x01"  # in a text: a value SQLite cannot write as the Python encoder would (the run goes through Python)


def real(v: str, null: str = "'null'") -> str:
    """SQL for the JSON of REAL `v`: 15 significant digits when they read back as the same double (what
    CAST gives), else 17; `null` (SQL text) for NULL; infinities as "inf" and "-inf". SQLite's printf is
    not exact near the ends of the double range, so a number past 1e300 is BAD (Python writes that run)."""
    return (f"CASE WHEN CAST(CAST({v} AS TEXT) AS REAL) = {v} AND {v} BETWEEN -{_BIG} AND {_BIG} "
            f"THEN CAST({v} AS TEXT) WHEN {v} BETWEEN -1e300 AND 1e300 THEN printf('%!.17g', {v}) "
            f"WHEN {v} IS NULL THEN {null} WHEN {v} BETWEEN -{_BIG} AND {_BIG} THEN char(1) "
            f"WHEN {v} > 0 THEN '\"inf\"' ELSE '\"-inf\"' END")


def _any(v: str) -> str:
    """SQL for the JSON of a value of any storage class (a BLOB is BAD)."""
    return (f"CASE typeof({v}) WHEN 'integer' THEN {v} WHEN 'real' THEN {real(v)} WHEN 'null' THEN 'null' "
            f"WHEN 'text' THEN json_quote({v}) ELSE char(1) END")


def _json_text(v: str) -> str:
    """A column holding JSON text (row_dict decodes it when it is not empty); text that is not JSON is BAD
    (Python keeps it as a string; rare, so Python writes that run)."""
    return f"CASE WHEN {v} IS NULL THEN 'null' WHEN {v} = '' THEN '\"\"' WHEN json_valid({v}) THEN json({v}) ELSE char(1) END"


_JSON_COLUMNS = {"command", "gpus", "spec", "fingerprint"}  # what store.runs.row_dict decodes
_BOOL_COLUMNS = {"git_dirty"}
_REAL_COLUMNS = {"created", "started", "ended", "heartbeat", "kill_requested", "stalled_since"}


def _column(name: str) -> str:
    """A run column as a json_object argument: SQLite writes text, integers and NULL exactly (a BLOB makes
    the statement fail: runs_json then leaves the batch to Python); reals and JSON texts go in as JSON."""
    v = f"r.{name}"
    if name in _JSON_COLUMNS:
        return f"json({_json_text(v)})"
    if name in _BOOL_COLUMNS:
        return f"json(CASE WHEN {v} IS NULL THEN 'null' WHEN {v} THEN 'true' ELSE 'false' END)"
    if name in _REAL_COLUMNS:
        return f"json({real(v)})"
    return f"CASE WHEN typeof({v}) = 'real' THEN json({real(v)}) ELSE {v} END"


# a param or tag value by its type (mltui.base.values.decode): NaN is kept as NULL with type 'float'
_VALUE = ("CASE x.type WHEN 'bool' THEN CASE WHEN x.value THEN 'true' ELSE 'false' END "
          "WHEN 'float' THEN " + real("x.value", "'\"nan\"'") + " "
          "WHEN 'json' THEN CASE WHEN json_valid(x.value) THEN json(x.value) ELSE char(1) END "
          "WHEN 'bigint' THEN CASE WHEN typeof(x.value) = 'text' AND x.value GLOB '[0-9-]*' "
          "AND NOT substr(x.value, 2) GLOB '*[^0-9]*' THEN x.value ELSE char(1) END "
          "WHEN 'null' THEN 'null' ELSE " + _any("x.value") + " END")


def _values(table: str) -> str:
    return (f"coalesce((SELECT '{{' || group_concat(json_quote(x.key) || ':' || {_VALUE}, ',') || '}}' "
            f"FROM {table} x WHERE x.run_id = r.id), '{{}}')")


# a metric summary row: one printf when its numbers are all finite (the common case; 17 digits, which
# always read back as the same double), else each number on its own (NaN, infinities, NULL)
# (a sum that is finite has finite, non-NULL terms; one that overflows only takes the slower way)
_FINITE = "m.last + m.last_time + m.min + m.max BETWEEN -1e300 AND 1e300"
_SUMMARY = (f"CASE WHEN {_FINITE} AND typeof(m.last_step + m.count) = 'integer' THEN "
            "printf('%s:{\"last\":%!.17g,\"last_step\":%d,\"last_time\":%!.17g,\"min\":%!.17g,\"max\":%!.17g,"
            "\"count\":%d}', json_quote(m.key), m.last, m.last_step, m.last_time, m.min, m.max, m.count) ELSE "
            "json_quote(m.key) || ':{\"last\":' || " + real("m.last", "'\"nan\"'") + " || ',\"last_step\":' || "
            + _any("m.last_step") + " || ',\"last_time\":' || " + real("m.last_time") + " || ',\"min\":' || "
            + real("m.min") + " || ',\"max\":' || " + real("m.max") + " || ',\"count\":' || " + _any("m.count")
            + " || '}' END")
_METRICS = f"coalesce((SELECT '{{' || group_concat({_SUMMARY}, ',') || '}}' FROM metric_summary m WHERE m.run_id = r.id), '{{}}')"


def _head() -> str:
    """The run's columns as a JSON object text without its closing brace."""
    pairs = ", ".join(f"'{n}', {_column(n)}" for n in RUN_COLUMNS)
    return f"(SELECT substr(h, 1, length(h) - 1) FROM (SELECT json_object({pairs}) AS h))"


_RUNS_JSON = None


def _statement() -> str:
    global _RUNS_JSON
    if _RUNS_JSON is None:
        _RUNS_JSON = (f"SELECT r.id, {_head()} || ',\"params\":' || {_values('params')} || ',\"tags\":' || "
                      f"{_values('tags')} || ',\"metrics\":' || {_METRICS} || '}}' "
                      "FROM json_each(?) j JOIN runs r ON r.id = j.value")
    return _RUNS_JSON


def runs_json(conn: sqlite3.Connection, run_ids: Sequence[str]) -> dict[str, str | None]:
    """run id -> the run's JSON object as one compact line, or None where Python must encode it (see the
    module's note). Ids no longer in the store are left out."""
    try:
        rows = conn.execute(_statement(), (json.dumps(list(run_ids)),)).fetchall()
    except sqlite3.OperationalError as exc:  # a BLOB where JSON has no place for one: Python writes them all
        if "json" not in str(exc).lower() and "blob" not in str(exc).lower():
            raise
        return dict.fromkeys(run_ids, None)
    return {rid: None if text is None or BAD in text else text for rid, text in rows}


def map_batches(conn: sqlite3.Connection, fn, batches, workers: int | None = None):
    """`fn(connection, batch)` for each of `batches`, results yielded in order, computed by up to `workers`
    threads each reading through its own connection to `conn`'s store (SQLite runs a statement without the
    GIL, so batches are read in parallel while the caller writes the previous ones out). At most `workers`
    + 1 results are held at a time. With one worker, or a store not in a file, `conn` does it all."""
    import os
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from mltui.store.connection import connect

    batches = iter(batches)
    workers = workers or min(4, max(1, (os.cpu_count() or 1)))
    path = next((row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main"), "")
    if workers < 2 or not path:
        for batch in batches:
            yield fn(conn, batch)
        return
    import threading

    local = threading.local()
    opened: list[sqlite3.Connection] = []
    lock = threading.Lock()

    def run(batch):
        own = getattr(local, "conn", None)
        if own is None:
            own = local.conn = connect(Path(path), readonly=True)
            # read through a small page cache, not mmap: a mapping per thread would count the file's pages
            # in the process's memory once per thread
            own.execute("PRAGMA mmap_size = 0")
            own.execute("PRAGMA cache_size = -16384")
            with lock:
                opened.append(own)
        return fn(own, batch)

    pending: deque = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mltui-read")
    try:
        for batch in batches:
            pending.append(pool.submit(run, batch))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for own in opened:
            own.close()
