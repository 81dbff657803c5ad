"""Compare in groups: the compared runs grouped by a --group-by spec (the Runs pane's, '*,-seed' by
default: every param but the seed), each group's metric drawn as its mean with a band, and per group N
and the mean ± std of each metric's last value.

    grouped = group_compared(conn, run_ids, "*,-seed", ["loss"])  -> the groups, labelled
    bands = group_bands(conn, grouped.groups, "loss", points=150)  -> one SeriesBand per group
    lower, upper = band_limits(band, "std")                         -> what the chart shades

The series are aligned by step: runs that logged different steps meet on a common grid
(groups.band_of). The spread is the sample standard deviation (n - 1), as everywhere in groups.py.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from mltui.base.values import display
from mltui.core.runs.groups import Group, SeriesBand, band_of, expand_group_by, group_runs, param_keys
from mltui.core.runs.views import BANDS

DEFAULT_SPEC = "*,-seed"
BAND_NAMES = {"std": "± std", "minmax": "min–max", "none": "off"}  # BANDS as the status line names them


@dataclass
class GroupedRuns:
    spec: str  # as asked (the columns below are what it expanded to)
    columns: list[str]  # params.NAME / tags.NAME
    varying: list[str]  # the columns whose value differs between the groups: the labels name these
    groups: list[Group]  # the group holding the newest run first
    labels: list[str]  # one per group: "lr=0.01  model=mlp"


def _id_filter(run_ids: Sequence[str]) -> str:
    """A --where that matches exactly these runs (each id a quoted string of the filter language)."""
    quoted = ("'" + rid.replace("\\", "\\\\").replace("'", "\\'") + "'" for rid in run_ids)
    return "id in (" + ", ".join(quoted) + ")"


def group_label(group: Group, columns: Sequence[str]) -> str:
    return "  ".join(f"{c.partition('.')[2]}={display(group.key.get(c))}" for c in columns) or "(no params)"


def group_compared(conn: sqlite3.Connection, run_ids: Sequence[str], spec: str | None,
                   metrics: Sequence[str]) -> GroupedRuns:
    """The runs `run_ids` grouped by `spec` (None: DEFAULT_SPEC), each group's stats for `metrics`. Raises
    UsageError for a bad spec. The default leaves out seed only where some run has one."""
    spec = spec or DEFAULT_SPEC
    keys = param_keys(conn)
    asked = spec
    if spec == DEFAULT_SPEC and "seed" not in keys:
        asked = "*"  # no seeds to average over: every param tells the groups apart
    columns = expand_group_by(asked, keys)
    if not run_ids:
        return GroupedRuns(spec, columns, columns, [], [])
    # the ids were chosen by hand (or by a view's filter): an archived one among them is grouped too
    groups = list(group_runs(conn, _id_filter(list(dict.fromkeys(run_ids))), columns, list(metrics), archived=True))
    varying = [c for c in columns if len({display(g.key.get(c)) for g in groups}) > 1] or columns
    return GroupedRuns(spec, columns, varying, groups, [group_label(g, varying) for g in groups])


def group_bands(conn: sqlite3.Connection, groups: Sequence[Group], metric: str, points: int = 200,
                smoothing: float = 0.0) -> list[SeriesBand]:
    """One band per group: `metric` over its runs step by step (smoothed run by run first, as the
    Compare pane smooths single runs)."""
    from mltui.core.runs.compare import ema, read_arrays

    out = []
    for group in groups:
        runs = []
        for rid in group.run_ids:
            steps, values, _ = read_arrays(conn, rid, metric, with_times=False)
            if not steps.size:
                continue
            if smoothing:
                import polars as pl

                values = ema(pl.Series("y", values), smoothing).to_numpy()
            runs.append((steps.astype("f8"), values))
        out.append(band_of(runs, points))
    return out


def band_limits(band: SeriesBand, kind: str) -> tuple[list[float], list[float]] | None:
    """The lower and upper edge of the band to shade: mean ± std (just the mean where fewer than two runs
    have a value) or min to max; None for 'none'."""
    if kind == "std":
        spread = [0.0 if math.isnan(s) else s for s in band.std]
        return [m - s for m, s in zip(band.mean, spread)], [m + s for m, s in zip(band.mean, spread)]
    if kind == "minmax":
        return list(band.min), list(band.max)
    if kind == "none":
        return None
    raise ValueError(f"band must be one of {', '.join(BANDS)}")


def n_text(band: SeriesBand, group: Group) -> str:
    """N for a legend: the runs with a value, as a range where runs stop at different steps."""
    if not band.n:
        return f"N={group.n}"
    lo, hi = min(band.n), max(band.n)
    return f"N={hi}" if lo == hi else f"N={lo}–{hi}"
