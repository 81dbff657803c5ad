"""The launcher, the supervisor, the queue and liveness, with real detached processes.

Every run here is a real process tree: `launch()` starts `python -m mltui.core.launch.supervisor`, which
starts the child command in its own process group. The tests poll the store with a deadline
(`wait_for`) instead of sleeping a fixed time. The autouse fixture `_no_leftovers` kills, at the
end of each test, every process that belongs to the test's workspace (supervisors and queue
workers name it on their command line; children carry it in MLTUI_WORKSPACE).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import math
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mltui.core.launch.commands import Command
from mltui.base.errors import MltuiError, UsageError
from mltui.core.launch.launcher import Launch, ensure_worker, launch, rerun_launch
from mltui.core.launch.stop import kill_run
from mltui.base.procs import pid_alive
from mltui.core.launch.liveness import reap_lost
from mltui.core.launch.queue import is_paused, queued, remove, set_paused
from mltui.core.runs.listing import get_run
from mltui.store.opening import open_store
from mltui.store.metrics import read_series
from mltui.store import runs as run_store
from mltui.store.connection import write_tx
from mltui.store.runs import values_for
from launching import (_connect, configure, kill_workspace_processes, output, row, status, wait_ended, wait_for,  # noqa: E402
                       wait_output, wait_queue_idle, wait_status)

# -- shared helpers ---------------------------------------------------------------------------


def script(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body).lstrip())
    return path


def py(*args: str) -> list[str]:
    return ["python", *args]


def group_members(pgid: int) -> list[tuple[int, str]]:
    """(pid, state) of the processes in group `pgid`, zombies included."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            out.append((int(entry), fields[0].decode()))
    return out


def live_group(pgid: int) -> list[int]:
    """Members of group `pgid` that are not zombies (an init that does not reap leaves zombies behind)."""
    return [pid for pid, state in group_members(pgid) if state not in ("Z", "X")]


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path):
    yield
    kill_workspace_processes(tmp_path / ".mltui")


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=cwd,
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


SLEEPER = "import time; print('ready', flush=True); time.sleep(60)"


# -- 1. a run that finishes ------------------------------------------------------------------

TRAIN = """
import os, sys, time
print("argv", " ".join(sys.argv[1:]), flush=True)
for epoch in range(3):
    print(f"epoch {epoch}", flush=True)
print("to stderr", file=sys.stderr, flush=True)
go = sys.argv[sys.argv.index("--go") + 1]
end = time.time() + 20
while not os.path.exists(go) and time.time() < end:  # the test says when to end
    time.sleep(0.05)
print("done", flush=True)
"""


def test_a_run_that_finishes_records_everything(ws, tmp_path):
    configure(ws, heartbeat_seconds=0.2)
    script(tmp_path / "train.py", TRAIN)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "train.py")
    git(tmp_path, "commit", "-q", "-m", "first")
    head = git(tmp_path, "rev-parse", "HEAD")
    command = Command("train", "python train.py --lr {lr} --epochs {epochs} --flag {flag} --tag {tag} --go {go}",
                      {"lr": 0.01, "epochs": 5, "flag": True, "tag": "base", "go": "go-1"}, "train", [], tmp_path)

    run_id = launch(ws, Launch(command=command, params={"lr": 0.5, "epochs": 3}))
    # the command waits for go-1 (made below): had launch() waited for it, the run would have ended
    assert status(ws, run_id) == "running", "launch() must not wait for the command"

    # the fingerprint arrives while the run is still going
    live = wait_for(lambda: (r := row(ws, run_id))["git_commit"] and r["python"] and r["env_hash"] and r,
                    timeout=10, what="the fingerprint")
    assert live["status"] == "running"
    assert live["git_commit"] == head
    assert live["git_dirty"] is False
    assert live["python"] == platform.python_version()
    assert isinstance(live["fingerprint"], dict) and live["fingerprint"]["python"] == platform.python_version()
    assert live["fingerprint"]["git_commit"] == head
    (tmp_path / "go-1").touch()

    done = wait_status(ws, run_id, "finished", "failed", "killed", "lost")
    assert done["status"] == "finished", done
    assert done["exit_code"] == 0
    assert "code 0" in done["reason"]
    assert isinstance(done["pid"], int) and done["pid"] > 0
    assert done["pgid"] == done["pid"], "the command leads its own process group"
    assert isinstance(done["sup_pid"], int) and done["sup_pid"] not in (done["pid"], os.getpid())
    assert done["host"] == socket.gethostname()
    assert done["user"] == getpass.getuser()
    assert done["started"] and done["ended"] and done["created"] <= done["started"] <= done["ended"]
    assert done["ended"] <= time.time()
    assert done["kind"] == "train"
    assert done["name"].startswith("train-")
    assert done["command"] == [sys.executable, "train.py", "--lr", "0.5", "--epochs", "3", "--flag", "true",
                               "--tag", "base", "--go", "go-1"]
    assert done["cwd"] == str(tmp_path)

    log = output(ws, run_id)
    assert "argv --lr 0.5 --epochs 3 --flag true --tag base --go go-1\n" in log
    assert "epoch 0\nepoch 1\nepoch 2\n" in log
    assert "to stderr\n" in log
    assert log.endswith("done\n")

    conn = _connect(ws)
    try:
        params = values_for(conn, "params", [run_id])[run_id]
        types = dict(conn.execute("SELECT key, type FROM params WHERE run_id = ?", (run_id,)).fetchall())
    finally:
        conn.close()
    assert params == {"lr": 0.5, "epochs": 3, "flag": True, "tag": "base", "go": "go-1"}
    assert [type(params[k]) for k in ("lr", "epochs", "flag", "tag")] == [float, int, bool, str]
    assert types == {"lr": "float", "epochs": "int", "flag": "bool", "tag": "str", "go": "str"}

    # a tracked file changed: the next run is marked dirty
    with open(tmp_path / "train.py", "a") as fh:
        fh.write("# changed\n")
    run2 = launch(ws, Launch(command=command, params={"go": "go-2"}))
    dirty = wait_for(lambda: (r := row(ws, run2))["git_commit"] and r, timeout=10, what="the second fingerprint")
    assert dirty["git_commit"] == head
    assert dirty["git_dirty"] is True
    (tmp_path / "go-2").touch()
    assert wait_ended(ws, run2)["status"] == "finished"


def test_a_short_run_still_gets_its_fingerprint(ws, tmp_path):
    script(tmp_path / "quick.py", "print('quick')\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "quick.py")
    git(tmp_path, "commit", "-q", "-m", "first")
    run_id = launch(ws, Launch(py("quick.py")))
    assert wait_ended(ws, run_id)["status"] == "finished"
    wait_for(lambda: row(ws, run_id)["git_commit"], timeout=3, what="git_commit on a short run")
    assert row(ws, run_id)["env_hash"]


# -- 2. a run that fails -----------------------------------------------------------------------


def test_a_run_that_exits_3_fails_with_its_code(ws):
    run_id = launch(ws, Launch(py("-c", "import sys; print('about to fail', flush=True); sys.exit(3)")))
    done = wait_ended(ws, run_id)
    assert done["status"] == "failed"
    assert done["exit_code"] == 3
    assert re.search(r"\bcode 3\b", done["reason"]), done["reason"]
    assert output(ws, run_id) == "about to fail\n"


def test_a_program_that_cannot_be_found_is_refused_before_anything_is_recorded(ws, tmp_path):
    with pytest.raises(MltuiError, match="not on PATH"):
        launch(ws, Launch(["no-such-program-mltui-test", "x"]))
    with pytest.raises(MltuiError, match="no such file"):
        launch(ws, Launch(["./missing.sh"]))
    conn = _connect(ws)
    try:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    finally:
        conn.close()


# -- 3. kill_run --------------------------------------------------------------------------------


def test_kill_run_stops_the_whole_group(ws, tmp_path):
    # the command starts a grandchild in its group: both must go
    child = script(tmp_path / "tree.py", """
        import subprocess, sys, time
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print("grandchild", grandchild.pid, flush=True)
        time.sleep(60)
    """)
    run_id = launch(ws, Launch(py(str(child))))
    wait_output(ws, run_id, "grandchild ")
    running = row(ws, run_id)
    assert running["status"] == "running"
    pgid = running["pgid"]
    grandchild = int(re.search(r"grandchild (\d+)", output(ws, run_id)).group(1))
    assert os.getpgid(grandchild) == pgid
    assert len(live_group(pgid)) == 2

    assert kill_run(ws, run_id, grace=3.0) == "killed"
    done = row(ws, run_id)
    assert done["status"] == "killed"
    assert "runs kill" in done["reason"]
    assert done["ended"] is not None
    assert done["exit_code"] == -signal.SIGTERM  # the SIGTERM ended it: no SIGKILL after the grace was needed
    wait_for(lambda: not live_group(pgid), timeout=5, what=f"process group {pgid} to be gone")
    assert not pid_alive(done["pid"]) and not pid_alive(grandchild)


def test_sigterm_reaches_every_process_of_the_group_not_only_the_leader(ws, tmp_path):
    # like torchrun: the leader ignores SIGTERM and waits for its worker; the worker stops on SIGTERM
    launcher = script(tmp_path / "launcher.py", """
        import signal, subprocess, sys
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        worker = subprocess.Popen([sys.executable, "-c",
            "import signal, sys, time\\n"
            "signal.signal(signal.SIGTERM, lambda *a: (print('worker got SIGTERM', flush=True), sys.exit(0)))\\n"
            "print('worker up', flush=True)\\n"
            "time.sleep(60)\\n"])
        print("worker exited", worker.wait(), flush=True)
    """)
    run_id = launch(ws, Launch(py(str(launcher))))
    wait_output(ws, run_id, "worker up")
    assert kill_run(ws, run_id, grace=8.0) == "killed"
    log = output(ws, run_id)
    # had only the leader been signalled, the worker would never have said this, and the leader would
    # have been SIGKILLed after the 8 s grace
    assert "worker got SIGTERM" in log and "worker exited 0" in log
    assert row(ws, run_id)["exit_code"] == 0  # the leader exited by itself once its worker had gone


def test_what_a_finished_command_leaves_in_its_group_is_stopped(ws):
    # the command exits 0 but leaves a background process in its group (a data-loader worker, `cmd &`)
    code = ("import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "print('left', p.pid, flush=True)")
    run_id = launch(ws, Launch(py("-c", code)))
    done = wait_ended(ws, run_id)
    assert done["status"] == "finished"
    left = int(re.search(r"left (\d+)", output(ws, run_id)).group(1))
    assert not pid_alive(left), "the command's leftover process still runs after the run ended"
    assert not live_group(done["pgid"])


def test_kill_run_on_a_plain_sleeper_leaves_no_process_group(ws):
    run_id = launch(ws, Launch(py("-c", SLEEPER)))
    wait_output(ws, run_id, "ready")
    pgid = row(ws, run_id)["pgid"]
    os.killpg(pgid, 0)  # there now
    assert kill_run(ws, run_id, grace=3.0) == "killed"
    done = row(ws, run_id)
    assert done["status"] == "killed" and "runs kill" in done["reason"]
    assert done["exit_code"] == -signal.SIGTERM
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


def test_a_child_that_ignores_sigterm_is_sigkilled_after_the_grace(ws):
    code = ("import signal, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: print(f'SIGTERM at {time.time()!r}', flush=True))\n"
            "print('ignoring', flush=True)\n"
            "while True:\n"
            "    time.sleep(60)\n")
    run_id = launch(ws, Launch(py("-c", code)))
    wait_output(ws, run_id, "ignoring")
    assert kill_run(ws, run_id, grace=1.0) == "killed"
    done = row(ws, run_id)
    assert done["status"] == "killed"
    assert "runs kill" in done["reason"]
    # the signals' order: one SIGTERM, then (its handler shrugged) SIGKILL, not before the grace ran out
    terms = [float(t) for t in re.findall(r"SIGTERM at ([0-9.]+)", output(ws, run_id))]
    assert len(terms) == 1, output(ws, run_id)
    assert done["exit_code"] == -signal.SIGKILL
    deadline = done["kill_requested"]  # kill_run's time + the grace: when the supervisor may SIGKILL
    assert terms[0] < deadline <= done["ended"]
    assert done["ended"] - deadline < 5.0  # at the supervisor's next tick (~0.1 s), not much after
    with pytest.raises(ProcessLookupError):
        os.killpg(done["pgid"], 0)


def test_the_sigterm_of_a_kill_the_heartbeat_saw_first_keeps_the_grace(ws):
    """`runs kill` writes its request, then signals the supervisor; a heartbeat between the two begins the
    stop from the request, and the signal that follows is the same kill, not a second one."""
    configure(ws, heartbeat_seconds=0.05)
    code = ("import signal, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: print(f'SIGTERM at {time.time()!r}', flush=True))\n"
            "print('ignoring', flush=True)\n"
            "while True:\n"
            "    time.sleep(60)\n")
    run_id = launch(ws, Launch(py("-c", code)))
    wait_output(ws, run_id, "ignoring")
    sup_pid = row(ws, run_id)["sup_pid"]
    deadline = time.time() + 3.0
    conn = open_store(ws.db_path)
    try:
        with write_tx(conn, ws.db_path):  # what kill_run writes first
            run_store.request_kill(conn, run_id, deadline)
    finally:
        conn.close()
    wait_output(ws, run_id, "SIGTERM at")  # the heartbeat saw the request and began the stop
    os.kill(sup_pid, signal.SIGTERM)  # what kill_run sends next
    done = wait_ended(ws, run_id, timeout=15)
    assert (done["status"], done["exit_code"]) == ("killed", -signal.SIGKILL)
    assert done["ended"] >= deadline, "SIGKILL came before the grace ran out"
    assert len(re.findall(r"SIGTERM at", output(ws, run_id))) == 1


def test_kill_run_refuses_a_run_that_has_ended(ws):
    run_id = launch(ws, Launch(py("-c", "pass")))
    wait_ended(ws, run_id)
    with pytest.raises(MltuiError, match="finished; there is nothing to kill"):
        kill_run(ws, run_id)
    with pytest.raises(MltuiError, match="not in the store"):
        kill_run(ws, "0000000zzz")


def test_kill_right_after_launch_ends_killed(ws):
    run_id = launch(ws, Launch(py("-c", SLEEPER)))
    assert kill_run(ws, run_id, grace=1.0, wait=3.0) == "killed"


# -- 4. a child killed from outside --------------------------------------------------------------


def test_a_child_sigkilled_from_outside_ends_killed(ws):
    run_id = launch(ws, Launch(py("-c", SLEEPER)))
    wait_output(ws, run_id, "ready")
    pid = row(ws, run_id)["pid"]
    os.kill(pid, signal.SIGKILL)
    done = wait_ended(ws, run_id)
    assert done["status"] == "killed"
    assert "SIGKILL" in done["reason"]
    assert done["exit_code"] == -signal.SIGKILL
    assert done["ended"] is not None
    wait_for(lambda: not pid_alive(done["sup_pid"]), 5, what="the supervisor to leave")


def test_a_child_that_crashes_with_sigsegv_fails(ws):
    run_id = launch(ws, Launch(py("-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")))
    done = wait_ended(ws, run_id)
    assert done["status"] == "failed"
    assert "SIGSEGV" in done["reason"]


def test_sigterm_to_the_supervisor_is_forwarded_to_the_command(ws):
    run_id = launch(ws, Launch(py("-c", SLEEPER)))
    wait_output(ws, run_id, "ready")
    running = row(ws, run_id)
    os.kill(running["sup_pid"], signal.SIGTERM)
    done = wait_ended(ws, run_id)
    assert done["status"] == "killed"
    assert "SIGTERM" in done["reason"]
    with pytest.raises(ProcessLookupError):
        os.killpg(running["pgid"], 0)


# -- 5. a supervisor that dies -------------------------------------------------------------------


def test_a_sigkilled_supervisor_makes_the_run_lost(ws, cli):
    first = launch(ws, Launch(py("-c", SLEEPER)))
    second = launch(ws, Launch(py("-c", SLEEPER)))
    for run_id in (first, second):
        wait_output(ws, run_id, "ready")
    rows = {run_id: row(ws, run_id) for run_id in (first, second)}
    try:
        conn = open_store(ws.db_path)
        try:
            assert reap_lost(ws, conn) == []  # both alive: nothing to reap
            os.kill(rows[first]["sup_pid"], signal.SIGKILL)
            wait_for(lambda: not pid_alive(rows[first]["sup_pid"]), 5, what="the supervisor to die")
            assert reap_lost(ws, conn) == [first]
        finally:
            conn.close()
        lost = row(ws, first)
        assert lost["status"] == "lost"
        assert str(rows[first]["sup_pid"]) in lost["reason"] and "gone" in lost["reason"]
        assert lost["ended"] is not None
        assert status(ws, second) == "running"

        # `mltui runs list` reaps too
        os.kill(rows[second]["sup_pid"], signal.SIGKILL)
        wait_for(lambda: not pid_alive(rows[second]["sup_pid"]), 5, what="the supervisor to die")
        listed = cli("runs", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        by_id = {r["id"]: r for r in json.loads(listed.stdout)}
        assert by_id[second]["status"] == "lost"
        assert by_id[first]["status"] == "lost"
        assert status(ws, second) == "lost"
        # the commands themselves are orphans, still running
        for r in rows.values():
            assert pid_alive(r["pid"])
    finally:  # clean them up
        for r in rows.values():
            try:
                os.killpg(r["pgid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
    for r in rows.values():
        wait_for(lambda: not live_group(r["pgid"]), 5)


def test_reap_lost_marks_only_the_dead_one(ws):
    alive = launch(ws, Launch(py("-c", SLEEPER)))
    dead = launch(ws, Launch(py("-c", SLEEPER)))
    wait_output(ws, alive, "ready")
    wait_output(ws, dead, "ready")
    victim = row(ws, dead)
    os.kill(victim["sup_pid"], signal.SIGKILL)
    wait_for(lambda: not pid_alive(victim["sup_pid"]), 5)
    conn = open_store(ws.db_path)
    try:
        assert reap_lost(ws, conn) == [dead]
        assert reap_lost(ws, conn) == []  # once
    finally:
        conn.close()
    assert status(ws, alive) == "running"
    assert status(ws, dead) == "lost"
    os.killpg(victim["pgid"], signal.SIGKILL)


def test_a_stalled_supervisor_is_lost_by_heartbeat_and_comes_back(ws):
    configure(ws, heartbeat_seconds=0.2, lost_after_seconds=1.0)
    run_id = launch(ws, Launch(py("-c", SLEEPER)))
    wait_output(ws, run_id, "ready")
    first = row(ws, run_id)
    wait_for(lambda: row(ws, run_id)["heartbeat"] > first["heartbeat"], 5, what="a heartbeat")
    os.kill(first["sup_pid"], signal.SIGSTOP)
    try:
        conn = open_store(ws.db_path)
        try:
            wait_for(lambda: reap_lost(ws, conn) == [run_id], 6, what="the stalled run to be reaped")
        finally:
            conn.close()
        lost = row(ws, run_id)
        assert lost["status"] == "lost" and "heartbeat" in lost["reason"]
    finally:
        os.kill(first["sup_pid"], signal.SIGCONT)
    # the supervisor was only stalled: its next heartbeat says the run is running again
    back = wait_status(ws, run_id, "running", timeout=5)
    assert back["reason"] is None
    assert kill_run(ws, run_id, grace=1.0) == "killed"


def test_kill_run_on_a_running_run_whose_supervisor_died_kills_the_group(ws):
    run_id = launch(ws, Launch(py("-c", SLEEPER)))
    wait_output(ws, run_id, "ready")
    r = row(ws, run_id)
    os.kill(r["sup_pid"], signal.SIGKILL)
    wait_for(lambda: not pid_alive(r["sup_pid"]), 5)
    assert kill_run(ws, run_id, grace=1.0) == "killed"  # not reaped yet: still 'running'
    assert "runs kill" in row(ws, run_id)["reason"]
    wait_for(lambda: not live_group(r["pgid"]), 5, what="the orphaned group to be killed")


def test_kill_run_stops_the_orphan_of_a_lost_run(ws):
    run_id = launch(ws, Launch(py("-c", SLEEPER)))
    wait_output(ws, run_id, "ready")
    r = row(ws, run_id)
    os.kill(r["sup_pid"], signal.SIGKILL)
    wait_for(lambda: not pid_alive(r["sup_pid"]), 5)
    conn = open_store(ws.db_path)
    try:
        assert reap_lost(ws, conn) == [run_id]
    finally:
        conn.close()
    assert pid_alive(r["pid"])
    try:
        assert kill_run(ws, run_id, grace=1.0) == "killed"
        # gone (reaped by an init that reaps orphans), or a zombie (one that does not): not alive either way
        wait_for(lambda: not live_group(r["pgid"]), 5, what="the orphan's group to be gone")
        done = row(ws, run_id)
        assert done["status"] == "killed" and "runs kill" in done["reason"]
    finally:  # should the kill have failed: no orphan left behind (an empty group is no error here)
        try:
            os.killpg(r["pgid"], signal.SIGKILL)
        except ProcessLookupError:
            pass


# -- 6. outliving the launcher -------------------------------------------------------------------


def test_a_run_outlives_the_process_that_launched_it(ws, cli):
    configure(ws, heartbeat_seconds=0.2)
    code = ("import os, time\n"
            "print('start', flush=True)\n"
            "end = time.time() + 30\n"
            "while not os.path.exists('go') and time.time() < end:  # the test says when to end\n"
            "    time.sleep(0.05)\n"
            "print('end', flush=True)\n")
    launched = cli("run", "--", "python", "-c", code)  # returns when that process has exited
    assert launched.returncode == 0, launched.stderr
    run_id = launched.stdout.strip()
    first = wait_for(lambda: (r := row(ws, run_id))["pid"] and r, 5, what="the command to start")
    assert first["status"] == "running", "`mltui run` waited for the command"  # it waits for `go` still
    beat = first["heartbeat"]
    wait_for(lambda: row(ws, run_id)["heartbeat"] > beat + 0.3, 5, what="the heartbeat to advance")
    assert status(ws, run_id) == "running"
    (ws.project_dir / "go").touch()
    done = wait_ended(ws, run_id)
    assert done["status"] == "finished" and done["exit_code"] == 0
    assert output(ws, run_id) == "start\nend\n"


def test_a_run_survives_a_hangup_of_the_session_that_launched_it(ws, tmp_path):
    """Closing the TUI's terminal or losing SSH signals the launcher's whole session: not the run."""
    configure(ws, heartbeat_seconds=0.2)
    tui = script(tmp_path / "tui.py", f"""
        import sys, time
        from mltui.core.workspace import Workspace
        from mltui.core.launch.launcher import Launch, launch
        run_id = launch(Workspace({str(ws.root)!r}), Launch(
            ["python", "-c", "import os, time; print('start', flush=True); end = time.time() + 30\\n"
                             "while not os.path.exists('go') and time.time() < end: time.sleep(0.05)\\n"
                             "print('end', flush=True)"]))
        print(run_id, flush=True)
        time.sleep(60)
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTUI_")}
    proc = subprocess.Popen([sys.executable, str(tui)], stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                            start_new_session=True)
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id
        wait_output(ws, run_id, "start")
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):  # what a closing terminal sends its session
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
        proc.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    beat = row(ws, run_id)["heartbeat"]
    assert status(ws, run_id) == "running"  # it waits for `go`: still running, whatever the hangup did
    wait_for(lambda: row(ws, run_id)["heartbeat"] > beat, 5, what="the heartbeat to advance")
    (tmp_path / "go").touch()
    done = wait_ended(ws, run_id)
    assert done["status"] == "finished", done["reason"]
    assert output(ws, run_id) == "start\nend\n"


# -- 7. the queue: max_parallel ------------------------------------------------------------------


def test_a_queued_sweep_never_runs_more_than_max_parallel(ws, tmp_path):
    configure(ws, max_parallel=2)
    times = tmp_path / "times.txt"
    work = script(tmp_path / "work.py", f"""
        import sys, time
        start = time.time()
        time.sleep(0.6)
        with open({str(times)!r}, "a") as fh:
            fh.write(f"{{sys.argv[1]}} {{start}} {{time.time()}}\\n")
    """)
    command = Command("work", f"python {work} {{i}}", {"i": 0}, "other", [], tmp_path)
    # every launch wakes a worker, as six `mltui run --queue` calls would: the lock lets one of them serve
    ids = [launch(ws, Launch(command=command, params={"i": i}, queue=True)) for i in range(6)]
    ensure_worker(ws)

    most = 0
    conn = _connect(ws)
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            counts = dict(conn.execute(
                "SELECT status, count(*) FROM runs GROUP BY status").fetchall())
            most = max(most, counts.get("running", 0))
            if counts.get("finished", 0) + counts.get("failed", 0) + counts.get("killed", 0) == 6:
                break
            time.sleep(0.05)
    finally:
        conn.close()
    assert [status(ws, i) for i in ids] == ["finished"] * 6
    assert most <= 2, f"the store showed {most} runs running at once"

    spans = [line.split() for line in times.read_text().splitlines()]
    assert sorted(int(s[0]) for s in spans) == list(range(6))
    events = sorted([(float(s[1]), 1) for s in spans] + [(float(s[2]), -1) for s in spans],
                    key=lambda e: (e[0], e[1]))
    now, peak = 0, 0
    for _, delta in events:
        now += delta
        peak = max(peak, now)
    assert peak <= 2, f"{peak} commands ran at once with max_parallel = 2"
    assert peak == 2, "the queue never ran two at once"
    # oldest first
    starts = {int(s[0]): float(s[1]) for s in spans}
    assert starts[0] < starts[4] and starts[1] < starts[5]


# -- 8. metrics.jsonl ----------------------------------------------------------------------------

JSONL_WRITER = r"""
import os, time
path = os.path.join(os.environ["MLTUI_RUN_DIR"], "metrics.jsonl")
def put(text, pause=0.0):
    with open(path, "ab") as fh:
        fh.write(text.encode())
    time.sleep(pause)
put('{"step": 0, "loss": 1.0, "acc": 0.1}\n')
put('not json at all\n')                             # bad 1
put('{"step": 1, "loss": 0.5}\n', 0.3)
put('[1, 2, 3]\n')                                   # bad 2
put('\n')                                            # empty: skipped, not counted
put('{"step": 2, "loss": "high"}\n')                 # bad 3: a string that is not a number
put('{"loss": 0.25, "acc": null}\n', 0.3)           # no step: the next one (2); null is NaN
put('{"step": 1.5, "loss": 9.0}\n')                  # bad 4: a step that is not an integer
put('{"step": 10, "loss": "nan", "acc": "inf", "time": 1700000000.5}\n')
put('{"step": 11, "lo', 0.6)                         # half a line across supervisor ticks
put('ss": -1e300, "acc": -2}\n', 0.3)
put('{"step": 12, "loss": 0.125, "acc": 1}')         # the last line has no newline
"""


def test_metrics_jsonl_with_garbage_arrives_exactly(ws, tmp_path):
    writer = script(tmp_path / "writer.py", JSONL_WRITER)
    run_id = launch(ws, Launch(py(str(writer))))
    done = wait_ended(ws, run_id)
    assert done["status"] == "finished", output(ws, run_id)
    assert done["bad_lines"] == 4

    conn = _connect(ws)
    try:
        loss = read_series(conn, run_id, "loss")
        acc = read_series(conn, run_id, "acc")
        keys = [k for (k,) in conn.execute("SELECT key FROM metric_summary WHERE run_id = ? ORDER BY key", (run_id,))]
        counts = dict(conn.execute("SELECT key, count FROM metric_summary WHERE run_id = ?", (run_id,)).fetchall())
    finally:
        conn.close()
    assert keys == ["acc", "loss"]
    assert list(loss[0]) == [0, 1, 2, 10, 11, 12]
    assert same_floats(list(loss[1]), [1.0, 0.5, 0.25, math.nan, -1e300, 0.125])
    assert list(acc[0]) == [0, 2, 10, 11, 12]
    assert same_floats(list(acc[1]), [0.1, math.nan, math.inf, -2.0, 1.0])
    assert counts == {"loss": 6, "acc": 5}
    assert acc[2][2] == 1700000000.5  # a line's own "time" is kept
    assert abs(acc[2][0] - done["started"]) < 30


def same_floats(got: list[float], want: list[float]) -> bool:
    return len(got) == len(want) and all(
        (math.isnan(g) and math.isnan(w)) or g == w for g, w in zip(got, want))


def test_metrics_from_the_tracking_api_and_jsonl_land_in_the_same_tables(ws, tmp_path):
    child = script(tmp_path / "both.py", """
        import json, os, mltui
        run = mltui.init(params={"from_api": True})
        for step in range(3):
            run.log({"api/loss": 1.0 / (step + 1)}, step=step)
        run.finish()
        with open(os.path.join(os.environ["MLTUI_RUN_DIR"], "metrics.jsonl"), "w") as fh:
            for step in range(3):
                fh.write(json.dumps({"step": step, "file/loss": float(step)}) + "\\n")
        print(run.id)
    """)
    run_id = launch(ws, Launch(py(str(child))))
    done = wait_ended(ws, run_id)
    assert done["status"] == "finished", output(ws, run_id)
    assert output(ws, run_id).strip() == run_id  # attached to the launched run, not a new one
    conn = _connect(ws)
    try:
        assert list(read_series(conn, run_id, "api/loss")[1]) == [1.0, 0.5, 1 / 3]
        assert list(read_series(conn, run_id, "file/loss")[1]) == [0.0, 1.0, 2.0]
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    finally:
        conn.close()
    conn = _connect(ws)
    try:
        assert get_run(conn, run_id)["params"]["from_api"] is True
    finally:
        conn.close()


# -- 9. artifacts --------------------------------------------------------------------------------

ARTIFACT_WRITER = r"""
import os, sqlite3, sys, time
art = os.path.join(os.environ["MLTUI_RUN_DIR"], "artifacts")
os.makedirs(os.path.join(art, "sub"), exist_ok=True)
with open(os.path.join(art, "model.bin"), "wb") as fh:
    fh.write(os.urandom(200_000))
with open(os.path.join(art, "sub", "notes.txt"), "w") as fh:
    fh.write("notes\n")
with open(os.path.join("checkpoints", "ckpt-1.pt"), "wb") as fh:
    fh.write(b"c1" * 5000)
os.symlink(sys.argv[1], os.path.join(art, "leak"))          # points outside the run
os.symlink("/etc", os.path.join(art, "etc"))                # a folder outside
os.symlink(sys.argv[1], os.path.join("checkpoints", "leak.pt"))
conn = sqlite3.connect(os.path.join(os.environ["MLTUI_WORKSPACE"], "mltui.db"), timeout=10)
end = time.time() + 20
while time.time() < end and not conn.execute(  # until the first version is hashed (once still a while)
        "SELECT sha256 FROM artifacts WHERE run_id = ? AND path = 'artifacts/model.bin' AND sha256 IS NOT NULL",
        (os.environ["MLTUI_RUN_ID"],)).fetchone():
    time.sleep(0.05)
print("first version hashed" if time.time() < end else "first version never hashed", flush=True)
with open(os.path.join(art, "model.bin"), "wb") as fh:      # rewritten at the very end
    fh.write(b"final weights " * 1000)
os.makedirs(os.path.join("checkpoints", "deep"), exist_ok=True)
with open(os.path.join("checkpoints", "deep", "ckpt-2.pt"), "wb") as fh:
    fh.write(b"c2" * 7000)
print("written", flush=True)
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_artifacts_and_watched_folders_are_recorded_with_size_and_sha256(ws, tmp_path):
    secret = tmp_path / "outside-secret.txt"
    secret.write_text("not an artifact\n")
    (tmp_path / "checkpoints").mkdir()
    old = tmp_path / "checkpoints" / "old.pt"
    old.write_bytes(b"from an earlier run")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    writer = script(tmp_path / "writer.py", ARTIFACT_WRITER)
    command = Command("art", f"python {writer} {{target}}", {"target": str(secret)}, "train",
                      ["checkpoints"], tmp_path)
    run_id = launch(ws, Launch(command=command))
    done = wait_ended(ws, run_id)
    assert done["status"] == "finished", output(ws, run_id)
    assert output(ws, run_id).startswith("first version hashed\n"), output(ws, run_id)

    conn = _connect(ws)
    try:
        rows = {p: (size, digest, location) for p, size, digest, location in conn.execute(
            "SELECT path, size, sha256, location FROM artifacts WHERE run_id = ?", (run_id,))}
    finally:
        conn.close()
    art = ws.run_dir(run_id) / "artifacts"
    expected = {
        "artifacts/model.bin": art / "model.bin",
        "artifacts/sub/notes.txt": art / "sub" / "notes.txt",
        "checkpoints/ckpt-1.pt": tmp_path / "checkpoints" / "ckpt-1.pt",
        "checkpoints/deep/ckpt-2.pt": tmp_path / "checkpoints" / "deep" / "ckpt-2.pt",
    }
    assert sorted(rows) == sorted(expected), rows
    for name, path in expected.items():
        size, digest, location = rows[name]
        assert size == path.stat().st_size, name
        assert digest == sha256(path), f"{name}: the sha256 is not the file's final content"
        assert Path(location) == path
    assert rows["artifacts/model.bin"][0] == len(b"final weights ") * 1000


def test_an_artifact_deleted_before_the_end_is_dropped(ws, tmp_path):
    code = textwrap.dedent("""
        import os, sqlite3, time
        art = os.path.join(os.environ["MLTUI_RUN_DIR"], "artifacts")
        open(os.path.join(art, "tmp.txt"), "w").write("scratch")
        open(os.path.join(art, "keep.txt"), "w").write("keep")
        conn = sqlite3.connect(os.path.join(os.environ["MLTUI_WORKSPACE"], "mltui.db"), timeout=10)
        end = time.time() + 20
        while time.time() < end and not conn.execute(  # until the supervisor has recorded it
                "SELECT 1 FROM artifacts WHERE run_id = ? AND path = 'artifacts/tmp.txt'",
                (os.environ["MLTUI_RUN_ID"],)).fetchone():
            time.sleep(0.05)
        print("recorded" if time.time() < end else "never recorded", flush=True)
        os.remove(os.path.join(art, "tmp.txt"))
    """)
    run_id = launch(ws, Launch(py("-c", code)))
    assert wait_ended(ws, run_id)["status"] == "finished"
    assert output(ws, run_id) == "recorded\n"  # the watcher saw tmp.txt before it went
    conn = _connect(ws)
    try:
        paths = [p for (p,) in conn.execute("SELECT path FROM artifacts WHERE run_id = ?", (run_id,))]
    finally:
        conn.close()
    assert paths == ["artifacts/keep.txt"]


# -- 10. GPUs ------------------------------------------------------------------------------------


def test_queued_gpu_runs_take_turns_on_one_simulated_gpu(ws, tmp_path, monkeypatch):
    monkeypatch.setenv("MLTUI_GPU_SIM", "1x24")
    configure(ws, max_parallel=4)  # GPU runs are limited by GPUs, not by max_parallel
    seen = tmp_path / "seen.txt"
    code = (f"import os, time; s = time.time(); time.sleep(0.8); "
            f"open({str(seen)!r}, 'a').write(f\"{{os.environ.get('CUDA_VISIBLE_DEVICES')}} {{s}} {{time.time()}}\\n\")")
    ids = [launch(ws, Launch(py("-c", code), queue=True, gpus=1), wake_queue=False) for _ in range(2)]
    ensure_worker(ws)
    for run_id in ids:
        done = wait_ended(ws, run_id, timeout=20)
        assert done["status"] == "finished", output(ws, run_id)
        assert done["gpus"] == [0]
    lines = [line.split() for line in seen.read_text().splitlines()]
    assert [line[0] for line in lines] == ["0", "0"]
    (_, s1, e1), (_, s2, e2) = sorted(lines, key=lambda line: float(line[1]))
    assert float(s2) >= float(e1), "two runs were given the same GPU at the same time"


def test_asking_for_more_gpus_than_the_machine_has_is_refused(ws, monkeypatch):
    monkeypatch.setenv("MLTUI_GPU_SIM", "1x24")
    for queue in (False, True):
        with pytest.raises(MltuiError, match=r"asks for 2 GPUs but this machine has 1") as info:
            launch(ws, Launch(py("-c", "pass"), gpus=2, queue=queue))
        assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match="negative"):
        Launch(py("-c", "pass"), gpus=-1)
    monkeypatch.delenv("MLTUI_GPU_SIM")
    configure(ws, backend="none")
    with pytest.raises(MltuiError, match="has 0"):
        launch(ws, Launch(py("-c", "pass"), gpus=1))
    conn = _connect(ws)
    try:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    finally:
        conn.close()


def test_a_busy_gpu_refuses_an_immediate_launch_and_says_queue(ws, monkeypatch):
    monkeypatch.setenv("MLTUI_GPU_SIM", "1x24")
    code = "import os, time; print(os.environ['CUDA_VISIBLE_DEVICES'], flush=True); time.sleep(60)"
    first = launch(ws, Launch(py("-c", code), gpus=1))
    wait_output(ws, first, "0\n")
    assert row(ws, first)["gpus"] == [0]
    with pytest.raises(MltuiError, match=r"No 1 free GPU right now; add --queue"):
        launch(ws, Launch(py("-c", "pass"), gpus=1))
    assert kill_run(ws, first, grace=1.0) == "killed"


def test_asking_for_more_gpu_memory_than_any_gpu_has_is_refused(ws, monkeypatch):
    monkeypatch.setenv("MLTUI_GPU_SIM", "1x24")
    for queue in (True, False):
        with pytest.raises(MltuiError) as info:
            launch(ws, Launch(py("-c", "pass"), gpus=1, gpu_mem=30, queue=queue))
        assert str(info.value) == "The run asks for 30 GB on each of 1 GPU, but the largest GPU here has 24 GB in all."
    conn = _connect(ws)
    try:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0  # refused before anything was recorded
    finally:
        conn.close()


# -- 11. rerun -----------------------------------------------------------------------------------


def test_rerun_repeats_the_command_with_changed_params(ws, tmp_path):
    echo = script(tmp_path / "echo_args.py", "import json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    command = Command("echo", f"python {echo} --lr {{lr}} --epochs {{epochs}} --opt {{opt}}",
                      {"lr": 0.1, "epochs": 2, "opt": "sgd"}, "train", [], tmp_path)
    original = launch(ws, Launch(command=command, params={"epochs": 3}, note="first"))
    assert wait_ended(ws, original)["status"] == "finished"
    conn = open_store(ws.db_path)
    try:
        first = get_run(conn, original)
    finally:
        conn.close()
    assert json.loads(output(ws, original)) == ["--lr", "0.1", "--epochs", "3", "--opt", "sgd"]

    same = launch(ws, rerun_launch(ws, first, {}))
    changed = launch(ws, rerun_launch(ws, first, {"lr": 0.5}))
    for run_id in (same, changed):
        assert wait_ended(ws, run_id)["status"] == "finished"
    conn = open_store(ws.db_path)
    try:
        again, other = get_run(conn, same), get_run(conn, changed)
    finally:
        conn.close()
    assert again["command"] == first["command"]
    assert again["params"] == first["params"] == {"lr": 0.1, "epochs": 3, "opt": "sgd"}
    assert again["rerun_of"] == other["rerun_of"] == original
    assert again["kind"] == "train" and again["cwd"] == first["cwd"]
    assert other["params"] == {"lr": 0.5, "epochs": 3, "opt": "sgd"}
    assert type(other["params"]["lr"]) is float
    assert json.loads(output(ws, changed)) == ["--lr", "0.5", "--epochs", "3", "--opt", "sgd"]
    assert other["command"][other["command"].index("--lr") + 1] == "0.5"

    with pytest.raises(UsageError, match="no param 'nope'"):
        rerun_launch(ws, first, {"nope": 1})


def test_rerun_of_a_plain_command(ws):
    run_id = launch(ws, Launch(py("-c", "print('plain')")))
    wait_ended(ws, run_id)
    conn = open_store(ws.db_path)
    try:
        first = get_run(conn, run_id)
    finally:
        conn.close()
    with pytest.raises(UsageError, match="no params to change"):
        rerun_launch(ws, first, {"lr": 1})
    again = launch(ws, rerun_launch(ws, first, {}))
    done = wait_ended(ws, again)
    assert done["status"] == "finished"
    assert done["command"] == first["command"] and done["rerun_of"] == run_id
    assert output(ws, again) == "plain\n"


# -- 12. queue pause, resume, remove -------------------------------------------------------------


def test_queue_pause_resume_and_remove(ws):
    set_paused(ws, True)
    ids = [launch(ws, Launch(py("-c", f"print('q{i}')"), queue=True, name=f"q{i}")) for i in range(3)]
    wait_queue_idle(ws.root)  # every worker woken by launch() has seen the pause and left
    assert "Traceback" not in (ws.root / "queue.log").read_text()  # left, not crashed
    conn = open_store(ws.db_path)
    try:
        assert is_paused(conn)
        waiting = queued(conn)
        assert [w["id"] for w in waiting] == ids
        assert [w["name"] for w in waiting] == ["q0", "q1", "q2"]
        assert remove(ws, conn, [ids[1]]) == [ids[1]]
        assert [w["id"] for w in queued(conn)] == [ids[0], ids[2]]
        assert conn.execute("SELECT count(*) FROM runs WHERE id = ?", (ids[1],)).fetchone()[0] == 0
        assert not ws.run_dir(ids[1]).exists()
    finally:
        conn.close()
    assert kill_run(ws, ids[2]) == "killed"
    assert "queue" in row(ws, ids[2])["reason"]
    assert status(ws, ids[0]) == "queued"

    set_paused(ws, False)
    done = wait_ended(ws, ids[0])
    assert done["status"] == "finished"
    assert output(ws, ids[0]) == "q0\n"
    assert status(ws, ids[2]) == "killed"  # a killed queued run is not started
    conn = open_store(ws.db_path)
    try:
        assert not is_paused(conn)
        with pytest.raises(MltuiError, match="is not queued"):
            remove(ws, conn, [ids[0]])
    finally:
        conn.close()
    assert not ws.run_dir(ids[2]).joinpath("output.log").exists()


# -- 13. liveness of runs made by mltui.init() ---------------------------------------------------


def test_an_init_run_whose_process_is_sigkilled_becomes_lost(ws, tmp_path):
    child = script(tmp_path / "tracked.py", f"""
        import time, mltui
        run = mltui.init(name="tracked", workspace={str(tmp_path)!r})
        run.log({{"loss": 1.0}})
        run.flush()
        print(run.id, flush=True)
        time.sleep(60)
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTUI_")}
    proc = subprocess.Popen([sys.executable, str(child)], stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, "the script printed no run id"
        r = row(ws, run_id)
        assert r["status"] == "running" and r["pid"] == proc.pid and r["sup_pid"] is None
        conn = open_store(ws.db_path)
        try:
            assert reap_lost(ws, conn) == []  # alive
            proc.kill()
            proc.wait(5)
            assert not pid_alive(proc.pid)
            assert reap_lost(ws, conn) == [run_id]
        finally:
            conn.close()
        lost = row(ws, run_id)
        assert lost["status"] == "lost"
        assert str(proc.pid) in lost["reason"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_pid_alive():
    assert pid_alive(os.getpid())
    assert not pid_alive(None) and not pid_alive(0) and not pid_alive(-1)
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_for(lambda: open(f"/proc/{zombie.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z", 5)
    assert not pid_alive(zombie.pid), "a zombie is not alive"
    zombie.wait()
    assert not pid_alive(zombie.pid)
