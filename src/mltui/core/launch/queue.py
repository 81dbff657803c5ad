"""The run queue: queued runs wait in the store; one worker per workspace starts them when resources allow.

The worker (`python -m mltui.core.launch.queue WS`) holds an exclusive lock on `.mltui/queue.lock`, so a
second one started at the same moment leaves at once. Runs that ask for GPUs start when enough GPUs
with the asked-for memory are free and not given to another run (CUDA_VISIBLE_DEVICES tells the run
which); runs that ask for none start while fewer than `queue.max_parallel` such runs are running.
The worker leaves when the queue is empty or paused; launching or resuming starts it again.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

from mltui.core.workspace import Workspace
from mltui.core.reader import open_writer
from mltui.store import runs as run_store
from mltui.store.connection import write_tx
from mltui.store.schema import set_meta

POLL = 0.3
PAUSED_KEY = "queue_paused"


def queued(conn: sqlite3.Connection) -> list[dict]:
    """Queued runs, oldest first, with what they ask for."""
    out = []
    for run_id, name, created, spec_text in conn.execute(
        "SELECT id, name, created, spec FROM runs WHERE status = 'queued' AND executor IS NOT 'slurm' "
        "ORDER BY created, id"  # Slurm queues its own
    ):
        spec = json.loads(spec_text) if spec_text else {}
        out.append({"id": run_id, "name": name, "created": created, "gpus": int(spec.get("gpus") or 0),
                    "gpu_mem": spec.get("gpu_mem"), "command": spec.get("command"), "params": spec.get("params", {})})
    return out


def is_paused(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (PAUSED_KEY,)).fetchone()
    return bool(row and int(row[0]))


def running_count(conn: sqlite3.Connection) -> int:
    """How many runs mltui launched (they have a spec) are running now."""
    return conn.execute("SELECT count(*) FROM runs WHERE status = 'running' AND spec IS NOT NULL").fetchone()[0]


def set_paused(ws: Workspace, paused: bool) -> None:
    conn = open_writer(ws)
    try:
        with write_tx(conn, ws.db_path):
            set_meta(conn, PAUSED_KEY, int(paused))
    finally:
        conn.close()
    if not paused:
        from mltui.core.launch.launcher import ensure_worker

        ensure_worker(ws)


def remove(ws: Workspace, conn: sqlite3.Connection, run_ids: list[str]) -> list[str]:
    """Take queued runs out of the queue and the store. Runs that already started are refused."""
    import shutil

    from mltui.base.errors import MltuiError

    with write_tx(conn, ws.db_path):
        for run_id in run_ids:
            status = run_store.run_status(conn, run_id)
            if status != "queued":
                raise MltuiError(f"Run {run_id} is not queued (it is {status or 'gone'}); "
                                 "use `mltui runs kill` for a started run.")
        for run_id in run_ids:
            run_store.delete_run(conn, run_id, only_queued=True)
    for run_id in run_ids:
        shutil.rmtree(ws.run_dir(run_id), ignore_errors=True)
    return run_ids


class Worker:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.config = ws.config()
        self.conn = open_writer(ws)
        self.gpus = None
        self._lock_fd: int | None = None

    def lock(self) -> bool:
        fd = os.open(self.ws.root / "queue.lock", os.O_RDWR | os.O_CREAT, self.config.file_mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def serve(self) -> int:
        from mltui.core.launch.liveness import reap_lost

        if not self.lock():
            return 0
        while True:
            try:
                if not self._round(reap_lost):
                    return 0
            except Exception as exc:  # a store locked for long, a full disk: wait and try again, never die
                print(f"queue worker: {type(exc).__name__}: {exc}; trying again", file=sys.stderr, flush=True)
                time.sleep(POLL * 10)
                if self._lock_fd is None and not self.lock():
                    return 0  # it failed between letting go and looking again; another worker has it

    def _round(self, reap_lost) -> bool:
        """One look at the queue; False when the worker should leave."""
        reap_lost(self.ws, self.conn, self.config.lost_after_seconds)
        waiting = queued(self.conn)
        if not waiting or is_paused(self.conn):
            # Leave, then look once more: a run queued just before we let go of the lock
            # either shows up now, or its launcher's worker got the lock.
            self.unlock()
            return bool(queued(self.conn) and not is_paused(self.conn) and self.lock())
        self.start_what_fits(waiting)
        time.sleep(POLL)
        return True

    def start_what_fits(self, waiting: list[dict]) -> list[str]:
        from contextlib import nullcontext

        from mltui.core.launch.launcher import gpu_lock

        with gpu_lock(self.ws) if any(run["gpus"] for run in waiting) else nullcontext():
            return self._start_what_fits(waiting)

    def _start_what_fits(self, waiting: list[dict]) -> list[str]:
        from mltui.core.launch.launcher import busy_gpus

        started = []
        running_cpu = self.conn.execute(
            "SELECT count(*) FROM runs WHERE status = 'running' AND spec IS NOT NULL AND gpus IS NULL"
        ).fetchone()[0]
        busy = busy_gpus(self.conn)
        devices = None
        for run in waiting:
            if run["gpus"] == 0:
                if running_cpu >= self.config.max_parallel:
                    continue
                if self._start(run["id"], None):
                    running_cpu += 1
                    started.append(run["id"])
                continue
            if devices is None:
                devices = self._devices()
            from mltui.core.gpu.sources import pick_gpus

            picked = pick_gpus(devices, run["gpus"], run["gpu_mem"], busy)
            if picked is not None and self._start(run["id"], picked):
                busy.update(picked)
                started.append(run["id"])
        return started

    def _devices(self):
        from mltui.core.gpu.sources import open_gpus

        if self.gpus is None:
            self.gpus = open_gpus(self.config.gpu_backend)
        return self.gpus.devices()

    def _start(self, run_id: str, gpus: list[int] | None) -> bool:
        from mltui.core.launch.launcher import start_supervisor

        with write_tx(self.conn, self.ws.db_path):
            claimed = run_store.claim_queued(self.conn, run_id, gpus, time.time())
        if not claimed:
            return False  # removed or killed while we looked
        try:
            start_supervisor(self.ws, run_id)
        except Exception as exc:
            with write_tx(self.conn, self.ws.db_path):
                run_store.mark_failed(self.conn, run_id, f"the queue could not start its supervisor: {exc}")
            return False
        return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m mltui.core.launch.queue WORKSPACE", file=sys.stderr)
        return 2
    return Worker(Workspace(Path(args[0]))).serve()


if __name__ == "__main__":
    raise SystemExit(main())
