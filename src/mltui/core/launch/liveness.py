"""Telling a run that is still going from one whose process died without a word (status `lost`).

Any mltui process that reads runs calls `reap_lost`: a running run is lost when its supervisor's
heartbeat is older than `lost_after_seconds`, or when the process that should report its end
(the supervisor, or the script itself for a run made by `mltui.init()`) is gone from this host.
The update is conditional on the status and heartbeat read, so a run that ends normally at the
same moment keeps its real status.
"""

from __future__ import annotations

import sqlite3
import time

from mltui.base import procs
from mltui.base.procs import pid_alive
from mltui.core.workspace import Workspace


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
            elif host == procs.host and not pid_alive(sup_pid):
                out.append((run_id, heartbeat, f"its supervisor (pid {sup_pid}) is gone"))
        elif host == procs.host and pid is not None and not pid_alive(pid):
            out.append((run_id, heartbeat, f"its process (pid {pid}) ended without finishing the run"))
    return out


def reap_lost(ws: Workspace, conn: sqlite3.Connection, lost_after: float | None = None) -> list[str]:
    """Mark dead running runs `lost`; returns their ids. Opens a writer only when there is work."""
    if lost_after is None:
        lost_after = ws.config().lost_after_seconds
    try:
        if conn.execute("SELECT 1 FROM runs WHERE executor = 'slurm' LIMIT 1").fetchone():
            from mltui.core.launch.slurm import refresh

            refresh(ws, conn)  # what only Slurm knows: waiting and why, time limits, cancels, vanished jobs
    except (sqlite3.Error, OSError):
        pass
    try:
        found = lost_candidates(conn, lost_after)
    except sqlite3.Error:
        return []
    if not found:
        return []
    from mltui.base.errors import MltuiError
    from mltui.core.reader import open_writer
    from mltui.store.connection import write_tx

    marked = []
    try:
        writer = open_writer(ws)
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
