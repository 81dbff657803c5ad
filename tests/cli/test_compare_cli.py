"""`mltui compare`, `mltui views` and `mltui export`, run for real in a subprocess."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from contextlib import closing

import polars as pl
import pytest

from conftest import POPULATED_RUNS
from conftest import make_run
from mltui.core.runs.views import View, save_view
from mltui.core.workspace import init_workspace
from mltui.store.opening import open_store

ADAM = {"resnet-adam-1", "resnet-adam-2", "running-1", "queued-1", "old-run"}  # params.optimizer = adam
TOTAL_POINTS = 35  # every value listed in POPULATED_RUNS' metrics


def one_line_error(result, code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.startswith("mltui: "), result.stderr
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr.rstrip("\n")


def ok_json(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def project(tmp_path_factory, populated_factory):
    """A populated workspace shared by the tests that only read it: (project dir, {name: id})."""
    folder = tmp_path_factory.mktemp("cmp")
    init_workspace(folder)
    return folder, populated_factory(folder)


@pytest.fixture
def pcli(project, cli):
    folder, _ = project
    return lambda *args: cli(*args, cwd=folder)


def stars(stdout: str) -> dict[str, set[str]]:
    """metric -> run ids marked '*' in the text output."""
    out: dict[str, set[str]] = {}
    key = None
    for line in stdout.splitlines():
        if line.endswith(" is better)"):
            key = line.rsplit(" (", 1)[0]
            out[key] = set()
        elif key is not None and line.startswith("* "):
            out[key].add(line.split()[1])
        elif line.startswith("params"):
            key = None
    return out


# -- compare ----------------------------------------------------------------------------------


def test_compare_text_marks_best(project, pcli):
    _, ids = project
    names = ["resnet-adam-1", "resnet-adam-2", "nan-run", "inf-run", "lost-run"]
    out = pcli("compare", *(ids[n] for n in names))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Comparing 5 runs (* marks the best run of each metric)\n")
    assert stars(out.stdout) == {
        "delta": {ids["lost-run"]},
        "loss": {ids["resnet-adam-2"]},  # 0.25 beats lost-run's 0.35
        "val/acc": {ids["lost-run"]},  # 0.91
    }
    assert "\nloss (lower is better)\n" in out.stdout
    assert "\nval/acc (higher is better)\n" in out.stdout
    lines = out.stdout.splitlines()
    at = lines.index("loss (lower is better)")
    assert lines[at + 1].split() == ["RUN", "NAME", "LAST", "BEST", "AT", "STEP"]
    assert [line.split()[-5:] for line in lines[at + 2:at + 7]] == [
        [ids["resnet-adam-1"], "resnet-adam-1", "0.3", "0.3", "2"],
        [ids["resnet-adam-2"], "resnet-adam-2", "0.25", "0.25", "2"],
        [ids["nan-run"], "nan-run", "nan", "0.5", "1"],
        [ids["inf-run"], "inf-run", "inf", "1", "1"],
        [ids["lost-run"], "lost-run", "0.35", "0.35", "0"],
    ]
    at = lines.index("val/acc (higher is better)")
    acc_rows = lines[at + 2:at + 6]  # inf-run logged no val/acc: four rows
    assert [line.split()[-4] for line in acc_rows] == ["resnet-adam-1", "resnet-adam-2", "nan-run", "lost-run"]
    assert lines[at + 6] == ""
    assert "params that differ" in out.stdout


def test_compare_text_ties_all_starred(ws, cli):
    a = make_run(ws.project_dir, "a", {"loss": [0.5, 0.2]})
    b = make_run(ws.project_dir, "b", {"loss": [0.2, 0.9]})
    c = make_run(ws.project_dir, "c", {"loss": [0.3]})
    out = cli("compare", a, b, c)
    assert out.returncode == 0, out.stderr
    assert stars(out.stdout) == {"loss": {a, b}}
    assert out.stdout.endswith("\nparams that differ\n  no params logged\n")


def test_compare_json_exact(project, pcli):
    _, ids = project
    a1, a2, nan = ids["resnet-adam-1"], ids["resnet-adam-2"], ids["nan-run"]
    data = ok_json(pcli("compare", a1, a2, nan, "--json"))
    assert data == {
        "runs": [
            {"id": a1, "name": "resnet-adam-1", "status": "finished"},
            {"id": a2, "name": "resnet-adam-2", "status": "finished"},
            {"id": nan, "name": "nan-run", "status": "failed"},
        ],
        "metrics": {
            "loss": {"direction": "min", "runs": {
                a1: {"last": 0.3, "best": 0.3, "best_step": 2, "is_best": False},
                a2: {"last": 0.25, "best": 0.25, "best_step": 2, "is_best": True},
                nan: {"last": "nan", "best": 0.5, "best_step": 1, "is_best": False},
            }},
            "val/acc": {"direction": "max", "runs": {
                a1: {"last": 0.8, "best": 0.8, "best_step": 1, "is_best": False},
                a2: {"last": 0.85, "best": 0.85, "best_step": 1, "is_best": True},
                nan: {"last": 0.1, "best": 0.1, "best_step": 0, "is_best": False},
            }},
        },
        "params": {
            "differ": ["augment", "batch_size", "lr", "optimizer"],
            "values": {
                a1: {"augment": True, "batch_size": 32, "lr": 0.001, "optimizer": "adam"},
                a2: {"augment": False, "batch_size": 64, "lr": 0.01, "optimizer": "adam"},
                nan: {"augment": False, "batch_size": 32, "lr": 1.0, "optimizer": "sgd"},
            },
        },
    }


def test_compare_json_inf_and_missing_metric(project, pcli):
    _, ids = project
    inf, lost = ids["inf-run"], ids["lost-run"]
    data = ok_json(pcli("compare", inf, lost, "--json", "-m", "loss", "-m", "delta"))
    assert list(data["metrics"]) == ["loss", "delta"]
    assert data["metrics"]["loss"]["runs"] == {
        inf: {"last": "inf", "best": 1.0, "best_step": 1, "is_best": False},
        lost: {"last": 0.35, "best": 0.35, "best_step": 0, "is_best": True},
    }
    assert data["metrics"]["delta"] == {"direction": "max", "runs": {
        lost: {"last": "-inf", "best": 1.0, "best_step": 0, "is_best": True}}}


def test_compare_csv(project, pcli):
    _, ids = project
    a1, a2, nan = ids["resnet-adam-1"], ids["resnet-adam-2"], ids["nan-run"]
    out = pcli("compare", a1, a2, nan, "--csv")
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(io.StringIO(out.stdout)))
    assert rows == [
        ["run_id", "name", "metric", "direction", "last", "best", "best_step", "is_best"],
        [a1, "resnet-adam-1", "loss", "min", "0.3", "0.3", "2", "0"],
        [a1, "resnet-adam-1", "val/acc", "max", "0.8", "0.8", "1", "0"],
        [a2, "resnet-adam-2", "loss", "min", "0.25", "0.25", "2", "1"],
        [a2, "resnet-adam-2", "val/acc", "max", "0.85", "0.85", "1", "1"],
        [nan, "nan-run", "loss", "min", "nan", "0.5", "1", "0"],
        [nan, "nan-run", "val/acc", "max", "0.1", "0.1", "0", "0"],
    ]


def test_compare_where(project, pcli):
    _, ids = project
    data = ok_json(pcli("compare", "--where", "params.optimizer = adam", "--json"))
    name = {v: k for k, v in ids.items()}
    assert {name[r["id"]] for r in data["runs"]} == ADAM
    loss = data["metrics"]["loss"]["runs"]
    assert {name[rid] for rid, c in loss.items() if c["is_best"]} == {"resnet-adam-2"}
    assert {name[rid] for rid in loss} == ADAM - {"queued-1"}  # queued-1 logged nothing
    assert data["params"]["differ"] == ["augment", "batch_size", "lr"]


def test_compare_where_matching_nothing(pcli):
    msg = one_line_error(pcli("compare", "--where", "params.lr > 1000"), 2)
    assert "No runs to compare" in msg


def test_compare_unknown_metric(project, pcli):
    _, ids = project
    msg = one_line_error(pcli("compare", ids["resnet-adam-1"], "-m", "nope"), 2)
    assert "'nope'" in msg


def test_compare_no_runs(pcli):
    msg = one_line_error(pcli("compare"), 2)
    assert "--where" in msg


def test_compare_unknown_id(pcli):
    one_line_error(pcli("compare", "zzzzzzzz"), 1)


def test_compare_bad_smoothing(project, pcli):
    _, ids = project
    one_line_error(pcli("compare", ids["resnet-adam-1"], "--smooth", "1.0"), 2)


def test_compare_more_than_50_runs(ws, cli):
    ids = [make_run(ws.project_dir, f"r{i}", {"loss": [float(i)]}) for i in range(51)]
    msg = one_line_error(cli("compare", "--where", "status = finished"), 2)
    assert "50" in msg
    assert one_line_error(cli("compare", *ids), 2) == msg
    data = ok_json(cli("compare", *ids[:50], "--json"))
    assert len(data["runs"]) == 50
    best = [rid for rid, c in data["metrics"]["loss"]["runs"].items() if c["is_best"]]
    assert best == [ids[0]]  # loss 0.0


def test_compare_direction_from_config(ws, cli):
    a = make_run(ws.project_dir, "a", {"weird": [1.0, 3.0]})
    b = make_run(ws.project_dir, "b", {"weird": [2.0]})
    data = ok_json(cli("compare", a, b, "--json"))
    assert data["metrics"]["weird"]["direction"] == "max"
    assert [r for r, c in data["metrics"]["weird"]["runs"].items() if c["is_best"]] == [a]
    text = ws.config_path.read_text()
    ws.config_path.write_text(text.replace('# "val/perplexity" = "min"', '"weird" = "min"'))
    data = ok_json(cli("compare", a, b, "--json"))
    assert data["metrics"]["weird"] == {"direction": "min", "runs": {
        a: {"last": 3.0, "best": 1.0, "best_step": 0, "is_best": True},
        b: {"last": 2.0, "best": 2.0, "best_step": 0, "is_best": False},
    }}
    out = cli("compare", a, b)
    assert "weird (lower is better)" in out.stdout


# -- views ------------------------------------------------------------------------------------


def test_save_then_view_reproduces_json(populated, cli):
    ids = populated
    args = [ids["resnet-adam-1"], ids["vit-adamw"], ids["nan-run"], "-m", "loss", "--smooth", "0.6",
            "--axis", "relative"]
    saved = cli("compare", *args, "--json", "--save", "mine")
    assert saved.returncode == 0, saved.stderr
    assert saved.stderr == "Saved view 'mine'.\n"
    first = json.loads(saved.stdout)
    assert list(first["metrics"]) == ["loss"]
    again = ok_json(cli("compare", "--view", "mine", "--json"))
    assert again == first
    listed = ok_json(cli("views", "list", "--json"))
    assert len(listed) == 1
    updated = listed[0].pop("updated")
    assert isinstance(updated, float)
    assert listed == [{"name": "mine", "runs": [ids["resnet-adam-1"], ids["vit-adamw"], ids["nan-run"]],
                       "where": None, "metrics": ["loss"], "axis": "relative", "smoothing": 0.6,
                       "log_y": False, "clip": False, "group_by": None, "band": "std"}]
    text = cli("views", "list")
    assert text.returncode == 0
    assert text.stdout.splitlines()[0].split() == ["NAME", "RUNS", "METRICS", "AXIS", "SMOOTH", "GROUPS"]
    assert text.stdout.splitlines()[1].split()[0] == "mine"
    assert text.stdout.splitlines()[1].split()[-4:] == ["loss", "relative", "0.6", "-"]
    # a view can be opened with --plot and extra metrics on top
    plot = cli("compare", "--view", "mine", "--plot")
    assert plot.returncode == 0, plot.stderr
    assert plot.stdout.count("┌") == 1


def test_save_where_view(populated, cli):
    saved = cli("compare", "--where", "params.optimizer = adam", "--json", "--save", "adams")
    assert saved.returncode == 0, saved.stderr
    assert ok_json(cli("compare", "--view", "adams", "--json")) == json.loads(saved.stdout)
    listed = ok_json(cli("views", "list", "--json"))
    assert [(v["name"], v["runs"], v["where"]) for v in listed] == [("adams", [], "params.optimizer = adam")]


def test_views_rm(populated, cli):
    with closing(open_store(".mltui/mltui.db")) as conn:
        save_view(conn, "gone", View(runs=[populated["vit-sgd"]]))
        save_view(conn, "kept", View(where="status = finished"))
    out = cli("views", "rm", "gone")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Removed view gone\n"
    assert [v["name"] for v in ok_json(cli("views", "list", "--json"))] == ["kept"]
    assert "'gone'" in one_line_error(cli("views", "rm", "gone"), 1)
    assert cli("views", "rm", "kept").returncode == 0
    empty = cli("views", "list")
    assert empty.stdout.startswith("No saved views")


# regression (fixed in 6a45300): `views list` / `views rm` imported polars and numpy through core.compare
def test_views_module_does_not_import_polars():
    code = "import sys, mltui.core.runs.views; sys.exit('polars' in sys.modules or 'numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_save_bad_name_is_usage_error(populated, cli):
    one_line_error(cli("compare", populated["vit-sgd"], "--save", "x" * 81), 2)
    assert ok_json(cli("views", "list", "--json")) == []


# -- export -----------------------------------------------------------------------------------


def _check_runs_frame(frame: pl.DataFrame, ids: dict[str, str]) -> None:
    assert frame.height == 12
    for col in ("id", "name", "status", "duration", "params.lr", "params.optimizer", "params.batch_size",
                "params.augment", "metrics.loss", "metrics.val/acc", "metrics.delta", "tags.team"):
        assert col in frame.columns, col
    by_name = {row["name"]: row for row in frame.iter_rows(named=True)}
    assert set(by_name) == set(POPULATED_RUNS)
    a1 = by_name["resnet-adam-1"]
    assert (a1["id"], a1["params.lr"], a1["params.optimizer"], a1["params.batch_size"]) == (
        ids["resnet-adam-1"], 0.001, "adam", 32)
    assert (a1["metrics.loss"], a1["metrics.val/acc"], a1["tags.team"], a1["duration"]) == (0.3, 0.8, "vision", 600.0)
    assert by_name["vit-adamw"]["metrics.val/acc"] == 0.95
    assert by_name["queued-1"]["params.lr"] is None and by_name["queued-1"]["metrics.loss"] is None
    assert by_name["lost-run"]["metrics.delta"] == -math.inf
    assert frame["params.lr"].dtype == pl.Float64


def test_export_runs_csv(project, pcli, tmp_path):
    _, ids = project
    target = tmp_path / "runs.csv"
    out = pcli("export", "runs", "-o", str(target))
    assert out.returncode == 0, out.stderr
    assert out.stderr == f"Wrote 12 rows to {target}\n" and out.stdout == ""
    frame = pl.read_csv(target)
    _check_runs_frame(frame, ids)
    assert frame.filter(pl.col("name") == "inf-run")["metrics.loss"].to_list() == [math.inf]
    assert math.isnan(frame.filter(pl.col("name") == "nan-run")["metrics.loss"][0])


def test_export_runs_parquet(project, pcli, tmp_path):
    _, ids = project
    target = tmp_path / "runs.parquet"
    out = pcli("export", "runs", "-o", str(target))  # format from the suffix
    assert out.returncode == 0, out.stderr
    frame = pl.read_parquet(target)
    _check_runs_frame(frame, ids)
    assert frame["params.augment"].dtype == pl.Boolean and frame["params.batch_size"].dtype == pl.Int64
    assert frame.filter(pl.col("name") == "inf-run")["metrics.loss"].to_list() == [math.inf]


def test_export_runs_json(project, pcli, tmp_path):
    _, ids = project
    target = tmp_path / "out.data"
    out = pcli("export", "runs", "-f", "json", "-o", str(target))
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(target.read_text())}
    assert len(rows) == 12 and set(rows) == set(POPULATED_RUNS)
    a1 = rows["resnet-adam-1"]
    assert (a1["id"], a1["params.lr"], a1["params.optimizer"], a1["params.batch_size"], a1["params.augment"]) == (
        ids["resnet-adam-1"], 0.001, "adam", 32, True)
    assert (a1["metrics.loss"], a1["metrics.val/acc"], a1["tags.team"], a1["duration"]) == (0.3, 0.8, "vision", 600.0)
    # JSON has no NaN or infinity: the strings every --json of mltui uses
    assert rows["nan-run"]["metrics.loss"] == "nan" and rows["inf-run"]["metrics.loss"] == "inf"
    assert rows["lost-run"]["metrics.delta"] == "-inf"
    assert rows["queued-1"]["params.lr"] is None and rows["queued-1"]["metrics.loss"] is None
    frame = pl.read_json(target)
    assert frame.height == 12 and frame["params.lr"].dtype == pl.Float64
    assert {"params.lr", "metrics.loss", "metrics.val/acc", "tags.team"} <= set(frame.columns)


# regression (fixed in 6a45300): export JSON wrote NaN and +-inf as null, like a missing value
def test_export_json_keeps_non_finite_values(project, pcli):
    _, ids = project
    out = pcli("export", "metrics", "-w", "name = inf-run or name = lost-run", "-o", "-", "-f", "json")
    assert out.returncode == 0, out.stderr
    values = {(r["key"], r["step"]): r["value"] for r in json.loads(out.stdout)}
    assert values[("loss", 2)] == "inf" and values[("delta", 1)] == "-inf"


def test_export_unknown_suffix_is_csv(project, pcli, tmp_path):
    target = tmp_path / "runs.txt"
    assert pcli("export", "runs", "-o", str(target)).returncode == 0
    assert target.read_text().startswith("id,name,kind,status,")


def test_export_runs_csv_to_stdout(project, pcli):
    _, ids = project
    out = pcli("export", "runs", "-o", "-", "--where", "params.optimizer = adam")
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    frame = pl.read_csv(io.StringIO(out.stdout))
    assert frame.height == len(ADAM)
    assert set(frame["name"].to_list()) == ADAM
    assert frame.filter(pl.col("name") == "resnet-adam-2")["params.lr"].to_list() == [0.01]


def test_export_metrics_all_points(project, pcli, tmp_path):
    _, ids = project
    assert sum(len(v) for spec in POPULATED_RUNS.values() for v in spec["metrics"].values()) == TOTAL_POINTS
    target = tmp_path / "points.parquet"
    out = pcli("export", "metrics", "-o", str(target))
    assert out.returncode == 0, out.stderr
    assert out.stderr == f"Wrote {TOTAL_POINTS} rows to {target}\n"
    frame = pl.read_parquet(target)
    assert frame.columns == ["run_id", "key", "step", "value", "time"]
    assert frame.height == TOTAL_POINTS
    a1 = frame.filter((pl.col("run_id") == ids["resnet-adam-1"]) & (pl.col("key") == "loss")).sort("step")
    assert a1["step"].to_list() == [0, 1, 2] and a1["value"].to_list() == [0.9, 0.5, 0.3]
    delta = frame.filter(pl.col("key") == "delta")["value"].to_list()
    assert delta == [1.0, -math.inf]


def test_export_metrics_where(project, pcli, tmp_path):
    _, ids = project
    expected = sum(len(v) for n in ADAM for v in POPULATED_RUNS[n]["metrics"].values())
    assert expected == 13
    target = tmp_path / "adam.csv"
    out = pcli("export", "metrics", "--where", "params.optimizer = adam", "-o", str(target))
    assert out.returncode == 0, out.stderr
    frame = pl.read_csv(target)
    assert frame.height == 13
    assert set(frame["run_id"].to_list()) == {ids[n] for n in ADAM - {"queued-1"}}


def test_export_metrics_empty_match(project, pcli, tmp_path):
    target = tmp_path / "none.csv"
    out = pcli("export", "metrics", "--where", "params.lr > 1000", "-o", str(target))
    assert out.returncode == 0, out.stderr
    assert target.read_text().splitlines() == ["run_id,key,step,value,time"]


def test_export_parquet_to_stdout_is_usage_error(pcli):
    one_line_error(pcli("export", "runs", "-o", "-", "-f", "parquet"), 2)


def test_export_bad_where_writes_nothing(pcli, tmp_path):
    target = tmp_path / "bad.csv"
    one_line_error(pcli("export", "runs", "--where", "params.lr >", "-o", str(target)), 2)
    assert not target.exists()


def test_export_unwritable_target(pcli, tmp_path):
    target = tmp_path / "no" / "such" / "dir" / "runs.csv"
    one_line_error(pcli("export", "runs", "-o", str(target)), 1)


# regression (fixed in 6a45300): lr=1 (newest) then lr=0.5 made params.lr a text column
def test_export_int_and_float_param_is_a_number_column(ws, cli, tmp_path):
    make_run(ws.project_dir, "older", params={"lr": 0.5})
    make_run(ws.project_dir, "newer", params={"lr": 1})
    target = tmp_path / "runs.parquet"
    assert cli("export", "runs", "-o", str(target)).returncode == 0
    frame = pl.read_parquet(target)
    assert frame["params.lr"].dtype == pl.Float64
    assert frame.sort("name")["params.lr"].to_list() == [1.0, 0.5]


def test_a_view_saved_from_id_prefixes_keeps_full_ids_once(populated, cli):
    from contextlib import closing

    from mltui.core.runs.views import get_view
    from mltui.core.workspace import find_workspace
    from mltui.store import metrics as metric_store
    from mltui.store import runs as run_store
    from mltui.store.connection import write_tx
    from mltui.store.opening import open_store

    # ids are 7 characters of creation time and 3 random ones: the populated runs, made in the same
    # second, share their first 7, and a random prefix could need all 10. A run "made" at the epoch
    # gives a short prefix that no other id can start with.
    run_id = "0000000abc"
    with closing(open_store(find_workspace().db_path)) as conn, write_tx(conn):
        run_store.insert_run(conn, {"id": run_id, "name": "epoch-run", "kind": "train", "status": "finished",
                                    "created": 1.0, "started": 1.0, "ended": 61.0})
        metric_store.write_batch(conn, run_id, {"loss": ([0, 1], [1.0, 0.5], [1.0, 11.0])})
    prefix = run_id[:8]
    assert not any(other.startswith(prefix) for other in populated.values())
    result = cli("compare", prefix, run_id, "--save", "prefixed")
    assert result.returncode == 0, result.stderr
    with closing(open_store(find_workspace().db_path)) as conn:
        assert get_view(conn, "prefixed").runs == [run_id]


# -- groups drawn with their band ---------------------------------------------------------------------------
@pytest.fixture
def seeds(ws):
    """Two models × three seeds; each seed's loss is its model's curve shifted by seed/10."""
    for c, model in enumerate(["a", "b"]):
        for seed in range(3):
            make_run(ws.project_dir, f"{model}{seed}", {"loss": [c + 2 - step / 10 + seed / 10 for step in range(8)]},
                     params={"model": model, "seed": seed})


def test_compare_group_by_plot_draws_each_mean_over_its_band(seeds, cli):
    out = cli("compare", "--where", "params.seed >= 0", "--group-by", "*,-seed", "--plot", "-m", "loss")
    assert out.returncode == 0, out.stderr
    assert "loss: mean per group, band ± std" in out.stdout
    assert "model=a (N=3)" in out.stdout and "model=b (N=3)" in out.stdout
    assert "░" in out.stdout  # the band is shaded under the means
    flat = cli("compare", "--where", "params.seed >= 0", "--group-by", "model", "--plot", "--band", "none")
    assert flat.returncode == 0, flat.stderr
    assert "loss: mean per group" in flat.stdout and "band" not in flat.stdout and "░" not in flat.stdout


def test_a_saved_grouped_view_opens_grouped(seeds, ws, cli):
    with closing(open_store(ws.db_path)) as conn:
        save_view(conn, "by-model", View(where="params.seed >= 0", group_by="model", band="minmax"))
    data = json.loads(cli("compare", "--view", "by-model", "--json").stdout)
    assert [(g["key"]["params.model"], g["n"]) for g in data["groups"]] == [("b", 3), ("a", 3)]
    plot = cli("compare", "--view", "by-model", "--plot")
    assert "band min–max" in plot.stdout
    listed = cli("views", "list").stdout.splitlines()
    assert listed[1].split()[-2:] == ["model", "(minmax)"]


def test_band_without_groups_is_usage(seeds, cli):
    assert "--band goes with --group-by" in one_line_error(cli("compare", "--where", "params.seed >= 0",
                                                                "--band", "std"), 2)
