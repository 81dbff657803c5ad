"""Stalled runs: alive, but with no output line and no metric for `runs.stall_seconds`.

The supervisor asks with each heartbeat (`StallWatch.check`). Progress is anything new: the output log
grew, or the run's metric points grew in number, however they came (metrics.jsonl through the
supervisor, `mltui.init()` writing the store itself, a TensorBoard tail; not the supervisor's own
sys/gpuN samples). Both looks are cheap: one stat, and one indexed sum over the run's metric_summary rows.

A run that has been silent for stall_seconds is flagged once (runs.stalled_since = when it went silent)
and notified (run.stalled); the flag clears, and run.resumed is told, when it speaks again. A run's end
clears the flag too (store/runs.py mark_ended).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

from mltui.core.workspace import Workspace


class StallWatch:
    def __init__(self, ws: Workspace, conn: sqlite3.Connection, run_id: str, log_path: Path, stall_seconds: float,
                 started: float) -> None:
        self.ws = ws
        self.conn = conn
        self.run_id = run_id
        self.log_path = log_path
        self.stall_seconds = stall_seconds
        self.last_progress = started  # when output or a metric last arrived (at the latest look's precision)
        self.seen: tuple[int, int] | None = None
        self.stalled_since: float | None = None  # set while flagged

    def progress(self) -> tuple[int, int]:
        """(bytes of output, metric points) now."""
        try:
            size = os.stat(self.log_path).st_size
        except OSError:
            size = 0
        # the supervisor's own GPU samples (sys/gpuN/...) are not the run's progress
        row = self.conn.execute("SELECT coalesce(sum(count), 0) FROM metric_summary WHERE run_id = ? "
                                "AND key NOT LIKE 'sys/%'", (self.run_id,)).fetchone()
        return size, int(row[0])

    def check(self, now: float) -> None:
        """Flag or clear the stall as the run's progress says; never raises (a stall is a note, not a failure)."""
        if self.stall_seconds <= 0:
            return
        try:
            self._check(now)
        except Exception as exc:
            print(f"supervisor: cannot tell whether the run stalled: {type(exc).__name__}: {exc}", file=sys.stderr,
                  flush=True)

    def _check(self, now: float) -> None:
        from mltui.core.notify.runs import run_resumed, run_stalled
        from mltui.store import runs as run_store
        from mltui.store.connection import write_tx

        seen = self.progress()
        moved = self.seen is not None and seen != self.seen
        first = self.seen is None
        self.seen = seen
        if moved or (first and seen != (0, 0)):
            self.last_progress = now
        if moved and self.stalled_since is not None:
            since, self.stalled_since = self.stalled_since, None
            with write_tx(self.conn, self.ws.db_path):
                cleared = run_store.set_stalled(self.conn, self.run_id, None)
            if cleared:
                run_resumed(self.ws, self.conn, self.run_id, since, now)
            return
        if self.stalled_since is None and now - self.last_progress >= self.stall_seconds:
            self.stalled_since = self.last_progress
            with write_tx(self.conn, self.ws.db_path):
                flagged = run_store.set_stalled(self.conn, self.run_id, self.last_progress)
            if flagged:
                run_stalled(self.ws, self.conn, self.run_id, self.last_progress, self.stall_seconds, now)
