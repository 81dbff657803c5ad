"""A launched run whose node cannot reach the store (SQLite on a shared filesystem that is missing,
read-only or locked there): the command still runs, and the run folder carries what happened.

The supervisor falls back to this when it cannot open the store. The command runs with the same
environment, its output goes to output.log, its metrics to metrics.jsonl (the tracking API falls
back to nothing here; JSON lines are the way), and its exit code to a file `exit_code`. Whoever
next looks at the run from a machine with the store (`slurm.refresh`) ingests metrics.jsonl and
records the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mltui.core.launch.child_env import child_env
from mltui.core.workspace import Workspace

JOB_FILE = "job.json"  # the command, written at submit time, readable without the store
EXIT_FILE = "exit_code"


def write_job(run_dir: Path, argv: list[str], cwd: str, env: dict | None = None) -> None:
    (run_dir / JOB_FILE).write_text(json.dumps({"argv": argv, "cwd": cwd, "env": env or {}}), encoding="utf-8")


def run_without_store(ws: Workspace, run_id: str, why: str) -> int:
    run_dir = ws.run_dir(run_id)
    try:
        job = json.loads((run_dir / JOB_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"supervisor: no store ({why}) and no {JOB_FILE} ({exc}); nothing to run", file=sys.stderr)
        return 1
    print(f"supervisor: the store cannot be reached here ({why}); running without it: metrics.jsonl and "
          f"{EXIT_FILE} carry the run", file=sys.stderr, flush=True)
    with open(run_dir / "output.log", "ab") as out:
        try:
            child = subprocess.Popen(job["argv"], cwd=job["cwd"], env=child_env(ws, run_id, run_dir, None, job["env"]),
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, process_group=0)
        except OSError as exc:
            out.write(f"mltui: cannot start {job['argv'][0]!r}: {exc.strerror or exc}\n".encode())
            _write_exit(run_dir, 127)
            return 127

    def forward(signum, _frame):
        try:
            os.killpg(child.pid, signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2):
        signal.signal(sig, forward)
    code = child.wait()
    _write_exit(run_dir, code)
    return code if code >= 0 else 128 - code


def _write_exit(run_dir: Path, code: int) -> None:
    (run_dir / EXIT_FILE).write_text(f"{code} {time.time()}\n", encoding="utf-8")


def read_exit(run_dir: Path) -> tuple[int, float] | None:
    try:
        code, when = (run_dir / EXIT_FILE).read_text(encoding="utf-8").split()
        return int(code), float(when)
    except (OSError, ValueError):
        return None


def ingest(ws: Workspace, conn, run_id: str) -> tuple[str, str, int, float] | None:
    """Metrics from metrics.jsonl into the store, and (status, reason, exit code, end) from the exit file;
    None when the run left no exit file."""
    from mltui.core.launch.jsonl_tail import JsonlTail
    from mltui.store import metrics as metric_store
    from mltui.store.connection import write_tx

    run_dir = ws.run_dir(run_id)
    ended = read_exit(run_dir)
    if ended is None:
        return None
    tail = JsonlTail(run_dir / "metrics.jsonl")
    while True:
        columns = tail.read(final=True)
        if columns:
            with write_tx(conn, ws.db_path):
                metric_store.write_batch(conn, run_id, columns)
        if not tail.more:
            break
    code, when = ended
    status = "finished" if code == 0 else "failed"
    reason = "ran without the store; " + ("it finished" if code == 0 else f"the command exited with code {code}")
    return status, reason, code, when
