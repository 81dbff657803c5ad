"""Drift between two versions of a table, column by column, B against the reference A: schema
changes, PSI over A's deciles for numbers and over the category shares for the rest (the most common
CATEGORY_LIMIT, the rest pooled), the Kolmogorov–Smirnov statistic for numbers, the ranking (schema
changes first, then by PSI, then by KS), and the notes people read beside each column.

The columns are read as in columns.py, in memory or streamed, chosen by the row counts of both sides:

- In memory: from the sorted finite values of both sides, the counts in A's bins and the exact KS
  statistic (numpy's searchsorted), a column at a time in a small thread pool.
- Streaming: aggregate queries a side (counts, nulls, quantiles, category counts), then one streamed
  query a side for the counts in A's bins and at the KS grid. The KS statistic is then taken on the
  cumulative counts at KS_GRID - 1 quantiles of both sides (a close lower bound of the exact one).

Both paths give the same PSI; results say which path was taken ("read") and "ks_method".

numpy and polars are imported inside the functions.
"""

from __future__ import annotations

import math
from typing import Any

from mltui.core.data.columns import (IN_MEMORY, STREAMING, TOP, Columns, Step, aggregate, counts_expr, finite,
                                     finite_expr, fits_in_memory, groups, kind_of, null_count, pool,
                                     quantiles_sorted, row_count, scan, side_workers, sorted_values, struct_counts)

PSI_BINS = 10  # deciles of the reference side
CATEGORY_LIMIT = 50  # categories compared in drift; the rest are pooled as "(other)"
EPS = 1e-4  # share given to an empty bin, so PSI stays finite
KS_GRID = 512


# -- the statistics ---------------------------------------------------------------------------------
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


# -- drift ----------------------------------------------------------------------------------------
def drift(path_a: str, fmt_a: str, path_b: str, fmt_b: str, step: Step | None = None,
          threads: int | None = None) -> dict:
    """Column by column, B against the reference A: schema changes first, then by PSI."""
    from mltui.base.errors import MltuiError

    try:
        la, lb = scan(path_a, fmt_a), scan(path_b, fmt_b)
        sa, sb = la.collect_schema(), lb.collect_schema()
        rows_a, rows_b = row_count(la), row_count(lb)
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
            col["kind"] = "number" if kind_of(sa[name]) == kind_of(sb[name]) == "number" else "category"
            common.append(name)
        columns[name] = col
    done = len(names) - len(common)
    if step and done:
        step(done, len(names))
    exact = fits_in_memory(rows_a, rows_b)
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
        # the memory budget is shared by the two sides
        tables = dict(pool([lambda: ("a", Columns(la, fmt_a, common, rows_a, sides=2)),
                            lambda: ("b", Columns(lb, fmt_b, common, rows_b, sides=2))], threads))
    except Exception as exc:
        for name in common:
            yield name, _error(exc)
        return
    ta, tb = tables["a"], tables["b"]

    def one(name: str) -> tuple[str, dict]:
        try:
            if columns[name]["kind"] != "number":
                ca, cb = ta.counts(name), tb.counts(name)
                return name, {**_category_shares(ca, cb), "nulls_a": null_count(ca), "nulls_b": null_count(cb)}
            a = ta.series(name)
            nulls_a = a.null_count()
            xa = sorted_values(finite(a)).to_numpy()
            del a  # only the sorted values are kept: one raw column at a time
            b = tb.series(name)
            nulls_b = b.null_count()
            xb = sorted_values(finite(b)).to_numpy()
            del b
            return name, {**_numeric_arrays(xa, xb), "nulls_a": nulls_a, "nulls_b": nulls_b}
        except Exception as exc:
            return name, _error(exc)

    yield from pool([lambda name=name: one(name) for name in common], threads)


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
    workers = side_workers(max(rows_a, rows_b), threads)

    def first(lf, reference: bool, group: list[str]) -> dict:
        aggs = []
        for name in group:
            i, c = index[name], pl.col(name)
            aggs.append(c.null_count().alias(f"{i}:nulls"))
            if name in numbers:
                x = finite_expr(c)
                aggs += [x.count().alias(f"{i}:n"),
                         x.quantile((deciles if reference else []) + grid, interpolation="linear").alias(f"{i}:q")]
            else:
                aggs.append(counts_expr(c).alias(f"{i}:counts"))
        return aggregate(lf, aggs)

    tasks = [lambda side=side, lf=lf, group=group: (side, first(lf, side == "a", group))
             for side, lf, rows in (("a", la, rows_a), ("b", lb, rows_b))
             for group in groups(common, set(numbers), rows, workers)]
    ga: dict[str, Any] = {}
    gb: dict[str, Any] = {}
    try:
        for side, got in pool(tasks, workers):
            (ga if side == "a" else gb).update(got)
    except Exception as exc:
        for name in common:
            yield name, _error(exc)
        return
    plans: dict[str, tuple] = {}
    for i, name in enumerate(common):
        nulls = {"nulls_a": ga[f"{i}:nulls"], "nulls_b": gb[f"{i}:nulls"]}
        if name not in numbers:
            yield name, {**_category_shares(struct_counts(ga[f"{i}:counts"]), struct_counts(gb[f"{i}:counts"])),
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
            x = finite_expr(pl.col(name))
            # bin k is (breaks[k - 1], breaks[k]]: the index where each value would go in the breaks, on the left
            aggs.append(pl.lit(pl.Series(breaks, dtype=pl.Float64)).search_sorted(x, side="left")
                        .alias("v").value_counts(name="n").implode().alias(f"{i}:bins"))
        row = aggregate(lf, aggs)
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
        ca, cb = (got for _, got in sorted(pool([lambda: (0, second(la)), lambda: (1, second(lb))], workers)))
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


# -- words for people (the CLI and the TUI say the same; numbers are put short by profile.short) ---------
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
