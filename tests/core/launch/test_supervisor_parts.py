"""The supervisor's parts on their own (artifact hashing, metrics.jsonl reading) and the launch edge cases a
review found: queued runs keep the submitter's environment, a failed spawn fails the run, runs kill and
runs rm on several or running runs, watch folders that cannot be used."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading

import pytest

from launching import configure, kill_workspace_processes, output, row, status, wait_ended, wait_for, wait_output
from mltui.core.launch import artifact_watch, jsonl_tail
from mltui.core.launch.artifact_watch import ArtifactWatcher, Root
from mltui.core.launch.commands import load_commands
from mltui.base.errors import MltuiError
from mltui.core.launch.jsonl_tail import JsonlTail
from mltui.core.launch.launcher import Launch, launch
from mltui.core.launch.queue import set_paused

SLEEPER = "import time; print('ready', flush=True); time.sleep(60)"


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path):
    yield
    kill_workspace_processes(tmp_path / ".mltui")


# -- hashing happens beside the loop, not in it --------------------------------------------------

def test_a_file_being_hashed_does_not_hold_up_poll(tmp_path, monkeypatch):
    folder = tmp_path / "artifacts"
    folder.mkdir()
    (folder / "ckpt.bin").write_bytes(b"x" * 1000)
    release = threading.Event()
    real = artifact_watch.sha256_file

    def slow(path):  # stands for a 10 GB checkpoint
        release.wait(10)
        return real(path)

    monkeypatch.setattr(artifact_watch, "sha256_file", slow)
    monkeypatch.setattr(artifact_watch, "STABLE_SECONDS", 0.0)
    watcher = ArtifactWatcher([Root(folder, "artifacts")])
    watcher.scan()
    rows, _ = watcher.poll()
    assert [(r[0], r[1], r[2]) for r in rows] == [("artifacts/ckpt.bin", 1000, None)]  # seen at once
    rows, _ = watcher.poll()  # the hash is under way and blocked: poll still returns
    assert all(r[2] is None for r in rows)
    release.set()
    digest = hashlib.sha256(b"x" * 1000).hexdigest()
    found = wait_for(lambda: [r for r in watcher.poll()[0] if r[2]], 5, what="the hash to arrive")
    assert found[0][:3] == ("artifacts/ckpt.bin", 1000, digest)
    watcher.stop()


def test_the_workspace_and_dotdot_names(tmp_path):
    project = tmp_path / "p"
    (project / ".mltui").mkdir(parents=True)
    root = Root(project, "proj", exclude=str(project / ".mltui"))
    assert root.name_of(str(project / ".mltui" / "mltui.db")) is None
    assert root.name_of(str(project / "..x.txt")) == "proj/..x.txt"  # a name, not an escape
    assert root.name_of(str(project / ".." / "x.txt")) is None


@pytest.mark.parametrize("folder", [".", "", ".mltui", "../up", "/abs", "~"])
def test_watch_folders_that_are_not_inside_the_project_are_refused(tmp_path, folder):
    (tmp_path / "mltui.toml").write_text(f'[commands.t]\nrun = "python x.py"\nwatch = [{json.dumps(folder)}]\n')
    with pytest.raises(MltuiError, match="watched folder"):
        load_commands(tmp_path / "mltui.toml")


def test_a_watch_folder_that_cannot_be_made_spares_the_artifacts(ws, tmp_path):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    (tmp_path / "mltui.toml").write_text(
        '[commands.t]\nrun = "python write.py"\nwatch = ["notes.txt"]\n')
    (tmp_path / "write.py").write_text(
        "import os\nopen(os.path.join(os.environ['MLTUI_RUN_DIR'], 'artifacts', 'm.bin'), 'wb').write(b'm' * 10)\n")
    run_id = launch(ws, Launch(command=load_commands(tmp_path / "mltui.toml")["t"]))
    assert wait_ended(ws, run_id)["status"] == "finished"
    from mltui.core.runs.listing import get_run
    from mltui.store.opening import open_store

    conn = open_store(ws.db_path)
    try:
        arts = get_run(conn, run_id)["artifacts"]
    finally:
        conn.close()
    assert [(a["path"], a["size"]) for a in arts] == [("artifacts/m.bin", 10)]
    assert "cannot watch" in (ws.run_dir(run_id) / "supervisor.log").read_text()


# -- metrics.jsonl --------------------------------------------------------------------------------

def test_values_never_span_lines_and_a_line_never_holds_two(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"loss": 1}, {"loss": 2}\n"unterminated\ngarbage"\n{"loss": 3}\n{"a": [1\n2]}\n'
                    '{"step": 9, "loss": 4}\n')
    tail = JsonlTail(path)
    columns = tail.read(final=True)
    assert columns["loss"][0] == [0, 9] and columns["loss"][1] == [3.0, 4.0]
    assert tail.bad == 5


def test_a_big_backlog_is_read_in_bounded_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonl_tail, "MAX_READ", 4096)
    path = tmp_path / "m.jsonl"
    lines = [json.dumps({"step": i, "x": i * 0.5}) for i in range(2000)]
    path.write_text("\n".join(lines))  # the last line has no newline
    tail = JsonlTail(path)
    steps, reads = [], 0
    while True:
        columns = tail.read(final=True)
        reads += 1
        steps += columns.get("x", ([], [], []))[0]
        if not tail.more:
            break
    assert reads > 5  # bounded steps, not one read of everything
    assert steps == list(range(2000)) and tail.bad == 0


# -- launching ------------------------------------------------------------------------------------

def test_a_queued_run_starts_with_the_environment_it_was_submitted_from(ws, monkeypatch):
    set_paused(ws, True)
    monkeypatch.setenv("MLTUI_TEST_FROM", "the submitting shell")
    run_id = launch(ws, Launch(["python", "-c", "import os; print(os.environ.get('MLTUI_TEST_FROM'))"], queue=True))
    monkeypatch.setenv("MLTUI_TEST_FROM", "the queue worker")
    set_paused(ws, False)  # the worker starts now, from this changed environment
    assert wait_ended(ws, run_id)["status"] == "finished"
    assert output(ws, run_id) == "the submitting shell\n"
    assert oct((ws.run_dir(run_id) / "env.json").stat().st_mode & 0o777) == oct(ws.config().file_mode)


def test_a_supervisor_that_cannot_be_spawned_fails_the_run(ws, monkeypatch):
    from mltui.core.launch import launcher
    def no_more_processes(*args, **kwargs):
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(launcher, "_detached", no_more_processes)
    with pytest.raises(MltuiError, match="Cannot start run"):
        launch(ws, Launch(["python", "-c", "pass"]))
    from launching import all_runs

    (run,) = all_runs(ws)
    assert run["status"] == "failed" and "could not be started" in run["reason"]


def test_runs_kill_goes_on_past_a_run_it_cannot_kill(ws, cli):
    done = launch(ws, Launch(["python", "-c", "pass"]))
    wait_ended(ws, done)
    going = launch(ws, Launch(["python", "-c", SLEEPER]))
    wait_output(ws, going, "ready")
    result = cli("runs", "kill", done, going, "--grace", "1")
    assert result.returncode == 1
    assert "1 of 2 runs could not be killed" in result.stderr and result.stderr.count("\n") == 1
    assert status(ws, going) == "killed"


def test_runs_rm_force_stops_a_running_launched_run_first(ws, cli):
    configure(ws, kill_grace_seconds=1.0)
    run_id = launch(ws, Launch(["python", "-c", SLEEPER]))
    wait_output(ws, run_id, "ready")
    pid = row(ws, run_id)["pid"]
    result = cli("runs", "rm", run_id, "--force")
    assert result.returncode == 0, result.stderr
    from mltui.base.procs import pid_alive

    wait_for(lambda: not pid_alive(pid), 5, what="the removed run's command to stop")


def test_a_run_back_from_lost_has_no_end_time(ws):
    import signal

    configure(ws, heartbeat_seconds=0.2, lost_after_seconds=1.0)
    run_id = launch(ws, Launch(["python", "-c", SLEEPER]))
    wait_output(ws, run_id, "ready")
    sup = row(ws, run_id)["sup_pid"]
    os.kill(sup, signal.SIGSTOP)
    try:
        from mltui.core.launch.liveness import reap_lost
        from mltui.store.opening import open_store

        conn = open_store(ws.db_path)
        try:  # the heartbeat goes stale 1 s after the stop: until then there is nothing to reap
            wait_for(lambda: reap_lost(ws, conn) == [run_id], 6, what="the stalled run to be reaped")
        finally:
            conn.close()
        assert row(ws, run_id)["ended"] is not None
    finally:
        os.kill(sup, signal.SIGCONT)
    wait_for(lambda: status(ws, run_id) == "running", 5, what="the supervisor to come back")
    assert row(ws, run_id)["ended"] is None and row(ws, run_id)["reason"] is None


def test_kill_never_signals_a_process_that_reused_a_lost_runs_pid(ws):
    import signal
    import subprocess
    import sys

    from mltui.base.procs import pid_alive

    from mltui.core.launch.liveness import reap_lost
    from mltui.store.opening import open_store

    run_id = launch(ws, Launch(["python", "-c", SLEEPER]))
    wait_output(ws, run_id, "ready")
    before = wait_for(lambda: row(ws, run_id)["pid_start"] and row(ws, run_id), 5, what="the recorded start")
    os.kill(before["sup_pid"], signal.SIGKILL)
    os.killpg(before["pgid"], signal.SIGKILL)
    wait_for(lambda: not pid_alive(before["pid"]) and not pid_alive(before["sup_pid"]), 5)
    conn = open_store(ws.db_path)
    try:
        assert reap_lost(ws, conn) == [run_id]
        stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
        try:
            with conn:  # the pid (and group) now belong to someone else, as after pid reuse
                conn.execute("UPDATE runs SET pid = ?, pgid = ? WHERE id = ?", (stranger.pid, stranger.pid, run_id))
            with pytest.raises(MltuiError, match="lost"):
                from mltui.core.launch.stop import kill_run

                kill_run(ws, run_id, grace=0.5)
            assert stranger.poll() is None  # untouched
        finally:
            stranger.kill()
            stranger.wait()
    finally:
        conn.close()


def test_the_command_does_not_inherit_an_ignored_sighup(ws):
    code = ("import signal; print('ignored' if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN else 'default', "
            "flush=True)")
    run_id = launch(ws, Launch(["python", "-c", code]))
    assert wait_ended(ws, run_id)["status"] == "finished"
    assert output(ws, run_id) == "default\n"
