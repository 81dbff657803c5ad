"""Writing runs or metric points to CSV, Parquet or JSON through polars."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import polars as pl

from mltui.core.errors import MltuiError, UsageError
from mltui.core.runs import duration, list_runs

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
    series = []
    for name, values in data.items():
        try:
            series.append(pl.Series(name, values, strict=True))
        except (TypeError, pl.exceptions.PolarsError):  # mixed types in one param: keep them as text
            series.append(pl.Series(name, [None if v is None else str(v) for v in values], dtype=pl.Utf8))
    return pl.DataFrame(series)


def _scalar(value):
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


def metrics_frame(conn: sqlite3.Connection, runs: list[dict]) -> pl.DataFrame:
    from mltui.core.compare import read_arrays

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
        elif fmt == "json":
            _write_text(target, frame.write_json())
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
