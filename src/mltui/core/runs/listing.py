"""Runs as the CLI and the TUI see them: listing with --where/--sort, one run in full, removal, and the
small reads commands need (full ids from prefixes, a run's status, Slurm job id, metric points)."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mltui.base.errors import MltuiError, UsageError
from mltui.core.workspace import Workspace
from mltui.store import metrics as metric_store
from mltui.store import runs as run_store
from mltui.store.connection import write_tx
from mltui.store.where import compile_filter, compile_sort, compile_where


@dataclass
class RunList:
    total: int  # how many runs matched, before the limit
    runs: list[dict] = field(default_factory=list)


def list_runs(
    conn: sqlite3.Connection,
    where: str | None = None,
    sort: str | None = None,
    limit: int | None = 100,
    offset: int = 0,
    details: bool = True,
    archived: bool = False,
) -> RunList:
    """Matching runs, each with its params, tags and metric summary (`details`). Archived runs are left
    out unless `archived` or the filter names `archived`."""
    if limit is not None and limit < 0:
        raise UsageError("--limit must be 0 (no limit) or a positive number.")
    ids = select_ids(conn, where, sort, archived)
    page = ids[offset : offset + limit] if limit else ids[offset:]
    runs = run_store.get_runs(conn, page)
    if details:
        attach_details(conn, runs)
    return RunList(total=len(ids), runs=runs)


def select_ids(conn: sqlite3.Connection, where: str | None = None, sort: str | None = None,
               archived: bool = False) -> list[str]:
    """The ids of every matching run in order (newest first unless `sort`); archived ones as in list_runs."""
    now = time.time()
    where_sql, where_params = compile_filter(where, now, archived)
    order_sql, order_params = compile_sort(sort, now) if sort and sort.strip() else (None, [])
    return run_store.select_ids(conn, where_sql, where_params, order_sql, order_params)


BATCH = 2000  # runs read at a time by iter_runs


def iter_runs(conn: sqlite3.Connection, ids: list[str], details: bool = True, batch: int = BATCH):
    """The runs of `ids` (from select_ids), in that order, a batch (a list) at a time with their params,
    tags and metric summaries: whole-result outputs write each batch before reading the next, so memory
    stays flat at any history size."""
    for start in range(0, len(ids), batch):
        runs = run_store.get_runs(conn, ids[start:start + batch])
        if details:
            attach_details(conn, runs)
        yield runs


PYTHON_JSON_UP_TO = 1000  # runs: a --json output of up to this many is encoded in Python (see iter_runs_json)


def iter_runs_json(conn: sqlite3.Connection, ids: list[str], batch: int = BATCH, python_up_to: int = PYTHON_JSON_UP_TO):
    """The runs of `ids` as compact JSON texts (what `--json` prints for each, params, tags and metric
    summary included), a batch (a list of texts) at a time.

    Up to `python_up_to` runs (a usual `runs list --json`) are encoded here, in Python: each real in the
    shortest text that reads back as it (0.1), -0.0 with its sign. Past that, SQLite writes each run's
    whole text, so 100,000 runs take seconds; its reals have 17 significant digits (0.10000000000000001:
    the same double, read by any JSON parser), and a run it cannot write exactly (store/run_json.py) is
    encoded here. Those batches are written by worker processes (SQLite's text building does not spread
    over threads)."""
    import json

    from mltui.base.values import jsonable
    from mltui.store.run_json import map_batches, runs_json

    def encode(runs: list[dict]) -> list[str]:
        return [json.dumps(jsonable(run), ensure_ascii=False, separators=(",", ":")) for run in runs]

    if len(ids) <= python_up_to:
        for start in range(0, len(ids), batch):
            yield encode(runs_by_id(conn, ids[start:start + batch], details=True))
        return

    def texts_of(own: sqlite3.Connection, part: list[str]) -> list[str]:
        texts = runs_json(own, part)
        odd = [rid for rid, text in texts.items() if text is None]
        if odd:
            runs = runs_by_id(own, odd, details=True)
            texts.update(zip((run["id"] for run in runs), encode(runs)))
        return [texts[rid] for rid in part if texts.get(rid) is not None]

    yield from map_batches(conn, texts_of, (ids[start:start + batch] for start in range(0, len(ids), batch)),
                           processes=True)


def check_where(text: str) -> None:
    """Raise UsageError (one sentence on what is wrong) unless `text` is a --where filter list_runs takes."""
    compile_where(text)


def attach_details(conn: sqlite3.Connection, runs: list[dict]) -> None:
    ids = [r["id"] for r in runs]
    params = run_store.values_for(conn, "params", ids)
    tags = run_store.values_for(conn, "tags", ids)
    summaries = metric_store.summaries(conn, ids)
    for run in runs:
        run["params"] = params[run["id"]]
        run["tags"] = tags[run["id"]]
        run["metrics"] = summaries[run["id"]]


def get_run(conn: sqlite3.Connection, prefix: str) -> dict:
    """One run in full (params, tags, metric summary, artifacts, the dataset versions it used), found by id
    or unique id prefix."""
    run_id = run_store.resolve_id(conn, prefix)
    runs = run_store.get_runs(conn, [run_id])
    attach_details(conn, runs)
    run = runs[0]
    run["artifacts"] = run_store.artifacts_for(conn, run_id)
    from mltui.core.data.lineage import inputs_of

    run["data"] = inputs_of(conn, run_id)
    return run


ACTIVE = run_store.ACTIVE  # the statuses of a run that has not ended (queued, running)


def resolve_id(conn: sqlite3.Connection, prefix: str) -> str:
    """The full id of the one run whose id starts with `prefix` (like git); NotFound or UsageError else."""
    return run_store.resolve_id(conn, prefix)


def unique_ids(conn: sqlite3.Connection, prefixes: list[str] | tuple[str, ...]) -> list[str]:
    """The full ids of these prefixes, each once, in the order given (every prefix is checked first)."""
    return list(dict.fromkeys(run_store.resolve_ids(conn, prefixes)))


def runs_by_id(conn: sqlite3.Connection, run_ids: list[str], details: bool = False) -> list[dict]:
    """Run rows in the order of `run_ids` (missing ids skipped); with `details` their params, tags and
    metric summaries too."""
    runs = run_store.get_runs(conn, run_ids)
    if details:
        attach_details(conn, runs)
    return runs


def run_status(conn: sqlite3.Connection, run_id: str) -> str | None:
    """A run's status now, or None once it is gone from the store."""
    return run_store.run_status(conn, run_id)


def job_id(conn: sqlite3.Connection, run_id: str) -> str | None:
    """The Slurm job id of a run submitted to Slurm (None before submission, or for a local run)."""
    row = conn.execute("SELECT job_id FROM runs WHERE id = ?", (run_id,)).fetchone()
    return row[0] if row else None


def active_launched(conn: sqlite3.Connection) -> list[str]:
    """Ids of the runs mltui launched (they have a spec) that are still queued or running."""
    return [r[0] for r in conn.execute(
        "SELECT id FROM runs WHERE status IN ('running', 'queued') AND spec IS NOT NULL")]


def metric_summary(conn: sqlite3.Connection, run_id: str) -> dict[str, dict]:
    """One run's metrics: key -> last, min, max, last step and number of points."""
    return metric_store.summaries(conn, [run_id])[run_id]


def metric_points(conn: sqlite3.Connection, run_id: str, key: str):
    """Every point of one metric of a run: (steps, values, times), three arrays in step order."""
    return metric_store.read_series(conn, run_id, key)


def remove_run(ws: Workspace, conn: sqlite3.Connection, prefix: str, force: bool = False) -> dict:
    """Delete a run from the store and its folder from disk. Refuses an active run unless forced."""
    run = run_store.get_runs(conn, [run_store.resolve_id(conn, prefix)])[0]
    if run["status"] in run_store.ACTIVE and not force:
        raise MltuiError(f"Run {run['id']} is {run['status']}; stop it first or pass --force.")
    with write_tx(conn, ws.db_path):
        run_store.delete_run(conn, run["id"])
    folder = ws.run_dir(run["id"])
    if folder.is_dir() and folder.resolve().parent == ws.runs_dir.resolve():
        shutil.rmtree(folder, ignore_errors=True)
    return run


def duration(run: dict, now: float | None = None) -> float | None:
    start = run.get("started")
    if start is None:
        return None
    end = run.get("ended") or (time.time() if now is None else now)
    return max(0.0, end - start)


def run_dir(ws: Workspace, run: dict) -> Path:
    return Path(run["run_dir"]) if run.get("run_dir") else ws.run_dir(run["id"])


def pick_columns(runs: list[dict], field: str, limit: int, varying: bool) -> list[str]:
    """The `field` keys (params or metrics) most worth a column: the most common (validation and
    test metrics first), and with `varying` only those whose value differs between the runs (when
    any do). System metrics (sys/...) are left out."""
    from mltui.base.values import display

    counts: Counter[str] = Counter()
    for run in runs:
        counts.update(k for k in run[field] if not k.startswith("sys/"))
    # validation and test metrics first: they are what people compare runs by
    keys = sorted(counts, key=lambda k: (-counts[k], not ("val" in k or "test" in k), k))
    if varying and len(runs) > 1:
        keys = [k for k in keys if len({display(r[field].get(k)) for r in runs}) > 1] or keys
    return keys[:limit]


def status_label(run: dict) -> str:
    """The status as a table shows it: a run waiting in Slurm says why ("queued: Resources"), a run on
    Slurm says so ("running@slurm"), a running run gone silent past runs.stall_seconds is "stalled"."""
    status = run["status"]
    if status == "running" and run.get("stalled_since") is not None:
        status = "stalled"
    if run.get("executor") != "slurm":
        return status
    reason = run.get("reason") or ""
    if status == "queued" and reason.startswith("waiting in Slurm: "):
        return f"queued: {reason.removeprefix('waiting in Slurm: ')}"
    return f"{status}@slurm"
