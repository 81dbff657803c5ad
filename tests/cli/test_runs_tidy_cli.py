"""Runs at scale from the command line, for real in a subprocess: `runs list --group-by`, `compare
--group-by`, whole-result JSON written as it is read (--json keeps its shape, --jsonl), `runs rm --where`,
`runs archive` and `gc`."""

from __future__ import annotations

import json
import os
import sqlite3
import time

import polars as pl
import pytest

from conftest import POPULATED_ORDER, make_run
from mltui.base.values import jsonable
from mltui.core.runs.export import runs_frame
from mltui.core.runs.listing import list_runs
from mltui.store.opening import open_store


def ok(result):
    assert result.returncode == 0, result.stderr
    return result


def ok_json(result):
    return json.loads(ok(result).stdout)


def count(ws, sql: str, args=()) -> int:
    conn = sqlite3.connect(ws.db_path)
    try:
        return conn.execute(sql, args).fetchone()[0]
    finally:
        conn.close()


# -- whole-result JSON --------------------------------------------------------------------------------
def test_json_limit_0_is_the_same_array_as_before(populated, ws, cli):
    conn = open_store(ws.db_path)
    try:
        before = jsonable(list_runs(conn, limit=0).runs)  # what --json printed, built whole in memory
    finally:
        conn.close()
    out = ok(cli("runs", "list", "--json", "--limit", "0"))
    assert out.stdout.startswith("[\n  {") and out.stdout.endswith("}\n]\n")
    assert json.loads(out.stdout) == before
    assert [r["name"] for r in before] == POPULATED_ORDER
    nan_run = next(r for r in before if r["name"] == "nan-run")
    assert nan_run["metrics"]["loss"]["last"] == "nan"


def test_jsonl_is_one_run_per_line(populated, cli):
    lines = ok(cli("runs", "list", "--jsonl", "--limit", "0", "--where", "params.optimizer = adam")).stdout.splitlines()
    array = ok_json(cli("runs", "list", "--json", "--limit", "0", "--where", "params.optimizer = adam"))
    assert [json.loads(line) for line in lines] == array and len(array) == 5


def test_json_of_nothing_is_an_empty_array(ws, cli):
    assert ok(cli("runs", "list", "--json")).stdout == "[]\n"
    assert ok(cli("runs", "list", "--jsonl")).stdout == ""


def exported_beside_before(ws, cli, tmp_path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(`export runs` to Parquet as read back, the frame built whole in memory as before) for one store,
    after checking that they hold the same columns and, but for the duration, the same values."""
    conn = open_store(ws.db_path)
    try:
        before = runs_frame(list_runs(conn, limit=0).runs)
    finally:
        conn.close()
    ok(cli("export", "runs", "-o", tmp_path / "r.parquet"))
    after = pl.read_parquet(tmp_path / "r.parquet")
    assert sorted(after.columns) == sorted(before.columns)
    columns = sorted(c for c in before.columns if c != "duration")  # a running run's duration grows meanwhile
    assert after.select(columns).equals(before.select(columns), null_equal=True)
    return after, before


def test_export_runs_is_the_frame_as_before(populated, ws, cli, tmp_path):
    after, before = exported_beside_before(ws, cli, tmp_path)
    ended = pl.col("ended").is_not_null()
    assert after.filter(ended)["duration"].to_list() == before.filter(ended)["duration"].to_list()


@pytest.fixture
def odd_values(ws):
    """Runs whose values take every way out of the SQL writers: NaN and infinities, a JSON param holding
    NaN (SQLite refuses that JSON), integers past 64 bits, booleans, None, text that is not JSON in a JSON
    column, and one param name holding floats in some runs and text or lists in others."""
    a = make_run(ws.project_dir, "odd-a", {"loss": [0.5, float("inf")], "acc": [float("nan")]},
                 params={"lr": float("nan"), "big": 2**70, "flag": True, "none": None, "mix": 0.1,
                         "arr": [1.5, float("nan")], "name": "x\ty\u00e9", "tiny": 1e-05, "huge": 1.7976931348623157e308})
    b = make_run(ws.project_dir, "odd-b", {"loss": [float("-inf")]},
                 params={"lr": 3, "big": -5, "flag": False, "mix": "text", "arr": {"k": "v"}, "neg": -0.0})
    c = make_run(ws.project_dir, "odd-c", {"loss": [1 / 3]}, params={"lr": 0.1 + 0.2, "mix": [1, 2], "flag": 1})
    conn = sqlite3.connect(ws.db_path)
    try:
        conn.execute("UPDATE runs SET command = 'not json', git_dirty = 1 WHERE id = ?", (b,))
        conn.commit()
    finally:
        conn.close()
    return [a, b, c]


def test_json_of_odd_values_is_what_python_writes(odd_values, ws, cli):
    conn = open_store(ws.db_path)
    try:
        before = jsonable(list_runs(conn, limit=0).runs)
    finally:
        conn.close()
    assert json.loads(ok(cli("runs", "list", "--json", "--limit", "0")).stdout) == before
    lines = ok(cli("runs", "list", "--jsonl", "--limit", "0")).stdout.splitlines()
    assert [json.loads(line) for line in lines] == before
    odd_b = next(r for r in before if r["name"] == "odd-b")
    assert odd_b["command"] == "not json" and odd_b["git_dirty"] is True


def test_export_of_odd_values_is_the_frame_as_before(odd_values, ws, cli, tmp_path):
    conn = open_store(ws.db_path)
    try:
        before = runs_frame(list_runs(conn, limit=0).runs)
    finally:
        conn.close()
    ok(cli("export", "runs", "-o", tmp_path / "r.parquet"))
    after = pl.read_parquet(tmp_path / "r.parquet")
    assert sorted(after.columns) == sorted(before.columns)
    columns = sorted(c for c in before.columns if c != "duration")
    assert after.select(columns).equals(before.select(columns), null_equal=True)
    assert after.filter(pl.col("name") == "odd-b")["params.mix"].to_list() == ["text"]
    assert after.filter(pl.col("name") == "odd-c")["params.mix"].to_list() == ["[1, 2]"]


# regression: SQLite reads some 15-digit texts back as the double they came from though they are another
# one, so --json wrote e.g. 1.7624917436382601 as 1.76249174363826
MISREAD = [1.7624917436382601, 99.89951412684471, 0.009008535081462401, 9.474100321002341e-18]


def test_json_writes_every_float_exactly(ws, cli):
    make_run(ws.project_dir, "floats", {f"m{i}": [v, v * 3] for i, v in enumerate(MISREAD)} | {"big": [2e250]},
             params={f"p{i}": v for i, v in enumerate(MISREAD)} | {"sub": 5e-324, "huge": 1e200, "one": 0.1})
    conn = open_store(ws.db_path)
    try:
        before = jsonable(list_runs(conn, limit=0).runs)
    finally:
        conn.close()
    out = ok(cli("runs", "list", "--json", "--limit", "0")).stdout
    assert json.loads(out) == before and before[0]["params"]["p0"] == MISREAD[0]
    assert "1.7624917436382601" in out


def test_export_of_many_columns_and_archived_runs_is_the_frame_as_before(ws, cli, tmp_path):
    """More params than SQLite joins tables (the rest are read by subqueries), and an archived run whose
    values would change the column types: the export leaves it out, types included."""
    many = {f"k{i:02}": (i if i % 3 else f"v{i}") for i in range(70)}
    make_run(ws.project_dir, "wide-a", {"loss": [0.5]}, params=many | {"mix": 0.25, "flag": True})
    make_run(ws.project_dir, "wide-b", {"acc": [0.75]}, params=many | {"k05": 2.5, "mix": "text", "flag": False})
    hidden = make_run(ws.project_dir, "hidden", params={"flag": 7, "k01": "x", "only_hidden": 1.5})
    ok(cli("runs", "archive", hidden))
    after, _ = exported_beside_before(ws, cli, tmp_path)
    assert "params.only_hidden" not in after.columns
    assert after.schema["params.flag"] == pl.Boolean and after.schema["params.k01"] == pl.Int64
    assert after.schema["params.k05"] == pl.Float64 and after.schema["params.mix"] == pl.Utf8


# -- groups ---------------------------------------------------------------------------------------------
@pytest.fixture
def sweep(ws):
    ids = {}
    for c, model in enumerate(["a", "b"]):
        for seed in range(3):
            ids[(model, seed)] = make_run(ws.project_dir, f"{model}{seed}", {"acc": [c + seed / 10]},
                                          params={"model": model, "seed": seed, "lr": 0.1})
    return ids


def test_runs_list_group_by_json(sweep, cli):
    data = ok_json(cli("runs", "list", "--group-by", "*,-seed", "--json", "-m", "acc"))
    assert data["group_by"] == ["params.lr", "params.model"] and data["total"] == 2 and data["runs"] == 6
    b, a = data["groups"]
    assert b["key"] == {"params.lr": 0.1, "params.model": "b"} and b["n"] == 3
    assert sorted(b["run_ids"]) == sorted(sweep[("b", s)] for s in range(3))
    assert b["stats"]["acc"]["mean"] == pytest.approx(1.1) and b["stats"]["acc"]["std"] == pytest.approx(0.1)
    assert (a["stats"]["acc"]["min"], a["stats"]["acc"]["max"]) == (pytest.approx(0.0), pytest.approx(0.2))


def test_runs_list_group_by_text(sweep, cli):
    out = ok(cli("runs", "list", "--group-by", "model", "--limit", "1"))
    lines = out.stdout.splitlines()
    assert lines[0].split()[:2] == ["model", "N"] and "acc (mean ± std [min, max])" in lines[0]
    assert lines[1].split()[:2] == ["b", "3"] and "1.1 ± 0.1 [1, 1.2]" in lines[1]
    assert out.stderr == "(1 of 2 groups shown; --limit 0 shows all)\n"


def test_compare_group_by_json(sweep, cli):
    data = ok_json(cli("compare", "--where", "params.seed < 2", "--group-by", "model", "--json"))
    assert [(g["key"]["params.model"], g["n"]) for g in data["groups"]] == [("b", 2), ("a", 2)]
    assert data["directions"] == {"acc": "max"}
    assert data["groups"][0]["stats"]["acc"]["mean"] == pytest.approx(1.05)


def test_group_by_bad_spec_is_usage(sweep, cli):
    result = cli("runs", "list", "--group-by", "*,-nosuch")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "'nosuch'" in result.stderr


# -- rm --where, archive, gc ------------------------------------------------------------------------------
def test_rm_where_dry_run_changes_nothing_then_removes(populated, ws, cli):
    where = "status in (failed, killed)"
    doomed = {populated[n] for n in ("resnet-sgd", "vit-sgd", "nan-run")}
    before = {name: count(ws, f"SELECT count(*) FROM {name}") for name in ("runs", "params", "metrics")}
    dry = ok_json(cli("runs", "rm", "--where", where, "--dry-run", "--json"))
    assert dry["dry_run"] and set(dry["would_remove"]) == doomed and dry["removed"] == []
    assert {name: count(ws, f"SELECT count(*) FROM {name}") for name in before} == before
    assert all(ws.run_dir(rid).is_dir() for rid in doomed)
    done = ok_json(cli("runs", "rm", "--where", where, "--json"))
    assert set(done["removed"]) == doomed
    assert count(ws, "SELECT count(*) FROM runs") == before["runs"] - 3
    assert count(ws, "SELECT count(*) FROM params WHERE run_id NOT IN (SELECT id FROM runs)") == 0
    assert not any(ws.run_dir(rid).exists() for rid in doomed)
    left = {r["name"] for r in ok_json(cli("runs", "list", "--json", "--limit", "0"))}
    assert left == set(POPULATED_ORDER) - {"resnet-sgd", "vit-sgd", "nan-run"}


def test_rm_where_refuses_running_runs(populated, ws, cli):
    result = cli("runs", "rm", "--where", "params.optimizer = adam")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "2 of the 5 matching runs are queued or running" in result.stderr
    assert count(ws, "SELECT count(*) FROM runs") == len(POPULATED_ORDER)


def test_rm_where_and_ids_together_is_usage(populated, cli):
    assert cli("runs", "rm", populated["old-run"], "--where", "status = lost").returncode == 2
    assert cli("runs", "rm").returncode == 2


def test_archive_hides_until_asked(populated, ws, cli):
    old = populated["old-run"]
    out = ok_json(cli("runs", "archive", "--where", "created < 7d", "--json"))
    assert set(out["archived"]) == {old, populated["debug-run"]}
    names = [r["name"] for r in ok_json(cli("runs", "list", "--json"))]
    assert "old-run" not in names and len(names) == len(POPULATED_ORDER) - 2
    assert len(ok_json(cli("runs", "list", "--json", "--archived"))) == len(POPULATED_ORDER)
    assert [r["id"] for r in ok_json(cli("runs", "list", "--json", "--where", "archived = 1 and name = old-run"))] == [old]
    ok(cli("runs", "unarchive", old))
    assert "old-run" in [r["name"] for r in ok_json(cli("runs", "list", "--json"))]
    assert count(ws, "SELECT count(*) FROM runs WHERE archived = 1") == 1


def _old(path) -> None:
    stamp = time.time() - 7200
    os.utime(path, (stamp, stamp))


def test_gc_removes_orphan_folders_and_unreferenced_objects(populated, ws, cli):
    orphan = ws.runs_dir / "zzzzzzzzzz"
    (orphan / "artifacts").mkdir(parents=True)
    (orphan / "output.log").write_bytes(b"x" * 1000)
    (orphan / "artifacts" / "m.bin").write_bytes(b"y" * 234)
    _old(orphan)
    young = ws.runs_dir / "yyyyyyyyyy"  # a run being created: its folder comes a moment before its row
    young.mkdir()
    obj = ws.root / "cache" / "ab" / ("c" * 62)
    obj.parent.mkdir(parents=True)
    obj.write_bytes(b"z" * 4000)
    kept = set(os.listdir(ws.runs_dir))
    dry = ok_json(cli("gc", "--dry-run", "--json"))
    assert dry == {"dry_run": True, "run_folders": 1, "run_folder_bytes": 1234, "cache_objects": 1,
                   "cache_object_bytes": 4000, "cache_objects_kept": 0, "temporary_files": 0,
                   "young_folders": 1, "freed": 5234}
    assert set(os.listdir(ws.runs_dir)) == kept and obj.exists()
    done = ok_json(cli("gc", "--json"))
    assert done["freed"] == 5234 and not done["dry_run"]
    assert not orphan.exists() and not obj.exists() and young.exists()
    assert set(os.listdir(ws.runs_dir)) == kept - {orphan.name}  # every run's own folder is still there
    assert ok(cli("gc")).stdout.startswith("Removed 0 run folders")
