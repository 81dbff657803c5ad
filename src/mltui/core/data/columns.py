"""Reading the columns of tabular files (CSV, TSV, Parquet, JSON lines) through polars, for profiles
(profile.py) and drift (drift.py), and the per-column statistics both take.

Two paths, chosen by the row count (which Parquet keeps in its footer; `fits_in_memory`):

- In memory, up to EXACT_KS_ROWS rows a side. Each column of each file is read once (`Columns`):
  Parquet one column at a time (so only the columns being worked on are held), CSV and JSON lines in
  one parse of the file. A numeric column's finite values are sorted once (by polars: quicker than
  numpy's sort here) and everything comes from the sorted array (`quantiles_sorted`; drift's bins
  and exact KS statistic). Columns are independent and are spread over a small thread pool (`pool`):
  polars' reads and sorts and numpy's searchsorted let go of the GIL.
- Streaming, above that: one-row aggregate queries (`aggregate`): one for all the columns where the
  values polars' quantiles hold fit MEMORY_BUDGET, else one per group of columns that does (`groups`).

Results say which path was taken ("read": IN_MEMORY or STREAMING).

polars is imported inside the functions: the tracking API and the CLI's other commands never pay for it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from typing import Any

TOP = 10  # categories named: a profile's most common, drift's largest changes of share
EXACT_KS_ROWS = 2_000_000  # up to this many rows a side: values read into memory, exact KS
THREADS = min(4, os.cpu_count() or 1)  # columns worked on at once
MEMORY_BUDGET = 256 << 20  # bytes of values held at once: by a parse of CSV or JSON lines, by quantile queries
SMALL_TABLE = 32 << 20  # a Parquet file whose values take no more is read whole, else a column at a time
FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "ndjson",
           ".ndjson": "ndjson"}
IN_MEMORY, STREAMING = "in memory", "streaming"
Step = Callable[[int, int], None]  # (columns done, columns to do)


def format_of(path: str) -> str | None:
    lower = path.lower()
    for ext, fmt in FORMATS.items():
        if lower.endswith(ext):
            return fmt
    return None


def scan(path: str, fmt: str):
    import polars as pl

    if fmt == "csv":
        return pl.scan_csv(path, infer_schema_length=10_000)
    if fmt == "tsv":
        return pl.scan_csv(path, separator="\t", infer_schema_length=10_000)
    if fmt == "parquet":
        return pl.scan_parquet(path)
    if fmt == "ndjson":
        return pl.scan_ndjson(path, infer_schema_length=10_000)
    raise ValueError(f"not a tabular format: {fmt}")


def collect(lf):
    return lf.collect(engine="streaming")


def aggregate(lf, aggs: list) -> dict:
    """The one row of an aggregate query over the whole file, streamed, by the aggregates' names."""
    return collect(lf.select(aggs)).row(0, named=True)


def kind_of(dtype) -> str:
    if dtype.is_numeric():
        return "number"
    if dtype.is_temporal():
        return "time"
    return "category"


def number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def row_count(lf) -> int:
    """The row count: Parquet's footer, else a count of the lines (no parsing)."""
    import polars as pl

    return collect(lf.select(pl.len())).item()


def fits_in_memory(*rows: int) -> bool:
    """Whether tables of these row counts take the in-memory path (else the streaming one)."""
    return all(n <= EXACT_KS_ROWS for n in rows)


class Columns:
    """The columns of one table, each read once. Parquet is read a column at a time (whole where it is
    small), and a category column's counts come from a streamed query (its strings are never held).
    CSV and JSON lines are parsed once for all the columns when their values fit MEMORY_BUDGET (shared
    by the `sides` tables read at once), else once per group of columns that does (a group's frame is
    let go when its last column has been taken)."""

    def __init__(self, lf, fmt: str, names: list[str], rows: int, sides: int = 1):
        import threading

        import polars as pl

        # a small Parquet file is read whole, at once: quicker than a read a column
        self.lf, self.by_column = lf, fmt == "parquet" and 8 * rows * len(names) > SMALL_TABLE
        if self.by_column:
            return
        per_group = max(1, MEMORY_BUDGET // sides // max(1, 8 * rows))
        self.groups = [names[i:i + per_group] for i in range(0, len(names), per_group)]
        self.group_of = {name: g for g, group in enumerate(self.groups) for name in group}
        self.held: dict[int, list] = {}  # group -> [frame, columns not yet taken]
        self.lock = threading.Lock()
        if len(self.groups) == 1:  # the whole file in one parse, now
            self.held[0] = [collect(lf.select([pl.col(n) for n in names])), len(names)]

    def series(self, name: str):
        import polars as pl

        if self.by_column:
            return self.lf.select(pl.col(name)).collect().to_series()
        g = self.group_of[name]
        with self.lock:
            if g not in self.held:
                self.held[g] = [collect(self.lf.select([pl.col(n) for n in self.groups[g]])), len(self.groups[g])]
            frame = self.held[g][0]
            self.held[g][1] -= 1
            if self.held[g][1] == 0:
                del self.held[g]
        return frame.get_column(name)

    def counts(self, name: str) -> list[tuple[str | None, int]]:
        """(value, count) of each value of a column as text, the null included."""
        import polars as pl

        if self.by_column:
            counts = pl.col(name).cast(pl.String).alias("v").value_counts(name="n")
            return collect(self.lf.select(counts).unnest("v")).rows()
        return value_counts(self.series(name))


def pool(tasks: Iterable[Callable[[], Any]], threads: int | None):
    """Run the tasks over a small thread pool; yields their results as they finish (in this thread)."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    tasks = list(tasks)
    workers = max(1, min(threads or THREADS, len(tasks)))
    if workers == 1:
        for task in tasks:
            yield task()
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mltui-data") as executor:
        for future in as_completed([executor.submit(task) for task in tasks]):
            yield future.result()


def groups(names: list[str], numbers: set[str], rows: int, in_flight: int = 1) -> list[list[str]]:
    """The columns in groups holding as many numbers as MEMORY_BUDGET allows, `in_flight` groups at
    once: polars' quantiles hold a column's values (and a sorted copy); the other aggregates stream."""
    per_group = max(1, MEMORY_BUDGET // max(1, 16 * rows * in_flight))
    out: list[list[str]] = [[]]
    held = 0
    for name in names:
        if name in numbers:
            if held == per_group:
                out.append([])
                held = 0
            held += 1
        out[-1].append(name)
    return [g for g in out if g]


def side_workers(rows: int, threads: int | None) -> int:
    """Aggregate queries run at once over two tables of up to `rows` rows (a side each): two while a
    column's values fit MEMORY_BUDGET, one at a time above."""
    return 1 if 16 * rows > MEMORY_BUDGET else max(1, min(threads or THREADS, 2))


# -- values: the in-memory path ------------------------------------------------------------------
def finite(series):
    """The finite values of a numeric column as a Float64 series (nulls, NaN and +-inf left out)."""
    import polars as pl

    x = series.cast(pl.Float64)
    return x.filter(x.is_finite())


def sorted_values(x):
    """A series' values sorted (by polars: quicker than numpy's sort here, and it too lets go of the GIL)."""
    return x.sort()


def quantiles_sorted(xs, qs: Iterable[float]) -> list[float | None]:
    """Quantiles of sorted values (a numpy array or a polars series), by polars' "linear" rule, to the
    last bit: h = (n - 1) q, then lower + (h - floor h) (upper - lower)."""
    n = len(xs)
    out: list[float | None] = []
    for q in qs:
        if n == 0:
            out.append(None)
            continue
        h = (n - 1) * q
        lo = math.floor(h)
        a, b = float(xs[lo]), float(xs[min(lo + 1, n - 1)])
        out.append(a if a == b else (h - lo) * (b - a) + a)
    return out


def value_counts(series) -> list[tuple[str | None, int]]:
    import polars as pl

    counts = series.cast(pl.String).alias("v").value_counts(name="n")
    return list(counts.rows())


def null_count(counts: list[tuple[str | None, int]]) -> int:
    return sum(n for v, n in counts if v is None)


# -- expressions: the streaming path -------------------------------------------------------------
def finite_expr(c):
    import polars as pl

    x = c.cast(pl.Float64)
    return x.filter(x.is_finite())


def counts_expr(c):
    """Each value's count, as one list (so it sits in a one-row aggregate query)."""
    import polars as pl

    return c.cast(pl.String).alias("v").value_counts(name="n").implode()


def struct_counts(rows: list[dict] | None) -> list[tuple[str | None, int]]:
    return [(r["v"], r["n"]) for r in rows or []]
