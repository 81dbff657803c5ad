"""Logging never kills training: a real disk that fills (a 3 MB tmpfs mounted here, as root) while a
training loop logs, then frees up, or never does. Real processes, real SQLite, no mocks."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mltui
from mltui.base.errors import StoreError
from mltui.core.workspace import init_workspace
from mltui.store.metrics import read_series

WARNING = "cannot write run"


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    """A workspace on a fresh 3 MB tmpfs; unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    for var in ("MLTUI_WORKSPACE", "MLTUI_RUN_ID", "MLTUI_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(disk)
    try:
        ws, _ = init_workspace(disk)
        yield ws
    finally:
        monkeypatch.chdir(tmp_path)
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(folder: Path) -> Path:
    """Write a filler file until the filesystem has no block left."""
    path = folder / "filler"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    block = b"\0" * 4096
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    finally:
        os.close(fd)
    return path


def connect(ws) -> sqlite3.Connection:
    return sqlite3.connect(ws.db_path, timeout=10)


def run_row(ws, run_id) -> dict:
    conn = connect(ws)
    conn.row_factory = sqlite3.Row
    try:
        return dict(conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone())
    finally:
        conn.close()


def steps_of(ws, run_id, key) -> list[int]:
    conn = connect(ws)
    try:
        steps, values, _ = read_series(conn, run_id, key)
        if key == "loss":  # each point with its own value
            assert all(float(s) == v for s, v in zip(steps, values))
        return list(steps)
    finally:
        conn.close()


def integrity(ws) -> str:
    conn = connect(ws)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


# A training loop in three phases, told when to go on through stdin: before the disk fills, while it is
# full, after space is freed (or not). It prints each phase's end, then its run id.
TRAIN = textwrap.dedent("""
    import sys, mltui
    a, b, c, bound, style = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    run = mltui.init(name="full-disk", flush_interval=0.2, max_buffered=bound)
    step = 0
    def phase(n):
        global step
        for _ in range(n):
            run.log({"loss": float(step), "acc": step / 2}, step=step)
            step += 1
    phase(a)
    run.flush()
    print("A", run.id, flush=True)
    sys.stdin.readline()
    phase(b)
    run.flush()  # while the disk is still full: refused, kept, no exception
    print("B", flush=True)
    sys.stdin.readline()
    phase(c)
    if style == "finish":
        run.finish()
    print("end", flush=True)
""")


def train(ws, a: int, b: int, c: int, bound: int, style: str = "finish", free: bool = True):
    """Run the loop; fill the disk after phase A, free it (or not) after phase B. Returns (run id, stderr, code)."""
    script = Path(ws.root).parent / "train.py"
    script.write_text(TRAIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTUI_")}
    proc = subprocess.Popen([sys.executable, str(script), str(a), str(b), str(c), str(bound), style],
                            cwd=ws.project_dir, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        head = proc.stdout.readline().split()
        assert head and head[0] == "A", (head, proc.stderr.read() if proc.poll() is not None else "")
        run_id = head[1]
        filler = fill(ws.project_dir)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "B"
        if free:
            filler.unlink()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out.strip() == "end", (out, err)
    return run_id, err, proc.returncode


def test_a_disk_that_fills_while_logging_neither_stops_training_nor_loses_a_point(small_disk):
    ws = small_disk
    a, b, c = 2_000, 20_000, 100
    run_id, err, code = train(ws, a, b, c, bound=1_000_000)
    assert code == 0, err
    assert err.count(WARNING) == 1 and "disk is full" in err, err  # one line, said once
    assert "Traceback" not in err
    for key in ("loss", "acc"):  # the points from before, the buffered ones and the last ones: all there
        assert steps_of(ws, run_id, key) == list(range(a + b + c))
    row = run_row(ws, run_id)
    assert row["status"] == "finished"
    assert "disk is full" in row["reason"] and "no metric point was lost" in row["reason"], row["reason"]
    assert row["store_trouble"] == "the disk is full" and row["dropped_points"] == 0
    assert integrity(ws) == "ok"


def test_past_the_bound_the_oldest_points_are_dropped_and_counted(small_disk):
    ws = small_disk
    a, b, c, bound = 500, 5_000, 10, 1_000
    run_id, err, code = train(ws, a, b, c, bound=bound)
    assert code == 0 and err.count(WARNING) == 1, err
    kept = {key: steps_of(ws, run_id, key) for key in ("loss", "acc")}
    for steps in kept.values():
        before, during, after = steps[:a], steps[a:-c], steps[-c:]
        assert before == list(range(a)) and after == list(range(a + b, a + b + c))
        assert during == list(range(a + b - len(during), a + b))  # the newest of the phase, in a row
    kept_during = sum(len(steps) - a - c for steps in kept.values())
    # at most `bound` points waited in memory: phase B's newest, or fewer when phase C's first points
    # came in before the next retry and took their place
    assert bound - 2 * c <= kept_during <= bound
    row = run_row(ws, run_id)
    assert row["dropped_points"] == 2 * b - kept_during  # every point not kept is counted
    assert row["status"] == "finished" and f"{2 * b - kept_during:,} metric points were dropped" in row["reason"]
    assert "disk is full" in row["reason"]
    assert integrity(ws) == "ok"


def test_a_disk_that_never_frees_up_still_lets_the_script_end_and_the_run_says_why(small_disk):
    from mltui.core.launch.liveness import reap_lost
    from mltui.store.opening import open_store

    ws = small_disk
    run_id, err, code = train(ws, 200, 3_000, 10, bound=1_000_000, style="atexit", free=False)
    assert code == 0, err  # the script ran to its end and exited normally
    assert err.count(WARNING) == 1 and f"could not finish run {run_id}" in err, err
    (ws.project_dir / "filler").unlink()  # room again, for the next mltui that looks
    conn = open_store(ws.db_path)
    try:
        assert reap_lost(ws, conn) == [run_id]
    finally:
        conn.close()
    row = run_row(ws, run_id)
    assert row["status"] == "finished", row["reason"]
    assert "disk is full" in row["reason"] and "could not be saved" in row["reason"], row["reason"]
    assert row["store_trouble"] == "the disk is full"
    assert steps_of(ws, run_id, "loss") == list(range(200))  # what was written before is intact
    assert integrity(ws) == "ok"


def test_strict_restores_the_raising_behaviour(small_disk):
    ws = small_disk
    run = mltui.init(name="strict", strict=True, batch_size=100, flush_interval=60)
    for step in range(50):
        run.log({"x": float(step)}, step=step)
    run.flush()
    filler = fill(ws.project_dir)
    try:
        with pytest.raises(StoreError, match="full"):
            for step in range(50, 500):
                run.log({"x": float(step)}, step=step)
    finally:
        filler.unlink()
    run.finish()  # the refused points were kept: nothing lost once there is room
    assert steps_of(ws, run.id, "x")[:50] == list(range(50))
    assert run_row(ws, run.id)["status"] == "finished"
    assert integrity(ws) == "ok"


def test_params_tags_and_artifacts_wait_for_the_store_too(small_disk, capsys):
    ws = small_disk
    run = mltui.init(name="later", flush_interval=60)
    (ws.project_dir / "small.txt").write_bytes(b"s")
    filler = fill(ws.project_dir)
    try:
        run.log_params({"lr": 0.1})  # refused by the store: kept, no exception
        run.set_tags({"team": "x"})
        run.log_artifact("small.txt", name="copy.txt")  # no room for the copy: said, not raised
    finally:
        filler.unlink()
    err = capsys.readouterr().err
    assert err.count(WARNING) == 1 and "small.txt" in err, err
    run.finish()
    conn = connect(ws)
    try:
        assert conn.execute("SELECT value FROM params WHERE run_id = ?", (run.id,)).fetchall() == [(0.1,)]
        assert conn.execute("SELECT value FROM tags WHERE run_id = ?", (run.id,)).fetchall() == [("x",)]
    finally:
        conn.close()
    assert "disk is full" in run_row(ws, run.id)["reason"]


# The same loop launched by mltui: phases are told through files outside the small disk (the command's
# output.log is on it, so the script prints nothing while the disk is full), and it then fails.
LAUNCHED = textwrap.dedent("""
    import os, sys, time, mltui
    marks = sys.argv[1]
    def mark(name):
        open(os.path.join(marks, name), "w").close()
    def wait(name):
        while not os.path.exists(os.path.join(marks, name)):
            time.sleep(0.02)
    run = mltui.init(flush_interval=0.2)
    step = 0
    def phase(n):
        global step
        for _ in range(n):
            run.log({"loss": float(step)}, step=step)
            step += 1
    phase(1_000)
    run.flush()
    mark("A")
    wait("go-B")
    phase(20_000)
    run.flush()
    mark("B")
    wait("go-C")
    phase(100)
    run.finish()
    sys.exit(3)
""")


def test_a_launched_run_that_fails_after_the_disk_filled_says_the_disk_is_full(small_disk, tmp_path):
    from launching import kill_workspace_processes, wait_ended, wait_for
    from mltui.core.launch.launcher import Launch, launch

    ws = small_disk
    marks = tmp_path / "marks"
    marks.mkdir()
    (ws.project_dir / "train.py").write_text(LAUNCHED)
    try:
        run_id = launch(ws, Launch(["python", "train.py", str(marks)], cwd=str(ws.project_dir)))
        wait_for(lambda: (marks / "A").exists(), 60, what="phase A")
        filler = fill(ws.project_dir)
        (marks / "go-B").touch()
        wait_for(lambda: (marks / "B").exists(), 60, what="phase B")
        filler.unlink()
        (marks / "go-C").touch()
        done = wait_ended(ws, run_id, timeout=90)
        assert done["status"] == "failed" and done["exit_code"] == 3, done["reason"]
        assert done["reason"].startswith("failed: the disk is full"), done["reason"]
        assert "code 3" in done["reason"]
        assert steps_of(ws, run_id, "loss") == list(range(21_100))
        assert integrity(ws) == "ok"
    finally:
        kill_workspace_processes(ws.root)


def test_a_finish_on_a_full_disk_does_not_raise_and_a_later_finish_records_everything(small_disk, capsys):
    """The training script's last line, `run.finish()`, on a disk still full: the script goes on (no
    exception), one line says so, the run folder (or the spare folder) holds its end, and the points wait;
    a finish() once there is room writes the points, the final status and the reason."""
    from mltui.core.runs import store_trouble

    ws = small_disk
    run = mltui.init(name="finish-on-full", flush_interval=60)
    for step in range(100):
        run.log({"x": float(step)}, step=step)
    run.flush()
    capsys.readouterr()
    filler = fill(ws.project_dir)
    try:
        for step in range(100, 3_000):
            run.log({"x": float(step)}, step=step)
        run.finish()  # the first write the full disk refuses: no exception
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"could not finish run {run.id}" in err and "disk is full" in err, err
        assert "Traceback" not in err
        assert not run.finished
        note = store_trouble.read_note(run.dir)  # the same note the automatic end leaves
        assert note is not None and note["status"] == "finished" and note["cause"] == "the disk is full"
        assert note["unsaved"] > 0 and "could not be saved" in note["reason"], note
        with pytest.raises(mltui.MltuiError, match="finished"):
            run.log({"x": -1.0})  # finish() was called: the run takes no more points
        assert run_row(ws, run.id)["status"] == "running"
    finally:
        filler.unlink()
    run.finish()  # room again: everything goes in
    assert run.finished
    assert capsys.readouterr().err == ""
    assert steps_of(ws, run.id, "x") == list(range(3_000))
    row = run_row(ws, run.id)
    assert row["status"] == "finished" and row["store_trouble"] == "the disk is full"
    assert "disk is full" in row["reason"] and "no metric point was lost" in row["reason"], row["reason"]
    assert store_trouble.read_note(run.dir) is None  # the store has the end: no stale note left behind
    assert integrity(ws) == "ok"


def test_a_script_ending_in_finish_on_a_disk_that_stays_full_exits_normally(small_disk):
    from mltui.core.launch.liveness import reap_lost
    from mltui.store.opening import open_store

    ws = small_disk
    run_id, err, code = train(ws, 200, 3_000, 10, bound=1_000_000, style="finish", free=False)
    assert code == 0, err  # finish() did not raise; at exit it was tried once more, and let go
    assert "Traceback" not in err
    assert err.count(WARNING) == 1 and err.count(f"could not finish run {run_id}") == 1, err
    (ws.project_dir / "filler").unlink()
    conn = open_store(ws.db_path)
    try:
        assert reap_lost(ws, conn) == [run_id]  # the note it left gives the run its end
    finally:
        conn.close()
    row = run_row(ws, run_id)
    assert row["status"] == "finished" and row["store_trouble"] == "the disk is full"
    assert "disk is full" in row["reason"] and "could not be saved" in row["reason"], row["reason"]
    assert steps_of(ws, run_id, "loss") == list(range(200))
    assert integrity(ws) == "ok"
