"""The Slurm executor against a real single-node Slurm (scripts/local-slurm.sh), end to end.

Nothing of Slurm is mocked: runs are submitted with the real `sbatch`, their state comes from the real
`squeue`/`sacct`, they are cancelled with the real `scancel`, and every `mltui` call is a subprocess
(the `cli` fixture of conftest.py) on a real SQLite store in tmp_path.

The module fixture `slurm` uses the Slurm that $SLURM_CONF points at when `sinfo -h` answers;
otherwise it starts one with `scripts/local-slurm.sh start DIR` (and stops it at the end), and skips
the module with the script's own words when it exits 3 (not root, no package, ports taken). The node
has 2 CPUs and 2 fake GPUs, so every test that launches cancels its leftover jobs by job id
(`slurm_ws`), and the tests that need the whole node first wait for it to be idle.

The one slow test is the time limit (`--time 1`: Slurm ends the job about 75 s after it starts). Its
job is submitted early by `time_limited` (module scope) so the tests that need at most one CPU run
while it counts down; the tests that need both CPUs come after the time-limit tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import run_cli
from launching import (
    configure,
    kill_workspace_processes,
    output,
    row,
    status,
    until,
    wait_ended,
    wait_for,
    wait_output,
)

from mltui.core.launch import slurm as slurm_core
from mltui.base.procs import pid_alive
from mltui.core.runs.records import create_run
from mltui.core.workspace import init_workspace
from mltui.store.opening import open_store

REPO = Path(__file__).resolve().parents[3]
LOCAL_SLURM = REPO / "scripts" / "local-slurm.sh"
# squeue states of a job that still holds (or waits for) the node
ACTIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING",
                 "SIGNALING", "STAGE_OUT", "REQUEUE_HOLD", "REQUEUE_FED"}
ENDED = ("finished", "failed", "killed", "lost")

PROJECT = """\
[commands.pt]
run = "python pt.py --a {a} --b {b}"
params = { a = 1, b = "x" }
"""

SCRIPTS = {
    # output, metrics through metrics.jsonl and through the tracking API, then exit 0
    "train.py": """
        import json, os
        import mltui
        print("hello from slurm job", os.environ.get("SLURM_JOB_ID"), flush=True)
        with open(os.path.join(os.environ["MLTUI_RUN_DIR"], "metrics.jsonl"), "a") as fh:
            for step, loss in enumerate([0.9, 0.5, 0.25]):
                fh.write(json.dumps({"step": step, "loss": loss}) + "\\n")
        run = mltui.init()
        run.log({"acc": 0.5}, step=0)
        run.log({"acc": 0.75}, step=1)
        run.finish()
        print("done", flush=True)
    """,
    "fail.py": """
        import sys
        print("about to fail", flush=True)
        sys.exit(3)
    """,
    # says which GPUs Slurm gave it, then waits for the file named on its command line (the test says when)
    "hold.py": """
        import os, sys, time
        print("cvd=" + os.environ.get("CUDA_VISIBLE_DEVICES", "unset"), flush=True)
        print("ready", flush=True)
        go = sys.argv[1] if len(sys.argv) > 1 else "go"
        end = time.time() + 120
        while not os.path.exists(go) and time.time() < end:
            time.sleep(0.05)
        print("released", flush=True)
    """,
    # one run of the sweep
    "pt.py": """
        import json, os, sys
        a, b = sys.argv[sys.argv.index("--a") + 1], sys.argv[sys.argv.index("--b") + 1]
        print(f"a={a} b={b}", flush=True)
        with open(os.path.join(os.environ["MLTUI_RUN_DIR"], "metrics.jsonl"), "a") as fh:
            fh.write(json.dumps({"step": 0, "score": int(a)}) + "\\n")
    """,
    # runs until Slurm's time limit ends it
    "slow.py": """
        import signal, time
        signal.signal(signal.SIGUSR2, lambda *_: print("got SIGUSR2", flush=True))
        print("ready", flush=True)
        end = time.time() + 600
        while time.time() < end:
            time.sleep(0.2)
    """,
}


def write_project(folder: Path) -> None:
    (folder / "mltui.toml").write_text(PROJECT, encoding="utf-8")
    for name, body in SCRIPTS.items():
        (folder / name).write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")


# -- Slurm itself --------------------------------------------------------------------------------


def slurm_cmd(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([*map(str, argv)], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


def sinfo_works() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        done = slurm_cmd("sinfo", "-h", timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


def job_state(job_id: str) -> tuple[str, str] | None:
    """(state, reason) as squeue says them, or None when squeue does not know the job."""
    done = slurm_cmd("squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T|%r")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        return None
    state, _, reason = lines[0].strip().partition("|")
    return state, reason


def state_of(job_id: str) -> str | None:
    found = job_state(job_id)
    return found[0] if found else None


def active_jobs() -> list[str]:
    """Every job of the cluster that is pending, running or completing ("ID|STATE|NAME")."""
    done = slurm_cmd("squeue", "-h", "-o", "%i|%T|%j")
    assert done.returncode == 0, f"squeue failed: {done.stderr}"
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def wait_idle(timeout: float = 150.0) -> None:
    """No job on the cluster and the node idle: the tests that need both CPUs / both GPUs start from here."""
    def idle() -> bool:
        if active_jobs():
            return False
        states = slurm_cmd("sinfo", "-h", "-o", "%T").stdout.split()
        return bool(states) and all(s.rstrip("*~#$@%!^-").lower() == "idle" for s in states)

    try:
        wait_for(idle, timeout, interval=0.3, what="the Slurm node to be idle")
    except AssertionError:
        raise AssertionError(f"the Slurm node is not idle after {timeout:g}s; jobs: {active_jobs()}") from None


def cancel_jobs(job_ids) -> None:
    """scancel these jobs (by id) and wait until none of them holds the node any more."""
    ids = sorted({str(j) for j in job_ids if j})
    if not ids:
        return
    slurm_cmd("scancel", *ids)  # an already finished job is no error worth stopping for
    wait_for(lambda: not any(state_of(j) in ACTIVE_STATES for j in ids), 60, interval=0.2,
             what=f"jobs {ids} to leave the node")


def job_ids_of(ws) -> list[str]:
    conn = sqlite3.connect(ws.db_path, timeout=10)
    try:
        return [r[0] for r in conn.execute("SELECT job_id FROM runs WHERE job_id IS NOT NULL")]
    finally:
        conn.close()


def refresh(ws, force: bool = True) -> int:
    """mltui's own Slurm poll (one squeue, then sacct), as the readers call it."""
    conn = open_store(ws.db_path)
    try:
        return slurm_core.refresh(ws, conn, force=force)
    finally:
        conn.close()


def ghost_run(ws, run_status: str, job_id: str, reason: str | None = None) -> str:
    """A Slurm run row whose job id Slurm never gave out."""
    conn = open_store(ws.db_path)
    try:
        return create_run(ws, name=f"ghost-{job_id}", kind="train", status=run_status, command=["python", "x.py"],
                          cwd=str(ws.project_dir), git=False, conn=conn,
                          fields={"executor": "slurm", "job_id": job_id, "reason": reason,
                                  "spec": json.dumps({"slurm": {}}), "started": None, "heartbeat": None})
    finally:
        conn.close()


def shown(cli, run_id: str, cwd=None) -> dict:
    """`mltui runs show ID --json` (a reader: it polls Slurm, at most every 2 s)."""
    done = cli("runs", "show", run_id, "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def stderr_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.strip()]


def no_traceback(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert "Traceback" not in done.stderr, done.stderr
    return done


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """SLURM_CONF of a Slurm that answers: the one already configured, or one started here (stopped at the
    end). Skips the module, saying why, where scripts/local-slurm.sh cannot run one (exit 3)."""
    patch = pytest.MonkeyPatch()
    started: Path | None = None
    try:
        if not (os.environ.get("SLURM_CONF") and sinfo_works()):
            folder = tmp_path_factory.mktemp("local-slurm")
            done = subprocess.run(["bash", str(LOCAL_SLURM), "start", str(folder)], capture_output=True, text=True,
                                  timeout=600, stdin=subprocess.DEVNULL, check=False)
            if done.returncode == 3:
                said = [line.strip() for line in done.stderr.splitlines() if line.strip()]
                pytest.skip(said[-1] if said else "scripts/local-slurm.sh cannot run a local Slurm here")
            started = folder  # from here on, whatever it started is stopped at the end
            assert done.returncode == 0, f"local-slurm.sh start exited {done.returncode}: {done.stderr}"
            found = re.search(r"^export SLURM_CONF=(\S+)\s*$", done.stdout, re.MULTILINE)
            assert found, f"local-slurm.sh start printed no SLURM_CONF: {done.stdout!r}"
            patch.setenv("SLURM_CONF", found.group(1))
            assert sinfo_works(), "the local Slurm was started but sinfo does not answer"
        yield os.environ["SLURM_CONF"]
    finally:
        if started is not None:
            subprocess.run(["bash", str(LOCAL_SLURM), "stop", str(started)], capture_output=True, timeout=120,
                           stdin=subprocess.DEVNULL, check=False)
        patch.undo()


@pytest.fixture
def slurm_ws(slurm, ws):
    """`ws` with quick heartbeats and the project files; afterwards the test's jobs are scancelled (by id)
    and nothing it started is left running."""
    configure(ws, heartbeat_seconds=0.5, kill_grace_seconds=2.0, refresh_seconds=0.2)
    write_project(ws.project_dir)
    yield ws
    try:
        cancel_jobs(job_ids_of(ws))
    finally:
        kill_workspace_processes(ws.root)


@pytest.fixture(scope="module")
def time_limited(slurm, tmp_path_factory):
    """A run submitted with `--time 1` (early, so other tests run while it counts down): (ws, run id, job id)."""
    project = tmp_path_factory.mktemp("time-limit")
    ws, created = init_workspace(project)
    assert created
    configure(ws, heartbeat_seconds=0.5)
    write_project(project)
    done = no_traceback(run_cli("run", "--on", "slurm", "--time", "1", "--json", "--", "python", "slow.py",
                                cwd=project))
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    try:
        yield ws, info["id"], info["job_id"]
    finally:
        try:
            cancel_jobs([info["job_id"]])
        finally:
            kill_workspace_processes(ws.root)


@pytest.fixture(scope="module")
def timed_out(time_limited):
    """The time-limited run once Slurm has ended it (TIMEOUT) and its supervisor has recorded the end.
    Only the store is read while waiting: nothing here asks Slurm on mltui's behalf."""
    ws, run_id, job_id = time_limited
    wait_for(lambda: state_of(job_id) == "TIMEOUT", 150, interval=0.5,
             what=f"Slurm to end job {job_id} at its time limit (it is {state_of(job_id)})")
    wait_for(lambda: status(ws, run_id) in ENDED, 30, what=f"the supervisor of {run_id} to record the end")
    return time_limited


# -- usage errors: no Slurm needed -----------------------------------------------------------------

ARGV = ["--", "python", "-c", "print('never')"]


@pytest.mark.parametrize("args, said", [
    (["run", "--partition", "debug", *ARGV], "--partition is a Slurm option: add --on slurm"),
    (["run", "--time", "5", *ARGV], "--time is a Slurm option: add --on slurm"),
    (["run", "--mem", "1G", *ARGV], "--mem is a Slurm option: add --on slurm"),
    (["run", "--account", "lab", *ARGV], "--account is a Slurm option: add --on slurm"),
    (["run", "--on", "local", "--time", "5", *ARGV], "--time is a Slurm option: add --on slurm"),
    (["sweep", "pt", "-p", "a=1,2", "--partition", "debug"], "--partition is a Slurm option: add --on slurm"),
    (["run", "--queue", "--on", "slurm", *ARGV], "--queue is for this machine's queue"),
    (["sweep", "pt", "-p", "a=1,2", "--queue", "--on", "slurm"], "--queue is for this machine's queue"),
    (["run", "--on", "slurm", "--time", "5:99", *ARGV], "--time '5:99' is not a Slurm time"),
    (["run", "--on", "slurm", "--time", "soon", *ARGV], "--time 'soon' is not a Slurm time"),
    (["run", "--on", "slurm", "--time", "1:2:3:4", *ARGV], "--time '1:2:3:4' is not a Slurm time"),
    (["run", "--on", "slurm", "--time", "5m", *ARGV], "--time '5m' is not a Slurm time"),
    (["run", "--on", "slurm", "--time", "1:", *ARGV], "--time '1:' is not a Slurm time"),
    (["run", "--on", "slurm", "--mem", "lots", *ARGV], "--mem 'lots' is not a Slurm memory size"),
    (["run", "--on", "slurm", "--mem", "1.5G", *ARGV], "--mem '1.5G' is not a Slurm memory size"),
    (["run", "--on", "slurm", "--mem", "G", *ARGV], "--mem 'G' is not a Slurm memory size"),
    (["run", "--on", "slurm", "--partition", "a b", *ARGV], "is not a Slurm partition name"),
    (["run", "--on", "slurm", "--gpus", "-1", *ARGV], "cannot be negative"),
    (["sweep", "pt", "-p", "a=1,2", "--on", "slurm", "--mem", "lots"], "--mem 'lots' is not a Slurm memory size"),
])
def test_slurm_options_that_cannot_be_used_are_usage_errors_before_anything_is_written(ws, cli, args, said):
    write_project(ws.project_dir)
    done = cli(*args)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == ""
    lines = stderr_lines(done)
    assert len(lines) == 1 and lines[0].startswith("mltui: ") and said in lines[0], done.stderr
    conn = sqlite3.connect(ws.db_path)
    try:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    finally:
        conn.close()
    assert not ws.runs_dir.exists() or not any(ws.runs_dir.iterdir()), "a run folder was made"


def test_without_sbatch_on_path_the_run_fails_with_a_reason_and_no_traceback(ws, cli, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    done = cli("run", "--on", "slurm", "--", "python", "-c", "print('never')", env={"PATH": str(empty)})
    assert done.returncode == 1
    assert done.stdout == ""
    lines = stderr_lines(done)
    assert len(lines) == 1 and "sbatch is not installed here" in lines[0], done.stderr
    (run_id,) = [r[0] for r in sqlite3.connect(ws.db_path).execute("SELECT id FROM runs")]
    assert run_id in lines[0]
    run = row(ws, run_id)
    assert run["status"] == "failed"
    assert run["reason"] == "sbatch is not installed here (is this a Slurm login node?)"
    assert run["executor"] == "slurm" and run["job_id"] is None and run["ended"] is not None
    # the batch script was written all the same: what would have been submitted can be read
    assert "exec " in (ws.run_dir(run_id) / "job.sh").read_text()
    listed = cli("runs", "list", env={"PATH": str(empty)})
    assert listed.returncode == 0
    assert re.search(rf"^{run_id}\s+failed@slurm\s", listed.stdout, re.MULTILINE), listed.stdout


# -- the time limit, submitted early (the check comes after the quick tests) --------------------------


def test_a_time_limited_run_is_submitted_with_its_limit_and_starts(time_limited):
    ws, run_id, job_id = time_limited
    assert job_id.isdigit()
    script = (ws.run_dir(run_id) / "job.sh").read_text()
    assert "#SBATCH --time=1\n" in script
    wait_output(ws, run_id, "ready", timeout=60)
    assert status(ws, run_id) == "running"
    limit = slurm_cmd("squeue", "-h", "-j", job_id, "-o", "%l").stdout.strip()
    assert limit == "1:00", limit
    assert row(ws, run_id)["job_id"] == job_id


# -- criterion 1 and 2: a run that completes, one that exits 3 -----------------------------------------


def test_a_slurm_run_completes_with_metrics_output_and_its_job_id(slurm_ws, cli):
    ws = slurm_ws
    done = cli("run", "--on", "slurm", "--json", "--", "python", "train.py")
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    run_id, job_id = said["id"], said["job_id"]
    assert said["status"] == "queued" and job_id and job_id.isdigit()

    run = wait_ended(ws, run_id, timeout=60)
    assert run["status"] == "finished", run
    assert run["exit_code"] == 0
    assert run["reason"] == "the command exited with code 0"
    assert run["executor"] == "slurm" and run["job_id"] == job_id
    assert run["started"] is not None and run["ended"] >= run["started"]

    metrics = shown(cli, run_id)["metrics"]
    assert metrics["loss"]["count"] == 3 and metrics["loss"]["last"] == 0.25 and metrics["loss"]["last_step"] == 2
    assert metrics["loss"]["min"] == 0.25 and metrics["loss"]["max"] == 0.9
    assert metrics["acc"]["count"] == 2 and metrics["acc"]["last"] == 0.75 and metrics["acc"]["last_step"] == 1

    log = output(ws, run_id)
    assert f"hello from slurm job {job_id}\n" in log  # it really ran inside that Slurm job
    assert "done\n" in log
    script = (ws.run_dir(run_id) / "job.sh").read_text()
    assert script.startswith("#!/bin/bash\n") and "#SBATCH --job-name=mltui-" in script
    assert (ws.run_dir(run_id) / f"slurm-{job_id}.out").exists()

    wait_for(lambda: state_of(job_id) == "COMPLETED", 30, what=f"Slurm to call job {job_id} COMPLETED")
    run = wait_for(lambda: (r := shown(cli, run_id))["job_state"] == "COMPLETED" and r, 15, interval=0.3,
                   what=f"`mltui runs show` to report job {job_id} COMPLETED")
    assert run["status"] == "finished" and run["exit_code"] == 0 and run["reason"] == "the command exited with code 0"
    listed = cli("runs", "list")
    assert re.search(rf"^{run_id}\s+finished@slurm\s", listed.stdout, re.MULTILINE), listed.stdout


def test_a_slurm_run_that_exits_3_fails_with_exit_code_3(slurm_ws, cli):
    ws = slurm_ws
    done = cli("run", "--on", "slurm", "--", "python", "fail.py")
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    run = wait_ended(ws, run_id, timeout=60)
    assert run["status"] == "failed", run
    assert run["exit_code"] == 3
    assert run["reason"] == "the command exited with code 3"
    assert run["job_id"] and run["job_id"].isdigit()
    assert "about to fail" in output(ws, run_id)

    # --wait follows it through Slurm's queue and exits with the command's own code
    waited = cli("run", "--on", "slurm", "--wait", "--", "python", "fail.py", timeout=90)
    assert waited.returncode == 3, (waited.stdout, waited.stderr)
    assert "about to fail" in waited.stdout


def test_slurm_itself_records_a_failed_command_as_a_failed_job(slurm_ws, cli):
    ws = slurm_ws
    run_id = cli("run", "--on", "slurm", "--", "python", "fail.py").stdout.strip()
    job_id = wait_ended(ws, run_id, timeout=60)["job_id"]
    wait_for(lambda: state_of(job_id) not in ACTIVE_STATES, 30, what=f"job {job_id} to end")
    assert state_of(job_id) == "FAILED"


# -- criterion 3: cancelled by `mltui runs kill` -------------------------------------------------------


def test_runs_kill_cancels_a_running_slurm_job(slurm_ws, cli):
    ws = slurm_ws
    run_id = cli("run", "--on", "slurm", "--", "python", "hold.py", "never-created").stdout.strip()
    wait_output(ws, run_id, "ready", timeout=60)
    job_id = row(ws, run_id)["job_id"]
    pid = row(ws, run_id)["pid"]
    assert state_of(job_id) == "RUNNING"

    killed = cli("runs", "kill", run_id)
    assert killed.returncode == 0, killed.stderr
    assert killed.stdout.strip() == f"{run_id} killed"
    wait_for(lambda: state_of(job_id) == "CANCELLED", 30, what=f"Slurm to call job {job_id} CANCELLED")
    # `runs kill` returns once the run has ended; Slurm's own word (CANCELLED) comes with a later poll of any
    # reader, and wins over what the supervisor saw (a SIGTERM)
    run = wait_for(lambda: (r := shown(cli, run_id))["job_state"] == "CANCELLED" and r, 15, interval=0.3,
                   what=f"`mltui runs show` to report job {job_id} CANCELLED")
    assert run["status"] == "killed"
    assert run["job_state"] == "CANCELLED"
    assert run["reason"] == "cancelled by `mltui runs kill`"
    assert run["ended"] is not None
    assert not pid_alive(pid)
    assert "released" not in output(ws, run_id)


@pytest.fixture
def scancelled(slurm_ws, cli):
    """A running Slurm run whose job was cancelled with Slurm's own scancel (not through mltui); returns
    (run id, job id) once Slurm says CANCELLED and the supervisor has recorded the end (store read only)."""
    ws = slurm_ws
    run_id = cli("run", "--on", "slurm", "--", "python", "hold.py", "never-created").stdout.strip()
    wait_output(ws, run_id, "ready", timeout=60)
    job_id = row(ws, run_id)["job_id"]
    assert slurm_cmd("scancel", job_id).returncode == 0
    wait_for(lambda: state_of(job_id) == "CANCELLED", 30, what=f"Slurm to call job {job_id} CANCELLED")
    wait_for(lambda: status(ws, run_id) in ENDED, 30, what=f"the end of {run_id} in the store")
    return run_id, job_id


def test_a_job_cancelled_with_slurms_own_scancel_shows_slurms_verdict_to_readers(slurm_ws, scancelled, cli):
    run_id, _job_id = scancelled
    # the supervisor recorded only what it saw (a SIGTERM); the first reader asks Slurm, although the run has ended
    assert row(slurm_ws, run_id)["job_state"] != "CANCELLED"
    run = shown(cli, run_id)
    assert run["status"] == "killed"
    assert run["job_state"] == "CANCELLED"
    assert run["reason"] == "its Slurm job was cancelled"


# -- criterion 6: a sweep ------------------------------------------------------------------------------


def test_a_six_run_sweep_on_slurm_submits_six_jobs_that_all_finish(slurm_ws, cli):
    ws = slurm_ws
    done = cli("sweep", "pt", "-p", "a=1,2,3", "-p", "b=x,y", "--on", "slurm")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 6, done.stdout
    ids = [line.split()[0] for line in lines]
    conn = sqlite3.connect(ws.db_path)
    try:
        rows = conn.execute("SELECT id, executor, job_id FROM runs").fetchall()
    finally:
        conn.close()
    assert sorted(r[0] for r in rows) == sorted(ids)
    assert all(r[1] == "slurm" for r in rows)
    job_ids = [r[2] for r in rows]
    assert all(j and j.isdigit() for j in job_ids) and len(set(job_ids)) == 6

    runs = [wait_ended(ws, run_id, timeout=90) for run_id in ids]
    assert [r["status"] for r in runs] == ["finished"] * 6, [(r["id"], r["status"], r["reason"]) for r in runs]
    runs_shown = [shown(cli, run_id) for run_id in ids]
    combos = {(r["params"]["a"], r["params"]["b"]) for r in runs_shown}
    assert combos == {(a, b) for a in (1, 2, 3) for b in ("x", "y")}
    for run in runs_shown:
        assert f"a={run['params']['a']} b={run['params']['b']}\n" in output(ws, run["id"])
        assert run["metrics"]["score"]["last"] == run["params"]["a"]


# -- criterion 7 and refusals at submit ------------------------------------------------------------------


@pytest.mark.parametrize("args, gres, words", [
    (["--gpus", "3"], "#SBATCH --gres=gpu:3\n", "node configuration"),
    (["--partition", "nope"], "#SBATCH --partition=nope\n", "partition"),
])
def test_a_job_slurm_refuses_is_reported_at_submit_and_the_run_fails(slurm_ws, cli, args, gres, words):
    ws = slurm_ws
    done = cli("run", "--on", "slurm", *args, "--", "python", "train.py")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = stderr_lines(done)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("mltui: ") and "Slurm refused the job: " in lines[0]
    assert words in lines[0].lower()
    (run_id,) = [r[0] for r in sqlite3.connect(ws.db_path).execute("SELECT id FROM runs")]
    run = row(ws, run_id)
    assert run["status"] == "failed"
    assert run["reason"].startswith("Slurm refused the job: ") and run["reason"] in lines[0]
    assert run["job_id"] is None and run["job_state"] == "GONE" and run["ended"] is not None
    assert gres in (ws.run_dir(run_id) / "job.sh").read_text()
    assert not (ws.run_dir(run_id) / "output.log").exists()


# -- failure is data: vanished jobs, a dead controller ------------------------------------------------------


def never_existed(*job_ids: str) -> None:
    for job_id in job_ids:
        assert job_state(job_id) is None, f"job {job_id} exists here"
    done = slurm_cmd("sacct", "-c", "-n", "-P", "-o", "JobID")
    assert not set(job_ids) & set(done.stdout.split()), "those job ids are in the job-completion log"


def test_a_job_that_vanished_from_squeue_and_sacct_makes_the_run_lost(slurm_ws, cli):
    ws = slurm_ws
    never_existed("999999", "999998", "999997")
    running = ghost_run(ws, "running", "999999")
    queued = ghost_run(ws, "queued", "999998", reason="submitted to Slurm")

    # what any reader does (reap_lost -> refresh): `runs list`
    listed = cli("runs", "list")
    assert listed.returncode == 0, listed.stderr
    for run_id in (running, queued):
        run = row(ws, run_id)
        assert run["status"] == "lost", run
        assert run["reason"] == "its Slurm job vanished from both squeue and sacct"
        assert run["job_state"] == "GONE" and run["ended"] is not None

    # and refresh itself, forced
    third = ghost_run(ws, "running", "999997")
    assert refresh(ws) == 1
    run = row(ws, third)
    assert run["status"] == "lost" and "vanished" in run["reason"] and run["job_state"] == "GONE"
    assert refresh(ws) == 0  # nothing left to ask about


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_config(real: str, folder: Path, message_timeout: int | None) -> Path:
    """A copy of the config whose controller port nobody listens on."""
    lines = [line for line in Path(real).read_text().splitlines()
             if not re.match(r"(?i)\s*(SlurmctldPort|MessageTimeout)\s*=", line)]
    lines.append(f"SlurmctldPort={free_port()}")
    if message_timeout is not None:
        lines.append(f"MessageTimeout={message_timeout}")
    path = folder / f"dead-{message_timeout}.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_dead_controller_changes_no_status_and_says_slurm_cannot_be_asked(slurm_ws, slurm, cli, monkeypatch,
                                                                              tmp_path):
    ws = slurm_ws
    never_existed("999996", "999995")
    queued = ghost_run(ws, "queued", "999996", reason="submitted to Slurm")
    running = ghost_run(ws, "running", "999995")

    # a controller that refuses connections: squeue fails at once
    monkeypatch.setenv("SLURM_CONF", str(dead_config(slurm, tmp_path, 1)))
    assert refresh(ws) == 1  # "at once": the reason names the controller, not a timeout (as below)
    q, r = row(ws, queued), row(ws, running)
    assert q["status"] == "queued" and r["status"] == "running"
    assert q["reason"].startswith("Slurm cannot be asked: ") and "controller" in q["reason"], q["reason"]
    assert r["reason"] is None
    assert q["job_state"] is None and r["job_state"] is None

    stamp = ws.root / "slurm-poll"  # when Slurm was last asked: make the CLI ask again now
    os.utime(stamp, (time.time() - 60, time.time() - 60))
    t0 = time.monotonic()
    listed = cli("runs", "list", timeout=60)
    assert time.monotonic() - t0 < 20  # ~1 s: squeue fails at once, and `runs list` does not wait on it
    assert stamp.stat().st_mtime > time.time() - 30, "`runs list` did not ask Slurm"
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"^{queued}\s+queued@slurm\s", listed.stdout, re.MULTILINE), listed.stdout
    assert re.search(rf"^{running}\s+running@slurm\s", listed.stdout, re.MULTILINE), listed.stdout

    # one that takes longer than mltui waits (the default MessageTimeout retries for ~18 s): cut at POLL_TIMEOUT
    monkeypatch.setenv("SLURM_CONF", str(dead_config(slurm, tmp_path, None)))
    monkeypatch.setattr(slurm_core, "POLL_TIMEOUT", 2.0)
    t0 = time.monotonic()
    refresh(ws)
    took = time.monotonic() - t0
    # cut at POLL_TIMEOUT (2 s), well before the ~18 s squeue itself would take; the reason below says so
    assert 1.5 < took < 15, took
    q, r = row(ws, queued), row(ws, running)
    assert q["status"] == "queued" and r["status"] == "running"
    assert q["reason"] == "Slurm cannot be asked: squeue did not answer in 2 s"
    assert r["reason"] is None

    # the controller answers again: the truth comes in (these jobs never existed)
    monkeypatch.setenv("SLURM_CONF", slurm)
    monkeypatch.setattr(slurm_core, "POLL_TIMEOUT", 15.0)
    assert refresh(ws) == 2
    assert status(ws, queued) == "lost" and status(ws, running) == "lost"


# -- criterion 4: the time limit (submitted at the top of the module) -------------------------------------


def test_a_run_past_its_time_limit_ends_failed_with_timeout(timed_out, cli):
    ws, run_id, job_id = timed_out
    stamp = ws.root / "slurm-poll"  # when Slurm was last asked: make the next reader ask again now
    if stamp.exists():
        os.utime(stamp, (time.time() - 60, time.time() - 60))
    run = shown(cli, run_id, cwd=ws.project_dir)  # any reader: it asks Slurm, which says TIMEOUT
    assert run["status"] == "failed", (run["status"], run["reason"], run["job_state"])
    assert run["reason"] == "it hit its Slurm time limit (TIMEOUT)"
    assert run["job_state"] == "TIMEOUT"
    assert run["job_id"] == job_id and run["ended"] is not None
    assert not pid_alive(run["pid"])
    assert "ready" in output(ws, run_id)
    listed = cli("runs", "list", cwd=ws.project_dir)
    assert re.search(rf"^{run_id}\s+failed@slurm\s", listed.stdout, re.MULTILINE), listed.stdout


def test_the_command_gets_sigusr2_before_its_time_limit(timed_out):
    ws, run_id, _job_id = timed_out
    assert "#SBATCH --signal=" in (ws.run_dir(run_id) / "job.sh").read_text()
    assert "got SIGUSR2" in output(ws, run_id)


# -- tests that need the whole node (2 CPUs, 2 GPUs) ---------------------------------------------------------


def hold(cli, go: Path, *extra: str) -> str:
    done = cli("run", "--on", "slurm", *extra, "--", "python", "hold.py", str(go))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_runs_kill_cancels_a_pending_slurm_job_before_it_starts(slurm_ws, cli):
    ws = slurm_ws
    wait_idle()
    go = ws.project_dir / "go"
    first, second = hold(cli, go), hold(cli, go)  # one CPU each: the node is full
    wait_output(ws, first, "ready", timeout=60)
    wait_output(ws, second, "ready", timeout=60)
    third = hold(cli, go)
    job = row(ws, third)["job_id"]
    # pending for whatever reason Slurm gives first (Resources, or Priority until the scheduler's next pass):
    # waiting with reason Resources is the GPU test's to check; this one is about cancelling a waiting job
    wait_for(lambda: (job_state(job) or ("",))[0] == "PENDING", 20,
             what=f"job {job} to be pending (it is {job_state(job)})")

    killed = cli("runs", "kill", third)
    assert killed.returncode == 0, killed.stderr
    assert killed.stdout.strip() == f"{third} killed"
    run = row(ws, third)
    assert run["status"] == "killed"
    assert run["job_state"] == "CANCELLED"
    assert run["reason"] == "cancelled by `mltui runs kill` before it started"
    assert run["started"] is None and run["pid"] is None and run["ended"] is not None
    assert output(ws, third) == ""
    assert state_of(job) == "CANCELLED"
    assert status(ws, first) == "running" and status(ws, second) == "running"  # the others go on


def cvd(ws, run_id: str) -> str:
    found = re.search(r"^cvd=(.*)$", output(ws, run_id), re.MULTILINE)
    assert found, output(ws, run_id)
    return found.group(1)


def test_two_one_gpu_jobs_run_at_once_on_different_gpus_while_a_third_waits_for_resources(slurm_ws, cli):
    ws = slurm_ws
    wait_idle()
    go = ws.project_dir / "go"
    a, b = hold(cli, go, "--gpus", "1"), hold(cli, go, "--gpus", "1")
    wait_output(ws, a, "ready", timeout=60)
    wait_output(ws, b, "ready", timeout=60)
    assert {cvd(ws, a), cvd(ws, b)} == {"0", "1"}
    c = hold(cli, go, "--gpus", "1")
    job_c = row(ws, c)["job_id"]
    assert "#SBATCH --gres=gpu:1\n" in (ws.run_dir(c) / "job.sh").read_text()
    wait_for(lambda: job_state(job_c) == ("PENDING", "Resources"), 20,
             what=f"job {job_c} to wait for resources (it is {job_state(job_c)})")

    def listing() -> str | None:
        done = cli("runs", "list")
        assert done.returncode == 0, done.stderr
        return done.stdout if re.search(rf"^{c}\s+queued: Resources\s", done.stdout, re.MULTILINE) else None

    listed = wait_for(listing, 15, interval=0.3, what="`mltui runs list` to show 'queued: Resources'")
    assert re.search(rf"^{a}\s+running@slurm\s", listed, re.MULTILINE) and re.search(rf"^{b}\s+running@slurm\s", listed, re.MULTILINE)
    run = row(ws, c)
    assert run["status"] == "queued"
    assert run["reason"] == "waiting in Slurm: Resources"
    assert run["job_state"] == "PENDING"

    go.write_text("")  # the first two end; the third gets a GPU
    for run_id in (a, b, c):
        assert wait_ended(ws, run_id, timeout=60)["status"] == "finished"
    assert cvd(ws, c) in ("0", "1")


async def test_the_tui_shows_slurm_runs_beside_local_ones(slurm_ws, cli, monkeypatch):
    from textual.css.query import NoMatches
    from mltui.tui.app import create_app
    from mltui.tui.widgets.runs_table import RunsTable

    ws = slurm_ws
    monkeypatch.setenv("XDG_CONFIG_HOME", str(ws.project_dir / "xdg"))
    wait_idle()
    local = cli("run", "--", "python", "-c", "print('here')").stdout.strip()
    assert wait_ended(ws, local, timeout=30)["status"] == "finished"
    go = ws.project_dir / "go"
    a, b = hold(cli, go, "--gpus", "1"), hold(cli, go, "--gpus", "1")
    wait_output(ws, a, "ready", timeout=60)
    wait_output(ws, b, "ready", timeout=60)
    c = hold(cli, go, "--gpus", "1")
    job_c = row(ws, c)["job_id"]
    wait_for(lambda: job_state(job_c) == ("PENDING", "Resources"), 20,
             what=f"job {job_c} to wait for resources (it is {job_state(job_c)})")
    assert row(ws, c)["reason"] == "submitted to Slurm"  # only the TUI's own poll can say why

    app = create_app(ws)
    app.animation_level = "none"

    def cell(run_id: str) -> str:
        try:
            return app.screen.query_one("#runs-table", RunsTable).get_cell(run_id, "status").plain
        except (KeyError, NoMatches):  # not drawn yet
            return ""

    async with app.run_test(size=(160, 40)) as pilot:
        await until(pilot, lambda: "queued: Resources" in cell(c), timeout=20,
                    what=f"the status cell of {c} to say 'queued: Resources' (it says {cell(c)!r})")
        await until(pilot, lambda: cell(a).endswith("running@slurm") and cell(b).endswith("running@slurm"),
                    timeout=10, what="the running Slurm runs")
        assert cell(local).endswith(" finished") and "@slurm" not in cell(local)
        rows = app.screen.query_one("#runs-table", RunsTable).row_keys()
        assert {local, a, b, c} <= set(rows)
    go.write_text("")


# -- pipelines on Slurm ------------------------------------------------------------------------------

PIPELINE = """\
[stages.a]
run = "python stage.py a out/a"
deps = ["stage.py"]
outs = ["out/a"]

[stages.b]
run = "python stage.py b out/b"
deps = ["stage.py", "out/a"]
outs = ["out/b"]

[stages.c]
run = "python stage.py c out/c"
deps = ["stage.py", "out/b"]
outs = ["out/c"]

[stages.d]
run = "python stage.py d out/d"
deps = ["stage.py", "out/c"]
outs = ["out/d"]
"""

STAGE = """\
import os, sys, time
name, out = sys.argv[1], sys.argv[2]
go = os.environ.get("HOLD_" + name.upper())
while go and not os.path.exists(go):
    time.sleep(0.05)
if os.environ.get("FAIL_" + name.upper()):
    sys.exit(5)
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as fh:
    fh.write(name)
with open("ran.log", "a") as fh:
    fh.write(name + " " + os.environ.get("SLURM_JOB_ID", "-") + "\\n")
"""


def pipeline_project(ws) -> None:
    (ws.project_dir / "mltui.toml").write_text(PIPELINE)
    (ws.project_dir / "stage.py").write_text(STAGE)


def repro_on_slurm(ws, env: dict) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLTUI_")}
    return subprocess.Popen([sys.executable, "-m", "mltui", "repro", "--on", "slurm", "--json"], cwd=ws.project_dir,
                            env={**clean, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stage_jobs(ws) -> dict[str, str]:
    conn = sqlite3.connect(ws.db_path, timeout=10)
    try:
        return {stage: job for stage, job in conn.execute(
            "SELECT t.value, r.job_id FROM runs r JOIN tags t ON t.run_id = r.id AND t.key = 'pipeline.stage' "
            "WHERE r.job_id IS NOT NULL")}
    finally:
        conn.close()


def test_a_four_stage_pipeline_runs_on_slurm_in_order_with_afterok_dependencies(slurm_ws, tmp_path):
    ws = slurm_ws
    pipeline_project(ws)
    go = tmp_path / "go-a"
    proc = repro_on_slurm(ws, {"HOLD_A": str(go)})
    try:
        wait_for(lambda: len(stage_jobs(ws)) == 4, 60, what="all four stages submitted at once")
        jobs = stage_jobs(ws)
        for stage in "bcd":  # while a is held, each later stage waits on Slurm for its parent
            found = job_state(jobs[stage])
            assert found is not None and found[0] == "PENDING" and "Dependency" in found[1], (stage, found)
        deps = slurm_cmd("scontrol", "show", "job", jobs["c"]).stdout
        assert f"afterok:{jobs['b']}" in deps
        go.write_text("go")
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    result = {s["stage"]: s for s in json.loads(out)["stages"]}
    assert {s: r["state"] for s, r in result.items()} == dict.fromkeys("abcd", "done")
    lines = (ws.project_dir / "ran.log").read_text().split("\n")
    assert [line.split()[0] for line in lines if line] == ["a", "b", "c", "d"]
    assert [line.split()[1] for line in lines if line] == [jobs[s] for s in "abcd"]
    again = run_cli("repro", "--on", "slurm", cwd=ws.project_dir)
    assert again.returncode == 0 and "Nothing to do" in again.stdout


def test_a_failed_parent_on_slurm_cancels_the_stages_after_it(slurm_ws):
    ws = slurm_ws
    pipeline_project(ws)
    proc = repro_on_slurm(ws, {"FAIL_B": "1"})
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, err
    result = {s["stage"]: s for s in json.loads(out)["stages"]}
    assert result["a"]["state"] == "done" and result["b"]["state"] == "failed"
    assert result["c"]["state"] == "skipped" and result["d"]["state"] == "skipped"
    jobs = stage_jobs(ws)
    wait_for(lambda: all(state_of(jobs[s]) not in ACTIVE_STATES for s in "cd"), 60, what="c and d to leave Slurm")
    assert [line.split()[0] for line in (ws.project_dir / "ran.log").read_text().splitlines()] == ["a"]
    assert not (ws.project_dir / "out" / "c").exists() and not (ws.project_dir / "out" / "d").exists()
    for stage in "cd":
        assert status(ws, row_of_stage(ws, stage)) in ("killed", "failed")


def row_of_stage(ws, stage: str) -> str:
    conn = sqlite3.connect(ws.db_path, timeout=10)
    try:
        return conn.execute("SELECT r.id FROM runs r JOIN tags t ON t.run_id = r.id AND t.key = 'pipeline.stage' "
                            "WHERE t.value = ?", (stage,)).fetchone()[0]
    finally:
        conn.close()
