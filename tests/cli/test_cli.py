"""The `mltui` command, run for real in a subprocess (`python -m mltui ...`)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from pathlib import Path

import pytest

import mltui
from mltui.base.errors import StoreError
from mltui.store.runs import RUN_COLUMNS

FIELDS = {*RUN_COLUMNS, "params", "tags", "metrics"}


def one_line_error(result, code: int) -> str:
    """Assert `result` failed with `code` and exactly one `mltui: ` line on stderr; return that line."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.startswith("mltui: "), result.stderr
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr.rstrip("\n")


def ok_json(result):
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)


def rows_by_id(stdout: str) -> dict[str, list[str]]:
    lines = stdout.rstrip("\n").split("\n")
    return {line.split()[0]: line.split() for line in lines[1:]}


def db_count(ws, table: str, run_id: str) -> int:
    conn = sqlite3.connect(ws.db_path)
    try:
        column = "id" if table == "runs" else "run_id"
        return conn.execute(f"SELECT count(*) FROM {table} WHERE {column} = ?", (run_id,)).fetchone()[0]
    finally:
        conn.close()


def unique_prefix(ids: dict[str, str], name: str) -> str:
    target = ids[name]
    others = [v for k, v in ids.items() if k != name]
    for n in range(1, len(target) + 1):
        if not any(o.startswith(target[:n]) for o in others):
            return target[:n]
    raise AssertionError("no unique prefix")


def ambiguous_prefix(ids: dict[str, str]) -> tuple[str, set[str]]:
    values = sorted(ids.values())
    best = max((os.path.commonprefix([a, b]) for a, b in zip(values, values[1:])), key=len)
    assert best
    return best, {v for v in values if v.startswith(best)}


# -- init ---------------------------------------------------------------------------------------

def test_init_new_folder_json(tmp_path, cli):
    result = cli("init", "--json", cwd=tmp_path)
    assert ok_json(result) == {"workspace": str(tmp_path / ".mltui"), "created": True}
    assert (tmp_path / ".mltui" / "mltui.db").is_file()
    assert (tmp_path / ".mltui" / "runs").is_dir()
    assert "\nshared = false\n" in (tmp_path / ".mltui" / "config.toml").read_text()


def test_init_text_then_existing(tmp_path, cli):
    first = cli("init", cwd=tmp_path)
    assert (first.returncode, first.stdout, first.stderr) == (0, f"Created {tmp_path / '.mltui'}\n", "")
    again = cli("init", cwd=tmp_path)
    assert (again.returncode, again.stdout, again.stderr) == (0, f"Already a workspace: {tmp_path / '.mltui'}\n", "")
    assert ok_json(cli("init", "--json", cwd=tmp_path)) == {"workspace": str(tmp_path / ".mltui"), "created": False}


def test_init_existing_keeps_runs(populated, ws, cli):
    assert ok_json(cli("init", "--json")) == {"workspace": str(ws.root), "created": False}
    assert len(ok_json(cli("runs", "list", "--json", "--limit", "0"))) == 12


def test_init_path_argument_and_shared(tmp_path, cli):
    (tmp_path / "proj").mkdir()
    result = cli("init", "proj", "--shared", "--json", cwd=tmp_path)
    assert ok_json(result) == {"workspace": str(tmp_path / "proj" / ".mltui"), "created": True}
    assert "\nshared = true\n" in (tmp_path / "proj" / ".mltui" / "config.toml").read_text()
    assert not (tmp_path / ".mltui").exists()


def test_init_refuses_a_file_named_mltui(tmp_path, cli):
    (tmp_path / ".mltui").write_text("not a folder")
    line = one_line_error(cli("init", cwd=tmp_path), 2)
    assert "exists and is not a folder" in line


def test_init_creates_a_missing_folder_like_git_init(tmp_path, cli):
    result = cli("init", str(tmp_path / "no" / "such"), cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert (tmp_path / "no" / "such" / ".mltui" / "mltui.db").is_file()


def test_init_below_a_file_is_one_line(tmp_path, cli):
    (tmp_path / "afile").write_text("x")
    line = one_line_error(cli("init", str(tmp_path / "afile" / "sub"), cwd=tmp_path), 1)
    assert line.startswith(f"mltui: Cannot create a workspace in {tmp_path / 'afile' / 'sub'}")


# -- runs list ----------------------------------------------------------------------------------

def test_list_empty_workspace(ws, cli):
    result = cli("runs", "list")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "No runs yet: log one with mltui.init() in a training script.\n"
    assert ok_json(cli("runs", "list", "--json")) == []
    assert cli("runs", "list", "--where", "status = failed").stdout == "No runs match.\n"


def test_list_text(populated, cli):
    result = cli("runs", "list")
    assert (result.returncode, result.stderr) == (0, "")
    header = result.stdout.split("\n")[0].split()
    assert header[:5] == ["ID", "STATUS", "NAME", "AGE", "TIME"]
    assert header[5:] == ["optimizer", "augment", "batch_size", "loss", "val/acc", "delta"]
    rows = rows_by_id(result.stdout)
    assert list(rows) == [populated[n] for n in (
        "resnet-adam-1", "resnet-adam-2", "resnet-sgd", "vit-sgd", "vit-adamw", "nan-run", "inf-run",
        "running-1", "queued-1", "lost-run", "debug-run", "old-run")]
    r = rows[populated["resnet-adam-2"]]
    assert r[1:3] == ["finished", "resnet-adam-2"]
    assert r[3:6] == ["2h00m", "ago", "20m00s"]
    assert r[6:] == ["adam", "false", "64", "0.25", "0.85", "-"]
    assert rows[populated["nan-run"]][6:] == ["sgd", "false", "32", "nan", "0.1", "-"]
    assert rows[populated["inf-run"]][6:] == ["sgd", "false", "16", "inf", "-", "-"]
    assert rows[populated["lost-run"]][-1] == "-inf"
    assert rows[populated["queued-1"]][1:] == ["queued", "queued-1", "9h00m", "ago", "-", "adam", "-", "-", "-", "-", "-"]


def test_list_json_fields(populated, cli):
    runs = ok_json(cli("runs", "list", "--json"))
    assert len(runs) == 12
    by_name = {r["name"]: r for r in runs}
    assert all(set(r) == FIELDS for r in runs)
    a = by_name["resnet-adam-1"]
    assert a["id"] == populated["resnet-adam-1"]
    assert (a["status"], a["kind"], a["exit_code"]) == ("finished", "train", 0)
    assert a["params"] == {"augment": True, "batch_size": 32, "lr": 0.001, "optimizer": "adam"}
    assert type(a["params"]["batch_size"]) is int and type(a["params"]["augment"]) is bool
    assert a["tags"] == {"dataset": "cifar10", "team": "vision"}
    assert {k: {f: v[f] for f in ("last", "min", "max", "count", "last_step")} for k, v in a["metrics"].items()} == {
        "loss": {"last": 0.3, "min": 0.3, "max": 0.9, "count": 3, "last_step": 2},
        "val/acc": {"last": 0.8, "min": 0.6, "max": 0.8, "count": 2, "last_step": 1},
    }
    assert isinstance(a["metrics"]["loss"]["last_time"], float)
    assert a["ended"] - a["started"] == pytest.approx(600.0)
    assert by_name["nan-run"]["metrics"]["loss"] | {"last_time": 0} == {
        "last": "nan", "min": 0.5, "max": 1.0, "count": 3, "last_step": 2, "last_time": 0}
    assert by_name["inf-run"]["metrics"]["loss"] | {"last_time": 0} == {
        "last": "inf", "min": 1.0, "max": "inf", "count": 3, "last_step": 2, "last_time": 0}
    assert by_name["lost-run"]["metrics"]["delta"] | {"last_time": 0} == {
        "last": "-inf", "min": "-inf", "max": 1.0, "count": 2, "last_step": 1, "last_time": 0}
    assert by_name["queued-1"]["metrics"] == {} and by_name["queued-1"]["tags"] == {}
    assert by_name["debug-run"]["kind"] == "eval" and by_name["debug-run"]["tags"] == {"debug": True}
    assert by_name["nan-run"]["note"] == "loss went NaN"


def test_list_where_sort_limit(populated, cli):
    got = ok_json(cli("runs", "list", "--where", "params.optimizer = sgd", "--sort", "-params.lr", "--json"))
    assert [r["name"] for r in got] == ["inf-run", "nan-run", "resnet-sgd", "vit-sgd"]
    got = ok_json(cli("runs", "list", "-w", "status in (failed, killed)", "-s", "name", "--json"))
    assert [r["name"] for r in got] == ["nan-run", "resnet-sgd", "vit-sgd"]
    got = ok_json(cli("runs", "list", "--sort", "params.lr", "--limit", "3", "--json"))
    assert [r["name"] for r in got] == ["resnet-adam-1", "running-1", "vit-adamw"]
    assert len(ok_json(cli("runs", "list", "--limit", "0", "--json"))) == 12


def test_list_limit_note_on_stderr(populated, cli):
    result = cli("runs", "list", "--limit", "2")
    assert result.returncode == 0
    assert list(rows_by_id(result.stdout)) == [populated["resnet-adam-1"], populated["resnet-adam-2"]]
    assert result.stderr == "(2 of 12 runs shown; --limit 0 shows all)\n"


def test_sort_value_starting_with_dash(populated, cli):
    expected = ["inf-run", "debug-run", "resnet-sgd", "running-1", "vit-sgd", "old-run", "lost-run",
                "resnet-adam-1", "resnet-adam-2", "vit-adamw", "nan-run", "queued-1"]
    for argv in (("--sort", "-metrics.loss"), ("-s", "-metrics.loss"), ("--sort=-metrics.loss",)):
        got = ok_json(cli("runs", "list", *argv, "--json"))
        assert [r["name"] for r in got] == expected, argv
    got = ok_json(cli("runs", "list", "--json", "--sort", "-name", "--limit", "2"))
    assert [r["name"] for r in got] == ["vit-sgd", "vit-adamw"]


# -- runs show ----------------------------------------------------------------------------------

def test_show_by_unique_prefix(populated, cli):
    prefix = unique_prefix(populated, "resnet-adam-1")
    assert len(prefix) < 10
    result = cli("runs", "show", prefix)
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.split("\n")
    run_id = populated["resnet-adam-1"]
    assert lines[:4] == [f"run      {run_id}", "name     resnet-adam-1", "status   finished (exit code 0)",
                         "kind     train"]
    assert lines[5] == "duration 10m00s"
    sha = hashlib.sha256(b"weights\n").hexdigest()
    text = result.stdout
    assert "\nparams\nKEY         VALUE\naugment     true\nbatch_size  32\nlr          0.001\noptimizer   adam\n" in text
    assert "\ntags\nKEY      VALUE\ndataset  cifar10\nteam     vision\n" in text
    assert "\nmetrics\nKEY      LAST  MIN  MAX  STEP  POINTS\nloss     0.3   0.3  0.9  2     3\n" in text
    assert f"\nartifacts\nPATH                 SIZE  SHA256\nartifacts/model.txt  8     {sha[:12]}\n" in text
    # the full id and an upper-case prefix name the same run
    assert cli("runs", "show", run_id).stdout == text
    assert cli("runs", "show", prefix.upper()).stdout == text


def test_show_json(populated, cli):
    run_id = populated["resnet-adam-1"]
    got = ok_json(cli("runs", "show", unique_prefix(populated, "resnet-adam-1"), "--json"))
    assert set(got) == FIELDS | {"artifacts", "data"}
    assert got["data"] == []  # no dataset versions recorded for this run
    assert got["id"] == run_id and got["name"] == "resnet-adam-1"
    assert got["params"]["lr"] == 0.001
    assert got["metrics"]["loss"]["count"] == 3
    (art,) = got["artifacts"]
    assert {k: art[k] for k in ("path", "size", "sha256")} == {
        "path": "artifacts/model.txt", "size": 8, "sha256": hashlib.sha256(b"weights\n").hexdigest()}
    assert got["run_dir"] == str(Path(os.getcwd()) / ".mltui" / "runs" / run_id)
    nan = ok_json(cli("runs", "show", populated["nan-run"], "--json"))
    assert nan["metrics"]["loss"]["last"] == "nan" and nan["status"] == "failed" and nan["exit_code"] == 1


def test_show_ambiguous_prefix(populated, cli):
    prefix, matches = ambiguous_prefix(populated)
    line = one_line_error(cli("runs", "show", prefix), 2)
    assert line.startswith(f"mltui: The id prefix {prefix!r} is ambiguous: it matches ")
    listed = line.split("it matches ", 1)[1]
    assert listed.endswith(" and more." if len(matches) > 5 else ".")
    shown = listed.removesuffix(".").removesuffix(" and more").split(", ")
    assert set(shown) <= matches and len(shown) == min(len(matches), 5)


def test_show_unknown_and_malformed_ids(populated, cli):
    assert one_line_error(cli("runs", "show", "zzzzzz"), 1) == "mltui: No run has an id starting with 'zzzzzz'."
    assert one_line_error(cli("runs", "show", "a-b"), 2) == "mltui: 'a-b' is not a run id."
    assert one_line_error(cli("metrics", "zzzzzz"), 1) == "mltui: No run has an id starting with 'zzzzzz'."


# -- runs rm ------------------------------------------------------------------------------------

def test_rm_removes_row_folder_and_children(populated, ws, cli):
    run_id = populated["resnet-adam-1"]
    folder = ws.run_dir(run_id)
    assert (folder / "artifacts" / "model.txt").is_file()
    before = {t: db_count(ws, t, run_id) for t in ("runs", "params", "tags", "metrics", "metric_summary", "artifacts")}
    assert before == {"runs": 1, "params": 4, "tags": 2, "metrics": 2, "metric_summary": 2, "artifacts": 1}
    result = cli("runs", "rm", unique_prefix(populated, "resnet-adam-1"))
    assert (result.returncode, result.stdout, result.stderr) == (0, f"Removed {run_id}\n", "")
    after = {t: db_count(ws, t, run_id) for t in before}
    assert after == dict.fromkeys(before, 0)
    assert not folder.exists()
    remaining = ok_json(cli("runs", "list", "--json", "--limit", "0"))
    assert len(remaining) == 11 and run_id not in {r["id"] for r in remaining}
    assert ws.run_dir(populated["resnet-adam-2"]).is_dir()


def test_rm_json_and_duplicates(populated, ws, cli):
    a, b = populated["vit-sgd"], populated["old-run"]
    got = ok_json(cli("runs", "rm", a, unique_prefix(populated, "vit-sgd"), b, "--json"))
    assert got == {"removed": [a, b]}
    assert db_count(ws, "runs", a) == db_count(ws, "runs", b) == 0


@pytest.mark.parametrize("name, status", [("running-1", "running"), ("queued-1", "queued")])
def test_rm_refuses_active_runs_without_force(populated, ws, cli, name, status):
    run_id = populated[name]
    line = one_line_error(cli("runs", "rm", run_id), 1)
    assert line == f"mltui: Run {run_id} is {status}; stop it first or pass --force."
    assert db_count(ws, "runs", run_id) == 1 and ws.run_dir(run_id).is_dir()
    result = cli("runs", "rm", "--force", run_id)
    assert (result.returncode, result.stdout) == (0, f"Removed {run_id}\n")
    assert db_count(ws, "runs", run_id) == 0 and not ws.run_dir(run_id).exists()


def test_rm_several_removes_nothing_if_one_is_refused(populated, ws, cli):
    done, live = populated["resnet-adam-2"], populated["running-1"]
    one_line_error(cli("runs", "rm", done, live), 1)
    assert db_count(ws, "runs", done) == 1 and db_count(ws, "runs", live) == 1
    assert db_count(ws, "metric_summary", done) == 2
    assert ws.run_dir(done).is_dir()


def test_rm_several_removes_nothing_if_one_is_unknown(populated, ws, cli):
    done = populated["resnet-adam-2"]
    assert one_line_error(cli("runs", "rm", done, "zzzzzz"), 1) == "mltui: No run has an id starting with 'zzzzzz'."
    prefix, _ = ambiguous_prefix(populated)
    one_line_error(cli("runs", "rm", done, prefix), 2)
    assert db_count(ws, "runs", done) == 1 and ws.run_dir(done).is_dir()


# -- metrics ------------------------------------------------------------------------------------

def test_metrics_summary_text(populated, cli):
    result = cli("metrics", populated["nan-run"])
    assert (result.returncode, result.stderr) == (0, "")
    assert [line.split() for line in result.stdout.rstrip("\n").split("\n")] == [
        ["KEY", "LAST", "MIN", "MAX", "STEP", "POINTS"],
        ["loss", "nan", "0.5", "1", "2", "3"],
        ["val/acc", "0.1", "0.1", "0.1", "0", "1"],
    ]
    result = cli("metrics", populated["inf-run"])
    assert result.stdout.rstrip("\n").split("\n")[1].split() == ["loss", "inf", "1", "inf", "2", "3"]
    assert cli("metrics", populated["queued-1"]).stdout == f"Run {populated['queued-1']} has no metrics.\n"


def test_metrics_summary_json(populated, cli):
    got = ok_json(cli("metrics", populated["lost-run"], "--json"))
    assert got["run"] == populated["lost-run"]
    assert sorted(got["metrics"]) == ["delta", "loss", "val/acc"]
    assert {k: got["metrics"]["delta"][k] for k in ("last", "min", "max", "count", "last_step")} == {
        "last": "-inf", "min": "-inf", "max": 1.0, "count": 2, "last_step": 1}


def test_metrics_key_json_exact(populated, cli):
    got = ok_json(cli("metrics", populated["nan-run"], "--key", "loss", "--json"))
    assert got["run"] == populated["nan-run"] and list(got["series"]) == ["loss"]
    points = got["series"]["loss"]
    assert [(p["step"], p["value"]) for p in points] == [(0, 1.0), (1, 0.5), (2, "nan")]
    assert all(isinstance(p["time"], float) for p in points)
    assert [p["time"] for p in points] == sorted(p["time"] for p in points)
    got = ok_json(cli("metrics", populated["inf-run"], "-k", "loss", "--json"))
    assert [p["value"] for p in got["series"]["loss"]] == [2.0, 1.0, "inf"]
    got = ok_json(cli("metrics", populated["lost-run"], "--key", "delta", "--key", "loss", "--json"))
    assert list(got["series"]) == ["delta", "loss"]
    assert [p["value"] for p in got["series"]["delta"]] == [1.0, "-inf"]
    assert [p["value"] for p in got["series"]["loss"]] == [0.35]


def test_metrics_key_csv_exact(populated, cli):
    result = cli("metrics", populated["inf-run"], "--key", "loss", "--csv")
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.split("\n")
    assert lines[0] == "key,step,value,time" and lines[-1] == ""
    rows = [line.split(",") for line in lines[1:-1]]
    assert [r[:3] for r in rows] == [["loss", "0", "2.0"], ["loss", "1", "1.0"], ["loss", "2", "inf"]]
    assert all(re.fullmatch(r"\d+\.\d{6}", r[3]) for r in rows)

    result = cli("metrics", populated["nan-run"], "--key", "loss", "--csv")
    assert [line.split(",")[:3] for line in result.stdout.split("\n")[1:-1]] == [
        ["loss", "0", "1.0"], ["loss", "1", "0.5"], ["loss", "2", "nan"]]

    # without --key: every key, sorted
    result = cli("metrics", populated["lost-run"], "--csv")
    assert [line.split(",")[:3] for line in result.stdout.split("\n")[1:-1]] == [
        ["delta", "0", "1.0"], ["delta", "1", "-inf"], ["loss", "0", "0.35"], ["val/acc", "0", "0.91"]]


def test_metrics_key_text(populated, cli):
    result = cli("metrics", populated["nan-run"], "--key", "loss")
    assert result.stdout == "loss (3 points)\n         0  1\n         1  0.5\n         2  nan\n"


def test_metrics_unknown_key(populated, cli):
    run_id = populated["nan-run"]
    line = one_line_error(cli("metrics", run_id, "--key", "nope"), 1)
    assert line == f"mltui: Run {run_id} has no metric 'nope' (it has: loss, val/acc)."


# -- outside a workspace, bad usage -------------------------------------------------------------

@pytest.fixture
def outside(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.mktemp("elsewhere")
    if any((p / ".mltui").exists() for p in (folder, *folder.parents)):
        pytest.skip("a .mltui folder exists above the temporary folder")
    for var in ("MLTUI_WORKSPACE", "MLTUI_RUN_ID", "MLTUI_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    return folder


@pytest.mark.parametrize(
    "argv",
    [("runs", "list"), ("runs", "list", "--json"), ("runs", "show", "abc"), ("runs", "rm", "abc"),
     ("metrics", "abc"), ("metrics", "abc", "--key", "loss", "--csv")],
)
def test_outside_a_workspace(outside, cli, argv):
    result = cli(*argv, cwd=outside)
    line = one_line_error(result, 2)
    assert line == "mltui: Not inside an mltui workspace (no .mltui/ here or above); run `mltui init` first."
    assert result.stdout == ""


def test_workspace_from_environment(populated, ws, outside, cli):
    for target in (ws.project_dir, ws.root):
        got = ok_json(cli("runs", "list", "--json", "--limit", "0", cwd=outside, env={"MLTUI_WORKSPACE": str(target)}))
        assert len(got) == 12
    line = one_line_error(cli("runs", "list", cwd=outside, env={"MLTUI_WORKSPACE": str(outside)}), 2)
    assert line == f"mltui: MLTUI_WORKSPACE points at {outside}, which holds no mltui workspace."


def test_workspace_found_from_a_subfolder(populated, ws, cli):
    sub = ws.project_dir / "a" / "b"
    sub.mkdir(parents=True)
    assert len(ok_json(cli("runs", "list", "--json", "--limit", "0", cwd=sub))) == 12


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (("runs",), "VERB"),
        (("bogus",), "invalid choice"),
        (("runs", "list", "--limit", "abc"), "invalid int value"),
        (("runs", "list", "--limit", "-1"), "--limit must be 0"),
        (("runs", "show"), "required"),
        (("runs", "rm"), "required"),
        (("metrics",), "required"),
        (("runs", "list", "--nope"), "nrecognized arguments: --nope"),
        (("runs", "list", "--where", "params.lr >"), "Bad --where at column 12"),
        (("runs", "list", "--where", "status = nope"), "Bad --where at column 10"),
        (("runs", "list", "--sort", "bogus"), "Bad --sort at column 1"),
        (("runs", "list", "--sort", "-bogus"), "Bad --sort at column 1"),
        (("metrics", "abc", "--json", "--csv"), "not allowed with argument"),
        (("init", "--nope"), "nrecognized arguments: --nope"),
    ],
)
def test_bad_usage_is_one_line_exit_2(populated, cli, argv, fragment):
    result = cli(*argv)
    line = one_line_error(result, 2)
    assert fragment in line
    assert result.stdout == ""


def test_huge_integer_in_where_is_compared_as_a_number(populated, cli):
    # beyond SQLite's 64-bit integers the number is compared as a real, not an error or a crash
    result = cli("runs", "list", "--where", "params.lr < 99999999999999999999", "--json", "--limit", "0")
    assert result.returncode == 0 and result.stderr == ""
    names = {run["name"] for run in json.loads(result.stdout)}
    assert names and all(isinstance(populated_lr, float) for populated_lr in
                         (run["params"]["lr"] for run in json.loads(result.stdout)))
    assert cli("runs", "list", "--where", "params.lr > 99999999999999999999", "--json").stdout.strip() == "[]"


def test_help_exits_0(cli, tmp_path):
    result = cli("runs", "list", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "--where" in result.stdout and result.stderr == ""


# -- broken stores ------------------------------------------------------------------------------

def _clear_wal(ws):
    for suffix in ("-wal", "-shm"):
        Path(str(ws.db_path) + suffix).unlink(missing_ok=True)


@pytest.mark.parametrize(
    "argv", [("runs", "list"), ("runs", "list", "--json"), ("runs", "show", "abc"), ("metrics", "abc"),
             ("runs", "rm", "abc"), ("init",)],
)
def test_corrupt_db_file(populated, ws, cli, argv):
    _clear_wal(ws)
    ws.db_path.write_bytes(b"\x00\xffthis is not a database\n" * 200)
    result = cli(*argv)
    line = one_line_error(result, 1)
    assert line == f"mltui: {ws.db_path} is not an mltui store: the file is not a SQLite database."
    assert result.stdout == ""


def test_damaged_sqlite_file(populated, ws, cli):
    _clear_wal(ws)
    data = bytearray(ws.db_path.read_bytes())
    data[16:] = b"\xa5" * (len(data) - 16)  # a SQLite header, then garbage
    ws.db_path.write_bytes(bytes(data))
    line = one_line_error(cli("runs", "list"), 1)
    assert line.startswith(f"mltui: The store {ws.db_path} is damaged or not a SQLite database")


@pytest.mark.parametrize("argv", [("runs", "list"), ("runs", "show", "abc"), ("runs", "rm", "abc"), ("init",)])
def test_store_from_a_newer_mltui(populated, ws, cli, argv):
    conn = sqlite3.connect(ws.db_path)
    with conn:
        conn.execute("UPDATE meta SET value = 999 WHERE key = 'schema_version'")
    conn.close()
    line = one_line_error(cli(*argv), 1)
    assert "newer" in line and "schema 999" in line
    assert line.startswith(f"mltui: The store {ws.db_path} was written by a newer mltui")


def test_foreign_sqlite_database_is_refused(ws, cli):
    ws.db_path.unlink()
    _clear_wal(ws)
    conn = sqlite3.connect(ws.db_path)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    line = one_line_error(cli("runs", "list"), 1)
    assert line == f"mltui: {ws.db_path} is a SQLite database but not an mltui store (it has other tables)."


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_workspace_cli(populated, ws, cli):
    run_id = populated["resnet-adam-2"]
    _clear_wal(ws)
    paths = [ws.db_path, ws.config_path, ws.root]
    modes = {p: p.stat().st_mode & 0o777 for p in paths}
    try:
        ws.db_path.chmod(0o400)
        ws.config_path.chmod(0o400)
        ws.root.chmod(0o500)
        listed = ok_json(cli("runs", "list", "--json", "--limit", "0"))
        assert len(listed) == 12
        got = ok_json(cli("metrics", run_id, "--key", "loss", "--json"))
        assert [p["value"] for p in got["series"]["loss"]] == [0.8, 0.4, 0.25]
        one_line_error(cli("runs", "rm", run_id), 1)
        assert len(ok_json(cli("runs", "list", "--json", "--limit", "0"))) == 12
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def _ro_mount(ws, *command: str):
    """Run `command` in a private mount namespace where the workspace folder is a read-only mount
    (root ignores file modes, but not a read-only mount). Skips where that cannot be set up."""
    import shutil
    import subprocess
    import sys

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a read-only mount")
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 97; shift; exec "$@"'
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTUI_")} | {"COLUMNS": "200"}
    result = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(ws.root), sys.executable, *command],
                            cwd=ws.project_dir, env=env, capture_output=True, text=True, timeout=60)
    if result.returncode == 97 or result.stderr.startswith("unshare:"):
        pytest.skip(f"cannot make a read-only mount here: {result.stderr.strip()}")
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_read_only_mount_cli(populated, ws):
    run_id = populated["resnet-adam-2"]
    listed = ok_json(_ro_mount(ws, "-m", "mltui", "runs", "list", "--json", "--limit", "0"))
    assert len(listed) == 12
    got = ok_json(_ro_mount(ws, "-m", "mltui", "metrics", run_id, "--key", "loss", "--json"))
    assert [p["value"] for p in got["series"]["loss"]] == [0.8, 0.4, 0.25]
    shown = _ro_mount(ws, "-m", "mltui", "runs", "show", run_id)
    assert shown.returncode == 0 and shown.stdout.startswith(f"run      {run_id}\n")
    line = one_line_error(_ro_mount(ws, "-m", "mltui", "runs", "rm", run_id), 1)
    assert str(ws.db_path) in line
    assert db_count(ws, "runs", run_id) == 1 and ws.run_dir(run_id).is_dir()


def test_tracking_on_a_read_only_mount_says_so(populated, ws):
    code = ("import mltui\n"
            "try:\n    mltui.init(name='x')\n"
            "except mltui.MltuiError as exc:\n    print('MltuiError', exc)\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc)\n")
    result = _ro_mount(ws, "-c", code)
    assert result.stdout.startswith("MltuiError Cannot create a run folder"), result.stdout


def test_read_only_store_reads_work(populated, ws):
    from mltui.core.runs.listing import get_run, list_runs
    from mltui.store.opening import open_store

    conn = open_store(ws.db_path, readonly=True)
    try:
        assert list_runs(conn, limit=0).total == 12
        assert get_run(conn, populated["nan-run"])["metrics"]["loss"]["count"] == 3
    finally:
        conn.close()


def test_read_only_store_writes_raise_store_error(populated, ws):
    from mltui.core.runs.listing import remove_run
    from mltui.store.opening import open_store

    conn = open_store(ws.db_path, readonly=True)
    try:
        with pytest.raises(StoreError, match="read-only"):
            remove_run(ws, conn, populated["resnet-adam-2"])
    finally:
        conn.close()
    conn = sqlite3.connect(ws.db_path)
    try:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 12
    finally:
        conn.close()


# -- names that look like markup or terminal codes ----------------------------------------------

def test_markup_and_escape_codes_shown_literally(ws, cli):
    names = ["[bold]x[/bold]", "\x1b[31mred", "tab\there"]
    ids = {}
    for name in names:
        run = mltui.init(name=name, params={"note": "a\nb\x1b[0m"}, workspace=ws.project_dir, flush_interval=0)
        run.log({"loss": 1.5})
        run.finish()
        ids[name] = run.id

    text = cli("runs", "list")
    assert text.returncode == 0
    assert "\x1b" not in text.stdout and "\t" not in text.stdout
    rows = rows_by_id(text.stdout)
    assert rows[ids["[bold]x[/bold]"]][2] == "[bold]x[/bold]"
    assert rows[ids["\x1b[31mred"]][2] == "\\x1b[31mred"
    assert rows[ids["tab\there"]][2] == "tab\\there"

    show = cli("runs", "show", ids["\x1b[31mred"])
    assert "\x1b" not in show.stdout
    assert "name     \\x1b[31mred\n" in show.stdout
    assert "note  a\\nb\\x1b[0m" in show.stdout
    assert "name     [bold]x[/bold]\n" in cli("runs", "show", ids["[bold]x[/bold]"]).stdout

    listed = ok_json(cli("runs", "list", "--json"))
    assert {r["id"]: r["name"] for r in listed} == {v: k for k, v in ids.items()}
    assert all(r["params"] == {"note": "a\nb\x1b[0m"} for r in listed)
    raw = cli("runs", "list", "--json").stdout
    assert "\x1b" not in raw  # JSON escapes control characters
    assert ok_json(cli("runs", "show", ids["\x1b[31mred"], "--json"))["name"] == "\x1b[31mred"


def test_debug_shows_the_traceback(ws, cli):
    ws.db_path.write_bytes(b"garbage" * 10)
    result = cli("runs", "list", "--debug")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "StoreError" in result.stderr
