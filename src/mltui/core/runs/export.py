"""Writing runs or metric points to CSV, Parquet or JSON through polars."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import polars as pl

from mltui.base.errors import MltuiError, UsageError
from mltui.core.runs.listing import duration, list_runs

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
    """Write the frame; returns its row count. Nothing is written when the query is bad."""
    if fmt is None:
        suffix = Path(output).suffix.lower().lstrip(".")
        fmt = suffix if suffix in FORMATS else "csv"
    if fmt not in FORMATS:
        raise UsageError(f"The format must be one of {', '.join(FORMATS)}.")
    if output == "-" and fmt == "parquet":
        raise UsageError("Parquet is binary: write it to a file with -o FILE.")
    runs = list_runs(conn, where=where, limit=0).runs
    frame = runs_frame(runs) if what == "runs" else metrics_frame(conn, runs)
    target = sys.stdout if output == "-" else output
    try:
        if fmt == "csv":
            text = frame.write_csv()
            _write_text(target, text)
        elif fmt == "json":  # like every --json of mltui: NaN and infinities as "nan", "inf", "-inf"
            import json

            from mltui.base.values import jsonable

            _write_text(target, json.dumps(jsonable(frame.to_dicts()), ensure_ascii=False))
        else:
            frame.write_parquet(output)
    except OSError as exc:
        raise MltuiError(f"Cannot write {output}: {exc.strerror or exc}.") from None
    return frame.height


def _write_text(target, text: str) -> None:
    if target is sys.stdout:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        Path(target).write_text(text, encoding="utf-8")
