"""Stopping runs (`mltui runs kill`, the TUI's kill): ask, signal, and wait for the end to be recorded.

A run with a live supervisor on this host gets SIGTERM through it (the supervisor forwards it to the
command's group, SIGKILL after the grace period, and records the end); a request is also left on
the run, so a supervisor on another host stops it at its next heartbeat. A queued run is just taken
out of the queue; a Slurm job is cancelled through Slurm; a command whose supervisor died is
signalled here.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time

from mltui.base.errors import MltuiError
from mltui.core.reader import open_writer
from mltui.core.workspace import Workspace
from mltui.store import runs as run_store
from mltui.store.connection import write_tx


def kill_run(ws: Workspace, run_id: str, grace: float | None = None, wait: float | None = None) -> str:
    """Stop a run: SIGTERM to its group, SIGKILL after `grace` seconds. Returns the status it ends in
    (or 'running' if it has not ended within `wait` seconds)."""
    from mltui.base.procs import host, pid_alive, same_process

    config = ws.config()
    grace = config.kill_grace_seconds if grace is None else grace
    conn = open_writer(ws)
    try:
        runs = run_store.get_runs(conn, [run_id])
        if not runs:
            raise MltuiError(f"Run {run_id} is not in the store.")
        run = runs[0]
        if run.get("executor") == "slurm" and run.get("job_id") and run["status"] in ("queued", "running"):
            from mltui.core.launch.slurm import TERMINAL, cancel, refresh

            cancel(ws, conn, run)  # Slurm signals the job; its supervisor records the end, Slurm the verdict
            deadline = time.time() + (grace + 5.0 if wait is None else wait)
            while time.time() < deadline:
                refresh(ws, conn, force=True)
                now = run_store.get_runs(conn, [run_id])[0]
                if now["status"] not in ("queued", "running") and now.get("job_state") in TERMINAL:
                    return now["status"]
                time.sleep(0.2)
            return run_store.get_runs(conn, [run_id])[0]["status"]
        if run["status"] == "queued":
            with write_tx(conn, ws.db_path):
                removed = run_store.mark_ended(conn, run_id, "killed", "removed from the queue before it started",
                                               only_from=("queued",))
            if removed:
                return "killed"
            run = run_store.get_runs(conn, [run_id])[0]
        here = run.get("host") == host
        if run["status"] == "lost" and here and same_process(run.get("pid"), run.get("pid_start")):
            _kill_unsupervised(ws, conn, run, grace)  # its supervisor died; its command did not
            return "killed"
        if run["status"] != "running":
            raise MltuiError(f"Run {run_id} is {run['status']}; there is nothing to kill.")
        deadline = time.time() + grace
        with write_tx(conn, ws.db_path):
            run_store.request_kill(conn, run_id, deadline)
        if run.get("sup_pid") and here and not run.get("pid"):
            run = _wait_for_child(conn, run, 5.0)  # a signal before its handlers are set would kill it mute
            if run["status"] != "running":  # it saw the request before starting the command
                return wait_for_end(conn, run_id, 5.0)
        if run.get("sup_pid") and here and pid_alive(run["sup_pid"]):
            os.kill(run["sup_pid"], signal.SIGTERM)
        elif here and same_process(run.get("pid"), run.get("pid_start")):
            _kill_unsupervised(ws, conn, run, grace)
        elif not here:
            pass  # its supervisor sees the request at its next heartbeat
        else:
            _mark(ws, conn, run_id, "killed", "stopped by `mltui runs kill` (its processes were already gone)")
        return wait_for_end(conn, run_id, grace + 5.0 if wait is None else wait)
    finally:
        conn.close()


def _wait_for_child(conn: sqlite3.Connection, run: dict, timeout: float) -> dict:
    """The run once its supervisor has started the command (or has ended, or `timeout` passed)."""
    end = time.time() + timeout
    while time.time() < end:
        fresh = run_store.get_runs(conn, [run["id"]])[0]
        if fresh.get("pid") or fresh["status"] != "running":
            return fresh
        time.sleep(0.02)
    return run


def _kill_unsupervised(ws: Workspace, conn: sqlite3.Connection, run: dict, grace: float) -> None:
    """A run without a supervisor (or whose supervisor is gone): signal its processes ourselves."""
    from mltui.base.procs import pid_alive

    target = run.get("pgid") if run.get("sup_pid") else None  # launched: the whole group
    send = (lambda sig: os.killpg(target, sig)) if target else (lambda sig: os.kill(run["pid"], sig))
    try:
        send(signal.SIGTERM)
    except ProcessLookupError:
        pass
    end = time.time() + grace
    while time.time() < end and pid_alive(run["pid"]):
        time.sleep(0.1)
    if pid_alive(run["pid"]):
        try:
            send(signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.2)
    _mark(ws, conn, run["id"], "killed", "stopped by `mltui runs kill`")


def _mark(ws: Workspace, conn: sqlite3.Connection, run_id: str, status: str, reason: str) -> None:
    """The end, recorded here because no supervisor is left to: only over a run still running or lost."""
    with write_tx(conn, ws.db_path):
        run_store.mark_ended(conn, run_id, status, reason, only_from=("running", "lost"))


def wait_for_end(conn: sqlite3.Connection, run_id: str, timeout: float) -> str:
    """The run's status once it is neither running nor queued, or after `timeout` seconds."""
    end = time.time() + timeout
    while True:
        status = run_store.run_status(conn, run_id)
        if status is None:
            raise MltuiError(f"Run {run_id} left the store while it was being stopped.")
        if status not in run_store.ACTIVE or time.time() >= end:
            return status
        time.sleep(0.1)
