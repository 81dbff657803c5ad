"""Telling a run that is still going from one whose process died without a word (status `lost`).

Any mltui process that reads runs calls `reap_lost`: a running run is lost when its supervisor's
heartbeat is older than `lost_after_seconds`, or when the process that should report its end
(the supervisor, or the script itself for a run made by `mltui.init()`) is gone from this host.
The update is conditional on the status and heartbeat read, so a run that ends normally at the
same moment keeps its real status.

The reason says why when it can: a supervisor that died (and whether its command still runs), a
machine that rebooted under the run (this host's boot id is not the run's), a process that ended
without a word; a node Slurm reported failed is said by slurm.py. A run whose process could not write
its end to the store (a full disk) and left it in its folder (`store_unwritable.json`) gets that end.
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
    boot = procs.boot_id()
    out = []
    for run_id, host, pid, sup_pid, heartbeat, spec, created, run_boot in conn.execute(
        "SELECT id, host, pid, sup_pid, heartbeat, spec, created, boot_id FROM runs WHERE status = 'running'"
    ):
        if host == procs.host and run_boot and boot and run_boot != boot:  # its pids mean nothing now
            out.append((run_id, heartbeat, "the machine rebooted while it ran (its boot id changed)"))
        elif sup_pid is None and pid is None and spec is not None:
            if now - (heartbeat or created) > lost_after:  # launched, but no supervisor ever said a word
                out.append((run_id, heartbeat, "its supervisor never started"))
        elif sup_pid is not None:
            if heartbeat is not None and now - heartbeat > lost_after:
                out.append((run_id, heartbeat, f"its supervisor stopped sending heartbeats ({int(now - heartbeat)}s ago)"))
            elif host == procs.host and not pid_alive(sup_pid):
                left = f"; its command (pid {pid}) still runs" if pid and pid_alive(pid) else ""
                out.append((run_id, heartbeat, f"its supervisor (pid {sup_pid}) is gone: it died or was killed{left}"))
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
    from mltui.core.runs.store_trouble import forget_spare_note, read_note
    from mltui.store.runs import mark_ended, mark_lost, note_store_trouble

    marked = []
    try:
        writer = open_writer(ws)
    except MltuiError:
        return []  # a read-only store: show what it says
    try:
        with write_tx(writer, ws.db_path):
            now = time.time()
            for run_id, heartbeat, why in found:
                note = read_note(ws.run_dir(run_id))
                if note and note.get("status") in ("finished", "failed", "killed") and note.get("reason"):
                    # its own last word, left in its folder when the store would not take it
                    ended = note.get("ended") if isinstance(note.get("ended"), (int, float)) else now
                    done = mark_ended(writer, run_id, note["status"], str(note["reason"]), ended,
                                      keep_ended=True, only_from=("running",), if_heartbeat=heartbeat)
                    if done and note.get("cause"):
                        note_store_trouble(writer, run_id, str(note["cause"]), int(note.get("dropped") or 0))
                else:
                    done = mark_lost(writer, run_id, f"lost: {why}", now, if_heartbeat=heartbeat)
                if done:
                    marked.append(run_id)
        for run_id in marked:
            forget_spare_note(ws.run_dir(run_id))
        from mltui.core.notify.runs import run_ended

        for run_id in marked:  # run.lost (or the end its note told): never raises, never waits
            run_ended(ws, writer, run_id)
    except MltuiError:
        return []
    finally:
        writer.close()
    return marked
