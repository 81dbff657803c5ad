"""Helpers shared by the tests that launch real runs: poll the store with a deadline, read a run's
output, tune the workspace config, and leave no process behind."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import time
from pathlib import Path

from mltui.store.runs import get_runs, values_for

ENDED = ("finished", "failed", "killed", "lost")


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05, what: str = "the condition"):
    """Poll `predicate` until it returns something truthy (returned); AssertionError at the deadline."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


async def until(pilot, predicate, timeout: float = 10.0, what: str = "the condition"):
    """Let a Textual app run until `predicate()` is truthy (returned); AssertionError at the deadline."""
    import asyncio

    end = time.monotonic() + timeout
    while True:
        await pilot.pause()
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.05)


def _connect(ws) -> sqlite3.Connection:
    return sqlite3.connect(ws.db_path, timeout=10)


def row(ws, run_id: str) -> dict:
    conn = _connect(ws)
    try:
        found = get_runs(conn, [run_id])
        assert found, f"run {run_id} is not in the store"
        return found[0]
    finally:
        conn.close()


def status(ws, run_id: str) -> str | None:
    conn = _connect(ws)
    try:
        got = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        return got[0] if got else None
    finally:
        conn.close()


def wait_status(ws, run_id: str, *wanted: str, timeout: float = 15.0) -> dict:
    wait_for(lambda: status(ws, run_id) in wanted, timeout,
             what=f"run {run_id} to be {'/'.join(wanted)} (it is {status(ws, run_id)})")
    return row(ws, run_id)


def wait_ended(ws, run_id: str, timeout: float = 15.0) -> dict:
    return wait_status(ws, run_id, *ENDED, timeout=timeout)


def params_of(ws, run_id: str) -> dict:
    conn = _connect(ws)
    try:
        return values_for(conn, "params", [run_id])[run_id]
    finally:
        conn.close()


def all_runs(ws) -> list[dict]:
    conn = _connect(ws)
    try:
        return get_runs(conn, [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY id")])
    finally:
        conn.close()


def output(ws, run_id: str) -> str:
    path = ws.run_dir(run_id) / "output.log"
    return path.read_text(errors="replace") if path.exists() else ""


def wait_output(ws, run_id: str, text: str, timeout: float = 15.0) -> None:
    """`text` is in the run's output, and the supervisor has recorded the command's pid (a child can print
    before its supervisor's write of pid/pgid lands)."""
    wait_for(lambda: text in output(ws, run_id), timeout, what=f"{text!r} in the output of {run_id}")
    wait_for(lambda: row(ws, run_id)["pid"] or status(ws, run_id) != "running", timeout,
             what=f"the pid of {run_id} in the store")


def configure(ws, **settings) -> None:
    """Set keys of the workspace's config.toml (heartbeat_seconds=0.2, max_parallel=2, backend="sim")."""
    text = ws.config_path.read_text()
    for key, value in settings.items():
        literal = json.dumps(value) if isinstance(value, str) else repr(value)
        text, n = re.subn(rf"(?m)^{re.escape(key)} = .*$", f"{key} = {literal}", text)
        assert n == 1, f"config.toml has no line for {key}"
    ws.config_path.write_text(text)


def _ours(pid: int, root: str) -> bool:
    """Whether a process belongs to the workspace at `root`: supervisors and the queue worker name it on
    their command line, children carry it in MLTUI_WORKSPACE."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if root.encode() in fh.read():
                return True
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return f"MLTUI_WORKSPACE={root}".encode() in fh.read().split(b"\0")
    except OSError:
        return False


def queue_workers(root) -> list[int]:
    """Pids of the queue workers of the workspace at `root` that are still running (a worker that has
    exited is gone, or a zombie whose command line is empty)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if b"mltui.core.launch.queue" in argv and str(root).encode() in argv:
            found.append(int(entry))
    return found


def wait_queue_idle(root, timeout: float = 15.0) -> None:
    """Until no queue worker of the workspace runs: every worker woken so far has looked at the queue
    and left (launch() and `mltui run --queue` start theirs before they return)."""
    wait_for(lambda: not queue_workers(root), timeout, what=f"the queue workers of {root} to leave")


def kill_workspace_processes(root: Path) -> list[int]:
    """SIGKILL every process started for the workspace at `root` (never this test process): what the
    runs table names, their groups, and anything else that names the workspace. Returns the pids."""
    if not root.is_dir():
        return []
    pids: set[int] = set()
    groups: set[int] = set()
    db = root / "mltui.db"
    if db.exists():
        try:
            conn = sqlite3.connect(db, timeout=5)
            try:
                with conn:  # queued runs would have the queue worker start them a moment later
                    conn.execute("UPDATE runs SET status = 'killed' WHERE status = 'queued'")
                for pid, pgid, sup_pid in conn.execute("SELECT pid, pgid, sup_pid FROM runs"):
                    pids.update(p for p in (pid, sup_pid) if p)
                    if pgid:
                        groups.add(pgid)
            finally:
                conn.close()
        except sqlite3.Error:
            pass
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != me and _ours(int(entry), str(root)):
            pids.add(int(entry))
    for pgid in groups - {os.getpgid(0)}:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in pids - {me}:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return sorted(pids - {me})
