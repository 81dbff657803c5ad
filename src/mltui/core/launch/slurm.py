"""The Slurm executor: a run becomes a batch job whose only step is mltui's own supervisor.

mltui writes the batch script itself into the run's folder (on the filesystem the compute nodes
share: the workspace), submits it with `sbatch --parsable` and keeps the job id on the run. Inside
the job the supervisor starts the command exactly as on one box, so heartbeats, metrics, artifacts
and exit codes reach the store the same way. What only Slurm knows (waiting and why, a time limit,
a cancel, a node failure, a job that vanished) comes from one batched `squeue` per poll, then
`sacct` for jobs squeue has forgotten. Only the stable text formats are parsed, never --json.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from mltui.base.errors import MltuiError, UsageError
from mltui.core.workspace import Workspace
from mltui.store import runs as run_store
from mltui.store.connection import write_tx

OPTIONS = ("partition", "time", "gpus", "mem", "account")
TIME_RE = re.compile(r"(?:(\d+)-)?(\d+)(?::([0-5]?\d))?(?::([0-5]?\d))?|UNLIMITED|INFINITE", re.IGNORECASE)
MEM_RE = re.compile(r"\d+[KMGT]?", re.IGNORECASE)
SUBMIT_TIMEOUT = 30.0
POLL_TIMEOUT = 5.0  # a reader waits at most this for squeue/sacct
BACK_OFF = 30.0  # after Slurm could not be asked, readers leave it alone this long
POLL_EVERY = 2.0  # seconds between polls of Slurm for one workspace (any number of readers)
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
            "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT", "GONE"}
# A change for _apply to make, in one transaction: a store/runs.py function and its arguments after
# the connection. INGEST in place of the function: first read that run's metrics.jsonl and exit file
# (it ran where the store could not be reached).
INGEST = object()
Change = tuple[Any, tuple]
ACTIVE_SQL = ("SELECT id, job_id, status, kill_requested FROM runs WHERE executor = 'slurm' AND job_id IS NOT NULL "
              "AND (job_state IS NULL OR job_state NOT IN (SELECT value FROM json_each(?)))")


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The --partition/--time/--gpus/--mem/--account values, checked before anything is written."""
    out = {k: v for k, v in options.items() if v not in (None, "", 0)}
    for key in out:
        if key not in OPTIONS:
            raise UsageError(f"Unknown Slurm option {key!r} (known: {', '.join(OPTIONS)}).")
    if "time" in out and not TIME_RE.fullmatch(str(out["time"])):
        raise UsageError(f"--time {out['time']!r} is not a Slurm time (minutes, H:MM:SS or D-HH:MM:SS).")
    if "mem" in out and not MEM_RE.fullmatch(str(out["mem"])):
        raise UsageError(f"--mem {out['mem']!r} is not a Slurm memory size (like 32G or 4000M).")
    if "gpus" in out and (not isinstance(out["gpus"], int) or out["gpus"] < 0):
        raise UsageError("--gpus takes a whole number of GPUs.")
    for key in ("partition", "account"):
        if key in out and not re.fullmatch(r"[A-Za-z0-9_.,-]+", str(out[key])):
            raise UsageError(f"--{key} {out[key]!r} is not a Slurm {key} name.")
    return out


def defaults(ws: Workspace) -> dict[str, Any]:
    """[slurm] in config.toml: default partition, time, mem, account (and gpus)."""
    section = ws.config().raw.get("slurm", {})
    if not isinstance(section, dict):
        raise MltuiError(f"{ws.config_path}: [slurm] must be a table of defaults.")
    return check_options({k: v for k, v in section.items() if k in OPTIONS})


def batch_script(ws: Workspace, run_id: str, name: str, cwd: str, options: Mapping[str, Any]) -> str:
    """The job: #SBATCH lines, then the supervisor (which starts the command and reports it)."""
    run_dir = ws.run_dir(run_id)
    lines = ["#!/bin/bash",
             f"#SBATCH --job-name={_job_name(name)}",
             f"#SBATCH --output={run_dir / 'slurm-%j.out'}",
             f"#SBATCH --chdir={cwd}",
             # SIGUSR2 to the batch shell (B:) 90 s before the time limit; the supervisor passes it to the command
             "#SBATCH --signal=B:USR2@90",
             "#SBATCH --ntasks=1"]
    lines += [f"#SBATCH --{key}={options[key]}" for key in ("partition", "account", "time", "mem") if options.get(key)]
    if options.get("gpus"):
        lines.append(f"#SBATCH --gres=gpu:{int(options['gpus'])}")
    supervisor = [sys.executable, "-m", "mltui.core.launch.supervisor", str(ws.root), run_id]
    lines += ["", "# mltui's supervisor runs the command, records its output, metrics and exit code",
              f"exec {shlex.join(supervisor)}", ""]
    return "\n".join(lines)


def _job_name(name: str) -> str:
    return "mltui-" + (re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:40] or "run")


def submit(ws: Workspace, conn: sqlite3.Connection, run_id: str, name: str, cwd: str,
           options: Mapping[str, Any], argv: list[str] | None = None, after: Sequence[str] = ()) -> str:
    """Write the batch script and sbatch it; returns the job id. A refusal marks the run failed with
    Slurm's own words and raises them as one sentence. `after`: job ids that must end well first; if
    one fails, Slurm cancels this job instead of leaving it pending for ever."""
    run_dir = ws.run_dir(run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "artifacts").mkdir(exist_ok=True)
    script = run_dir / "job.sh"
    script.write_text(batch_script(ws, run_id, name, cwd, options), encoding="utf-8")
    if argv is not None:  # so the job can still run where the store cannot be reached
        from mltui.core.launch.storeless import write_job

        write_job(run_dir, argv, cwd)
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        return _refused(ws, conn, run_id, "sbatch is not installed here (is this a Slurm login node?)")
    try:
        waits = [f"--dependency=afterok:{':'.join(after)}", "--kill-on-invalid-dep=yes"] if after else []
        done = subprocess.run([sbatch, "--parsable", *waits, str(script)], capture_output=True, text=True,
                              timeout=SUBMIT_TIMEOUT, cwd=cwd, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return _refused(ws, conn, run_id, f"sbatch did not answer in {SUBMIT_TIMEOUT:.0f} s (is slurmctld up?)")
    except OSError as exc:
        return _refused(ws, conn, run_id, f"sbatch could not run: {exc.strerror or exc}")
    if done.returncode != 0:
        said = " ".join(line.removeprefix("sbatch: error:").strip() for line in done.stderr.splitlines()
                        if line.strip()) or f"sbatch exited with {done.returncode}"
        return _refused(ws, conn, run_id, f"Slurm refused the job: {said}")
    job_id = done.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        return _refused(ws, conn, run_id, f"sbatch answered {done.stdout.strip()!r}, not a job id")
    with write_tx(conn, ws.db_path):
        run_store.submitted(conn, run_id, job_id)
    return job_id


def _refused(ws: Workspace, conn: sqlite3.Connection, run_id: str, reason: str) -> str:
    with write_tx(conn, ws.db_path):
        run_store.mark_failed(conn, run_id, reason, job_state="GONE")
    raise MltuiError(f"Run {run_id}: {reason}.")


def cancel(ws: Workspace, conn: sqlite3.Connection, run: Mapping[str, Any]) -> None:
    """scancel the run's job (a pending one never starts; a running one gets SIGTERM, then SIGKILL)."""
    scancel = shutil.which("scancel")
    if scancel is None:
        raise MltuiError("scancel is not installed here, so the Slurm job cannot be cancelled from this machine.")
    with write_tx(conn, ws.db_path):
        run_store.request_kill(conn, run["id"], time.time())
    done = subprocess.run([scancel, str(run["job_id"])], capture_output=True, text=True, timeout=POLL_TIMEOUT)
    if done.returncode != 0:
        raise MltuiError(f"scancel refused job {run['job_id']}: {done.stderr.strip() or done.returncode}.")


# -- status ---------------------------------------------------------------------------------------
def _run(argv: list[str]) -> tuple[int, str, str]:
    exe = shutil.which(argv[0])
    if exe is None:
        return 127, "", f"{argv[0]} is not installed"
    try:
        done = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=POLL_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return 124, "", f"{argv[0]} did not answer in {POLL_TIMEOUT:.0f} s"
    return done.returncode, done.stdout, done.stderr


def squeue(job_ids: list[str]) -> dict[str, tuple[str, str]] | str:
    """{job id: (state, reason)} for the jobs Slurm still lists, or a sentence when it cannot be asked."""
    code, out, err = _run(["squeue", "-h", "-t", "all", "-j", ",".join(job_ids), "-o", "%i|%T|%r"])
    if code != 0 and "Invalid job id" not in err:
        return (err.strip().splitlines() or [f"squeue exited with {code}"])[-1]
    found = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[0].split("_")[0].isdigit():
            found[parts[0]] = (parts[1].split()[0] if parts[1] else "", parts[2])
    return found


def sacct(job_ids: list[str]) -> dict[str, tuple[str, int | None]]:
    """{job id: (state, exit code)} from accounting, or from the job-completion log where there is none."""
    found: dict[str, tuple[str, int | None]] = {}
    for argv in (["sacct", "-n", "-P", "-X", "-j", ",".join(job_ids), "-o", "JobID,State,ExitCode"],
                 ["sacct", "-c", "-n", "-P", "-o", "JobID,State,ExitCode"]):
        code, out, _ = _run(argv)
        if code != 0:
            continue
        for line in out.splitlines():
            parts = line.strip().split("|")
            if len(parts) >= 3 and parts[0] in job_ids:
                exit_code = parts[2].split(":")[0]
                found[parts[0]] = (parts[1].split()[0], int(exit_code) if exit_code.isdigit() else None)
        if found:
            break
    return found


# Slurm's final states -> (run status, reason); None: keep what the supervisor recorded
OUTCOMES: dict[str, tuple[str, str] | None] = {
    "COMPLETED": None,
    "FAILED": None,
    "CANCELLED": ("killed", "its Slurm job was cancelled"),
    "TIMEOUT": ("failed", "it hit its Slurm time limit (TIMEOUT)"),
    "OUT_OF_MEMORY": ("failed", "Slurm stopped it: out of memory"),
    "NODE_FAIL": ("lost", "its Slurm node failed (NODE_FAIL)"),
    "PREEMPTED": ("lost", "Slurm preempted it"),
    "BOOT_FAIL": ("lost", "its Slurm node did not boot (BOOT_FAIL)"),
    "DEADLINE": ("failed", "it missed its Slurm deadline"),
}


def refresh(ws: Workspace, conn: sqlite3.Connection, force: bool = False) -> int:
    """Bring Slurm runs up to date with Slurm, at most every POLL_EVERY seconds per workspace (unless
    forced). Returns how many runs changed."""
    import json

    active = conn.execute(ACTIVE_SQL, (json.dumps(sorted(TERMINAL)),)).fetchall()
    if not active:
        return 0
    stamp = ws.root / "slurm-poll"
    try:
        if not force and time.time() - stamp.stat().st_mtime < POLL_EVERY:
            return 0
    except OSError:
        pass
    try:
        stamp.touch()
    except OSError:
        pass  # a read-only workspace still shows what Slurm says
    ids = [job for _, job, _, _ in active]
    listed = squeue(ids)
    changes: list[Change] = []
    if isinstance(listed, str):  # the controller is down or unreachable: say so, change no status
        try:  # and let the next readers skip asking for a while instead of each waiting POLL_TIMEOUT
            later = time.time() + BACK_OFF - POLL_EVERY
            os.utime(stamp, (later, later))
        except OSError:
            pass
        for run_id, _, status, _ in active:
            if status == "queued":
                changes.append((run_store.set_reason, (run_id, f"Slurm cannot be asked: {listed}")))
        return _apply(ws, conn, changes)
    missing = [job for job in ids if job not in listed]
    accounted = sacct(missing) if missing else {}
    for run_id, job, status, killed in active:
        if job in listed:
            state, why = listed[job]
            exit_code = None
        elif job in accounted:
            state, exit_code = accounted[job]
            why = ""
        else:
            state, why, exit_code = "GONE", "", None
        changes += _changes(run_id, status, state, why, exit_code, killed is not None)
    return _apply(ws, conn, changes)


def _changes(run_id: str, status: str, state: str, why: str, exit_code: int | None,
             kill_requested: bool = False) -> list[Change]:
    now = time.time()
    if state == "PENDING":
        reason = f"waiting in Slurm: {why}" if why and why != "None" else "waiting in Slurm"
        return [(run_store.set_job_state, (run_id, state, reason))]
    if state not in TERMINAL:  # RUNNING, CONFIGURING, COMPLETING, SUSPENDED: the supervisor reports
        return [(run_store.set_job_state, (run_id, state))]
    if state == "GONE":
        if status in ("queued", "running"):
            return [(partial(run_store.mark_lost, job_state="GONE"),
                     (run_id, "its Slurm job vanished from both squeue and sacct", now))]
        return [(run_store.set_job_state, (run_id, "GONE"))]
    outcome = OUTCOMES.get(state)
    if outcome is not None:  # only Slurm knows: it overrides what the supervisor saw (a SIGTERM)
        new_status, reason = outcome
        if state == "CANCELLED" and kill_requested:
            reason = "cancelled by `mltui runs kill`" + (" before it started" if status == "queued" else "")
        return [(partial(run_store.mark_ended, job_state=state, exit_code=exit_code, keep_ended=True,
                         keep_exit_code=True), (run_id, new_status, reason, now))]
    if status in ("queued", "running"):  # COMPLETED/FAILED but the supervisor said nothing (no store there?)
        final = "finished" if state == "COMPLETED" else "failed"
        reason = "Slurm reports it completed" if final == "finished" else "Slurm reports it failed"
        return [(INGEST, (run_id,)),
                (partial(run_store.mark_ended, job_state=state, exit_code=exit_code, keep_exit_code=True),
                 (run_id, final, reason, now))]
    return [(run_store.set_job_state, (run_id, state))]


def _apply(ws: Workspace, conn: sqlite3.Connection, changes: list[Change]) -> int:
    if not changes:
        return 0
    from mltui.core.reader import open_writer

    try:
        writer = open_writer(ws)
    except MltuiError:
        return 0  # a read-only store: show what it says
    try:
        before = _statuses(writer, [args[0] for change, args in changes if args])
        storeless = {}
        for change, args in changes:  # runs that ran without the store: their metrics.jsonl and exit file
            if change is INGEST:
                from mltui.core.launch.storeless import ingest

                storeless[args[0]] = ingest(ws, writer, args[0])
        with write_tx(writer, ws.db_path):
            for change, args in changes:
                if change is not INGEST:
                    change(writer, *args)
            for run_id, end in storeless.items():
                if end is not None:
                    status, reason, code, ended = end
                    run_store.mark_ended(writer, run_id, status, reason, ended, exit_code=code)
        from mltui.core.notify.runs import endings_since

        endings_since(ws, writer, before)  # run.finished / failed / lost for the runs Slurm saw end
    finally:
        writer.close()
    return len(changes)


def _statuses(conn: sqlite3.Connection, run_ids: list[str]) -> dict[str, str]:
    import json

    return dict(conn.execute("SELECT id, status FROM runs WHERE id IN (SELECT value FROM json_each(?))",
                             (json.dumps(sorted(set(run_ids))),)).fetchall())


def environment_note() -> str | None:
    """Why Slurm cannot be used from here, or None."""
    if shutil.which("sbatch") is None:
        return "sbatch is not installed here"
    if os.environ.get("SLURM_CONF") and not Path(os.environ["SLURM_CONF"]).exists():
        return f"SLURM_CONF points at {os.environ['SLURM_CONF']}, which does not exist"
    return None
