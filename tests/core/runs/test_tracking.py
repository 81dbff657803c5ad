"""The tracking API against a real SQLite workspace, with real processes and signals."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

import mltui
from mltui.base.errors import WorkspaceNotFound
from mltui.core.workspace import init_workspace
from mltui.store.metrics import read_series


@pytest.fixture
def tws(tmp_path, monkeypatch):
    monkeypatch.delenv("MLTUI_WORKSPACE", raising=False)
    monkeypatch.delenv("MLTUI_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    ws, _ = init_workspace(tmp_path)
    return ws


def db(ws) -> sqlite3.Connection:
    return sqlite3.connect(ws.db_path)


def run_row(ws, run_id):
    conn = db(ws)
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    conn.close()
    return row


def summary(ws, run_id, key):
    conn = db(ws)
    row = conn.execute(
        "SELECT last, last_step, min, max, count FROM metric_summary WHERE run_id = ? AND key = ?", (run_id, key)
    ).fetchone()
    conn.close()
    return row


def series(ws, run_id, key):
    conn = db(ws)
    try:
        return read_series(conn, run_id, key)
    finally:
        conn.close()


def script(tmp_path, body: str) -> str:
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_log_params_tags_and_finish(tws):
    run = mltui.init(name="baseline", params={"lr": 0.01, "opt": "adam", "layers": 3, "aug": True},
                     tags={"team": "vision"})
    for step in range(1000):
        run.log({"loss": 1.0 / (step + 1), "acc": step / 1000})
    run.log_params({"epochs": 5})
    run.set_tags({"stage": "dev"})
    run.finish()
    row = run_row(tws, run.id)
    assert row["name"] == "baseline" and row["status"] == "finished" and row["ended"] is not None
    conn = db(tws)
    params = dict(conn.execute("SELECT key, type FROM params WHERE run_id = ?", (run.id,)).fetchall())
    assert params == {"lr": "float", "opt": "str", "layers": "int", "aug": "bool", "epochs": "int"}
    tags = dict(conn.execute("SELECT key, value FROM tags WHERE run_id = ?", (run.id,)).fetchall())
    assert tags == {"team": "vision", "stage": "dev"}
    assert summary(tws, run.id, "loss") == (1.0 / 1000, 999, 1.0 / 1000, 1.0, 1000)
    assert summary(tws, run.id, "acc") == (0.999, 999, 0.0, 0.999, 1000)
    steps, values, _ = series(tws, run.id, "loss")
    assert list(steps) == list(range(1000)) and values[0] == 1.0


def test_step_auto_increments_after_an_explicit_step(tws):
    with mltui.init(name="s") as run:
        run.log({"x": 1.0})
        run.log({"x": 2.0}, step=10)
        run.log({"x": 3.0})
    steps, values, _ = series(tws, run.id, "x")
    assert list(steps) == [0, 10, 11] and list(values) == [1.0, 2.0, 3.0]


def test_nan_and_infinities_are_kept(tws):
    with mltui.init(name="weird") as run:
        run.log({"v": math.nan}, step=0)
        run.log({"v": 2.0}, step=1)
        run.log({"v": math.inf}, step=2)
        run.log({"v": -math.inf}, step=3)
        run.log({"v": math.nan}, step=4)
    _, values, _ = series(tws, run.id, "v")
    assert math.isnan(values[0]) and values[1] == 2.0 and values[2] == math.inf and values[3] == -math.inf
    assert math.isnan(values[4])
    last, last_step, lo, hi, count = summary(tws, run.id, "v")
    assert last is None and last_step == 4 and count == 5  # NaN is stored as NULL by SQLite
    assert lo == -math.inf and hi == math.inf


def test_ints_numpy_like_and_bools_are_numbers(tws):
    class Scalar:  # what numpy and torch scalars look like to us
        def __float__(self):
            return 0.5

    with mltui.init(name="types") as run:
        run.log({"a": 3, "b": True, "c": Scalar()})
    assert summary(tws, run.id, "a")[0] == 3.0
    assert summary(tws, run.id, "b")[0] == 1.0
    assert summary(tws, run.id, "c")[0] == 0.5


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"loss": "abc"}, "must be a number"),
        ({"loss": None}, "must be a number"),
        ({"loss": [1, 2]}, "must be a number"),
        ({"": 1.0}, "not allowed"),
        ({"bad key!": 1.0}, "not allowed"),
        ({"x" * 201: 1.0}, "not allowed"),
        ({"big": 10**400}, "too large"),
    ],
)
def test_bad_values_and_keys_raise_and_lose_nothing(tws, bad, message):
    run = mltui.init(name="bad")
    run.log({"ok": 1.0}, step=0)
    with pytest.raises(ValueError, match=message):
        run.log({"ok": 2.0, **bad}, step=1)  # the whole call is refused...
    run.log({"ok": 3.0}, step=2)
    run.finish()
    steps, values, _ = series(tws, run.id, "ok")
    assert list(steps) == [0, 2] and list(values) == [1.0, 3.0]  # ...and nothing else is lost


def test_log_rejects_non_dict_and_bad_step(tws):
    run = mltui.init(name="x")
    with pytest.raises(ValueError, match="dict"):
        run.log([("a", 1.0)])
    with pytest.raises(ValueError, match="step"):
        run.log({"a": 1.0}, step=1.5)
    run.finish()


def test_context_manager_marks_failure(tws):
    with pytest.raises(RuntimeError):
        with mltui.init(name="boom") as run:
            run.log({"x": 1.0})
            raise RuntimeError("boom")
    assert run_row(tws, run.id)["status"] == "failed"
    assert summary(tws, run.id, "x")[4] == 1  # the point logged before the crash was kept


def test_time_based_flush_makes_points_visible_without_finish(tws):
    run = mltui.init(name="live", flush_interval=0.2)
    run.log({"x": 1.0})
    deadline = time.time() + 5
    while time.time() < deadline and summary(tws, run.id, "x") is None:
        time.sleep(0.05)
    assert summary(tws, run.id, "x") is not None
    run.finish()


def test_outside_a_workspace_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MLTUI_WORKSPACE", raising=False)
    monkeypatch.delenv("MLTUI_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WorkspaceNotFound, match="mltui init"):
        mltui.init(name="nowhere")


def test_attach_to_a_launched_run_through_the_environment(tws, tmp_path):
    from mltui.core.runs.tracking import create_run

    run_id = create_run(tws, name="launched", status="running")
    path = script(tmp_path, """
        import mltui
        run = mltui.init(params={"lr": 0.1})
        for i in range(10):
            run.log({"loss": float(i)})
        run.finish()
        print(run.id)
    """)
    env = {**os.environ, "MLTUI_RUN_ID": run_id, "MLTUI_WORKSPACE": str(tws.root)}
    out = subprocess.run([sys.executable, path], env=env, cwd="/", capture_output=True, text=True, check=True)
    assert out.stdout.strip() == run_id
    assert summary(tws, run_id, "loss")[4] == 10
    assert run_row(tws, run_id)["status"] == "running"  # the supervisor owns an attached run's status


def test_uncaught_exception_in_a_script_marks_the_run_failed(tws, tmp_path):
    path = script(tmp_path, """
        import mltui
        run = mltui.init(name="crash")
        run.log({"loss": 1.0})
        raise SystemError("diverged")
    """)
    out = subprocess.run([sys.executable, path], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 1 and "diverged" in out.stderr
    row = db(tws).execute("SELECT status, id FROM runs WHERE name = 'crash'").fetchone()
    assert row[0] == "failed" and summary(tws, row[1], "loss")[4] == 1


def test_script_that_just_ends_is_finished_at_exit(tws, tmp_path):
    path = script(tmp_path, """
        import mltui
        run = mltui.init(name="atexit")
        for i in range(100):
            run.log({"loss": float(i)})
    """)
    subprocess.run([sys.executable, path], cwd=tmp_path, check=True)
    row = db(tws).execute("SELECT status, id FROM runs WHERE name = 'atexit'").fetchone()
    assert row[0] == "finished" and summary(tws, row[1], "loss")[4] == 100


def test_sigterm_flushes_and_marks_killed(tws, tmp_path):
    path = script(tmp_path, """
        import mltui, sys, time
        run = mltui.init(name="term", flush_interval=60)
        for i in range(500):
            run.log({"loss": float(i)})
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, path], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == -signal.SIGTERM
    row = db(tws).execute("SELECT status, id FROM runs WHERE name = 'term'").fetchone()
    assert row[0] == "killed" and summary(tws, row[1], "loss")[4] == 500


def test_eight_processes_logging_at_once_lose_nothing(tws, tmp_path):
    """Real processes, one workspace, small batches so their writes interleave: every point lands."""
    path = script(tmp_path, """
        import sys, mltui
        n = int(sys.argv[2])
        run = mltui.init(name=sys.argv[1], batch_size=500, flush_interval=0.05)
        for step in range(n):
            run.log({"loss": 1.0 / (step + 1), "acc": step / n}, step=step)
        run.finish()
    """)
    calls = 20_000
    procs = [subprocess.Popen([sys.executable, path, f"p{i}", str(calls)], cwd=tmp_path,
                              stderr=subprocess.PIPE, text=True) for i in range(8)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, errors
    assert not any("locked" in e for e in errors)
    conn = db(tws)
    for i in range(8):
        run_id, status = conn.execute("SELECT id, status FROM runs WHERE name = ?", (f"p{i}",)).fetchone()
        assert status == "finished"
        stored = conn.execute("SELECT sum(n) FROM metrics WHERE run_id = ?", (run_id,)).fetchone()[0]
        assert stored == 2 * calls
        for key in ("loss", "acc"):
            last, last_step, lo, hi, count = summary(tws, run_id, key)
            assert count == calls and last_step == calls - 1
        steps, values, _ = series(tws, run_id, "loss")
        assert list(steps) == list(range(calls))
        assert values[123] == 1.0 / 124


def test_log_artifact_copies_and_hashes(tws, tmp_path):
    import hashlib

    src = tmp_path / "model.pt"
    src.write_bytes(b"weights" * 1000)
    with mltui.init(name="art") as run:
        dest = run.log_artifact(src)
        with pytest.raises(ValueError, match="inside"):
            run.log_artifact(src, name="../escape.pt")
    assert dest.read_bytes() == src.read_bytes()
    row = db(tws).execute("SELECT path, size, sha256 FROM artifacts WHERE run_id = ?", (run.id,)).fetchone()
    assert row == ("artifacts/model.pt", 7000, hashlib.sha256(src.read_bytes()).hexdigest())


def test_logging_after_finish_is_an_error(tws):
    run = mltui.init(name="done")
    run.finish()
    run.finish()  # twice is fine
    with pytest.raises(mltui.MltuiError, match="finished"):
        run.log({"x": 1.0})


def test_a_step_beyond_64_bits_is_refused_and_blocks_nothing(tws):
    run = mltui.init(name="big-step")
    with pytest.raises(ValueError, match="64-bit"):
        run.log({"a": 1.0}, step=2**63)
    run.log({"a": 2.0}, step=5)
    run.finish()
    assert run_row(tws, run.id)["status"] == "finished"
    assert summary(tws, run.id, "a") == (2.0, 5, 2.0, 2.0, 1)


def test_a_finish_that_cannot_write_keeps_the_points_and_can_be_retried(tws, monkeypatch):
    from mltui.base.errors import StoreError
    from mltui.store import metrics as metric_store

    run = mltui.init(name="retry", flush_interval=60, strict=True)  # strict: finish() raises (see test_disk_full)
    run.log({"a": 1.0})
    real = metric_store.write_batch

    def failing(*args, **kwargs):  # the store refuses one write (disk full, locked too long)
        raise StoreError("The store failed: disk is full.")

    monkeypatch.setattr(metric_store, "write_batch", failing)
    with pytest.raises(StoreError):
        run.finish()
    assert not run.finished
    monkeypatch.setattr(metric_store, "write_batch", real)
    run.finish()
    assert run_row(tws, run.id)["status"] == "finished" and summary(tws, run.id, "a")[4] == 1


def test_params_tags_and_artifacts_after_finish_are_clear_errors(tws, tmp_path):
    run = mltui.init(name="closed")
    run.finish()
    (tmp_path / "f.bin").write_bytes(b"x")
    for call in (lambda: run.log_params({"a": 1}), lambda: run.set_tags({"t": "x"}),
                 lambda: run.log_artifact(tmp_path / "f.bin")):
        with pytest.raises(mltui.MltuiError, match="finished"):
            call()
    assert not (run.dir / "artifacts" / "f.bin").exists()
