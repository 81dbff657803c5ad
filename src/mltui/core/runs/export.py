"""Writing runs or metric points to CSV, Parquet or JSON through polars."""

from __future__ import annotations

import math
import sqlite3
import sys
from pathlib import Path

import polars as pl

from mltui.base.errors import MltuiError, UsageError
from mltui.base.values import decode
from mltui.core.runs.groups import metric_keys
from mltui.core.runs.listing import duration

FORMATS = ("csv", "parquet", "json")


def runs_frame(runs: list[dict]) -> pl.DataFrame:
    rows = []
    for run in runs:
        row = {k: run.get(k) for k in ("id", "name", "kind", "status", "created", "started", "ended", "exit_code",
                                       "host", "user", "git_commit")}
        row["duration"] = duration(run)
        row.update({f"params.{k}": _scalar(v) for k, v in run["params"].items()})
        row.update({f"metrics.{k}": s["last"] for k, s in run["metrics"].items()})
        row.update({f"tags.{k}": _scalar(v) for k, v in run["tags"].items()})
        rows.append(row)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    data = {c: [row.get(c) for row in rows] for c in columns}
    return pl.DataFrame([_column(name, values) for name, values in data.items()])


def _column(name: str, values: list) -> pl.Series:
    """One typed column: ints and floats together become floats; any other mix becomes text."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present) \
            and any(isinstance(v, float) for v in present):
        return pl.Series(name, [None if v is None else float(v) for v in values], dtype=pl.Float64)
    try:
        return pl.Series(name, values, strict=True)
    except (TypeError, pl.exceptions.PolarsError):
        return pl.Series(name, [None if v is None else str(v) for v in values], dtype=pl.Utf8)


def _scalar(value):
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


def metrics_frame(conn: sqlite3.Connection, runs: list[dict]) -> pl.DataFrame:
    from mltui.core.runs.compare import read_arrays

    frames = []
    for run in runs:
        for key in run["metrics"]:
            steps, values, times = read_arrays(conn, run["id"], key)
            frames.append(pl.DataFrame({"run_id": [run["id"]] * len(steps), "key": [key] * len(steps),
                                        "step": steps, "value": values, "time": times}))
    if not frames:
        return pl.DataFrame(schema={"run_id": pl.Utf8, "key": pl.Utf8, "step": pl.Int64, "value": pl.Float64,
                                    "time": pl.Float64})
    return pl.concat(frames)


def export(conn: sqlite3.Connection, what: str, output: str, fmt: str | None = None, where: str | None = None) -> int:
    """Write runs or metric points, a batch of runs at a time (memory stays flat at any size); returns the
    row count. Nothing is written when the query is bad."""
    if fmt is None:
        suffix = Path(output).suffix.lower().lstrip(".")
        fmt = suffix if suffix in FORMATS else "csv"
    if fmt not in FORMATS:
        raise UsageError(f"The format must be one of {', '.join(FORMATS)}.")
    if output == "-" and fmt == "parquet":
        raise UsageError("Parquet is binary: write it to a file with -o FILE.")
    from mltui.core.runs.listing import select_ids

    ids = select_ids(conn, where)
    if what == "runs":
        types: dict[str, set[str]] = {}
        schema = runs_schema(conn, where, types, matching=len(ids)) if ids else {}
        frames = runs_frames(conn, ids, schema, types)
    else:
        schema = METRICS_SCHEMA
        frames = metrics_batches(conn, ids)
    import gc

    collecting = gc.isenabled()
    gc.disable()  # a row is a tuple: 100,000 of them would start the cycle collector hundreds of times
    try:
        return write_frames(frames, schema, fmt, output)
    except OSError as exc:
        raise MltuiError(f"Cannot write {output}: {exc.strerror or exc}.") from None
    finally:
        if collecting:
            gc.enable()


FIXED = {"id": pl.Utf8, "name": pl.Utf8, "kind": pl.Utf8, "status": pl.Utf8, "created": pl.Float64,
         "started": pl.Float64, "ended": pl.Float64, "exit_code": pl.Int64, "host": pl.Utf8, "user": pl.Utf8,
         "git_commit": pl.Utf8, "duration": pl.Float64}
METRICS_SCHEMA = {"run_id": pl.Utf8, "key": pl.Utf8, "step": pl.Int64, "value": pl.Float64, "time": pl.Float64}


def _dtype(types: set[str]):
    kinds = types - {"null"}
    if not kinds:
        return pl.Null
    if kinds <= {"int", "float"}:
        return pl.Float64 if "float" in kinds else pl.Int64
    if kinds == {"bool"}:
        return pl.Boolean
    if kinds == {"bool", "int"}:  # as runs_frame types it: booleans as 0 and 1
        return pl.Int64
    return pl.Utf8  # text, JSON, integers too big for 64 bits, or a mix: written as text


def runs_schema(conn: sqlite3.Connection, where: str | None, types_out: dict | None = None,
                matching: int | None = None) -> dict:
    """The columns of a runs export, known before the first run is written: the fixed ones, then
    params.*, metrics.* and tags.* as the matching runs have them (names sorted within each). `types_out`,
    when given, receives each params/tags column's value types (as far as they decide the column);
    `matching` is how many runs match, when the caller knows."""
    from mltui.store.where import compile_filter

    where_sql, where_params = compile_filter(where)
    scope, args = "", []
    if where_sql:
        if matching is None:
            matching = conn.execute(f"SELECT count(*) FROM runs WHERE {where_sql}", where_params).fetchone()[0]
        if matching < conn.execute("SELECT count(*) FROM runs").fetchone()[0]:  # some runs are left out
            scope = f" AND EXISTS (SELECT 1 FROM runs WHERE runs.id = p.run_id AND ({where_sql}))"
            args = list(where_params)
    schema = dict(FIXED)
    for table in ("params", "metrics", "tags"):
        if table == "metrics":
            for key in metric_keys(conn):
                if not scope or conn.execute(f"SELECT 1 FROM metric_summary p WHERE p.key = ?{scope} LIMIT 1",
                                             (key, *args)).fetchone():
                    schema[f"metrics.{key}"] = pl.Float64
            continue
        for key, types in value_types(conn, table, scope, args).items():
            schema[f"{table}.{key}"] = _dtype(types)
            if types_out is not None:
                types_out[f"{table}.{key}"] = types
    return schema


# the rows of a key holding one storage class: a range of the (key, value) index (NULL < numbers < text < BLOB)
_CLASS = {"null": "p.value IS NULL", "integer": "p.value < '' AND typeof(p.value) = 'integer'",
          "real": "p.value < '' AND typeof(p.value) = 'real'", "text": "p.value >= '' AND p.value < x''",
          "blob": "p.value >= x''"}


def value_types(conn: sqlite3.Connection, table: str, scope: str = "", args: list | tuple = ()) -> dict[str, set[str]]:
    """key -> the value types (mltui.base.values.encode's names) of `table`'s (params or tags) rows, as far
    as they decide an export column (_dtype, and whether its text needs Python: _PLAIN_TEXT); `scope` (SQL
    on the row `p`, with `args`) limits the rows. The type is not in the (key, value) index, so this reads
    the index's storage classes (one scan of it) and settles what a class leaves open by seeks: NULL is a
    None or a NaN; an integer is an int, or a bool (0 or 1 only); text is a str, a big int or JSON (which
    starts with [ or {). Reading each row's type instead took seconds at 2,000,000 params."""
    def any_row(key: str, cond: str) -> bool:
        sql = f"SELECT 1 FROM {table} p WHERE p.key = ? AND {cond}{scope} LIMIT 1"
        return conn.execute(sql, (key, *args)).fetchone() is not None

    def types_of(key: str, cond: str) -> set[str]:
        sql = f"SELECT DISTINCT p.type FROM {table} p WHERE p.key = ? AND {cond}{scope}"
        return {kind for (kind,) in conn.execute(sql, (key, *args))}

    out: dict[str, set[str]] = {}
    for key, classes in conn.execute(f"SELECT key, group_concat(DISTINCT typeof(value)) FROM {table} GROUP BY key "
                                     "ORDER BY key").fetchall():
        found = {c for c in classes.split(",") if not scope or any_row(key, _CLASS[c])}
        if not found:
            continue
        if "blob" in found:  # not a value encode writes: read every row's type
            out[key] = types_of(key, "1")
            continue
        types = {"float"} if "real" in found else set()
        if "null" in found:
            types |= types_of(key, _CLASS["null"])
        if "text" in found:  # a str or a big int: the same column either way
            types |= {"str"} | types_of(key, "p.value >= '[' AND p.value < '\\'")
            types |= types_of(key, "p.value >= '{' AND p.value < '|'")
        if "integer" in found:
            if any_row(key, "p.value < 0 AND typeof(p.value) = 'integer'") or \
                    any_row(key, "p.value > 1 AND p.value < '' AND typeof(p.value) = 'integer'"):
                types.add("int")  # a bool is 0 or 1, so this is an int; bools matter beside floats only
                if "float" in types and any_row(key, "p.value IN (0, 1) AND p.type = 'bool'"):
                    types.add("bool")
            else:
                types |= types_of(key, "p.value IN (0, 1) AND typeof(p.value) = 'integer'")
        out[key] = types
    return out


def runs_frames(conn: sqlite3.Connection, ids: list[str], schema: dict, types: dict[str, set[str]],
                per: int = 2000):
    """The runs `ids` as frames of the export's columns (typed by `schema`), `per` runs a frame, in order.

    One statement per batch pivots params, metrics and tags into columns (a keyed lookup each), so SQLite
    hands over typed values and polars builds the columns; batches are read in parallel (map_batches). A
    column whose values Python must turn to text (a float or JSON param in a column of mixed types) is
    read as (value, type) and decoded here."""
    import time

    from mltui.store.run_json import map_batches

    sql, args, plan = _pivot(schema, types)
    now = time.time()

    def frame(own: sqlite3.Connection, part: list[str]) -> pl.DataFrame:
        import json

        rows = own.execute(sql, [now, json.dumps(part), *args]).fetchall()
        columns = list(zip(*rows)) if rows else [()] * len(plan)
        if list(columns[0]) != part[:len(rows)]:  # rows come in the order of the ids; were one deleted meanwhile
            order = {rid: i for i, rid in enumerate(part)}
            rows.sort(key=lambda row: order[row[0]])
            columns = list(zip(*rows))
        series, at = [], 0
        for name, dtype, how in plan:
            if how == "pair":
                values = [None if v is None and t is None else decode(v, t)
                          for v, t in zip(columns[at], columns[at + 1])]
                series.append(_typed(name, values, dtype))
                at += 2
                continue
            values = columns[at]
            at += 1
            try:  # what SQLite hands over is of the column's type (ints in a float column too) ...
                series.append(pl.Series(name, values, dtype=pl.Int64 if dtype == pl.Boolean else dtype))
            except (TypeError, pl.exceptions.PolarsError):  # ... but for NaN, which the SQL marks "nan"
                values = [math.nan if v == "nan" else v for v in values] if dtype == pl.Float64 else list(values)
                series.append(_typed(name, values, pl.Int64 if dtype == pl.Boolean else dtype))
            if dtype == pl.Boolean:
                series[-1] = series[-1].cast(pl.Boolean)
        return pl.DataFrame(series)

    yield from map_batches(conn, frame, (ids[start:start + per] for start in range(0, len(ids), per)))


_PLAIN_TEXT = {"str", "int", "bigint", "bool", "null"}  # types SQL turns to the text str() would give


_JOINS = 60  # lookups written as LEFT JOINs (SQLite joins at most 64 tables); any more as subqueries


def _pivot(schema: dict, text_types: dict[str, set[str]]) -> tuple[str, list, list]:
    """(SQL, its parameters after the time now and the ids, [(column, dtype, "one" | "pair")]) for
    runs_frames: the fixed columns, then one keyed lookup per params/metrics/tags column (keys bound, never
    written into SQL). A lookup is a LEFT JOIN on the (run_id, key) primary key: a third cheaper than a
    subquery each, and one join gives a value and its type."""
    types = dict(schema)
    selects = ["r.id", "r.name", "r.kind", "r.status", "r.created", "r.started", "r.ended", "r.exit_code", "r.host",
               "r.user", "r.git_commit",
               "CASE WHEN r.started IS NULL THEN NULL ELSE max(0.0, coalesce(nullif(r.ended, 0), ?1) - r.started) END"]
    plan = [(c, types[c], "one") for c in FIXED]
    args: list = []
    joins: list[str] = []
    for column, dtype in schema.items():
        if column in FIXED:
            continue
        table, key = column.split(".", 1)
        if dtype == pl.Null:
            selects.append("NULL")
            plan.append((column, dtype, "one"))
            continue
        args.append(key)
        x, joined = f"x{len(args)}", len(joins) < _JOINS
        source = f"{'metric_summary' if table == 'metrics' else table} {x} "
        on = f"{x}.run_id = r.id AND {x}.key = ?{len(args) + 2}"  # ?1: the time now, ?2: the ids
        if joined:
            joins.append(f"LEFT JOIN {source}ON {on}")

        def lookup(expr: str) -> str:
            return expr if joined else f"(SELECT {expr} FROM {source}WHERE {on})"

        if table == "metrics":  # NaN is kept as NULL: the SQL marks it "nan"
            selects.append(f"CASE WHEN {x}.key IS NULL THEN NULL ELSE coalesce({x}.last, 'nan') END" if joined
                           else lookup(f"coalesce({x}.last, 'nan')"))
        elif dtype == pl.Utf8 and not text_types.get(column, {"json"}) <= _PLAIN_TEXT:
            selects += [lookup(f"{x}.value"), lookup(f"{x}.type")]
            plan.append((column, dtype, "pair"))
            continue
        elif dtype == pl.Utf8:
            selects.append(lookup(f"CASE {x}.type WHEN 'bool' THEN CASE WHEN {x}.value THEN 'True' ELSE 'False' END "
                                  f"ELSE CAST({x}.value AS TEXT) END"))
        elif dtype == pl.Float64:
            selects.append(lookup(f"CASE WHEN {x}.value IS NULL AND {x}.type = 'float' THEN 'nan' ELSE {x}.value END"))
        else:  # Int64, Boolean
            selects.append(lookup(f"{x}.value"))
        plan.append((column, dtype, "one"))
    sql = f"SELECT {', '.join(selects)} FROM json_each(?2) j JOIN runs r ON r.id = j.value {' '.join(joins)}"
    return sql, args, plan


def _typed(name: str, values: list, dtype) -> pl.Series:
    if dtype == pl.Float64:
        values = [None if v is None else float(v) for v in values]
    elif dtype == pl.Utf8:
        values = [None if v is None else (v if isinstance(v, str) else str(v)) for v in values]
    elif dtype == pl.Null:
        return pl.Series(name, values, dtype=pl.Null)
    return pl.Series(name, values, dtype=dtype)


def metrics_batches(conn: sqlite3.Connection, ids: list[str], per: int = 500):
    """Every point of the runs `ids` (runs in that order, keys sorted, points by step, the latest write of a
    step kept), a frame per batch of runs read straight from the packed chunks."""
    import json

    import numpy as np

    for start in range(0, len(ids), per):
        part = ids[start:start + per]
        chunks: dict[tuple[str, str], list] = {}
        for rid, key, steps, vals, times in conn.execute(
                "SELECT run_id, key, steps, vals, times FROM metrics WHERE run_id IN (SELECT value FROM json_each(?)) "
                "ORDER BY run_id, key, rowid", (json.dumps(part),)):
            chunks.setdefault((rid, key), []).append((steps, vals, times))
        by_run: dict[str, list[str]] = {}
        for rid, key in chunks:
            by_run.setdefault(rid, []).append(key)
        cols: dict[str, list] = {c: [] for c in METRICS_SCHEMA}
        for rid in part:
            for key in sorted(by_run.get(rid, ())):
                rows = chunks[(rid, key)]
                steps = np.concatenate([np.frombuffer(r[0], dtype="<i8") for r in rows])
                values = np.concatenate([np.frombuffer(r[1], dtype="<f8") for r in rows])
                times = np.concatenate([np.frombuffer(r[2], dtype="<f8") for r in rows])
                if steps.size > 1 and not bool(np.all(steps[1:] > steps[:-1])):
                    _, first_in_reversed = np.unique(steps[::-1], return_index=True)
                    keep = steps.size - 1 - first_in_reversed
                    steps, values, times = steps[keep], values[keep], times[keep]
                cols["run_id"].append(pl.repeat(rid, steps.size, dtype=pl.Utf8, eager=True))
                cols["key"].append(pl.repeat(key, steps.size, dtype=pl.Utf8, eager=True))
                cols["step"].append(pl.Series(steps.astype("i8")))
                cols["value"].append(pl.Series(values))
                cols["time"].append(pl.Series(times))
        if cols["run_id"]:
            yield pl.DataFrame({c: pl.concat(parts).rename(c) for c, parts in cols.items()}, schema=METRICS_SCHEMA)


ROW_GROUP = 20_000  # rows a Parquet row group holds: what the sink buffers before writing


def write_frames(frames, schema: dict, fmt: str, output: str) -> int:
    """Write the frames one after another as one CSV, JSON array or Parquet file; returns the row count."""
    count = 0
    if fmt == "parquet":
        from polars.io.plugins import register_io_source

        def source(with_columns, predicate, n_rows, batch_size):
            nonlocal count
            for frame in frames:
                count += frame.height
                yield frame

        if not schema:
            pl.DataFrame().write_parquet(output)
            return 0
        register_io_source(io_source=source, schema=schema).sink_parquet(output, row_group_size=ROW_GROUP)
        return count
    import json

    from mltui.base.values import jsonable

    out = sys.stdout if output == "-" else open(output, "w", encoding="utf-8", newline="")
    try:
        for frame in frames:
            if fmt == "csv":
                out.write(frame.write_csv(include_header=count == 0))
            else:  # like every --json of mltui: NaN and infinities as "nan", "inf", "-inf"
                rows = json.dumps(jsonable(frame.to_dicts()), ensure_ascii=False)[1:-1]
                out.write(("[" if count == 0 else ", ") + rows)
            count += frame.height
        if fmt == "json":
            out.write("[]" if count == 0 else "]")
        if fmt == "json" or (count == 0 and output == "-"):
            out.write("\n" if output == "-" else "")
        elif count == 0 and fmt == "csv" and schema:
            out.write(pl.DataFrame(schema=schema).write_csv())
    finally:
        if out is not sys.stdout:
            out.close()
        else:
            out.flush()
    return count
