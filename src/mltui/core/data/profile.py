"""Profiles of tabular files: rows, schema and per-column stats (nulls; min, max, mean, std and
quantiles for numbers; the range of times; the top values of the rest), and their wording for people.

Each column is read once, in memory or by streamed aggregate queries after the row count
(columns.py); both paths give the same profile, and it says which was taken ("read").
"""

from __future__ import annotations

from typing import Any

from mltui.core.data.columns import (IN_MEMORY, STREAMING, TOP, Columns, Step, aggregate, counts_expr, finite,
                                     finite_expr, fits_in_memory, groups, kind_of, null_count, number, pool,
                                     quantiles_sorted, row_count, scan, sorted_values, struct_counts)

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def profile(path: str, fmt: str, step: Step | None = None, threads: int | None = None) -> dict:
    """Rows, schema and per-column stats: nulls; min/max/mean/std and quantiles for numbers; top
    categories (value, count) for the rest."""
    from mltui.base.errors import MltuiError

    try:
        lf = scan(path, fmt)
        schema = lf.collect_schema()
        rows = row_count(lf)
    except Exception as exc:
        raise MltuiError(f"Cannot read it as {fmt}: {str(exc).splitlines()[0]}") from None
    names = list(schema.keys())
    try:
        if fits_in_memory(rows):
            path_taken = IN_MEMORY
            table = Columns(lf, fmt, names, rows)
            tasks = [lambda i=i, name=name: (i, _profile_column(name, schema[name], table))
                     for i, name in enumerate(names)]
            columns: list[dict] = [{}] * len(names)
            for done, (i, col) in enumerate(pool(tasks, threads), 1):
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


def _profile_column(name: str, dtype, table: Columns) -> dict:
    import polars as pl

    kind = kind_of(dtype)
    col: dict[str, Any] = {"name": name, "dtype": str(dtype), "kind": kind}
    if kind == "category":
        counts = table.counts(name)
        col["nulls"] = null_count(counts)
        col["top"] = _top(counts, TOP)
        return col
    series = table.series(name)
    col["nulls"] = series.null_count()
    if kind == "number":
        x = finite(series)
        del series
        mean, std = x.mean(), x.std()
        xs = sorted_values(x)
        col.update(min=number(xs[0]) if len(xs) else None, max=number(xs[-1]) if len(xs) else None,
                   mean=number(mean), std=number(std))
        col["quantiles"] = {str(q): number(v) for q, v in zip(QUANTILES, quantiles_sorted(xs, QUANTILES))}
    else:
        v = pl.col("v")
        lo, hi = series.to_frame("v").select(v.min().cast(pl.String).alias("min"), v.max().cast(pl.String).alias("max")).row(0)
        col.update(min=lo, max=hi)
    return col


def _profile_streaming(lf, schema, rows: int) -> list[dict]:
    """Aggregate queries over the whole file, quantiles and category counts included: one for all the
    columns where their values fit MEMORY_BUDGET, else one per group of columns that does."""
    import polars as pl

    index = {name: i for i, name in enumerate(schema.keys())}
    numbers = {name for name, dtype in schema.items() if kind_of(dtype) == "number"}
    got: dict[str, Any] = {}
    for group in groups(list(schema.keys()), numbers, rows):
        aggs = []
        for name in group:
            i, dtype, c = index[name], schema[name], pl.col(name)
            aggs.append(c.null_count().alias(f"{i}:nulls"))
            if kind_of(dtype) == "number":
                x = finite_expr(c)
                aggs += [x.min().alias(f"{i}:min"), x.max().alias(f"{i}:max"), x.mean().alias(f"{i}:mean"),
                         x.std().alias(f"{i}:std"),
                         x.quantile(list(QUANTILES), interpolation="linear").alias(f"{i}:q")]
            elif kind_of(dtype) == "time":
                aggs += [c.min().cast(pl.String).alias(f"{i}:min"), c.max().cast(pl.String).alias(f"{i}:max")]
            else:
                aggs.append(counts_expr(c).alias(f"{i}:counts"))
        got.update(aggregate(lf, aggs))
    columns = []
    for i, (name, dtype) in enumerate(schema.items()):
        kind = kind_of(dtype)
        col: dict[str, Any] = {"name": name, "dtype": str(dtype), "kind": kind, "nulls": got[f"{i}:nulls"]}
        if kind == "number":
            col.update({k: number(got[f"{i}:{k}"]) for k in ("min", "max", "mean", "std")})
            qs = got[f"{i}:q"] or [None] * len(QUANTILES)
            col["quantiles"] = {str(q): number(v) for q, v in zip(QUANTILES, qs)}
        elif kind == "time":
            col.update(min=got[f"{i}:min"], max=got[f"{i}:max"])
        else:
            col["top"] = _top(struct_counts(got[f"{i}:counts"]), TOP)
        columns.append(col)
    return columns


# -- words for people (the CLI and the TUI say the same; drift's notes are in drift.py) -------------
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
