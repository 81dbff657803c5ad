"""What a screen shows of the pipeline (core/pipeline/view.py), on the sample pipeline run for real:
stages with their depth, parents, state, reasons, last run and duration; the states a repro's steps
give (running, failed, skipped, restored) and for how long; the pipeline file's problems in one
sentence; `mltui repro` started in the background in a session of its own."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from mltui.core.pipeline import view
from mltui.core.pipeline.repro import Options, Repro
from mltui.core.pipeline.stages import load_pipeline
from mltui.core.reader import open_writer
from mltui.core.workspace import init_workspace

SAMPLE = Path(__file__).resolve().parents[3] / "sample_projects" / "pipeline"
ORDER = ["prepare", "featurize", "train", "evaluate"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("MLTUI_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    shutil.copytree(SAMPLE, tmp_path, dirs_exist_ok=True)
    ws, _ = init_workspace(tmp_path)
    return ws


def _pipe(ws):
    return load_pipeline(ws.project_dir / "mltui.toml")


def _repro(ws, **options):
    return Repro(ws, _pipe(ws), Options(**options)).run()


def _rows(ws, now=None, checked=True):
    pipe = _pipe(ws)
    conn = open_writer(ws)
    try:
        progress = view.read_progress(conn, pipe)
        check = view.check(ws, conn, pipe) if checked else None
    finally:
        conn.close()
    return pipe, progress, check, {r.name: r for r in view.stage_rows(pipe, progress, check, now)}


def _stage_runs(ws) -> dict[str, str]:
    conn = sqlite3.connect(ws.db_path)
    try:
        return dict(conn.execute("SELECT stage, run_id FROM pipeline_stages"))
    finally:
        conn.close()


def test_never_run_then_up_to_date_with_depth_parents_runs_and_durations(project):
    _, _, _, rows = _rows(project)
    assert [r.state for r in rows.values()] == ["never run"] * 4
    assert all(r.run_id is None and r.seconds is None for r in rows.values())
    assert rows["prepare"].reasons == ["it has never run"]

    assert _repro(project).ok
    pipe, progress, _, rows = _rows(project)
    assert list(rows) == ORDER
    assert [rows[n].depth for n in ORDER] == [0, 1, 2, 3]
    assert rows["evaluate"].parents == ["train", "featurize"]
    assert rows["evaluate"].outs == ["eval.json"] and "evaluate.py" in rows["evaluate"].deps
    assert [r.state for r in rows.values()] == ["up to date"] * 4
    assert {n: r.run_id for n, r in rows.items()} == _stage_runs(project)
    assert all(r.seconds is not None and 0 <= r.seconds < 60 for r in rows.values())
    assert not progress.live and progress.repro["status"] == "finished"
    assert view.needs(pipe, list(rows.values()), "evaluate") == []


def test_one_changed_stage_names_its_reason_and_only_it_needs_running(project):
    assert _repro(project).ok
    with open(project.project_dir / "evaluate.py", "a") as fh:
        fh.write("# a comment changes the bytes\n")
    pipe, _, _, rows = _rows(project)
    assert {n: r.state for n, r in rows.items()} == {"prepare": "up to date", "featurize": "up to date",
                                                     "train": "up to date", "evaluate": "changed"}
    assert rows["evaluate"].stale and not rows["train"].stale
    assert any("evaluate.py" in why for why in rows["evaluate"].reasons)
    assert view.needs(pipe, list(rows.values()), "evaluate") == ["evaluate"]
    assert view.needs(pipe, list(rows.values()), "train") == []


def test_a_failed_stage_and_its_skipped_child_while_recent_then_the_status_again(project):
    assert _repro(project).ok
    train = project.project_dir / "train.py"
    train.write_text("raise SystemExit(3)\n" + train.read_text())
    result = _repro(project)
    assert not result.ok
    _, progress, check, rows = _rows(project)
    assert rows["train"].state == "failed" and rows["evaluate"].state == "skipped"
    failed_run = progress.steps["train"]["run_id"]
    assert rows["train"].reasons[0] == f"run {failed_run} failed: the command exited with code 3"
    assert any("train.py" in why for why in rows["train"].reasons[1:])  # the status's reason follows the step's
    assert rows["evaluate"].reasons[0] == "upstream stage train failed"
    assert rows["train"].run_id == failed_run  # enter opens the run that failed
    later = time.time() + view.RECENT + 1
    old = {r.name: r for r in view.stage_rows(_pipe(project), progress, check, later)}
    assert old["train"].state == "changed" and old["evaluate"].state == "changed"


def test_a_stage_restored_from_the_run_cache_says_so_while_up_to_date(project):
    assert _repro(project).ok
    assert _repro(project, overrides={"train": {"lr": 0.5}}).ok
    result = _repro(project)  # back to the default lr: train's and evaluate's outs come from the run cache
    assert {s.stage: s.state for s in result.steps}["train"] == "restored"
    _, _, _, rows = _rows(project)
    assert rows["train"].state == "restored" and rows["prepare"].state == "up to date"


def test_steps_of_a_live_repro_or_newer_than_the_check_win_over_the_status(project):
    assert _repro(project).ok
    pipe, progress, check, _ = _rows(project)
    now = time.time()
    steps = {"prepare": {"stage": "prepare", "state": "done", "run_id": None, "reason": None, "ended": now},
             "featurize": {"stage": "featurize", "state": "running", "run_id": None, "reason": None, "ended": None},
             "train": {"stage": "train", "state": "waiting", "run_id": None, "reason": None, "ended": None}}
    live = view.Progress({"id": "x", "status": "running", "ended": None}, True, steps, progress.last_ok,
                         progress.runs)
    rows = {r.name: r for r in view.stage_rows(pipe, live, check, now)}
    assert [rows[n].state for n in ORDER] == ["up to date", "running", "waiting", "up to date"]
    # the repro's process is gone: its unsettled steps no longer say running
    dead = view.Progress(live.repro, False, steps, progress.last_ok, progress.runs)
    rows = {r.name: r for r in view.stage_rows(pipe, dead, check, now)}
    assert rows["featurize"].state == "up to date" and rows["train"].state == "up to date"
    # no check yet: nothing is claimed
    rows = {r.name: r for r in view.stage_rows(pipe, dead, None, now)}
    assert {r.state for r in rows.values()} == {"checking"}


def test_a_pipeline_run_whose_repro_died_is_not_live(project):
    assert _repro(project).ok
    conn = sqlite3.connect(project.db_path)
    with conn:
        dead = wait_dead_pid()
        conn.execute("UPDATE runs SET status = 'running', ended = NULL, pid = ? WHERE kind = 'pipeline'", (dead,))
    conn.close()
    _, progress, _, _ = _rows(project, checked=False)
    assert progress.repro["status"] == "running" and not progress.live


def wait_dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_pipeline_file_no_file_no_stages_a_cycle_and_reloading(project, tmp_path):
    toml = project.project_dir / "mltui.toml"
    source = view.PipelineFile(project, start=project.project_dir)
    assert source.refresh() and source.source.pipe is not None
    assert not source.refresh()  # unchanged: not loaded again
    text = toml.read_text()
    toml.write_text("[commands.x]\nrun = \"true\"\n")
    assert source.refresh()
    assert source.source.pipe is None and "declares no stages" in source.source.problem
    toml.write_text(text.replace('deps = ["prepare.py", "data/raw"]', 'deps = ["prepare.py", "eval.json"]'))
    assert source.refresh()
    assert source.source.pipe is None and "cycle" in source.source.problem
    assert source.source.problem.count(".") >= 1 and "\n" not in source.source.problem
    toml.unlink()
    assert source.refresh()
    assert source.source.pipe is None and source.source.problem.startswith("There is no mltui.toml")


def test_start_repro_runs_detached_in_its_own_session_and_logs(project):
    started = view.start_repro(project, project.project_dir, ["featurize"])
    assert started.argv[1:5] == ["-m", "mltui", "repro", "featurize"]
    assert os.getsid(started.process.pid) == started.process.pid != os.getsid(0)
    assert started.process.wait(timeout=60) == 0
    assert started.log.parent == project.root
    assert view.last_line(started.log).startswith("Pipeline run ")
    assert set(_stage_runs(project)) == {"prepare", "featurize"}  # featurize and what it needs


def test_took_words_short_and_long_durations():
    assert view.took(None) == "-"
    assert view.took(0.26) == "0.3s"
    assert view.took(75) == "1m15s"


def test_the_pipeline_file_is_the_nearest_inside_the_project_never_one_outside(project, tmp_path_factory):
    sub = project.project_dir / "sub"
    sub.mkdir()
    (sub / "mltui.toml").write_text("[stages.a]\nrun = \"true\"\n")
    assert view.project_file(project, sub) == sub / "mltui.toml"  # as `mltui repro` run there would use
    outside = tmp_path_factory.mktemp("elsewhere")
    (outside / "mltui.toml").write_text("[stages.b]\nrun = \"true\"\n")
    assert view.project_file(project, outside) == project.project_dir / "mltui.toml"
