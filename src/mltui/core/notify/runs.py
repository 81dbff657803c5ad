"""The events of a run's life, built from its row: finished, failed, lost (`run_ended`), stalled and
speaking again (`run_stalled`, `run_resumed`). Each reads the run as the store has it and emits; none
raises (the run's own bookkeeping matters more than telling anyone about it)."""

from __future__ import annotations

import sqlite3

from mltui.core.workspace import Workspace

ENDINGS = {"finished": "run.finished", "failed": "run.failed", "lost": "run.lost"}  # killed: someone chose it


def _run(conn: sqlite3.Connection, run_id: str) -> dict | None:
    from mltui.store.runs import get_runs

    found = get_runs(conn, [run_id])
    return found[0] if found else None


def _details(run: dict) -> dict:
    started, ended = run.get("started"), run.get("ended")
    return {"run": run["id"], "name": run["name"], "run_kind": run.get("kind"), "status": run["status"],
            "reason": run.get("reason"), "exit_code": run.get("exit_code"), "user": run.get("user"),
            "host": run.get("host"), "started": started, "ended": ended,
            "duration": (ended - started) if started and ended else None, "executor": run.get("executor"),
            "job_id": run.get("job_id")}


def run_ended(ws: Workspace, conn: sqlite3.Connection, run_id: str) -> int:
    """Emit run.finished / run.failed / run.lost for a run that has just ended (read back from the store,
    so what is told is what was recorded); 0 for a killed or unended run, or when anything goes wrong."""
    from mltui.core.notify.events import emit, note

    try:
        run = _run(conn, run_id)
        if run is None or run["status"] not in ENDINGS:
            return 0
        status = run["status"]
        why = f": {run['reason']}" if run.get("reason") and status != "finished" else ""
        subject = f"Run {run['name']} ({run['id']}) {status}{why}"
        return emit(ws, ENDINGS[status], subject, _details(run), conn)
    except Exception as exc:
        note(ws, f"could not tell the end of run {run_id}: {type(exc).__name__}: {exc}")
        return 0


def endings_since(ws: Workspace, conn: sqlite3.Connection, before: dict[str, str]) -> list[int]:
    """Emit the end of each run of `before` (id -> status read before a change) whose status has moved
    to finished, failed or lost since; for writers that change many runs at once (a Slurm poll)."""
    out = []
    try:
        ids = list(before)
        import json

        now = dict(conn.execute("SELECT id, status FROM runs WHERE id IN (SELECT value FROM json_each(?))",
                                (json.dumps(ids),)).fetchall())
    except Exception:
        return out
    for run_id, old in before.items():
        new = now.get(run_id)
        if new != old and new in ENDINGS:
            out.append(run_ended(ws, conn, run_id))
    return out


def run_stalled(ws: Workspace, conn: sqlite3.Connection, run_id: str, since: float, stall_seconds: float,
                now: float) -> int:
    """run.stalled: alive, but no output line and no metric since `since`."""
    from mltui.base.text import span
    from mltui.core.notify.events import emit, note

    try:
        run = _run(conn, run_id)
        if run is None:
            return 0
        silent = max(0.0, now - since)
        subject = f"Run {run['name']} ({run['id']}) stalled: no output and no metric for {span(silent)}"
        details = {**_details(run), "stalled_since": since, "silent_seconds": silent, "stall_seconds": stall_seconds}
        return emit(ws, "run.stalled", subject, details, conn)
    except Exception as exc:
        note(ws, f"could not tell that run {run_id} stalled: {type(exc).__name__}: {exc}")
        return 0


def run_resumed(ws: Workspace, conn: sqlite3.Connection, run_id: str, since: float, now: float) -> int:
    """run.resumed: a stalled run wrote output or a metric again."""
    from mltui.base.text import span
    from mltui.core.notify.events import emit, note

    try:
        run = _run(conn, run_id)
        if run is None:
            return 0
        subject = f"Run {run['name']} ({run['id']}) is making progress again after {span(max(0.0, now - since))} of silence"
        return emit(ws, "run.resumed", subject, {**_details(run), "stalled_since": since}, conn)
    except Exception as exc:
        note(ws, f"could not tell that run {run_id} resumed: {type(exc).__name__}: {exc}")
        return 0
