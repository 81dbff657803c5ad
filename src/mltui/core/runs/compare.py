"""Comparing runs: metric series for charts (smoothed, downsampled), best-of tables, param diffs.

The number work is done in polars on whole series; nothing here draws (the plotext glue is in
mltui.tui.chart and mltui.cli.compare).
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from mltui.base.values import display
from mltui.core.runs.views import AXES

__all__ = ["AXES", "direction", "ema", "downsample", "read_arrays", "load_series", "clip_limits", "best_of",
           "compare", "Comparison", "MetricCell", "Series"]

LOWER_IS_BETTER = ("loss", "err", "error", "mse", "mae", "rmse", "perplexity", "ppl", "wer", "cer", "latency",
                   "time", "nll", "cost", "regret", "distance")
HIGHER_IS_BETTER = ("acc", "accuracy", "f1", "auc", "precision", "recall", "map", "bleu", "rouge", "iou", "dice",
                    "r2", "score", "reward", "return", "throughput", "top1", "top5")


def direction(key: str, overrides: dict[str, str] | None = None) -> str:
    """'min' or 'max': which way is better for a metric, from config or from its name (loss down, acc up)."""
    if overrides and key in overrides:
        return overrides[key]
    name = key.lower().replace("-", "_")
    parts = [p for chunk in name.split("/") for p in chunk.split("_") if p]
    for word in reversed(parts):  # the last word decides: val/loss_acc is unusual, train/acc_loss too
        if any(word.startswith(w) for w in HIGHER_IS_BETTER):
            return "max"
        if any(word.startswith(w) for w in LOWER_IS_BETTER):
            return "min"
    return "max"


def ema(values: pl.Series, weight: float) -> pl.Series:
    """Debiased exponential moving average (TensorBoard's smoothing): weight 0 is the raw series.

    NaN and infinite points are left where they are and do not move the average.
    """
    if not 0 <= weight < 1:
        raise ValueError("smoothing must be at least 0 and below 1")
    if weight == 0 or values.len() == 0:
        return values
    finite = values.is_finite()
    if finite.all():  # the usual case: no masking needed
        return values.ewm_mean(alpha=1 - weight, adjust=True, ignore_nulls=True)
    smooth = values.set(~finite, None).ewm_mean(alpha=1 - weight, adjust=True, ignore_nulls=True)
    return pl.select(pl.when(finite).then(smooth).otherwise(values)).to_series()


def downsample(x, y, buckets: int) -> tuple[list[float], list[float]]:
    """At most 2 * `buckets` points that keep the shape: the min and the max point of each bucket, in x order.

    Bucket b holds points [b*n//B, (b+1)*n//B); of equal values the first is kept. NaN points are
    dropped (they cannot be drawn); infinities are kept for the caller to clip. polars finds each
    bucket's arg_min and arg_max on a zero-copy slice: 6 ms for 20 x 100k points, where a group_by
    over a bucket column took 50 ms (bench/compare.py).
    """
    xa = np.asarray(x.to_numpy() if isinstance(x, pl.Series) else x, dtype="f8")
    ya = np.asarray(y.to_numpy() if isinstance(y, pl.Series) else y, dtype="f8")
    keep_rows = ~np.isnan(ya)
    if not keep_rows.all():
        xa, ya = xa[keep_rows], ya[keep_rows]
    n = ya.size
    if n <= 2 * buckets or buckets <= 0:
        return xa.tolist(), ya.tolist()
    starts = (np.arange(buckets + 1, dtype=np.int64) * n) // buckets
    series = pl.Series("y", ya)  # zero-copy; each bucket below is a zero-copy slice of it
    picked = set()
    for b in range(buckets):  # a loop over buckets (at most a few hundred), never over points
        start, length = int(starts[b]), int(starts[b + 1] - starts[b])
        part = series.slice(start, length)
        picked.add(start + part.arg_min())
        picked.add(start + part.arg_max())
    keep = np.fromiter(sorted(picked), dtype=np.int64)
    return xa[keep].tolist(), ya[keep].tolist()


def read_arrays(conn: sqlite3.Connection, run_id: str, key: str,
                with_times: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, values, times) of one series as numpy arrays, ordered by step, the latest write of a step kept.

    The blobs are read without copying point by point, which is what makes 20 x 100k points cheap.
    Without `with_times` the times column (the last in each row) is not read at all and comes back empty.
    """
    columns = "steps, vals, times" if with_times else "steps, vals"
    rows = conn.execute(
        f"SELECT {columns} FROM metrics WHERE run_id = ? AND key = ? ORDER BY rowid", (run_id, key)
    ).fetchall()
    if not rows:
        empty = np.empty(0)
        return empty.astype("<i8"), empty, empty
    steps = np.concatenate([np.frombuffer(r[0], dtype="<i8") for r in rows])
    values = np.concatenate([np.frombuffer(r[1], dtype="<f8") for r in rows])
    times = np.concatenate([np.frombuffer(r[2], dtype="<f8") for r in rows]) if with_times else np.empty(steps.size)
    if steps.size > 1 and not bool(np.all(steps[1:] > steps[:-1])):
        # keep the last write of each step: unique over the reversed arrays finds the latest index
        _, first_in_reversed = np.unique(steps[::-1], return_index=True)
        keep = steps.size - 1 - first_in_reversed  # ascending by step, as np.unique sorts
        steps, values, times = steps[keep], values[keep], times[keep]
    return steps, values, times


@dataclass
class Series:
    run_id: str
    key: str
    x: list[float]
    y: list[float]
    points: int  # before downsampling
    nan: int = 0  # NaN points left out before downsampling (a chart says how many it could not draw)


def load_series(
    conn: sqlite3.Connection,
    run_ids: list[str],
    key: str,
    axis: str = "step",
    smoothing: float = 0.0,
    buckets: int = 200,
) -> list[Series]:
    """One chart-ready series per run that has `key` (runs without it are skipped)."""
    if axis not in AXES:
        raise ValueError(f"axis must be one of {', '.join(AXES)}")
    out = []
    for run_id in run_ids:
        steps, values, times = read_arrays(conn, run_id, key, with_times=axis != "step")
        if not steps.size:
            continue
        y = ema(pl.Series("y", values), smoothing).to_numpy() if smoothing else values
        if axis == "step":
            x = steps.astype("f8")
        elif axis == "time":
            x = times
        else:
            x = times - times[0]
        xs, ys = downsample(x, y, buckets)
        out.append(Series(run_id, key, xs, ys, int(steps.size), int(np.isnan(values).sum())))
    return out


def clip_limits(series: list[Series], quantile: float = 0.02) -> tuple[float, float] | None:
    """A y-range that leaves out spikes: the [q, 1-q] quantiles of every drawn point, padded a little."""
    ys = pl.Series([v for s in series for v in s.y], dtype=pl.Float64)
    ys = ys.filter(ys.is_finite())
    if ys.len() < 5:
        return None
    lo, hi = ys.quantile(quantile), ys.quantile(1 - quantile)
    if lo is None or hi is None:
        return None
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
    return lo - pad, hi + pad


@dataclass
class MetricCell:
    last: float | None
    best: float | None
    best_step: int | None
    is_best: bool = False


@dataclass
class Comparison:
    runs: list[dict]
    metrics: list[str]
    directions: dict[str, str]
    cells: dict[str, dict[str, MetricCell]] = field(default_factory=dict)  # run id -> key -> cell
    params_all: list[str] = field(default_factory=list)
    params_differ: list[str] = field(default_factory=list)


def best_of(steps: np.ndarray, values: np.ndarray, how: str) -> tuple[float | None, int | None]:
    """The best value (NaN ignored) and the first step where it was reached."""
    if not values.size or np.isnan(values).all():
        return None, None
    i = int(np.nanargmin(values) if how == "min" else np.nanargmax(values))
    return float(values[i]), int(steps[i])


def compare(conn: sqlite3.Connection, runs: list[dict], metrics: list[str] | None = None,
            overrides: dict[str, str] | None = None, cache: dict | None = None) -> Comparison:
    """Last and best value (with its step) of each metric per run, the best run per metric, and the param diff.

    `runs` carry params and metric summaries (as from mltui.core.runs.listing.list_runs / get_run).
    """
    keys = metrics or sorted({k for r in runs for k in r["metrics"] if not k.startswith("sys/")})
    dirs = {k: direction(k, overrides) for k in keys}
    comp = Comparison(runs=runs, metrics=keys, directions=dirs)
    for run in runs:
        comp.cells[run["id"]] = {}
        for key in keys:
            summary = run["metrics"].get(key)
            if summary is None:
                comp.cells[run["id"]][key] = MetricCell(None, None, None)
                continue
            # a series is read again only when it has grown: live refreshes stay cheap
            token = (run["id"], key, dirs[key], summary["count"], summary["last_step"])
            if cache is not None and token in cache:
                best, best_step = cache[token]
            else:
                steps, values, _ = read_arrays(conn, run["id"], key, with_times=False)
                best, best_step = best_of(steps, values, dirs[key])
                if cache is not None:
                    cache[token] = (best, best_step)
            comp.cells[run["id"]][key] = MetricCell(summary["last"], best, best_step)
    for key in keys:
        candidates = [c for cells in comp.cells.values() if (c := cells[key]).best is not None]
        if not candidates:
            continue
        pick = min if dirs[key] == "min" else max
        winner = pick(c.best for c in candidates)
        for c in candidates:
            c.is_best = c.best == winner
    comp.params_all = sorted({k for r in runs for k in r["params"]})
    comp.params_differ = [
        k for k in comp.params_all
        if len({display(r["params"][k]) if k in r["params"] else None for r in runs}) > 1
    ]
    return comp


def finite_or_none(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
