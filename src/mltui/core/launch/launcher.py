"""Launching runs: a row in the store, then a detached supervisor (or a place in the queue, or a
Slurm job); also the GPU choice under a lock, the queue worker's start, and reruns.

Nothing here waits for the command: the caller gets the run id back at once, and the run lives on
in its supervisor after the caller (a CLI call, the TUI) has gone. Stopping runs is stop.py's.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from mltui.core.launch.commands import Command, fill, plain, resolve_params
from mltui.base.errors import MltuiError, UsageError
from mltui.core.workspace import Workspace
from mltui.core.reader import open_writer
from mltui.store import runs as run_store
from mltui.store.connection import write_tx


def resolve_program(argv: list[str], cwd: str) -> list[str]:
    """`python`/`python3` mean the interpreter mltui runs in (as in Guild AI); anything else must exist."""
    if not argv:
        raise UsageError("There is no command to run.")
    program = argv[0]
    if program in ("python", "python3"):
        return [sys.executable, *argv[1:]]
    if os.sep in program:
        path = Path(cwd, program)
        if not path.exists():
            raise MltuiError(f"Cannot run {program!r}: there is no such file in {cwd}.")
        return argv
    if shutil.which(program) is None:
        raise MltuiError(f"Cannot run {program!r}: it is not on PATH.")
    return argv


class Launch:
    """What to start: argv (or a command and params), where, how many GPUs, queued or not."""

    def __init__(self, argv: Sequence[str] | None = None, *, command: Command | None = None,
                 params: Mapping[str, Any] | None = None, cwd: str | None = None, name: str | None = None,
                 kind: str | None = None, note: str | None = None, queue: bool = False, gpus: int = 0,
                 gpu_mem: float | None = None, parent_id: str | None = None, rerun_of: str | None = None,
                 slurm: Mapping[str, Any] | None = None, after: Sequence[str] = ()) -> None:
        self.command = command
        self.params = dict(params or {})
        if command is not None:
            self.params = resolve_params(command, self.params)
            argv = fill(command.template, self.params, command.name)
            cwd = cwd or str(command.project)
        self.params = {key: plain(value) for key, value in self.params.items()}  # typed spelling is for argv only
        if not argv:
            raise UsageError("There is no command to run: name one from mltui.toml or give it after --.")
        self.cwd = str(Path(cwd or os.getcwd()).absolute())
        self.argv = resolve_program(list(argv), self.cwd)
        self.name = name
        self.kind = kind or (command.kind if command is not None else "other")
        self.note = note
        self.queue = queue
        if gpus < 0 or (gpu_mem is not None and gpu_mem < 0):
            raise UsageError("--gpus and --gpu-mem cannot be negative.")
        self.gpus = gpus
        self.gpu_mem = gpu_mem
        self.parent_id = parent_id
        self.rerun_of = rerun_of
        # None: run on this machine; a dict (maybe empty): submit to Slurm with these options
        if slurm is not None:
            from mltui.core.launch.slurm import check_options

            slurm = check_options({**slurm, **({"gpus": gpus} if gpus else {})})
            if queue:
                raise UsageError("--queue is for this machine's queue; Slurm queues the job itself.")
        self.slurm = slurm
        self.after = list(after)  # Slurm job ids that must end well first (a pipeline stage's parents)
        if self.after and slurm is None:
            raise UsageError("Waiting for other jobs (afterok) is for Slurm runs only.")

    def spec(self) -> dict[str, Any]:
        """Everything needed to launch this again (rerun), kept on the run."""
        return {
            "command": self.command.name if self.command else None,
            "template": self.command.template if self.command else None,
            "params": self.params,
            "watch": self.command.watch if self.command else [],
            "queue": self.queue,
            "gpus": self.gpus,
            "gpu_mem": self.gpu_mem,
            "slurm": self.slurm,
        }

    def stem(self) -> str:
        """What the run is named after: the command's name, or the script an ad-hoc command runs."""
        if self.command:
            return self.command.name
        args = iter(self.argv[1:])
        for arg in args:
            if arg == "-m":  # python -m package.module
                return next(args, "run").rsplit(".", 1)[-1] or "run"
            if arg == "-c":  # python -c CODE: the code is no name
                break
            if not arg.startswith("-"):
                return Path(arg).stem or "run"
        return Path(self.argv[0]).stem or "run"


@contextmanager
def gpu_lock(ws: Workspace):
    """Held while GPUs are chosen and recorded (by a launch or the queue worker)."""
    import fcntl

    fd = os.open(ws.root / "gpu.lock", os.O_RDWR | os.O_CREAT, ws.config().file_mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def busy_gpus(conn: sqlite3.Connection) -> set[int]:
    busy: set[int] = set()
    for (text,) in conn.execute("SELECT gpus FROM runs WHERE status = 'running' AND gpus IS NOT NULL"):
        try:
            busy.update(int(g) for g in json.loads(text))
        except (ValueError, TypeError):
            pass
    return busy


def _gpus_now(ws: Workspace, conn: sqlite3.Connection, want: int, mem_gb: float | None, queue: bool) -> list[int] | None:
    from mltui.core.gpu.sources import open_gpus, pick_gpus

    source = open_gpus(ws.config().gpu_backend)
    devices = source.devices()
    if len(devices) < want:
        why = f" ({source.reason})" if getattr(source, "reason", "") else ""
        raise MltuiError(f"The run asks for {want} GPU{'s' if want > 1 else ''} but this machine has {len(devices)}{why}.")
    if mem_gb and sum(1 for d in devices if d.mem_total >= mem_gb * 2**30) < want:
        biggest = max(d.mem_total for d in devices) / 2**30
        raise MltuiError(f"The run asks for {mem_gb:g} GB on each of {want} GPU{'s' if want > 1 else ''}, but the "
                         f"largest GPU here has {biggest:.0f} GB in all.")
    if queue:
        return None  # the worker picks them when they are free
    picked = pick_gpus(devices, want, mem_gb, busy_gpus(conn))
    if picked is None:
        mem = f" with {mem_gb:g} GB free" if mem_gb else ""
        raise MltuiError(f"No {want} free GPU{'s' if want > 1 else ''}{mem} right now; add --queue to wait for them.")
    return picked


def launch(ws: Workspace, launch: Launch, wake_queue: bool = True) -> str:
    """Record the run and start it (or queue it); returns the run id at once.

    `wake_queue=False` leaves starting the queue worker to the caller (a sweep wakes it once)."""
    from mltui.core.runs.records import create_run

    conn = open_writer(ws)
    if launch.slurm is not None:
        try:
            return _launch_on_slurm(ws, conn, launch)
        finally:
            conn.close()
    try:
        # GPUs are chosen and recorded under one lock, so two launches at once cannot share one
        with gpu_lock(ws) if launch.gpus and not launch.queue else nullcontext():
            gpus = _gpus_now(ws, conn, launch.gpus, launch.gpu_mem, launch.queue) if launch.gpus else None
            fields = {
                "spec": json.dumps(launch.spec()),
                "gpus": json.dumps(gpus) if gpus is not None else None,
                "rerun_of": launch.rerun_of,
                "pid": None,
                "started": None,
                "heartbeat": None,
            }
            run_id = create_run(ws, name=launch.name, kind=launch.kind,
                                status="queued" if launch.queue else "running", command=launch.argv,
                                note=launch.note, parent_id=launch.parent_id, cwd=launch.cwd, git=False,
                                fields=fields, params=launch.params, stem=launch.stem(), conn=conn)
        if launch.queue:
            _keep_environment(ws, run_id)
        else:
            try:
                start_supervisor(ws, run_id, conn)
            except OSError as exc:  # no processes left (EAGAIN), no memory: the run must not stay "running"
                with write_tx(conn, ws.db_path):
                    run_store.mark_failed(conn, run_id, f"its supervisor could not be started ({exc.strerror or exc})")
                raise MltuiError(f"Cannot start run {run_id}: {exc.strerror or exc}.") from None
    finally:
        conn.close()
    if launch.queue and wake_queue:
        ensure_worker(ws)
    return run_id


def _launch_on_slurm(ws: Workspace, conn: sqlite3.Connection, launch: Launch) -> str:
    """Record the run as queued and submit its batch job; Slurm chooses the node and the GPUs."""
    from mltui.core.runs.records import create_run
    from mltui.core.launch.slurm import defaults, submit

    options = {**defaults(ws), **(launch.slurm or {})}
    fields = {"spec": json.dumps({**launch.spec(), "slurm": options}), "executor": "slurm",
              "rerun_of": launch.rerun_of, "pid": None, "started": None, "heartbeat": None,
              "reason": "submitting to Slurm"}
    run_id = create_run(ws, name=launch.name, kind=launch.kind, status="queued", command=launch.argv,
                        note=launch.note, parent_id=launch.parent_id, cwd=launch.cwd, git=False, fields=fields,
                        params=launch.params, stem=launch.stem(), conn=conn)
    name = conn.execute("SELECT name FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
    submit(ws, conn, run_id, name, launch.cwd, options, launch.argv, after=launch.after)
    return run_id


ENV_FILE = "env.json"


def _keep_environment(ws: Workspace, run_id: str) -> None:
    """A queued run starts later from the queue worker: keep the submitter's environment (PATH, conda,
    tokens) for it, in a file only its owner can read, as the store is."""
    from mltui.core.workspace import write_private

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTUI_RUN_")}
    write_private(ws.run_dir(run_id) / ENV_FILE, json.dumps(env), ws.config().file_mode)


def _detached(argv: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("MLTUI_RUN_ID", "MLTUI_RUN_DIR")}
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, cwd=cwd, env=env)
    # a long-lived caller (the TUI, a test) must not keep the process as a zombie once it ends
    threading.Thread(target=proc.wait, name=f"mltui-reap-{proc.pid}", daemon=True).start()
    return proc


def start_supervisor(ws: Workspace, run_id: str, conn: sqlite3.Connection | None = None) -> int:
    """Start the detached supervisor of a recorded run; returns its pid."""
    run_dir = ws.run_dir(run_id)
    proc = _detached([sys.executable, "-m", "mltui.core.launch.supervisor", str(ws.root), run_id],
                     run_dir / "supervisor.log", ws.root)
    own = conn is None
    if own:
        conn = open_writer(ws)
    try:  # until the supervisor says it itself, this is how a supervisor dying at birth is noticed
        with write_tx(conn, ws.db_path):
            run_store.note_supervisor(conn, run_id, proc.pid, time.time())
    finally:
        if own:
            conn.close()
    return proc.pid


def ensure_worker(ws: Workspace) -> None:
    """Start the workspace's queue worker; one that finds another already running just leaves."""
    _detached([sys.executable, "-m", "mltui.core.launch.queue", str(ws.root)], ws.root / "queue.log", ws.root)


# -- again ---------------------------------------------------------------------------------
def rerun_launch(ws: Workspace, run: Mapping[str, Any], overrides: Mapping[str, Any],
                 queue: bool | None = None) -> Launch:
    """A Launch with the same command and params as `run`, some params changed, linked to it."""
    spec = run.get("spec") if isinstance(run.get("spec"), dict) else None
    command = run.get("command")
    if not command and not spec:
        raise MltuiError(f"Run {run['id']} has no recorded command to run again.")
    cwd = run.get("cwd") or os.getcwd()
    queued = bool(spec and spec.get("queue")) if queue is None else queue
    slurm = (spec or {}).get("slurm")
    common = dict(cwd=cwd, kind=run.get("kind"), queue=queued and slurm is None, parent_id=run.get("parent_id"),
                  rerun_of=run["id"], gpus=int((spec or {}).get("gpus") or 0), gpu_mem=(spec or {}).get("gpu_mem"),
                  slurm=slurm)
    if spec and spec.get("template"):
        cmd = Command(spec["command"], spec["template"], spec.get("params") or {}, run.get("kind") or "other",
                      spec.get("watch") or [], Path(cwd))
        return Launch(command=cmd, params=overrides, **common)
    if overrides:
        raise UsageError(f"Run {run['id']} ran a plain command, not one from mltui.toml: it has no params to change.")
    argv = list(command) if isinstance(command, list) else [str(command)]
    if not spec and argv and argv[0].endswith(".py"):  # logged by `python train.py`: sys.argv has no python
        argv = [sys.executable, *argv]
    return Launch(argv, params=(spec or {}).get("params"), **common)
