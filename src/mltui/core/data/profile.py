"""Profiles and drift of tabular files (CSV, Parquet, JSON lines) through polars and numpy.

Two paths, chosen by the row count (which Parquet keeps in its footer):

- In memory, up to EXACT_KS_ROWS rows a side. Each column of each file is read once: Parquet one
  column at a time (so only the columns being worked on are held), CSV and JSON lines in one parse
  of the file. A numeric column's finite values are sorted once (by polars: quicker than numpy's
  sort here) and everything comes from the sorted array: min, max, quantiles and deciles, the
  counts in the reference's bins and the exact Kolmogorov–Smirnov statistic (numpy's searchsorted).
  Columns are independent and are spread over a small thread pool: polars' reads and sorts and
  numpy's searchsorted let go of the GIL.
- Streaming, above that: aggregate queries a side (counts, nulls, quantiles, category counts; one
  query where the values polars' quantiles hold fit MEMORY_BUDGET, else one per group of columns
  that does), then one streamed query a side for the counts in the reference's bins and at the KS
  grid. The KS statistic is then taken on the cumulative counts at KS_GRID - 1 quantiles of both
  sides (a close lower bound of the exact one).

Both paths give the same PSI; results say which path was taken ("read": "in memory" or
"streaming"; drift also "ks_method").

polars and numpy are imported inside the functions: the tracking API and the CLI's other commands
never pay for them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from typing import Any

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
PSI_BINS = 10  # deciles of the reference side
TOP = 10  # categories kept in a profile
CATEGORY_LIMIT = 50  # categories compared in drift; the rest are pooled as "(other)"
EPS = 1e-4  # share given to an empty bin, so PSI stays finite
EXACT_KS_ROWS = 2_000_000  # up to this many rows a side: values read into memory, exact KS
KS_GRID = 512
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


def _collect(lf):
    return lf.collect(engine="streaming")


def _kind(dtype) -> str:
    if dtype.is_numeric():
        return "number"
    if dtype.is_temporal():
        return "time"
    return "category"


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _rows(lf) -> int:
    """The row count: Parquet's footer, else a count of the lines (no parsing)."""
    import polars as pl

    return _collect(lf.select(pl.len())).item()


class _Columns:
    """The columns of one table, each read once. Parquet is read a column at a time (whole where it is
    small), and a category column's counts come from a streamed query (its strings are never held).
    CSV and JSON lines are parsed once for all the columns when their values fit `budget`, else once
    per group of columns that does (a group's frame is let go when its last column has been taken)."""

    def __init__(self, lf, fmt: str, names: list[str], rows: int, budget: int | None = None):
        import threading

        import polars as pl

        # a small Parquet file is read whole, at once: quicker than a read a column
        self.lf, self.by_column = lf, fmt == "parquet" and 8 * rows * len(names) > SMALL_TABLE
        if self.by_column:
            return
        per_group = max(1, (MEMORY_BUDGET if budget is None else budget) // max(1, 8 * rows))
        self.groups = [names[i:i + per_group] for i in range(0, len(names), per_group)]
        self.group_of = {name: g for g, group in enumerate(self.groups) for name in group}
        self.held: dict[int, list] = {}  # group -> [frame, columns not yet taken]
        self.lock = threading.Lock()
        if len(self.groups) == 1:  # the whole file in one parse, now
            self.held[0] = [_collect(lf.select([pl.col(n) for n in names])), len(names)]

    def series(self, name: str):
        import polars as pl

        if self.by_column:
            return self.lf.select(pl.col(name)).collect().to_series()
        g = self.group_of[name]
        with self.lock:
            if g not in self.held:
                self.held[g] = [_collect(self.lf.select([pl.col(n) for n in self.groups[g]])), len(self.groups[g])]
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
            return _collect(self.lf.select(counts).unnest("v")).rows()
        return _value_counts(self.series(name))


def _pool(tasks: Iterable[Callable[[], Any]], threads: int | None):
    """Run the tasks over a small thread pool; yields their results as they finish (in this thread)."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    tasks = list(tasks)
    workers = max(1, min(threads or THREADS, len(tasks)))
    if workers == 1:
        for task in tasks:
            yield task()
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mltui-data") as pool:
        for future in as_completed([pool.submit(task) for task in tasks]):
            yield future.result()


def _groups(names: list[str], numbers: set[str], rows: int, in_flight: int = 1) -> list[list[str]]:
    """The columns in groups holding as many numbers as MEMORY_BUDGET allows, `in_flight` groups at
    once: polars' quantiles hold a column's values (and a sorted copy); the other aggregates stream."""
    per_group = max(1, MEMORY_BUDGET // max(1, 16 * rows * in_flight))
    groups: list[list[str]] = [[]]
    held = 0
    for name in names:
        if name in numbers:
            if held == per_group:
                groups.append([])
                held = 0
            held += 1
        groups[-1].append(name)
    return [g for g in groups if g]


# -- arrays: the in-memory path ------------------------------------------------------------------
def _finite(series):
    """The finite values of a numeric column as a Float64 series (nulls, NaN and +-inf left out)."""
    import polars as pl

    x = series.cast(pl.Float64)
    return x.filter(x.is_finite())


def _sorted(x):
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


def ks_sorted(xa, xb) -> float:
    """Two-sample KS statistic of two sorted, finite, non-empty arrays, exactly.

    F_A - F_B rises only at A's values and F_B - F_A only at B's, so the largest gap is at one of
    them: at A's i-th value (0-based) F_A is at least (i + 1) / n, exactly so at the last of a run
    of ties (earlier copies give a smaller gap), and F_B is the count of B's values <= it over m."""
    return max(_rising_gap(xa, xb), _rising_gap(xb, xa))


def _rising_gap(x, y, chunk: int = 1 << 18) -> float:
    """max over i of (i + 1) / len(x) - #(y <= x[i]) / len(y), in chunks so that the temporary arrays
    stay small (a few MB a thread, whatever the size)."""
    import numpy as np

    n, m = len(x), len(y)
    best = -math.inf
    for start in range(0, n, chunk):
        part = x[start:start + chunk]
        gap = np.arange(start + 1, start + 1 + len(part), dtype=np.float64)
        gap /= n
        gap -= np.searchsorted(y, part, side="right") / m
        best = max(best, float(gap.max()))
    return best


def ks_exact(a, b) -> float:
    """Two-sample Kolmogorov–Smirnov statistic: the largest gap between the two empirical CDFs of
    the finite values of a and b (NaN if either has none)."""
    import numpy as np

    xa, xb = (np.asarray(v, dtype=np.float64) for v in (a, b))
    xa, xb = np.sort(xa[np.isfinite(xa)]), np.sort(xb[np.isfinite(xb)])
    if len(xa) == 0 or len(xb) == 0:
        return float("nan")
    return ks_sorted(xa, xb)


def _numeric_arrays(xa, xb) -> dict:
    """PSI over A's deciles and the exact KS, from the sorted finite values of both sides."""
    import numpy as np

    edges = sorted({v for v in quantiles_sorted(xa, [i / PSI_BINS for i in range(1, PSI_BINS)]) if v is not None})
    na, nb = len(xa), len(xb)
    if na == 0 or nb == 0:
        return {"psi": None, "ks": None, "bins": edges}
    le_a = [int(c) for c in np.searchsorted(xa, edges, side="right")]
    le_b = [int(c) for c in np.searchsorted(xb, edges, side="right")]
    shares_a = [c / na for c in _bins(le_a, na)]
    shares_b = [c / nb for c in _bins(le_b, nb)]
    return {"psi": psi(shares_a, shares_b), "ks": ks_sorted(xa, xb), "bins": edges,
            "shares_a": shares_a, "shares_b": shares_b}


def _value_counts(series) -> list[tuple[str | None, int]]:
    import polars as pl

    counts = series.cast(pl.String).alias("v").value_counts(name="n")
    return list(counts.rows())


# -- profile -------------------------------------------------------------------------------------
def profile(path: str, fmt: str, step: Step | None = None, threads: int | None = None) -> dict:
    """Rows, schema and per-column stats: nulls; min/max/mean/std and quantiles for numbers; top
    categories (value, count) for the rest."""
    from mltui.base.errors import MltuiError

    try:
        lf = scan(path, fmt)
        schema = lf.collect_schema()
        rows = _rows(lf)
    except Exception as exc:
        raise MltuiError(f"Cannot read it as {fmt}: {str(exc).splitlines()[0]}") from None
    names = list(schema.keys())
    try:
        if rows <= EXACT_KS_ROWS:
            path_taken = IN_MEMORY
            table = _Columns(lf, fmt, names, rows)
            tasks = [lambda i=i, name=name: (i, _profile_column(name, schema[name], table))
                     for i, name in enumerate(names)]
            columns: list[dict] = [{}] * len(names)
            for done, (i, col) in enumerate(_pool(tasks, threads), 1):
                columns[i] = col
                if step:
                    step(done, len(names))
        else:
            path_taken = STREAMING
            columns = _profile_streaming(lf, schema, rows)
            if step:
                step(len(names), len(names))
    except MltuiError:
        raise
    except Exception as exc:
        raise MltuiError(f"Cannot profile it: {str(exc).splitlines()[0]}") from None
    return {"rows": rows, "columns": columns, "read": path_taken}


def _top(counts: list[tuple[str | None, int]], n: int) -> list[list]:
    """The n most common values, by count then value, the null last among equals."""
    ranked = sorted(counts, key=lambda vc: (-vc[1], vc[0] is None, vc[0] or ""))
    return [[v, c] for v, c in ranked[:n]]


def _profile_column(name: str, dtype, table: _Columns) -> dict:
    import polars as pl

    kind = _kind(dtype)
    col: dict[str, Any] = {"name": name, "dtype": str(dtype), "kind": kind}
    if kind == "category":
        counts = table.counts(name)
        col["nulls"] = _null_count(counts)
        col["top"] = _top(counts, TOP)
        return col
    series = table.series(name)
    col["nulls"] = series.null_count()
    if kind == "number":
        x = _finite(series)
        del series
        mean, std = x.mean(), x.std()
        xs = _sorted(x)
        col.update(min=_number(xs[0]) if len(xs) else None, max=_number(xs[-1]) if len(xs) else None,
                   mean=_number(mean), std=_number(std))
        col["quantiles"] = {str(q): _number(v) for q, v in zip(QUANTILES, quantiles_sorted(xs, QUANTILES))}
    else:
        v = pl.col("v")
        lo, hi = series.to_frame("v").select(v.min().cast(pl.String), v.max().cast(pl.String)).row(0)
        col.update(min=lo, max=hi)
    return col


def _null_count(counts: list[tuple[str | None, int]]) -> int:
    return sum(n for v, n in counts if v is None)


def _profile_streaming(lf, schema, rows: int) -> list[dict]:
    """Aggregate queries over the whole file, quantiles and category counts included: one for all the
    columns where their values fit MEMORY_BUDGET, else one per group of columns that does."""
    import polars as pl

    index = {name: i for i, name in enumerate(schema.keys())}
    numbers = {name for name, dtype in schema.items() if _kind(dtype) == "number"}
    got: dict[str, Any] = {}
    for group in _groups(list(schema.keys()), numbers, rows):
        aggs = []
        for name in group:
            i, dtype, c = index[name], schema[name], pl.col(name)
            aggs.append(c.null_count().alias(f"{i}:nulls"))
            if _kind(dtype) == "number":
                x = _finite_expr(c)
                aggs += [x.min().alias(f"{i}:min"), x.max().alias(f"{i}:max"), x.mean().alias(f"{i}:mean"),
                         x.std().alias(f"{i}:std"),
                         x.quantile(list(QUANTILES), interpolation="linear").alias(f"{i}:q")]
            elif _kind(dtype) == "time":
                aggs += [c.min().cast(pl.String).alias(f"{i}:min"), c.max().cast(pl.String).alias(f"{i}:max")]
            else:
                aggs.append(_counts_expr(c).alias(f"{i}:counts"))
        got.update(_collect(lf.select(aggs)).row(0, named=True))
    columns = []
    for i, (name, dtype) in enumerate(schema.items()):
        kind = _kind(dtype)
        col: dict[str, Any] = {"name": name, "dtype": str(dtype), "kind": kind, "nulls": got[f"{i}:nulls"]}
        if kind == "number":
            col.update({k: _number(got[f"{i}:{k}"]) for k in ("min", "max", "mean", "std")})
            qs = got[f"{i}:q"] or [None] * len(QUANTILES)
            col["quantiles"] = {str(q): _number(v) for q, v in zip(QUANTILES, qs)}
        elif kind == "time":
            col.update(min=got[f"{i}:min"], max=got[f"{i}:max"])
        else:
            col["top"] = _top(_struct_counts(got[f"{i}:counts"]), TOP)
        columns.append(col)
    return columns


def _finite_expr(c):
    import polars as pl

    x = c.cast(pl.Float64)
    return x.filter(x.is_finite())


def _counts_expr(c):
    """Each value's count, as one list (so it sits in a one-row aggregate query)."""
    import polars as pl

    return c.cast(pl.String).alias("v").value_counts(name="n").implode()


def _struct_counts(rows: list[dict] | None) -> list[tuple[str | None, int]]:
    return [(r["v"], r["n"]) for r in rows or []]


# -- drift ----------------------------------------------------------------------------------------
def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index of two lists of shares over the same bins: sum (a - e) ln(a / e),
    with empty bins given a share of EPS."""
    total = 0.0
    for e, a in zip(expected, actual):
        e, a = max(e, EPS), max(a, EPS)
        total += (a - e) * math.log(a / e)
    return total


def _bins(cumulative: list[int], total: int) -> list[int]:
    """Counts per bin (-inf, e1], (e1, e2], ..., (ek, inf) from the counts <= each edge."""
    out, prev = [], 0
    for c in cumulative:
        out.append(c - prev)
        prev = c
    out.append(total - prev)
    return out


def _category_shares(counts_a: list[tuple[str | None, int]], counts_b: list[tuple[str | None, int]]) -> dict:
    """Share of each category on both sides (the most common CATEGORY_LIMIT, the rest pooled), their
    changes, and PSI over them."""
    def shares(rows) -> dict:
        total = sum(n for _, n in rows)
        return {("(null)" if v is None else v): n / total for v, n in rows} if total else {}

    sa, sb = shares(counts_a), shares(counts_b)
    keep = sorted(set(sa) | set(sb), key=lambda k: (-(sa.get(k, 0) + sb.get(k, 0)), k))
    named, rest = keep[:CATEGORY_LIMIT], keep[CATEGORY_LIMIT:]
    ea = [sa.get(k, 0.0) for k in named] + ([sum(sa.get(k, 0.0) for k in rest)] if rest else [])
    eb = [sb.get(k, 0.0) for k in named] + ([sum(sb.get(k, 0.0) for k in rest)] if rest else [])
    changes = sorted(({"value": k, "a": sa.get(k, 0.0), "b": sb.get(k, 0.0), "change": sb.get(k, 0.0) - sa.get(k, 0.0)}
                      for k in named), key=lambda c: -abs(c["change"]))
    return {"psi": psi(ea, eb), "ks": None, "changes": changes[:TOP]}


def drift(path_a: str, fmt_a: str, path_b: str, fmt_b: str, step: Step | None = None,
          threads: int | None = None) -> dict:
    """Column by column, B against the reference A: schema changes first, then by PSI."""
    from mltui.base.errors import MltuiError

    try:
        la, lb = scan(path_a, fmt_a), scan(path_b, fmt_b)
        sa, sb = la.collect_schema(), lb.collect_schema()
        rows_a, rows_b = _rows(la), _rows(lb)
    except Exception as exc:
        raise MltuiError(f"Cannot read the tables: {str(exc).splitlines()[0]}") from None
    names = list(dict.fromkeys([*sa.keys(), *sb.keys()]))
    columns: dict[str, dict] = {}
    common = []
    for name in names:
        col: dict[str, Any] = {"name": name, "dtype_a": str(sa.get(name)) if name in sa else None,
                               "dtype_b": str(sb.get(name)) if name in sb else None, "schema": None}
        if name not in sb:
            col["schema"] = "removed"
        elif name not in sa:
            col["schema"] = "added"
        else:
            if sa[name] != sb[name]:
                col["schema"] = "type changed"
            col["kind"] = "number" if _kind(sa[name]) == _kind(sb[name]) == "number" else "category"
            common.append(name)
        columns[name] = col
    done = len(names) - len(common)
    if step and done:
        step(done, len(names))
    exact = rows_a <= EXACT_KS_ROWS and rows_b <= EXACT_KS_ROWS
    if exact:
        results = _drift_in_memory(la, fmt_a, rows_a, lb, fmt_b, rows_b, common, columns, threads)
    else:
        results = _drift_streaming(la, rows_a, lb, rows_b, common, columns, threads)
    for name, got in results:
        columns[name].update(got)
        done += 1
        if step:
            step(done, len(names))
    ranked = sorted(columns.values(), key=_rank)
    return {"rows_a": rows_a, "rows_b": rows_b, "columns": ranked, "read": IN_MEMORY if exact else STREAMING,
            "ks_method": "exact" if exact else f"grid of {KS_GRID - 1} quantiles a side (a close lower bound)"}


def _error(exc: Exception) -> dict:
    return {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}


def _drift_in_memory(la, fmt_a: str, rows_a: int, lb, fmt_b: str, rows_b: int, common: list[str], columns: dict,
                     threads: int | None):
    """(name, result) of each common column as it is done: each read once, sorted once, in a thread pool."""
    if not common:
        return
    try:
        tables = dict(_pool([lambda: ("a", _Columns(la, fmt_a, common, rows_a, MEMORY_BUDGET // 2)),
                             lambda: ("b", _Columns(lb, fmt_b, common, rows_b, MEMORY_BUDGET // 2))], threads))
    except Exception as exc:
        for name in common:
            yield name, _error(exc)
        return
    ta, tb = tables["a"], tables["b"]

    def one(name: str) -> tuple[str, dict]:
        try:
            if columns[name]["kind"] != "number":
                ca, cb = ta.counts(name), tb.counts(name)
                return name, {**_category_shares(ca, cb), "nulls_a": _null_count(ca), "nulls_b": _null_count(cb)}
            a = ta.series(name)
            nulls_a = a.null_count()
            xa = _sorted(_finite(a)).to_numpy()
            del a  # only the sorted values are kept: one raw column at a time
            b = tb.series(name)
            nulls_b = b.null_count()
            xb = _sorted(_finite(b)).to_numpy()
            del b
            return name, {**_numeric_arrays(xa, xb), "nulls_a": nulls_a, "nulls_b": nulls_b}
        except Exception as exc:
            return name, _error(exc)

    yield from _pool([lambda name=name: one(name) for name in common], threads)


def _drift_streaming(la, rows_a: int, lb, rows_b: int, common: list[str], columns: dict, threads: int | None):
    """(name, result) of each common column from two rounds of aggregate queries, a side at a time
    in each: counts, nulls, deciles and grid quantiles, category counts (one query a side where the
    values that quantiles hold fit MEMORY_BUDGET, else one per group of columns); then, in one
    streamed query a side, the counts in A's bins and at the grid's points."""
    import polars as pl

    if not common:
        return
    numbers = [n for n in common if columns[n]["kind"] == "number"]
    deciles = [i / PSI_BINS for i in range(1, PSI_BINS)]
    grid = [i / KS_GRID for i in range(1, KS_GRID)]

    index = {name: i for i, name in enumerate(common)}
    # two queries at once (a side each) while a column's values fit the budget; one at a time above
    workers = 1 if 16 * max(rows_a, rows_b) > MEMORY_BUDGET else max(1, min(threads or THREADS, 2))

    def first(lf, reference: bool, group: list[str]) -> dict:
        aggs = []
        for name in group:
            i, c = index[name], pl.col(name)
            aggs.append(c.null_count().alias(f"{i}:nulls"))
            if name in numbers:
                x = _finite_expr(c)
                aggs += [x.count().alias(f"{i}:n"),
                         x.quantile((deciles if reference else []) + grid, interpolation="linear").alias(f"{i}:q")]
            else:
                aggs.append(_counts_expr(c).alias(f"{i}:counts"))
        return _collect(lf.select(aggs)).row(0, named=True)

    tasks = [lambda side=side, lf=lf, group=group: (side, first(lf, side == "a", group))
             for side, lf, rows in (("a", la, rows_a), ("b", lb, rows_b))
             for group in _groups(common, set(numbers), rows, workers)]
    ga: dict[str, Any] = {}
    gb: dict[str, Any] = {}
    try:
        for side, got in _pool(tasks, workers):
            (ga if side == "a" else gb).update(got)
    except Exception as exc:
        for name in common:
            yield name, _error(exc)
        return
    plans: dict[str, tuple] = {}
    for i, name in enumerate(common):
        nulls = {"nulls_a": ga[f"{i}:nulls"], "nulls_b": gb[f"{i}:nulls"]}
        if name not in numbers:
            yield name, {**_category_shares(_struct_counts(ga[f"{i}:counts"]), _struct_counts(gb[f"{i}:counts"])),
                         **nulls}
            continue
        qa, qb = ga[f"{i}:q"] or [], gb[f"{i}:q"] or []
        edges = sorted({float(v) for v in qa[:len(deciles)] if v is not None})
        na, nb = ga[f"{i}:n"], gb[f"{i}:n"]
        if na == 0 or nb == 0:
            yield name, {"psi": None, "ks": None, "bins": edges, **nulls}
            continue
        points = sorted({float(v) for v in [*qa[len(deciles):], *qb] if v is not None})
        plans[name] = (i, edges, points, sorted(set(edges) | set(points)), na, nb, nulls)
    if not plans:
        return

    def second(lf) -> dict:
        """For each column, the counts of finite values <= each break (one pass: bin, then count)."""
        aggs = []
        for name, (i, _, _, breaks, *_) in plans.items():
            x = _finite_expr(pl.col(name))
            # bin k is (breaks[k - 1], breaks[k]]: the index where each value would go in the breaks, on the left
            aggs.append(pl.lit(pl.Series(breaks, dtype=pl.Float64)).search_sorted(x, side="left")
                        .alias("v").value_counts(name="n").implode().alias(f"{i}:bins"))
        row = _collect(lf.select(aggs)).row(0, named=True)
        out = {}
        for name, (i, _, _, breaks, *_) in plans.items():
            per_bin = [0] * (len(breaks) + 1)
            for r in row[f"{i}:bins"] or []:
                if r["v"] is not None:
                    per_bin[int(r["v"])] += r["n"]
            cumulative, total = {}, 0
            for brk, count in zip(breaks, per_bin):
                total += count
                cumulative[brk] = total
            out[name] = cumulative
        return out

    try:
        ca, cb = (got for _, got in sorted(_pool([lambda: (0, second(la)), lambda: (1, second(lb))], workers)))
    except Exception as exc:
        for name in plans:
            yield name, _error(exc)
        return
    for name, (i, edges, points, _, na, nb, nulls) in plans.items():
        shares_a = [c / na for c in _bins([ca[name][e] for e in edges], na)]
        shares_b = [c / nb for c in _bins([cb[name][e] for e in edges], nb)]
        ks = max((abs(ca[name][p] / na - cb[name][p] / nb) for p in points), default=0.0)
        yield name, {"psi": psi(shares_a, shares_b), "ks": ks, "bins": edges, "shares_a": shares_a,
                     "shares_b": shares_b, **nulls}


def _rank(col: dict) -> tuple:
    """Schema changes first, then the largest PSI, then the largest KS."""
    return (col.get("schema") is None, -(col.get("psi") or 0.0), -(col.get("ks") or 0.0), col["name"])


# -- words for people (the CLI and the TUI say the same) ------------------------------------------
def short(x: Any) -> str:
    if x is None:
        return "-"
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def column_summary(c: dict, top: int = 5) -> str:
    """One line for a profiled column: its spread for numbers, its range for times, else its top values."""
    if c["kind"] == "number":
        q = c["quantiles"]
        return (f"min {short(c['min'])}  p25 {short(q['0.25'])}  p50 {short(q['0.5'])}  p75 {short(q['0.75'])}  "
                f"max {short(c['max'])}  mean {short(c['mean'])}  std {short(c['std'])}")
    if c["kind"] == "time":
        return f"{c['min']} .. {c['max']}"
    return "  ".join(f"{v}: {n:,}" for v, n in c["top"][:top])


def schema_note(c: dict) -> str:
    schema = c.get("schema") or ""
    return f"{c['dtype_a']} -> {c['dtype_b']}" if schema == "type changed" else schema


def drift_note(c: dict) -> str:
    """The error, or the category whose share moved most."""
    if c.get("error"):
        return c["error"]
    if c.get("changes") and abs(c["changes"][0]["change"]) >= 0.0005:  # under 0.05 points is no news
        t = c["changes"][0]
        return f"{t['value']}: {t['a']:.1%} -> {t['b']:.1%}"
    return ""
