"""The one writer of the pipeline tables: each stage's last successful execution (`pipeline_stages`,
what dvc.lock holds), the run cache's index (`pipeline_cache`) and the steps of each repro
(`pipeline_steps`, for resuming after a crash, the log and the TUI's live view)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mltui.store.connection import write_tx

STEP_STATES = ("waiting", "running", "done", "restored", "up to date", "failed", "skipped")


@dataclass
class LastRun:
    """A stage's last successful execution."""

    fingerprint: str
    command: list[str]
    params: dict[str, Any]
    deps: dict[str, str | None]
    outs: dict[str, str | None]
    run_id: str | None
    time: float


def last_runs(conn: sqlite3.Connection, project: str) -> dict[str, LastRun]:
    out = {}
    for stage, fp, command, params, deps, outs, run_id, when in conn.execute(
            "SELECT stage, fingerprint, command, params, deps, outs, run_id, time FROM pipeline_stages "
            "WHERE project = ?", (project,)):
        out[stage] = LastRun(fp, json.loads(command), json.loads(params), json.loads(deps), json.loads(outs),
                             run_id, when)
    return out


def dep_files(conn: sqlite3.Connection, project: str, stage: str) -> bytes | None:
    row = conn.execute("SELECT dep_files FROM pipeline_stages WHERE project = ? AND stage = ?",
                       (project, stage)).fetchone()
    return row[0] if row else None


def record_success(conn: sqlite3.Connection, db_path, project: str, stage: str, last: LastRun,
                   files_blob: bytes | None, cache_outs: Mapping[str, Any] | None) -> None:
    """The stage's new last execution, and its outs in the run cache under its fingerprint."""
    with write_tx(conn, db_path):
        conn.execute(
            "INSERT INTO pipeline_stages(project, stage, fingerprint, command, params, deps, outs, run_id, time, "
            "dep_files) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(project, stage) DO UPDATE SET "
            "fingerprint = excluded.fingerprint, command = excluded.command, params = excluded.params, "
            "deps = excluded.deps, outs = excluded.outs, run_id = excluded.run_id, time = excluded.time, "
            "dep_files = coalesce(excluded.dep_files, dep_files)",
            (project, stage, last.fingerprint, json.dumps(last.command), json.dumps(last.params, default=str),
             json.dumps(last.deps), json.dumps(last.outs), last.run_id, last.time, files_blob))
        if cache_outs is not None:
            conn.execute("INSERT OR REPLACE INTO pipeline_cache(fingerprint, stage, outs, run_id, created) "
                         "VALUES (?,?,?,?,?)", (last.fingerprint, stage, json.dumps(cache_outs), last.run_id,
                                                time.time()))


def cached_outs(conn: sqlite3.Connection, fp: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT outs FROM pipeline_cache WHERE fingerprint = ?", (fp,)).fetchone()
    return json.loads(row[0]) if row else None


def cache_shas(conn: sqlite3.Connection) -> set[str]:
    """Every cache object the run cache refers to (so gc keeps them)."""
    shas: set[str] = set()
    for (outs,) in conn.execute("SELECT outs FROM pipeline_cache"):
        for out in json.loads(outs).values():
            shas.update(row[3] for row in out.get("rows", []) if row[1] == "file" and row[3])
    return shas


# -- steps of one repro ----------------------------------------------------------------------------
def set_step(conn: sqlite3.Connection, db_path, pipeline_id: str, stage: str, state: str, *,
             run_id: str | None = None, fingerprint: str | None = None, job_id: str | None = None,
             reason: str | None = None) -> None:
    now = time.time()
    ended = now if state in ("done", "restored", "up to date", "failed", "skipped") else None
    with write_tx(conn, db_path):
        conn.execute(
            "INSERT INTO pipeline_steps(pipeline_id, stage, state, run_id, fingerprint, job_id, reason, started, "
            "ended) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(pipeline_id, stage) DO UPDATE SET state = excluded.state, "
            "run_id = coalesce(excluded.run_id, run_id), fingerprint = coalesce(excluded.fingerprint, fingerprint), "
            "job_id = coalesce(excluded.job_id, job_id), reason = excluded.reason, "
            "started = coalesce(started, excluded.started), ended = excluded.ended",
            (pipeline_id, stage, state, run_id, fingerprint, job_id, reason, now if state == "running" else None,
             ended))


def steps(conn: sqlite3.Connection, pipeline_id: str) -> list[dict[str, Any]]:
    cur = conn.execute("SELECT stage, state, run_id, fingerprint, job_id, reason, started, ended FROM pipeline_steps "
                       "WHERE pipeline_id = ? ORDER BY coalesce(started, ended, 0)", (pipeline_id,))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur]


def unfinished(conn: sqlite3.Connection, stage: str, fp: str) -> tuple[str, str] | None:
    """(run id, its status) of an earlier repro's step that started this very fingerprint and was never
    recorded (its repro was killed): the run may still be running, or have finished meanwhile."""
    row = conn.execute(
        "SELECT s.run_id, r.status FROM pipeline_steps s JOIN runs r ON r.id = s.run_id "
        "WHERE s.stage = ? AND s.fingerprint = ? AND s.state = 'running' ORDER BY s.started DESC LIMIT 1",
        (stage, fp)).fetchone()
    return (row[0], row[1]) if row else None


def settle_orphans(conn: sqlite3.Connection, db_path, stage: str, fp: str, state: str, reason: str) -> None:
    """Steps of killed repros that ran `fp` are settled by the repro that adopted their run."""
    with write_tx(conn, db_path):
        conn.execute("UPDATE pipeline_steps SET state = ?, reason = ?, ended = ? WHERE stage = ? AND fingerprint = ? "
                     "AND state = 'running'", (state, reason, time.time(), stage, fp))


def in_flight(conn: sqlite3.Connection, stages: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Stage -> its running step (of any repro) with the run's status, for `pipeline status`."""
    out: dict[str, dict[str, Any]] = {}
    for stage, run_id, status, pid in conn.execute(
            "SELECT s.stage, s.run_id, r.status, s.pipeline_id FROM pipeline_steps s LEFT JOIN runs r ON r.id = s.run_id "
            "WHERE s.state IN ('running', 'waiting') ORDER BY s.started"):
        if stage in stages:
            out[stage] = {"run_id": run_id, "status": status, "pipeline_id": pid}
    return out


def pipeline_runs(conn: sqlite3.Connection, limit: int = 20) -> list[dict[str, Any]]:
    cur = conn.execute("SELECT id, name, status, created, ended, reason FROM runs WHERE kind = 'pipeline' "
                       "ORDER BY created DESC LIMIT ?", (limit,))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur]
