"""The SQLite store: schema and migrations, file permissions, metric chunks and the metric summary."""

from __future__ import annotations

import math
import os
import sqlite3
import stat
import struct
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from mltui.base.errors import StoreError
from mltui.core.workspace import init_workspace
from mltui.store import metrics as metric_store
from mltui.store import runs as run_store
from mltui.store.connection import write_tx
from mltui.store.opening import open_store
from mltui.store.schema import SCHEMA_VERSION, check_version, migrate, read_version

TABLES = {"meta", "runs", "params", "tags", "metrics", "metric_summary", "artifacts", "views", "datasets",
          "dataset_versions", "dataset_files", "hash_cache", "dataset_profiles", "run_inputs", "models",
          "model_versions", "model_aliases", "stage_moves", "promotion_requests", "request_comments", "audit_log",
          "pipeline_stages", "pipeline_cache", "pipeline_steps", "monitor_files", "monitor_refs", "monitor_windows",
          "monitor_labels", "monitor_alerts", "monitor_checks", "notify_events", "notify_deliveries", "notify_attempts"}
RID = "0000000abc"


@pytest.fixture
def conn(tmp_path):
    c = open_store(tmp_path / "store.db")
    with write_tx(c):
        run_store.insert_run(c, {"id": RID, "name": "r", "status": "running", "created": 1.0})
    yield c
    c.close()


def write(conn, series: dict, run_id: str = RID) -> int:
    with write_tx(conn):
        return metric_store.write_batch(conn, run_id, series)


def summary(conn, key: str, run_id: str = RID) -> dict:
    return metric_store.summaries(conn, [run_id])[run_id][key]


def same_floats(got, expected) -> bool:
    """Equal value for value, NaN equal to NaN, and bit for bit (so -0.0 differs from 0.0)."""
    got, expected = list(got), list(expected)
    return len(got) == len(expected) and all(
        struct.pack("<d", g) == struct.pack("<d", e) or (math.isnan(g) and math.isnan(e))
        for g, e in zip(got, expected)
    )


def tables(c) -> set[str]:
    return {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# -- schema -------------------------------------------------------------------------------------

def test_new_store_settings(tmp_path):
    path = tmp_path / "new.db"
    with closing(open_store(path)) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert c.execute("PRAGMA busy_timeout").fetchone()[0] == 60_000
        assert c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == SCHEMA_VERSION
        assert read_version(c) == SCHEMA_VERSION == 13
        assert tables(c) == TABLES
    assert path.read_bytes()[:16] == b"SQLite format 3\x00"
    # WAL is a property of the file: a plain connection sees it too
    with closing(sqlite3.connect(path)) as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migrate_is_idempotent(tmp_path, conn):
    path = tmp_path / "store.db"
    schema_before = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    assert migrate(conn, path) == SCHEMA_VERSION
    assert migrate(conn, path) == SCHEMA_VERSION
    for _ in range(2):
        open_store(path).close()
    assert conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall() == schema_before
    assert conn.execute("SELECT key, value FROM meta").fetchall() == [("schema_version", SCHEMA_VERSION)]
    assert conn.execute("SELECT id, name FROM runs").fetchall() == [(RID, "r")]
    assert check_version(conn, path) == SCHEMA_VERSION


def test_empty_file_becomes_a_store(tmp_path):
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    with closing(open_store(path)) as c:
        assert read_version(c) == SCHEMA_VERSION and tables(c) == TABLES


def test_foreign_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path)) as other:
        other.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        other.execute("INSERT INTO customers(name) VALUES ('ada')")
        other.commit()
    for readonly in (False, True):
        with pytest.raises(StoreError, match=r"is a SQLite database but not an mltui store \(it has other tables\)"):
            open_store(path, readonly=readonly)
    with closing(sqlite3.connect(path)) as other:
        assert tables(other) == {"customers"}
        assert other.execute("SELECT name FROM customers").fetchall() == [("ada",)]


def test_foreign_sqlite_database_is_left_untouched(tmp_path):
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path)) as other:
        other.execute("CREATE TABLE customers (id INTEGER)")
        other.commit()
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    with pytest.raises(StoreError):
        open_store(path)
    with closing(sqlite3.connect(path)) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_not_sqlite_is_refused(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"PK\x03\x04 definitely a zip file" * 50)
    with pytest.raises(StoreError, match=r"is not an mltui store: the file is not a SQLite database"):
        open_store(path)
    assert path.read_bytes() == b"PK\x03\x04 definitely a zip file" * 50


def test_newer_schema_is_refused(tmp_path, conn):
    path = tmp_path / "store.db"
    with write_tx(conn):
        conn.execute("UPDATE meta SET value = 999 WHERE key = 'schema_version'")
    conn.close()
    for readonly in (False, True):
        with pytest.raises(StoreError, match=rf"written by a newer mltui \(schema 999; this one knows up to {SCHEMA_VERSION}\)"):
            open_store(path, readonly=readonly)
    with closing(sqlite3.connect(path)) as plain:  # nothing was rewritten
        assert plain.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == 999


def test_readonly_store_is_not_created(tmp_path):
    with pytest.raises(StoreError, match="There is no store at"):
        open_store(tmp_path / "absent.db", readonly=True)
    assert not (tmp_path / "absent.db").exists()


def test_foreign_keys_cascade(conn):
    other = "0000000xyz"
    with write_tx(conn):
        run_store.insert_run(conn, {"id": other, "name": "o", "status": "finished", "created": 2.0})
        run_store.set_values(conn, "params", RID, {"lr": 0.1})
        run_store.set_values(conn, "tags", RID, {"t": "x"})
        conn.execute("INSERT INTO artifacts(run_id, path, size, modified) VALUES (?, 'a', 1, 1.0)", (RID,))
        run_store.update_run(conn, other, parent_id=RID)
    write(conn, {"loss": ([0], [1.0], [1.0])})
    write(conn, {"loss": ([0], [1.0], [1.0])}, run_id=other)
    with write_tx(conn):
        run_store.delete_run(conn, RID)
    for table in ("params", "tags", "metrics", "metric_summary", "artifacts"):
        assert conn.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", (RID,)).fetchone()[0] == 0, table
    assert conn.execute("SELECT parent_id FROM runs WHERE id = ?", (other,)).fetchone() == (None,)
    assert conn.execute("SELECT count(*) FROM metrics WHERE run_id = ?", (other,)).fetchone()[0] == 1
    with pytest.raises(StoreError, match="no longer exists"):
        with write_tx(conn):
            run_store.set_values(conn, "params", "nosuchrun0", {"lr": 1})
    assert conn.execute("SELECT count(*) FROM params WHERE run_id = 'nosuchrun0'").fetchone()[0] == 0


def test_write_tx_rolls_back_on_error(conn):
    with pytest.raises(RuntimeError):
        with write_tx(conn):
            run_store.update_run(conn, RID, name="changed")
            raise RuntimeError("boom")
    assert conn.execute("SELECT name FROM runs").fetchone() == ("r",)
    assert not conn.in_transaction


def test_params_and_tags_keep_their_types(conn):
    values = {"f": 0.1, "i": 3, "b": True, "s": "adam", "n": None, "big": 2**70, "l": [1, "a"], "nan": math.nan}
    with write_tx(conn):
        run_store.set_values(conn, "params", RID, values)
    got = run_store.values_for(conn, "params", [RID])[RID]
    assert math.isnan(got.pop("nan"))
    assert got == {k: v for k, v in values.items() if k != "nan"}
    assert type(got["b"]) is bool and type(got["i"]) is int and type(got["big"]) is int


# -- file modes ---------------------------------------------------------------------------------

def _log_one_run(project: Path):
    import mltui

    saved = os.environ.pop("MLTUI_RUN_ID", None)
    try:
        run = mltui.init(name="m", workspace=project, flush_interval=0)
        run.log({"loss": 1.0})
        src = project / "w.bin"
        src.write_bytes(b"x")
        run.log_artifact(src)
        return run
    finally:
        if saved is not None:
            os.environ["MLTUI_RUN_ID"] = saved


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077])
def test_private_modes(tmp_path, mask):
    with umask(mask):
        ws, _ = init_workspace(tmp_path)
        run = _log_one_run(tmp_path)
        try:
            assert mode(ws.root) == 0o700
            assert mode(ws.runs_dir) == 0o700
            assert mode(ws.run_dir(run.id)) == 0o700
            assert mode(ws.run_dir(run.id) / "artifacts") == 0o700
            assert mode(ws.config_path) == 0o600
            assert mode(ws.db_path) == 0o600
            assert mode(ws.run_dir(run.id) / "artifacts" / "w.bin") == 0o600
            for suffix in ("-wal", "-shm"):  # present while the run's connection is open
                side = Path(str(ws.db_path) + suffix)
                assert side.exists() and mode(side) == 0o600, suffix
        finally:
            run.finish()


def test_shared_modes_with_a_group_umask(tmp_path):
    with umask(0o002):
        ws, _ = init_workspace(tmp_path, shared=True)
        run = _log_one_run(tmp_path)
        try:
            assert "\nshared = true\n" in ws.config_path.read_text()
            assert ws.config().shared is True
            # the group's folders, set-group-id so all inside stays the group's; the top one sticky, so no member
            # replaces the owner's config.toml or allowed_signers, which only the owner writes
            assert mode(ws.root) == 0o3770
            assert mode(ws.runs_dir) == mode(ws.run_dir(run.id)) == 0o2770
            assert mode(ws.db_path) == 0o660
            assert mode(ws.config_path) == mode(ws.signers_path) == 0o640
        finally:
            run.finish()


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_shared_modes_survive_a_strict_umask(tmp_path, mask):
    """shared = true promises the group read *and write* (the owner's settings: read), whatever the umask."""
    with umask(mask):
        ws, _ = init_workspace(tmp_path, shared=True)
        run = _log_one_run(tmp_path)
        try:
            assert mode(ws.root) == 0o3770 and mode(ws.runs_dir) == 0o2770
            assert mode(ws.run_dir(run.id)) == mode(ws.run_dir(run.id) / "artifacts") == 0o2770
            assert mode(ws.db_path) == 0o660
            assert mode(ws.config_path) == mode(ws.signers_path) == 0o640
            assert mode(ws.run_dir(run.id) / "artifacts" / "w.bin") == 0o660
            for suffix in ("-wal", "-shm"):
                assert mode(str(ws.db_path) + suffix) == 0o660, suffix
        finally:
            run.finish()


def test_existing_workspace_modes_are_not_widened(tmp_path):
    with umask(0o000):
        init_workspace(tmp_path)
        ws, created = init_workspace(tmp_path, shared=True)
    assert created is False
    assert mode(ws.root) == 0o700 and mode(ws.db_path) == 0o600


def test_store_file_created_with_given_mode(tmp_path):
    with umask(0o000):
        open_store(tmp_path / "a.db", file_mode=0o600).close()
        open_store(tmp_path / "b.db", file_mode=0o640).close()
    assert mode(tmp_path / "a.db") == 0o600
    assert mode(tmp_path / "b.db") == 0o640


# -- metric chunks ------------------------------------------------------------------------------

def test_chunk_round_trip_is_exact(conn):
    steps = [0, 1, 2, 3, 4, 5, 6, 2**62, -5 + 2**63 - 1]
    steps = sorted(steps)
    values = [0.1, math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308, 1 / 3, -2.5]
    times = [1_700_000_000.123456 + i * 0.001 for i in range(len(steps))]
    assert write(conn, {"x": (steps, values, times)}) == len(steps)
    got_steps, got_values, got_times = metric_store.read_series(conn, RID, "x")
    assert list(got_steps) == steps
    assert same_floats(got_values, values)
    assert same_floats(got_times, times)


def test_chunk_blobs_are_little_endian(conn):
    write(conn, {"x": ([1, 2], [0.5, math.inf], [10.0, 11.0])})
    row = conn.execute("SELECT first_step, last_step, n, steps, vals, times FROM metrics").fetchone()
    assert row == (1, 2, 2, struct.pack("<2q", 1, 2), struct.pack("<2d", 0.5, math.inf), struct.pack("<2d", 10.0, 11.0))


def test_one_chunk_per_key_per_batch(conn):
    n = write(conn, {"a": ([0, 1, 2], [1.0, 2.0, 3.0], [0.0] * 3), "b": ([5], [1.0], [0.0]), "empty": ([], [], [])})
    assert n == 4
    assert conn.execute("SELECT key, first_step, last_step, n FROM metrics ORDER BY key").fetchall() == [
        ("a", 0, 2, 3), ("b", 5, 5, 1)]
    assert set(metric_store.summaries(conn, [RID])[RID]) == {"a", "b"}


def test_several_chunks_read_back_in_order(conn):
    write(conn, {"x": ([0, 1], [0.0, 1.0], [0.0, 1.0])})
    write(conn, {"x": ([2, 3], [2.0, 3.0], [2.0, 3.0])})
    write(conn, {"x": ([4], [4.0], [4.0])})
    steps, values, times = metric_store.read_series(conn, RID, "x")
    assert (list(steps), list(values), list(times)) == ([0, 1, 2, 3, 4], [0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 2.0, 3.0, 4.0])


def test_out_of_order_steps_read_back_sorted(conn):
    write(conn, {"x": ([3, 1, 2], [30.0, 10.0, 20.0], [3.0, 1.0, 2.0])})
    write(conn, {"x": ([0, 7], [0.0, 70.0], [0.5, 7.0])})
    steps, values, times = metric_store.read_series(conn, RID, "x")
    assert list(steps) == [0, 1, 2, 3, 7]
    assert list(values) == [0.0, 10.0, 20.0, 30.0, 70.0]
    assert list(times) == [0.5, 1.0, 2.0, 3.0, 7.0]


def test_duplicate_step_in_one_batch_keeps_the_last(conn):
    write(conn, {"x": ([0, 1, 1, 2, 1], [0.0, 1.0, 1.5, 2.0, 1.75], [0.0, 1.0, 1.1, 2.0, 2.1])})
    steps, values, times = metric_store.read_series(conn, RID, "x")
    assert (list(steps), list(values), list(times)) == ([0, 1, 2], [0.0, 1.75, 2.0], [0.0, 2.1, 2.0])


def test_rewritten_step_in_a_later_batch_wins(conn):
    write(conn, {"x": ([0, 1, 2], [0.0, 1.0, 2.0], [0.0, 1.0, 2.0])})
    write(conn, {"x": ([1], [-1.0], [9.0])})
    write(conn, {"x": ([2, 3], [-2.0, 3.0], [10.0, 11.0])})
    steps, values, times = metric_store.read_series(conn, RID, "x")
    assert (list(steps), list(values), list(times)) == ([0, 1, 2, 3], [0.0, -1.0, -2.0, 3.0], [0.0, 9.0, 10.0, 11.0])


def test_rewrite_in_a_later_batch_starting_lower_wins(conn):
    write(conn, {"x": ([5], [1.0], [10.0])})
    write(conn, {"x": ([4, 5], [0.5, 2.0], [11.0, 12.0])})
    assert summary(conn, "x")["last"] == 2.0
    steps, values, times = metric_store.read_series(conn, RID, "x")
    assert (list(steps), list(values), list(times)) == ([4, 5], [0.5, 2.0], [11.0, 12.0])


def test_missing_series_is_empty(conn):
    steps, values, times = metric_store.read_series(conn, RID, "nope")
    assert (len(steps), len(values), len(times)) == (0, 0, 0)


# -- metric summary -----------------------------------------------------------------------------

def test_summary_across_flushes(conn):
    write(conn, {"x": ([0, 1], [3.0, 1.0], [100.0, 101.0])})
    assert summary(conn, "x") == {"last": 1.0, "last_step": 1, "last_time": 101.0, "min": 1.0, "max": 3.0, "count": 2}
    write(conn, {"x": ([2, 3], [2.0, 5.0], [102.0, 103.0])})
    write(conn, {"x": ([4], [4.0], [104.0])})
    assert summary(conn, "x") == {"last": 4.0, "last_step": 4, "last_time": 104.0, "min": 1.0, "max": 5.0, "count": 5}


def test_summary_last_follows_the_highest_step(conn):
    write(conn, {"x": ([10], [1.0], [100.0])})
    write(conn, {"x": ([3], [2.0], [200.0])})  # an older step logged late does not become "last"
    assert summary(conn, "x") == {"last": 1.0, "last_step": 10, "last_time": 100.0, "min": 1.0, "max": 2.0, "count": 2}
    write(conn, {"x": ([10], [7.0], [300.0])})  # the same step again: the later write wins
    assert summary(conn, "x") == {"last": 7.0, "last_step": 10, "last_time": 300.0, "min": 1.0, "max": 7.0, "count": 3}


def test_summary_last_within_an_unordered_batch(conn):
    write(conn, {"x": ([5, 9, 2, 9, 1], [5.0, 9.0, 2.0, 9.5, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0])})
    assert summary(conn, "x") == {"last": 9.5, "last_step": 9, "last_time": 4.0, "min": 1.0, "max": 9.5, "count": 5}


def test_summary_nan_first_batch_ignores_nan_in_min_max(conn):
    write(conn, {"x": ([0, 1, 2], [math.nan, 2.0, 1.0], [0.0, 1.0, 2.0])})
    s = summary(conn, "x")
    assert (s["min"], s["max"], s["last"], s["count"]) == (1.0, 2.0, 1.0, 3)
    write(conn, {"x": ([3, 4], [math.nan, math.nan], [3.0, 4.0])})  # all NaN: min/max unchanged, last NaN
    s = summary(conn, "x")
    assert (s["min"], s["max"], s["last_step"], s["count"]) == (1.0, 2.0, 4, 5)
    assert math.isnan(s["last"])
    write(conn, {"x": ([5], [0.5], [5.0])})
    assert summary(conn, "x") == {"last": 0.5, "last_step": 5, "last_time": 5.0, "min": 0.5, "max": 2.0, "count": 6}


def test_summary_nan_in_the_middle_of_a_batch(conn):
    write(conn, {"x": ([0, 1, 2, 3], [2.0, math.nan, 0.5, 3.0], [0.0] * 4)})
    s = summary(conn, "x")
    assert (s["min"], s["max"]) == (0.5, 3.0)


def test_summary_all_nan_from_the_start(conn):
    write(conn, {"x": ([0, 1], [math.nan, math.nan], [0.0, 1.0])})
    s = summary(conn, "x")
    assert (s["min"], s["max"], s["count"]) == (None, None, 2)
    assert math.isnan(s["last"])
    # stored as NULL (SQLite has no NaN)
    assert conn.execute("SELECT last, min, max FROM metric_summary").fetchone() == (None, None, None)
    write(conn, {"x": ([2], [3.0], [2.0])})
    assert summary(conn, "x") == {"last": 3.0, "last_step": 2, "last_time": 2.0, "min": 3.0, "max": 3.0, "count": 3}


def test_summary_with_infinities(conn):
    write(conn, {"x": ([0, 1, 2], [1.0, math.inf, -math.inf], [0.0, 1.0, 2.0])})
    assert summary(conn, "x") == {"last": -math.inf, "last_step": 2, "last_time": 2.0, "min": -math.inf,
                                  "max": math.inf, "count": 3}
    write(conn, {"x": ([3], [math.nan], [3.0])})
    s = summary(conn, "x")
    assert (s["min"], s["max"], s["count"]) == (-math.inf, math.inf, 4) and math.isnan(s["last"])


def test_summaries_for_several_runs(conn):
    other = "0000000xyz"
    with write_tx(conn):
        run_store.insert_run(conn, {"id": other, "name": "o", "status": "finished", "created": 2.0})
    write(conn, {"a": ([0], [1.0], [0.0]), "b": ([0], [2.0], [0.0])})
    write(conn, {"a": ([0], [9.0], [0.0])}, run_id=other)
    got = metric_store.summaries(conn, [RID, other, "0000000none"])
    assert {rid: {k: v["last"] for k, v in keys.items()} for rid, keys in got.items()} == {
        RID: {"a": 1.0, "b": 2.0}, other: {"a": 9.0}, "0000000none": {}}
    assert metric_store.summaries(conn, []) == {}
    assert run_store.metric_keys(conn, RID) == ["a", "b"]


def test_tracking_api_writes_the_same_summary(tmp_path):
    """The tracking API's buffered path folds into the same summary as write_batch."""
    import mltui

    ws, _ = init_workspace(tmp_path)
    saved = os.environ.pop("MLTUI_RUN_ID", None)
    try:
        run = mltui.init(name="t", workspace=tmp_path, flush_interval=60.0)
        run.log({"loss": math.nan}, step=0)
        run.log({"loss": 2.0}, step=1)
        run.flush()
        run.log({"loss": 0.5}, step=2)
        run.log({"loss": math.inf}, step=3)
        run.finish()
    finally:
        if saved is not None:
            os.environ["MLTUI_RUN_ID"] = saved
    with closing(open_store(ws.db_path)) as c:
        s = metric_store.summaries(c, [run.id])[run.id]["loss"]
        assert {k: s[k] for k in ("last", "last_step", "min", "max", "count")} == {
            "last": math.inf, "last_step": 3, "min": 0.5, "max": math.inf, "count": 4}
        assert c.execute("SELECT count(*) FROM metrics WHERE run_id = ?", (run.id,)).fetchone()[0] == 2
        steps, values, _ = metric_store.read_series(c, run.id, "loss")
        assert list(steps) == [0, 1, 2, 3] and same_floats(values, [math.nan, 2.0, 0.5, math.inf])


def test_a_version_1_store_is_migrated_forward_keeping_its_runs(tmp_path):
    """Stores written before saved views existed (schema 1) gain the views table and keep everything."""
    from mltui.store.schema import MIGRATIONS

    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as old:
        for statement in MIGRATIONS[0]:
            old.execute(statement)
        old.execute("INSERT INTO meta(key, value) VALUES ('schema_version', 1)")
        old.execute("INSERT INTO runs(id, name, status, created) VALUES ('00000000ab', 'kept', 'finished', 1.0)")
    with closing(open_store(path)) as c:
        assert read_version(c) == SCHEMA_VERSION
        assert c.execute("SELECT name FROM runs").fetchall() == [("kept",)]
        assert c.execute("SELECT count(*) FROM views").fetchone()[0] == 0
        # schema 3: launched runs gain their supervisor, reason and spec columns, empty on old runs
        assert c.execute("SELECT sup_pid, reason, spec FROM runs").fetchall() == [(None, None, None)]
