"""Profiles and drift of tabular files (CSV, Parquet, JSON lines) through polars, lazily.

Every statistic is an aggregate over a lazy scan run by polars' streaming engine, so a file larger
than memory is profiled in bounded memory. The exact Kolmogorov–Smirnov statistic needs the sorted
values of a column: it is computed exactly up to EXACT_KS_ROWS rows per side, and above that on the
cumulative counts at a grid of quantiles of both sides (a close lower bound).

polars is imported inside the functions: the tracking API and the CLI's other commands never pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
PSI_BINS = 10  # deciles of the reference side
TOP = 10  # categories kept in a profile
CATEGORY_LIMIT = 50  # categories compared in drift; the rest are pooled as "(other)"
EPS = 1e-4  # share given to an empty bin, so PSI stays finite
EXACT_KS_ROWS = 2_000_000
KS_GRID = 512
FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "ndjson",
           ".ndjson": "ndjson"}
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


def profile(path: str, fmt: str, step: Step | None = None) -> dict:
    """Rows, schema and per-column stats: nulls; min/max/mean/std and quantiles for numbers; top
    categories (value, count) for the rest."""
    import polars as pl

    from mltui.base.errors import MltuiError

    try:
        lf = scan(path, fmt)
        schema = lf.collect_schema()
    except Exception as exc:
        raise MltuiError(f"Cannot read it as {fmt}: {str(exc).splitlines()[0]}") from None
    aggs = [pl.len().alias("__rows")]
    for i, (name, dtype) in enumerate(schema.items()):
        c = pl.col(name)
        aggs.append(c.null_count().alias(f"{i}:nulls"))
        if _kind(dtype) == "number":
            x = c.cast(pl.Float64)
            x = x.filter(x.is_finite())
            aggs += [x.min().alias(f"{i}:min"), x.max().alias(f"{i}:max"), x.mean().alias(f"{i}:mean"),
                     x.std().alias(f"{i}:std")]
            aggs += [x.quantile(q, interpolation="linear").alias(f"{i}:q{q}") for q in QUANTILES]
        elif _kind(dtype) == "time":
            aggs += [c.min().cast(pl.String).alias(f"{i}:min"), c.max().cast(pl.String).alias(f"{i}:max")]
    try:
        got = _collect(lf.select(aggs)).row(0, named=True)
    except Exception as exc:
        raise MltuiError(f"Cannot profile it: {str(exc).splitlines()[0]}") from None
    columns = []
    for i, (name, dtype) in enumerate(schema.items()):
        kind = _kind(dtype)
        col: dict[str, Any] = {"name": name, "dtype": str(dtype), "kind": kind, "nulls": got[f"{i}:nulls"]}
        if kind == "number":
            col.update({k: _number(got[f"{i}:{k}"]) for k in ("min", "max", "mean", "std")})
            col["quantiles"] = {str(q): _number(got[f"{i}:q{q}"]) for q in QUANTILES}
        elif kind == "time":
            col.update(min=got[f"{i}:min"], max=got[f"{i}:max"])
        else:
            col["top"] = _top(lf, name, TOP)
        columns.append(col)
        if step:
            step(i + 1, len(schema))
    return {"rows": got["__rows"], "columns": columns}


def _top(lf, name: str, n: int) -> list[list]:
    import polars as pl

    counts = _collect(lf.group_by(pl.col(name).cast(pl.String)).agg(pl.len().alias("__n"))
                      .sort(["__n", name], descending=[True, False], nulls_last=True).head(n))
    return [[v, c] for v, c in counts.rows()]


# -- drift ----------------------------------------------------------------------------------------
def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index of two lists of shares over the same bins: sum (a - e) ln(a / e),
    with empty bins given a share of EPS."""
    total = 0.0
    for e, a in zip(expected, actual):
        e, a = max(e, EPS), max(a, EPS)
        total += (a - e) * math.log(a / e)
    return total


def ks_exact(a: list[float], b: list[float]) -> float:
    """Two-sample Kolmogorov–Smirnov statistic: the largest gap between the two empirical CDFs."""
    import numpy as np

    xa, xb = np.sort(np.asarray(a, dtype=float)), np.sort(np.asarray(b, dtype=float))
    if len(xa) == 0 or len(xb) == 0:
        return float("nan")
    grid = np.concatenate([xa, xb])
    fa = np.searchsorted(xa, grid, side="right") / len(xa)
    fb = np.searchsorted(xb, grid, side="right") / len(xb)
    return float(np.max(np.abs(fa - fb)))


def _counts_le(lf, name: str, edges: list[float]) -> tuple[list[int], int]:
    """How many finite values of a column are <= each edge, and how many finite values there are."""
    import polars as pl

    x = pl.col(name).cast(pl.Float64)
    x = x.filter(x.is_finite())
    aggs = [x.count().alias("__n")] + [(x <= e).sum().alias(f"le{i}") for i, e in enumerate(edges)]
    row = _collect(lf.select(aggs)).row(0)
    return list(row[1:]), row[0]


def _quantile_edges(lf, name: str, qs: list[float]) -> list[float]:
    import polars as pl

    x = pl.col(name).cast(pl.Float64)
    x = x.filter(x.is_finite())
    row = _collect(lf.select([x.quantile(q, interpolation="linear").alias(f"q{i}") for i, q in enumerate(qs)])).row(0)
    return sorted({float(v) for v in row if v is not None})


def numeric_drift(la, lb, name: str) -> dict:
    """PSI over the reference's deciles, and the KS statistic, of one numeric column."""
    import polars as pl

    edges = _quantile_edges(la, name, [i / PSI_BINS for i in range(1, PSI_BINS)])
    le_a, na = _counts_le(la, name, edges)
    le_b, nb = _counts_le(lb, name, edges)
    if na == 0 or nb == 0:
        return {"psi": None, "ks": None, "bins": edges}
    shares_a = [c / na for c in _bins(le_a, na)]
    shares_b = [c / nb for c in _bins(le_b, nb)]
    if na <= EXACT_KS_ROWS and nb <= EXACT_KS_ROWS:
        def values(lf):
            x = pl.col(name).cast(pl.Float64)
            return _collect(lf.select(x.filter(x.is_finite()))).to_series().to_list()
        ks = ks_exact(values(la), values(lb))
    else:
        qs = [i / KS_GRID for i in range(1, KS_GRID)]
        grid = sorted(set(_quantile_edges(la, name, qs)) | set(_quantile_edges(lb, name, qs)))
        ga, _ = _counts_le(la, name, grid)
        gb, _ = _counts_le(lb, name, grid)
        ks = max((abs(x / na - y / nb) for x, y in zip(ga, gb)), default=0.0)
    return {"psi": psi(shares_a, shares_b), "ks": ks, "bins": edges, "shares_a": shares_a, "shares_b": shares_b}


def _bins(cumulative: list[int], total: int) -> list[int]:
    """Counts per bin (-inf, e1], (e1, e2], ..., (ek, inf) from the counts <= each edge."""
    out, prev = [], 0
    for c in cumulative:
        out.append(c - prev)
        prev = c
    out.append(total - prev)
    return out


def category_drift(la, lb, name: str) -> dict:
    """Share of each category on both sides (the most common CATEGORY_LIMIT, the rest pooled), their
    changes, and PSI over them."""
    import polars as pl

    def shares(lf) -> tuple[dict, int]:
        rows = _collect(lf.group_by(pl.col(name).cast(pl.String)).agg(pl.len().alias("__n"))).rows()
        total = sum(n for _, n in rows)
        return {("(null)" if v is None else v): n / total for v, n in rows} if total else {}, total

    sa, _ = shares(la)
    sb, _ = shares(lb)
    keep = sorted(set(sa) | set(sb), key=lambda k: -(sa.get(k, 0) + sb.get(k, 0)))
    named, rest = keep[:CATEGORY_LIMIT], keep[CATEGORY_LIMIT:]
    ea = [sa.get(k, 0.0) for k in named] + ([sum(sa.get(k, 0.0) for k in rest)] if rest else [])
    eb = [sb.get(k, 0.0) for k in named] + ([sum(sb.get(k, 0.0) for k in rest)] if rest else [])
    changes = sorted(({"value": k, "a": sa.get(k, 0.0), "b": sb.get(k, 0.0), "change": sb.get(k, 0.0) - sa.get(k, 0.0)}
                      for k in named), key=lambda c: -abs(c["change"]))
    return {"psi": psi(ea, eb), "ks": None, "changes": changes[:TOP]}


def drift(path_a: str, fmt_a: str, path_b: str, fmt_b: str, step: Step | None = None) -> dict:
    """Column by column, B against the reference A: schema changes first, then by PSI."""
    import polars as pl

    from mltui.base.errors import MltuiError

    try:
        la, lb = scan(path_a, fmt_a), scan(path_b, fmt_b)
        sa, sb = la.collect_schema(), lb.collect_schema()
        rows_a, rows_b = (_collect(lf.select(pl.len())).item() for lf in (la, lb))
    except Exception as exc:
        raise MltuiError(f"Cannot read the tables: {str(exc).splitlines()[0]}") from None
    columns: list[dict] = []
    names = list(dict.fromkeys([*sa.keys(), *sb.keys()]))
    for i, name in enumerate(names):
        col: dict[str, Any] = {"name": name, "dtype_a": str(sa.get(name)) if name in sa else None,
                               "dtype_b": str(sb.get(name)) if name in sb else None, "schema": None}
        if name not in sb:
            col["schema"] = "removed"
        elif name not in sa:
            col["schema"] = "added"
        else:
            ka, kb = _kind(sa[name]), _kind(sb[name])
            if sa[name] != sb[name]:
                col["schema"] = "type changed"
            try:
                if ka == kb == "number":
                    col.update(kind="number", **numeric_drift(la, lb, name))
                else:
                    col.update(kind="category", **category_drift(la, lb, name))
                col["nulls_a"], col["nulls_b"] = (_collect(lf.select(pl.col(name).null_count())).item()
                                                  for lf in (la, lb))
            except Exception as exc:
                col["error"] = str(exc).splitlines()[0]
        columns.append(col)
        if step:
            step(i + 1, len(names))
    columns.sort(key=_rank)
    return {"rows_a": rows_a, "rows_b": rows_b, "columns": columns}


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
