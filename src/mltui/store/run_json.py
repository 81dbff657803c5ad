"""Runs as JSON texts written by SQLite, for outputs of every run (`runs list --json --limit 0`).

Building a dict per run, param and metric in Python and encoding it again is what made `runs list --json
--limit 0` take 29 s at 100,000 runs; here one statement per batch writes each run's whole object (its
columns, params, tags and metric summary) by string concatenation in C, and Python only writes the texts
out. The text decodes to what `mltui.base.values.jsonable` gives for the run as `runs_by_id(...,
details=True)` reads it: booleans as true/false, JSON columns and params as JSON, NaN and infinities as
"nan", "inf", "-inf", reals with 17 significant digits (which read back as the same double; trailing zeros
dropped). A run SQLite cannot write exactly (a BLOB value, a JSON text SQLite refuses, such as one holding
NaN) comes back as None: the caller encodes that one in Python.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from mltui.store.runs import RUN_COLUMNS

_BIG = "1.7976931348623157e308"
BAD = "\x01"  # in a text: a value SQLite cannot write as the Python encoder would (the run goes through Python)


def real(v: str, null: str = "'null'", bad: str = "char(1)") -> str:
    """SQL for the JSON of REAL `v`: printf's %!.17g (17 significant digits, trailing zeros dropped), which
    reads back as the same double within +-1e100 (past that SQLite's printf is not exact: BAD, Python writes
    the run; `bad` is the SQL for that); `null` (SQL text) for NULL; infinities as "inf" and "-inf".
    A shorter text is not tried: SQLite reads some 15-digit texts back one bit off, so a check that one
    reads back lets wrong numbers through (1.7624917436382601 came out as 1.76249174363826)."""
    return (f"CASE WHEN {v} BETWEEN -1e100 AND 1e100 THEN printf('%!.17g', {v}) WHEN {v} IS NULL THEN {null} "
            f"WHEN {v} BETWEEN -{_BIG} AND {_BIG} THEN {bad} WHEN {v} > 0 THEN '\"inf\"' ELSE '\"-inf\"' END")


def _any(v: str) -> str:
    """SQL for the JSON of a value of any storage class (a BLOB is BAD)."""
    return (f"CASE typeof({v}) WHEN 'integer' THEN {v} WHEN 'real' THEN {real(v)} WHEN 'null' THEN 'null' "
            f"WHEN 'text' THEN json_quote({v}) ELSE char(1) END")


_NULL = "'null'"  # a huge REAL column goes in as null; _odd_columns makes the run BAD
_JSON_COLUMNS = {"command", "gpus", "spec", "fingerprint"}  # what store.runs.row_dict decodes
_BOOL_COLUMNS = {"git_dirty"}
_REAL_COLUMNS = {"created", "started", "ended", "heartbeat", "kill_requested", "stalled_since"}
_INT_COLUMNS = {"pid", "pgid", "exit_code", "bad_lines", "sup_pid", "pid_start", "peak_rss", "dropped_points",
                "archived"}  # declared INTEGER: integers, NULL, or (written wrongly) a REAL or a text
# every other run column is declared TEXT: SQLite keeps text or NULL there (tests/core/runs/test_whole_outputs.py
# checks these sets against the schema)


def _column(name: str) -> str:
    """A run column as a json_object argument: SQLite writes text, integers and NULL exactly (a BLOB makes
    the statement fail: runs_json then leaves the batch to Python); reals and JSON texts go in as JSON."""
    v = f"r.{name}"
    if name in _JSON_COLUMNS:
        return f"CASE WHEN {v} IS NULL OR {v} = '' OR NOT json_valid({v}) THEN {v} ELSE json({v}) END"
    if name in _BOOL_COLUMNS:
        return f"json(CASE WHEN {v} IS NULL THEN 'null' WHEN {v} THEN 'true' ELSE 'false' END)"
    if name in _REAL_COLUMNS:
        return f"CASE typeof({v}) WHEN 'real' THEN json({real(v, bad=_NULL)}) ELSE {v} END"
    return v


def _odd_columns() -> str:
    """SQL that is BAD when a column holds what json_object would not write as Python does (a REAL in an
    INTEGER column, a finite REAL past +-1e100, text that is not JSON in a JSON column), else ''."""
    ints = ", ".join(f"typeof(r.{n})" for n in RUN_COLUMNS if n in _INT_COLUMNS)
    reals = ", ".join(f"abs(coalesce(r.{n}, 0))" for n in RUN_COLUMNS if n in _REAL_COLUMNS)
    texts = " OR ".join(f"(r.{n} != '' AND NOT json_valid(r.{n}))" for n in RUN_COLUMNS if n in _JSON_COLUMNS)
    return (f"CASE WHEN 'real' IN ({ints}) OR max({reals}) BETWEEN 1e100 AND {_BIG} OR {texts} THEN char(1) "
            "ELSE '' END")


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


# a metric summary row: one printf when its numbers are all within +-1e100 and its counts integers (the
# common case), else each number on its own (NaN, infinities, NULL, huge)
_PLAIN = "max(abs(m.last), abs(m.last_time), abs(m.min), abs(m.max)) <= 1e100"  # NULL (not plain) if one is
_SUMMARY = (f"CASE WHEN {_PLAIN} AND typeof(m.last_step) = 'integer' AND typeof(m.count) = 'integer' THEN "
            "printf('%s:{\"last\":%!.17g,\"last_step\":%d,\"last_time\":%!.17g,\"min\":%!.17g,\"max\":%!.17g,"
            "\"count\":%d}', json_quote(m.key), m.last, m.last_step, m.last_time, m.min, m.max, m.count) ELSE "
            "json_quote(m.key) || ':{\"last\":' || " + real("m.last", "'\"nan\"'") + " || ',\"last_step\":' || "
            + _any("m.last_step") + " || ',\"last_time\":' || " + real("m.last_time") + " || ',\"min\":' || "
            + real("m.min") + " || ',\"max\":' || " + real("m.max") + " || ',\"count\":' || " + _any("m.count")
            + " || '}' END")
_METRICS = f"coalesce((SELECT '{{' || group_concat({_SUMMARY}, ',') || '}}' FROM metric_summary m WHERE m.run_id = r.id), '{{}}')"


def _head() -> str:
    """The run's columns as a JSON object text without its closing brace (json_object writes it in one go;
    the last column is a number or null, so the text ends in exactly one brace)."""
    assert RUN_COLUMNS[-1] in _REAL_COLUMNS | _INT_COLUMNS
    pairs = ", ".join(f"'{n}', {_column(n)}" for n in RUN_COLUMNS)
    return f"rtrim(json_object({pairs}), '}}') || {_odd_columns()}"


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


def map_batches(conn: sqlite3.Connection, fn, batches, workers: int | None = None, processes: bool = False):
    """`fn(connection, batch)` for each of `batches`, results yielded in order, computed by up to `workers`
    threads (or with `processes`, forked processes) each reading through its own connection to `conn`'s
    store, while the caller writes the previous results out. At most `workers` + 1 results are held at a
    time. With one worker, or a store not in a file, `conn` does it all.

    Threads suit work that is mostly Python or polars (SQLite runs a statement without the GIL). SQLite's
    own work does not spread over threads: as Python's sqlite3 builds it, every allocation takes one lock
    of the process, so statements that build text (runs_json) run slower in two threads than in one.
    `processes` forks the workers at the first batch, so call it before starting threads of your own: `fn`
    may be a closure, its results must pickle; where fork is not offered, `conn` does it all. A single
    batch is done here, without workers."""
    import itertools
    import os
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    batches = iter(batches)
    ahead = [batch for batch in (next(batches, None), next(batches, None)) if batch is not None]
    workers = workers or min(4, max(1, (os.cpu_count() or 1)))
    if processes and not hasattr(os, "fork"):
        workers = 1
    path = next((row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main"), "")
    if workers < 2 or not path or len(ahead) < 2:  # one batch (a short output) is not worth a worker
        for batch in (*ahead, *batches):
            yield fn(conn, batch)
        return
    batches = itertools.chain(ahead, batches)
    import multiprocessing
    import threading

    local = threading.local()
    opened: list[sqlite3.Connection] = []
    lock = threading.Lock()

    def run(batch):
        own = getattr(local, "conn", None)
        if own is None:
            own = local.conn = _reader(path)
            with lock:
                opened.append(own)
        return fn(own, batch)

    pending: deque = deque()
    if processes:
        import sys
        from concurrent.futures import ProcessPoolExecutor

        for stream in (sys.stdout, sys.stderr):  # a forked worker would write out what is left in them
            stream.flush()
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_start_process, initargs=(path, fn))
        call, submit = _in_process, pool.submit
    else:
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mltui-read")
        call, submit = run, pool.submit
    try:
        for batch in batches:
            pending.append(submit(call, batch))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for own in opened:
            own.close()


def _reader(path: str) -> sqlite3.Connection:
    from pathlib import Path

    from mltui.store.connection import connect

    own = connect(Path(path), readonly=True)
    # read through a small page cache, not mmap: a mapping per reader would count the file's pages in
    # the memory of each
    own.execute("PRAGMA mmap_size = 0")
    own.execute("PRAGMA cache_size = -16384")
    return own


_PROCESS_JOB = None  # in a worker process of map_batches: (its connection, fn)


def _start_process(path: str, fn) -> None:
    global _PROCESS_JOB
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ctrl+c is the parent's to handle: it stops the pool
    _PROCESS_JOB = (_reader(path), fn)


def _in_process(batch):
    own, fn = _PROCESS_JOB
    return fn(own, batch)
