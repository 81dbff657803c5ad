"""Removing runs by filter, and gc, while scripts log into the same workspace (real processes, a real store):
nothing that was not selected is lost, no writer meets "database is locked", --dry-run changes nothing, and a
removal killed half way leaves every run whole or gone (the next removal finishes it)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

import mltui
from conftest import make_run
from mltui.core.reader import open_workspace
from mltui.core.runs import tidy
from mltui.store import runs as run_store
from mltui.store.connection import write_tx
from mltui.store.opening import open_store

DOOMED = 60  # runs the filter picks
KEPT = 20  # runs like them it does not pick
WHERE = "params.group = doomed and status = finished"

WRITER = textwrap.dedent("""
    import json, os, sys, time
    import mltui
    name, stop = sys.argv[1], sys.argv[2]
    made = []
    while not os.path.exists(stop) or len(made) < 2:
        # small batches: a write transaction every few steps, to meet the removal's as often as can be
        run = mltui.init(name=f"{name}-{len(made)}", params={"group": "live", "n": len(made)}, batch_size=6,
                         flush_interval=0.01)
        for step in range(40):
            run.log({"loss": 1.0 / (step + 1), "acc": step / 40}, step=step)
            if step % 8 == 0:
                time.sleep(0.003)
        run.finish()
        made.append(run.id)
    print(json.dumps(made))
""")


@pytest.fixture
def store(ws):
    """DOOMED runs the filter picks and KEPT it does not (other group, or still running), each with params,
    a tag, two logged series and an artifact; returns (doomed ids, kept ids)."""
    doomed, kept = [], []
    for i in range(DOOMED + KEPT):
        group = "doomed" if i % 4 else "keep"
        run = mltui.init(name=f"r{i}", params={"group": group, "lr": 0.001 * (i % 7), "seed": i % 5},
                         tags={"sweep": "s1"}, workspace=ws.project_dir, flush_interval=60.0)
        for step in range(12):
            run.log({"loss": 1.0 / (step + 1 + i), "acc": (step + i % 3) / 20}, step=step)
        (ws.project_dir / "w.bin").write_bytes(b"w" * (i + 1))
        run.log_artifact(ws.project_dir / "w.bin", name="w.bin")
        run.finish()
        (doomed if group == "doomed" else kept).append(run.id)
    # one doomed-looking run that is running (its script is elsewhere): the filter's status clause leaves it out
    live = make_run(ws.project_dir, "live-doomed", {"loss": [1.0]}, params={"group": "doomed"})
    set_status(ws, live, "running")
    kept.append(live)
    return doomed, kept


def set_status(ws, run_id: str, status: str) -> None:
    conn = open_store(ws.db_path)
    try:
        with write_tx(conn, ws.db_path):
            run_store.update_run(conn, run_id, status=status, heartbeat=time.time())
    finally:
        conn.close()


def snapshot(ws, run_ids) -> dict:
    """Everything the store holds of these runs: the run row, params, tags, metric chunks and summaries,
    artifacts."""
    conn = sqlite3.connect(ws.db_path)
    try:
        out = {}
        for rid in run_ids:
            out[rid] = {
                "run": conn.execute("SELECT * FROM runs WHERE id = ?", (rid,)).fetchall(),
                **{table: conn.execute(f"SELECT * FROM {table} WHERE run_id = ? ORDER BY 1, 2", (rid,)).fetchall()
                   for table in ("params", "tags", "metric_summary", "artifacts")},
                "metrics": conn.execute("SELECT * FROM metrics WHERE run_id = ? ORDER BY rowid", (rid,)).fetchall(),
            }
        return out
    finally:
        conn.close()


def orphans(ws) -> dict[str, int]:
    conn = sqlite3.connect(ws.db_path)
    try:
        return {table: conn.execute(f"SELECT count(*) FROM {table} WHERE run_id NOT IN (SELECT id FROM runs)").fetchone()[0]
                for table in ("params", "tags", "metrics", "metric_summary", "artifacts", "run_inputs")}
    finally:
        conn.close()


@pytest.fixture
def writers(ws, tmp_path):
    """Start three scripts logging runs into the workspace until told to stop; the returned function stops
    them and returns {run id: steps} of every run they logged, failing on any error they met."""
    path = tmp_path / "writer.py"
    path.write_text(WRITER)
    stop = tmp_path / "stop"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTUI_")}
    procs = [subprocess.Popen([sys.executable, str(path), f"w{i}", str(stop)], cwd=ws.project_dir, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]

    def finish() -> dict[str, int]:
        stop.touch()
        made = {}
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            assert "locked" not in err.lower() and "Traceback" not in err, err
            made.update({rid: 40 for rid in json.loads(out)})
        return made

    yield finish
    stop.touch()
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def assert_whole(ws, made: dict[str, int]) -> None:
    """Every run a writer logged is in the store, finished, with every point it logged."""
    conn = sqlite3.connect(ws.db_path)
    try:
        for rid, steps in made.items():
            assert conn.execute("SELECT status FROM runs WHERE id = ?", (rid,)).fetchone() == ("finished",), rid
            counts = dict(conn.execute("SELECT key, count FROM metric_summary WHERE run_id = ?", (rid,)))
            assert counts == {"loss": steps, "acc": steps}, rid
            assert conn.execute("SELECT sum(n) FROM metrics WHERE run_id = ?", (rid,)).fetchone()[0] == 2 * steps
            assert (ws.run_dir(rid)).is_dir()
    finally:
        conn.close()


def small_batches(monkeypatch, size: int = 4) -> None:
    """Batches of a few runs, so the removal's transactions interleave with the writers' many times."""
    monkeypatch.setattr(tidy, "BATCH", size)
    monkeypatch.setattr(tidy, "MIN_BATCH", size)
    monkeypatch.setattr(tidy, "MAX_BATCH", size)


def test_rm_where_while_scripts_log_loses_nothing_else(store, ws, writers, cli, monkeypatch):
    doomed, kept = store
    before = snapshot(ws, kept)
    time.sleep(0.3)  # the writers are under way
    dry = cli("runs", "rm", "--where", WHERE, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert sorted(json.loads(dry.stdout)["would_remove"]) == sorted(doomed)
    assert all(snapshot(ws, [rid])[rid]["run"] for rid in doomed)

    small_batches(monkeypatch)
    seen = []
    revived = doomed[0]  # the oldest: its batch comes last
    revived_before = snapshot(ws, [revived])[revived]

    def progress(done: int, total: int) -> None:
        if not seen:  # chosen while finished, started again since (a rerun in place): it must be kept whole
            set_status(ws, revived, "running")
        seen.append((done, total))

    batches = []
    delete_runs = run_store.delete_runs

    def counted(conn, ids, **kw):
        batches.append(ids)
        return delete_runs(conn, ids, **kw)

    monkeypatch.setattr(run_store, "delete_runs", counted)
    wsp, conn = open_workspace(write=True, start=ws.project_dir)
    try:
        result = tidy.remove_where(wsp, conn, WHERE, progress=progress)
    finally:
        conn.close()
    made = writers()

    assert result.kept == [revived] and sorted(result.done) == sorted(set(doomed) - {revived})
    assert [len(b) for b in batches] == [4] * (DOOMED // 4)  # in batches, each its own transaction
    assert seen[-1] == (DOOMED, DOOMED) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert snapshot(ws, kept) == before  # not a row of what was not selected changed
    revived_after = snapshot(ws, [revived])[revived]
    assert revived_after["run"][0][3] == "running"
    assert {k: v for k, v in revived_after.items() if k != "run"} == \
        {k: v for k, v in revived_before.items() if k != "run"}
    assert ws.run_dir(revived).is_dir()
    doomed = [rid for rid in doomed if rid != revived]
    assert all(not any(rows for rows in snap.values()) for snap in snapshot(ws, doomed).values())
    assert not any(ws.run_dir(rid).exists() for rid in doomed)
    assert all(ws.run_dir(rid).is_dir() for rid in kept)
    assert os.listdir(ws.runs_dir / ".trash") == []
    assert orphans(ws) == dict.fromkeys(orphans(ws), 0)
    assert len(made) >= 6
    assert_whole(ws, made)


def test_dry_run_changes_nothing(store, ws, cli):
    doomed, kept = store
    everything = snapshot(ws, doomed + kept)
    folders = sorted(os.listdir(ws.runs_dir))
    for args in (("runs", "rm", "--where", WHERE, "--dry-run"), ("runs", "archive", "--where", WHERE, "--dry-run"),
                 ("gc", "--dry-run")):
        result = cli(*args)
        assert result.returncode == 0, result.stderr
    assert snapshot(ws, doomed + kept) == everything
    assert sorted(os.listdir(ws.runs_dir)) == folders


def test_gc_while_scripts_log_keeps_every_live_folder(store, ws, writers, cli):
    doomed, kept = store
    # an old folder of no run (what an interrupted removal leaves) and an old folder of a kept run
    orphan = ws.runs_dir / "zzzzzzzzzz"
    orphan.mkdir()
    (orphan / "output.log").write_bytes(b"x" * 100)
    stamp = time.time() - 7200
    os.utime(orphan, (stamp, stamp))
    os.utime(ws.run_dir(kept[0]), (stamp, stamp))
    time.sleep(0.3)
    reports = []
    for _ in range(3):
        result = cli("gc", "--json")
        assert result.returncode == 0 and "locked" not in result.stderr, result.stderr
        reports.append(json.loads(result.stdout))
    made = writers()
    assert [r["run_folders"] for r in reports] == [1, 0, 0]
    assert not orphan.exists()
    assert all(ws.run_dir(rid).is_dir() for rid in doomed + kept)
    assert_whole(ws, made)


KILLED = textwrap.dedent("""
    import sys, time
    from mltui.core.reader import open_workspace
    from mltui.core.runs import tidy
    from mltui.store import runs as run_store
    tidy.BATCH = tidy.MIN_BATCH = tidy.MAX_BATCH = 3
    delete_runs, calls = run_store.delete_runs, []

    def stalled(conn, ids, **kw):  # the 7th batch deletes its runs, then waits to be killed before it commits
        done = delete_runs(conn, ids, **kw)
        calls.append(ids)
        if len(calls) == 7:
            print("inside", flush=True)
            time.sleep(120)
        return done

    run_store.delete_runs = stalled
    ws, conn = open_workspace(write=True)
    tidy.remove_where(ws, conn, sys.argv[1])
""")


def test_rm_killed_half_way_leaves_runs_whole_or_gone(store, ws, tmp_path, cli):
    doomed, kept = store
    before = snapshot(ws, doomed + kept)
    path = tmp_path / "rm.py"
    path.write_text(KILLED)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTUI_")}
    proc = subprocess.Popen([sys.executable, str(path), WHERE], cwd=ws.project_dir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "inside\n", proc.stderr.read()
    proc.send_signal(signal.SIGKILL)  # inside the 7th batch's transaction, its runs deleted but not committed
    proc.wait(timeout=30)
    after = snapshot(ws, doomed + kept)
    gone = [rid for rid in doomed if not after[rid]["run"]]
    assert len(gone) == 6 * 3  # the six batches committed before; the 7th's runs are all back
    for rid in doomed + kept:  # each run is as it was, or wholly gone (a folder may outlive its run: gc's job)
        assert after[rid] == before[rid] or not any(after[rid].values()), rid
    assert all(after[rid] == before[rid] for rid in kept)
    assert orphans(ws) == dict.fromkeys(orphans(ws), 0)

    # the folders of the runs gone are in runs/.trash (or already deleted), none left among the live ones
    assert not any(ws.run_dir(rid).exists() for rid in gone)
    assert all(ws.run_dir(rid).is_dir() for rid in doomed + kept if rid not in gone)

    done = cli("runs", "rm", "--where", WHERE, "--json")  # the next removal finishes the job
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(done.stdout)["removed"]) == sorted(set(doomed) - set(gone))
    assert snapshot(ws, kept) == {rid: before[rid] for rid in kept}
    assert not any(any(snap.values()) for snap in snapshot(ws, doomed).values())
    assert os.listdir(ws.runs_dir / ".trash") == []  # what the killed one left there too
    assert sorted(os.listdir(ws.runs_dir)) == sorted([".trash", *kept])


def test_gc_empties_what_a_killed_removal_left_in_the_trash(store, ws, cli):
    doomed, kept = store
    left = ws.runs_dir / ".trash" / "abcdefghij"  # a removed run's folder, half deleted when it was killed
    (left / "artifacts").mkdir(parents=True)
    (left / "artifacts" / "m.bin").write_bytes(b"m" * 300)
    (left / "output.log").write_bytes(b"o" * 45)
    (ws.runs_dir / ".trash" / "klmnopqrst").mkdir()
    dry = cli("gc", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert (report["run_folders"], report["run_folder_bytes"]) == (2, 345) and left.is_dir()
    done = json.loads(cli("gc", "--json").stdout)
    assert (done["run_folders"], done["run_folder_bytes"]) == (2, 345)
    assert os.listdir(ws.runs_dir / ".trash") == []
    assert sorted(os.listdir(ws.runs_dir)) == sorted([".trash", *doomed, *kept])  # no live run's folder went
