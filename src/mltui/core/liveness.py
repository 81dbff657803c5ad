"""Telling a run that is still going from one whose process died without a word (status `lost`).

Any mltui process that reads runs calls `reap_lost`: a running run is lost when its supervisor's
heartbeat is older than `lost_after_seconds`, or when the process that should report its end
(the supervisor, or the script itself for a run made by `mltui.init()`) is gone from this host.
The update is conditional on the status and heartbeat read, so a run that ends normally at the
same moment keeps its real status.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time

from mltui.core.workspace import Workspace

_host = socket.gethostname()


def proc_stat(pid: int | str) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after the command name (state first, then ppid, pgrp, ...);
    None when the process is gone or /proc cannot say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def pid_alive(pid: int | None) -> bool:
    """Whether `pid` is a live (not zombie) process on this host."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    fields = proc_stat(pid)
    return not fields or fields[0] not in (b"Z", b"X")


def process_start(pid: int | None) -> int | None:
    """When `pid` started (clock ticks since boot, /proc/<pid>/stat field 22); None if unknown or gone."""
    fields = proc_stat(pid) if pid else None
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def same_process(pid: int | None, started: int | None) -> bool:
    """Whether `pid` is alive and still the process that started at `started` (not a reused pid)."""
    if not pid_alive(pid):
        return False
    return started is None or process_start(pid) in (None, started)


def lost_candidates(conn: sqlite3.Connection, lost_after: float, now: float | None = None) -> list[tuple]:
    """(id, heartbeat, why) for running runs that look dead. Reads only."""
    now = time.time() if now is None else now
    out = []
    for run_id, host, pid, sup_pid, heartbeat, spec, created in conn.execute(
        "SELECT id, host, pid, sup_pid, heartbeat, spec, created FROM runs WHERE status = 'running'"
    ):
        if sup_pid is None and pid is None and spec is not None:
            if now - (heartbeat or created) > lost_after:  # launched, but no supervisor ever said a word
                out.append((run_id, heartbeat, "its supervisor never started"))
        elif sup_pid is not None:
            if heartbeat is not None and now - heartbeat > lost_after:
                out.append((run_id, heartbeat, f"its supervisor stopped sending heartbeats ({int(now - heartbeat)}s ago)"))
            elif host == _host and not pid_alive(sup_pid):
                out.append((run_id, heartbeat, f"its supervisor (pid {sup_pid}) is gone"))
        elif host == _host and pid is not None and not pid_alive(pid):
            out.append((run_id, heartbeat, f"its process (pid {pid}) ended without finishing the run"))
    return out


def reap_lost(ws: Workspace, conn: sqlite3.Connection, lost_after: float | None = None) -> list[str]:
    """Mark dead running runs `lost`; returns their ids. Opens a writer only when there is work."""
    if lost_after is None:
        lost_after = ws.config().lost_after_seconds
    try:
        if conn.execute("SELECT 1 FROM runs WHERE executor = 'slurm' LIMIT 1").fetchone():
            from mltui.core.slurm import refresh

            refresh(ws, conn)  # what only Slurm knows: waiting and why, time limits, cancels, vanished jobs
    except (sqlite3.Error, OSError):
        pass
    try:
        found = lost_candidates(conn, lost_after)
    except sqlite3.Error:
        return []
    if not found:
        return []
    from mltui.core.errors import MltuiError
    from mltui.store.connection import open_store, write_tx

    marked = []
    try:
        writer = open_store(ws.db_path, file_mode=ws.config().file_mode)
    except MltuiError:
        return []  # a read-only store: show what it says
    try:
        with write_tx(writer, ws.db_path):
            now = time.time()
            for run_id, heartbeat, why in found:
                cur = writer.execute(
                    "UPDATE runs SET status = 'lost', reason = ?, ended = coalesce(ended, ?) "
                    "WHERE id = ? AND status = 'running' AND heartbeat IS ?",
                    (f"lost: {why}", now, run_id, heartbeat),
                )
                if cur.rowcount:
                    marked.append(run_id)
    except MltuiError:
        return []
    finally:
        writer.close()
    return marked
