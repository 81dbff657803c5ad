"""Groups of runs: runs that share the values of some params (or tags), with N and the spread of each metric.

    expand_group_by("*,-seed", keys)  -> every param but seed: the usual way to average over seeds
    group_runs(conn, where, columns)  -> [Group(key, n, run_ids, stats)], the group of the newest run first
    group_series(conn, ids, "loss")   -> the mean, std, min and max of one metric's series, step by step
                                         (band_of: the same over series already read)

Grouping reads one column per run, not a row per param: `runs.params_key` holds a run's params as one text
(store/runs.py PARAMS_KEY_OF), so a group key is that text with the left-out params cut out (or the
wanted ones picked out), compared as a string. Only the groups asked for (`limit`) have their key decoded
and their metrics read.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from mltui.base.errors import UsageError
from mltui.base.values import decode
from mltui.store import runs as run_store
from mltui.store.where import compile_filter

RS, US = "\x1e", "\x1f"  # between params, and between a param's key, type and value, in params_key
NAMESPACES = ("params", "tags")


@dataclass
class MetricStats:
    """One metric's summary value (the last, as the runs table shows) over a group's runs. `n` counts the
    runs with a finite value: NaN and infinities are left out of every figure. `std` is the sample
    standard deviation, None below two values."""

    n: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None


@dataclass
class Group:
    key: dict[str, object]  # column (params.lr, tags.team) -> value; None where the runs lack it
    n: int
    run_ids: list[str]  # newest first
    stats: dict[str, MetricStats] = field(default_factory=dict)  # metric -> stats


class GroupList(list):
    """The groups asked for (a list of Group); `total` is how many groups the runs make in all, and `runs`
    how many runs they hold."""

    total: int = 0
    runs: int = 0


@dataclass
class SeriesBand:
    """One metric over a group's runs, point by point: `n` runs had a value at each step (steps where a run
    logged nothing are interpolated between its neighbours, never beyond its first or last step); `std`
    is NaN where n < 2."""

    steps: list[float]
    mean: list[float]
    std: list[float]
    min: list[float]
    max: list[float]
    n: list[int]


# -- the spec --------------------------------------------------------------------------------------------
def _column(item: str) -> str:
    head, dot, rest = item.partition(".")
    if dot and head in NAMESPACES:
        name = rest
    elif dot and head in ("metrics",):
        raise UsageError(f"Cannot group by {item!r}: group by params or tags, and the metrics are averaged.")
    else:
        head, name = "params", item
    if len(name) > 2 and name.startswith("`") and name.endswith("`"):
        name = name[1:-1]
    if not name or name == "*":
        raise UsageError(f"{item!r} names no param; write params.NAME, tags.NAME or a bare param name.")
    return f"{head}.{name}"


def expand_group_by(spec: str, param_keys: Sequence[str]) -> list[str]:
    """The columns of a --group-by: 'params.model,params.lr' (bare names are params), '*' for every param,
    '-NAME' to leave one out ('*,-seed': every param but seed). Raises UsageError on a bad spec."""
    items = [item.strip() for item in (spec or "").split(",")]
    if not spec or not spec.strip() or any(not item for item in items):
        raise UsageError("--group-by needs comma-separated names, e.g. 'params.model,params.lr' or '*,-seed'.")
    known = set(param_keys)
    star = any(item in ("*", "params.*") for item in items)
    out: list[str] = []
    dropped: set[str] = set()
    for item in items:
        if item in ("*", "params.*"):
            out.extend(f"params.{k}" for k in sorted(known))
            continue
        if item.startswith("-"):
            col = _column(item[1:].strip())
            if not star:
                raise UsageError(f"{item!r} leaves a param out of '*': write '*,{item}'.")
            if col.startswith("params.") and col[7:] not in known:
                raise UsageError(f"No run has a param called {col[7:]!r} to leave out.")
            dropped.add(col)
            continue
        col = _column(item)
        if col.startswith("params.") and known and col[7:] not in known:
            raise UsageError(f"No run has a param called {col[7:]!r}; `mltui runs list --json` shows the params.")
        out.append(col)
    columns = [c for c in dict.fromkeys(out) if c not in dropped]
    if not columns:
        raise UsageError(f"--group-by {spec!r} leaves nothing to group by.")
    return columns


def param_keys(reader: sqlite3.Connection) -> list[str]:
    """Every param name in the store, sorted: a walk down the (key, value) index, one seek per name."""
    return [k for (k,) in reader.execute(
        "WITH RECURSIVE k(key) AS (SELECT min(key) FROM params UNION ALL "
        "SELECT (SELECT min(key) FROM params WHERE key > k.key) FROM k WHERE k.key IS NOT NULL) "
        "SELECT key FROM k WHERE key IS NOT NULL")]


def metric_keys(reader: sqlite3.Connection) -> list[str]:
    """Every metric name in the store, sorted (the same walk over the metric summaries' index)."""
    return [k for (k,) in reader.execute(
        "WITH RECURSIVE k(key) AS (SELECT min(key) FROM metric_summary UNION ALL "
        "SELECT (SELECT min(key) FROM metric_summary WHERE key > k.key) FROM k WHERE k.key IS NOT NULL) "
        "SELECT key FROM k WHERE key IS NOT NULL")]


# -- grouping ---------------------------------------------------------------------------------------------
def _literal(text: str, kind: str) -> object:
    """A value as SQLite's quote() wrote it, decoded to what the run logged."""
    if text == "NULL":
        value: object = None
    elif text.startswith("'"):
        value = text[1:-1].replace("''", "'")
    elif text[:2] in ("X'", "x'"):
        value = bytes.fromhex(text[2:-1])
    else:
        try:
            value = int(text)
        except ValueError:
            value = float(text)
    if value is None and kind != "float":
        return None
    return decode(value, kind)


def _segments(text: str) -> dict[str, tuple[str, str]]:
    """params_key text -> {key: (type, quoted value)}."""
    out = {}
    for seg in text.split(RS)[1:]:
        key, kind, value = seg.split(US, 2)
        out[key] = (kind, value)
    return out


def _cut(text: str, keys: Sequence[str]) -> str:
    for key in keys:
        i = text.find(f"{RS}{key}{US}")
        if i >= 0:
            j = text.find(RS, i + 1)
            text = text[:i] + (text[j:] if j >= 0 else "")
    return text


def _pick(text: str, keys: Sequence[str]) -> str:
    parts = []
    for key in keys:
        i = text.find(f"{RS}{key}{US}")
        if i >= 0:
            j = text.find(RS, i + 1)
            parts.append(text[i:j] if j >= 0 else text[i:])
    return "".join(parts)


def group_runs(reader: sqlite3.Connection, where: str | None, group_by: list[str],
               metrics: Sequence[str] | None = None, archived: bool = False, *,
               limit: int | None = None, offset: int = 0) -> GroupList:
    """The runs matching `where` (archived ones as in list_runs) grouped by the columns `group_by`
    (from expand_group_by), the group holding the newest run first; each group's `stats` for `metrics`
    (None: every metric its runs have, but sys/...). `limit`/`offset` pick which groups are decoded and
    measured; the result's `total` counts them all."""
    if not group_by:
        raise UsageError("Group by at least one param or tag.")
    bad = [c for c in group_by if c.partition(".")[0] not in NAMESPACES]
    if bad:
        raise UsageError(f"Cannot group by {bad[0]!r}: group by params.NAME or tags.NAME.")
    wanted = [c[7:] for c in group_by if c.startswith("params.")]
    tag_cols = [c[5:] for c in group_by if c.startswith("tags.")]
    now = time.time()
    where_sql, where_params = compile_filter(where, now, archived)
    sql = "SELECT runs.id, runs.params_key FROM runs" if wanted else "SELECT runs.id, '' FROM runs"
    if where_sql:
        sql += f" WHERE {where_sql}"
    sql += " ORDER BY runs.created DESC, runs.id DESC"
    with _snapshot(reader):  # the runs and their metrics read from one state of the store
        rows = reader.execute(sql, where_params).fetchall()
        if wanted and any(text is None for _, text in rows):  # params written since, not by set_values
            rows = _fill_keys(reader, rows)
        if wanted:
            others = [k for k in param_keys(reader) if k not in set(wanted)]
            if len(others) < len(wanted):  # fewer to cut out than to pick
                rows = [(rid, _cut(text, others)) for rid, text in rows]
            else:
                rows = [(rid, _pick(text, wanted)) for rid, text in rows]
        tags = [_tag_values(reader, key) for key in tag_cols]
        numbers: dict[tuple, int] = {}
        members: list[list[str]] = []
        where_of: list[int] = []  # the group number of each run, in the order of `rows`
        for rid, text in rows:
            gk = (text, *(t.get(rid) for t in tags)) if tags else (text,)
            g = numbers.get(gk)
            if g is None:
                g = numbers[gk] = len(members)
                members.append([])
            members[g].append(rid)
            where_of.append(g)
        out = GroupList()
        out.total, out.runs = len(members), len(rows)
        first = min(max(0, offset), len(members))
        last = len(members) if not limit else min(len(members), first + limit)
        keys = list(numbers)
        for g in range(first, last):
            gk, ids = keys[g], members[g]
            params = _segments(gk[0])
            key: dict[str, object] = {}
            for col in group_by:
                ns, _, name = col.partition(".")
                if ns == "params":
                    key[col] = _literal(params[name][1], params[name][0]) if name in params else None
                else:
                    found = gk[1 + tag_cols.index(name)]
                    key[col] = None if found is None else decode(*found)
            out.append(Group(key, len(ids), ids))
        if out:
            shown = sum(g.n for g in out)
            if shown * 4 < len(rows):
                _stats_of_few(reader, out, metrics)
            else:
                _stats_of_all(reader, out, metrics, first, where_of, [r[0] for r in rows])
    return out


def _fill_keys(reader: sqlite3.Connection, rows: list) -> list:
    import json

    missing = [rid for rid, text in rows if text is None]
    found = dict(reader.execute(f"SELECT id, {run_store.PARAMS_KEY_OF.format(run='runs.id')} FROM runs "
                                "WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(missing),)))
    return [(rid, found.get(rid, "") if text is None else text) for rid, text in rows]


class _snapshot:
    """Reads in one deferred transaction (one state of the store), unless the caller holds one already."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn, self.began = conn, False

    def __enter__(self) -> None:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")
            self.began = True

    def __exit__(self, *exc) -> None:
        if self.began:
            self.conn.execute("COMMIT")


def _tag_values(reader: sqlite3.Connection, key: str) -> dict[str, tuple]:
    return {rid: (value, kind) for rid, value, kind in
            reader.execute("SELECT run_id, value, type FROM tags WHERE key = ?", (key,))}


def _stats_of_few(reader: sqlite3.Connection, groups: list[Group], metrics: Sequence[str] | None) -> None:
    """Stats for groups holding a small part of the runs: their summary rows looked up by run."""
    import json

    group_of = {rid: g for g in groups for rid in g.run_ids}
    values: dict[int, dict[str, list[float]]] = {id(g): {} for g in groups}
    sql = "SELECT run_id, key, last FROM metric_summary WHERE run_id IN (SELECT value FROM json_each(?))"
    args: list = [json.dumps(list(group_of))]
    if metrics is not None:
        sql += " AND key IN (SELECT value FROM json_each(?))"
        args.append(json.dumps(list(metrics)))
    for rid, key, last in reader.execute(sql, args):
        if metrics is None and key.startswith("sys/"):
            continue
        per = values[id(group_of[rid])]
        if key not in per:
            per[key] = []
        if last is not None and math.isfinite(last):
            per[key].append(last)
    for g in groups:
        per = values[id(g)]
        g.stats = {k: stats_of(per.get(k, [])) for k in (list(metrics) if metrics is not None else sorted(per))}


def _stats_of_all(reader: sqlite3.Connection, groups: list[Group], metrics: Sequence[str] | None, first: int,
                  where_of: list[int], ids: list[str]) -> None:
    """Stats for groups holding much of the store: each metric read in one walk of the summary index
    (a lookup per run costs more) and summed per group with numpy."""
    import numpy as np

    keys = list(metrics) if metrics is not None else [k for k in metric_keys(reader) if not k.startswith("sys/")]
    count = len(groups)
    group_of = {rid: g - first for rid, g in zip(ids, where_of) if first <= g < first + count}
    for key in keys:
        pairs = reader.execute("SELECT run_id, last FROM metric_summary WHERE key = ?", (key,)).fetchall()
        g = np.fromiter((group_of.get(rid, -1) for rid, _ in pairs), dtype=np.int64, count=len(pairs))
        vals = np.fromiter((np.nan if last is None else last for _, last in pairs), dtype="f8", count=len(pairs))
        keep = (g >= 0) & np.isfinite(vals)
        g, v = g[keep], vals[keep]
        n = np.bincount(g, minlength=count)
        with np.errstate(all="ignore"):
            mean = np.bincount(g, weights=v, minlength=count) / n
            d = v - mean[g]
            var = np.bincount(g, weights=d * d, minlength=count) / (n - 1)
        lo = np.full(count, np.nan)
        hi = np.full(count, np.nan)
        if g.size:
            order = np.lexsort((v, g))
            gs, vs = g[order], v[order]
            starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
            ends = np.r_[starts[1:], gs.size] - 1
            lo[gs[starts]], hi[gs[starts]] = vs[starts], vs[ends]
        for i, grp in enumerate(groups):
            k = int(n[i])
            if k == 0:
                if metrics is not None:
                    grp.stats[key] = MetricStats(0, None, None, None, None)
                continue
            grp.stats[key] = MetricStats(k, float(mean[i]), float(np.sqrt(var[i])) if k > 1 else None,
                                         float(lo[i]), float(hi[i]))


def stats_of(values: Sequence[float]) -> MetricStats:
    """n, mean, sample std (two passes, so a large offset costs no precision), min and max."""
    n = len(values)
    if n == 0:
        return MetricStats(0, None, None, None, None)
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return MetricStats(n, mean, std, min(values), max(values))


# -- series ----------------------------------------------------------------------------------------------
def group_series(reader: sqlite3.Connection, run_ids: Sequence[str], metric: str, points: int = 200) -> SeriesBand:
    """Mean, std, min, max and N of `metric` across runs, step by step. Runs that logged the same steps
    (at most `points` of them) are compared at those steps; otherwise every run is interpolated onto a
    common grid of `points` steps from the first step any run logged to the last, each run counting only
    between its own first and last step. NaN points are left out."""
    import numpy as np

    from mltui.store.metrics import read_series

    read = (read_series(reader, rid, metric)[:2] for rid in run_ids)
    return band_of([(np.asarray(x, dtype="f8"), np.asarray(y, dtype="f8")) for x, y in read], points)


def band_of(runs: Sequence[tuple], points: int = 200) -> SeriesBand:
    """group_series over series already read: (steps, values) numpy arrays per run, in step order."""
    import numpy as np

    series = [(x[keep], y[keep]) for x, y in runs if (keep := np.isfinite(y)).any()]
    if not series:
        return SeriesBand([], [], [], [], [], [])
    same = all(s[0].size == series[0][0].size and np.array_equal(s[0], series[0][0]) for s in series)
    union = np.unique(np.concatenate([s[0] for s in series]))
    if same and union.size <= points:
        grid = series[0][0]
    elif union.size <= points:
        grid = union
    else:
        grid = np.linspace(union[0], union[-1], max(2, points))
    table = np.full((len(series), grid.size), np.nan)
    for i, (x, y) in enumerate(series):
        inside = (grid >= x[0]) & (grid <= x[-1])
        table[i, inside] = np.interp(grid[inside], x, y)
    n = np.sum(~np.isnan(table), axis=0)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (n = 0) stay NaN
            mean = np.nanmean(table, axis=0)
            std = np.where(n > 1, np.nanstd(table, axis=0, ddof=1) if len(series) > 1 else np.nan, np.nan)
            lo, hi = np.nanmin(table, axis=0), np.nanmax(table, axis=0)
    keep = n > 0
    return SeriesBand(grid[keep].tolist(), mean[keep].tolist(), std[keep].tolist(), lo[keep].tolist(),
                      hi[keep].tolist(), n[keep].astype(int).tolist())
