"""The Pipelines pane (key 6), driven by real keys on a real workspace holding the sample pipeline,
run for real: the DAG with each stage's state, why a stage is stale (s), its last run (enter), a
stage and everything stale reproduced in the background (r, R) and followed live to the end; a
workspace with no mltui.toml, a pipeline that does not load, stage names that look like markup; and
the demo's pipeline with exactly one stale stage.

Every wait polls with a deadline (`until`), never a fixed sleep. A repro the pane starts is waited
for to its end, so no process outlives its test."""

from __future__ import annotations

import shutil
import sqlite3
import tomllib
from pathlib import Path

import pytest
from launching import until
from textual.widgets import Static

from mltui.core.pipeline.repro import Options, Repro
from mltui.core.pipeline.stages import load_pipeline
from mltui.core.workspace import init_workspace
from mltui.tui.app import create_app
from mltui.tui.modals.why import WhyScreen
from mltui.tui.panes.pipelines import PipelinesPane
from mltui.tui.screens.run_detail import RunDetailScreen
from mltui.tui.widgets.keyed_table import KeyedTable

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_projects" / "pipeline"
SMALL, BIG = (80, 24), (200, 60)
ORDER = ["prepare", "featurize", "train", "evaluate"]


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.delenv("MLTUI_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    workspace, _ = init_workspace(tmp_path)
    return workspace


@pytest.fixture
def sample(ws):
    """The sample pipeline run once, then evaluate.py edited: evaluate is stale, the rest up to date.
    The edit also makes evaluate take a second, so a repro of it can be seen running."""
    shutil.copytree(SAMPLE, ws.project_dir, dirs_exist_ok=True)
    assert Repro(ws, load_pipeline(ws.project_dir / "mltui.toml"), Options()).run().ok
    script = ws.project_dir / "evaluate.py"
    script.write_text("import time\ntime.sleep(1.0)\n" + script.read_text())
    return ws


def _pane(app) -> PipelinesPane:
    return app.screen.query_one(PipelinesPane)


def _states(app) -> dict[str, str]:
    """Stage -> the State cell as drawn ('✓ up to date', '● changed', ...)."""
    table = app.screen.query_one("#pipelines-table", KeyedTable)
    out = {}
    for row in table.ordered_rows:
        cells = table.get_row(row.key)
        out[row.key.value] = cells[1].plain
    return out


def _checked(app) -> bool:
    states = _states(app)
    return len(states) > 0 and not any("checking" in s for s in states.values())


def _stage_runs(ws) -> dict[str, str]:
    with sqlite3.connect(ws.db_path) as conn:
        return dict(conn.execute("SELECT stage, run_id FROM pipeline_stages"))


def _pipeline_runs(ws) -> list[tuple[str, str]]:
    with sqlite3.connect(ws.db_path) as conn:
        return conn.execute("SELECT id, status FROM runs WHERE kind = 'pipeline' ORDER BY created").fetchall()


def _steps(ws, pipeline_id) -> dict[str, str]:
    with sqlite3.connect(ws.db_path) as conn:
        return dict(conn.execute("SELECT stage, state FROM pipeline_steps WHERE pipeline_id = ?", (pipeline_id,)))


async def _open(pilot) -> PipelinesPane:
    await pilot.press("6")
    await until(pilot, lambda: _checked(pilot.app), what="the stages to be checked")
    return _pane(pilot.app)


async def _highlight(pilot, name: str) -> None:
    table = pilot.app.screen.query_one("#pipelines-table", KeyedTable)
    while table.highlighted_key != name:
        before = table.highlighted_key
        await pilot.press("down")
        assert table.highlighted_key != before, f"{name} is not in the table"


@pytest.mark.parametrize("size", [SMALL, BIG], ids=["80x24", "200x60"])
async def test_key_6_shows_the_dag_with_states_and_s_says_why(sample, size):
    app = create_app(sample)
    async with app.run_test(size=size) as pilot:
        pane = await _open(pilot)
        assert _states(app) == {"prepare": "✓ up to date", "featurize": "✓ up to date", "train": "✓ up to date",
                                "evaluate": "● changed"}
        table = app.screen.query_one("#pipelines-table", KeyedTable)
        assert app.focused is table  # the focus lands on the stages, the cursor row shows it
        stage_cells = [table.get_row(k)[0].plain for k in ORDER]
        assert stage_cells[0] == "prepare"
        assert stage_cells[3] == "      └─ evaluate ← train, featurize"  # indented by depth, with its parents
        runs = _stage_runs(sample)
        assert [table.get_row(k)[2].plain for k in ORDER] == [runs[k] for k in ORDER]
        head = str(app.screen.query_one("#pipelines-head", Static).render())
        assert "mltui.toml · 4 stages: 3 up to date, 1 changed" in head
        await _highlight(pilot, "evaluate")
        detail = str(app.screen.query_one("#pipelines-detail", Static).render())
        assert "dep evaluate.py changed: 1 modified file(s)" in detail
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, WhyScreen), what="the reasons")
        said = str(app.screen.query_one("#why-lines", Static).render())
        assert "• dep evaluate.py changed: 1 modified file(s) (e.g. evaluate.py)" in said
        assert f"last run: {runs['evaluate']}" in said
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, WhyScreen), what="the reasons to close")
        await _highlight(pilot, "evaluate")  # the cursor stayed
        assert pane.highlighted().name == "evaluate"


async def test_enter_opens_the_stages_last_run(sample):
    app = create_app(sample)
    async with app.run_test(size=SMALL) as pilot:
        await _open(pilot)
        await _highlight(pilot, "train")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="the run's detail")
        assert app.screen.current_run_id == _stage_runs(sample)["train"]


async def test_r_reproduces_the_stage_live_and_R_everything_stale(sample):
    app = create_app(sample)
    async with app.run_test(size=BIG) as pilot:
        pane = await _open(pilot)
        before = _stage_runs(sample)
        await _highlight(pilot, "train")
        await pilot.press("r")  # train and what it needs are up to date: nothing starts
        assert pane._started is None and len(_pipeline_runs(sample)) == 1
        await _highlight(pilot, "evaluate")
        await pilot.press("r")
        assert pane._started is not None and pane._started.argv[-2:] == ["repro", "evaluate"]
        await until(pilot, lambda: _states(app)["evaluate"] == "▶ running", timeout=20,
                    what="evaluate to show running")
        head = str(app.screen.query_one("#pipelines-head", Static).render())
        assert "running (3/4)" in head  # prepare, featurize and train settled as up to date
        await until(pilot, lambda: _states(app)["evaluate"] == "✓ up to date" and pane._started is None,
                    timeout=30, what="the repro to finish")
        (pid, status), = _pipeline_runs(sample)[1:]
        assert status == "finished"
        assert _steps(sample, pid) == {"prepare": "up to date", "featurize": "up to date", "train": "up to date",
                                       "evaluate": "done"}
        after = _stage_runs(sample)
        assert after["evaluate"] != before["evaluate"] and after["train"] == before["train"]
        assert app.screen.query_one("#pipelines-table", KeyedTable).get_row("evaluate")[2].plain == after["evaluate"]

        # a raw file's bytes change: every stage is stale once checked again (ctrl+r), and R runs them all
        with open(sample.project_dir / "data" / "raw" / "part0.csv", "a") as fh:
            fh.write("0.5,0.5,1\n")
        await pilot.press("ctrl+r")
        await until(pilot, lambda: set(_states(app).values()) == {"● changed"}, what="every stage to be stale")
        await pilot.press("R")
        assert pane._started is not None and pane._started.argv[-1] == "repro"
        await until(pilot, lambda: set(_states(app).values()) == {"✓ up to date"} and pane._started is None
                    and len(_pipeline_runs(sample)) == 3, timeout=40, what="the whole pipeline to run")
        pid, status = _pipeline_runs(sample)[-1]
        assert status == "finished" and set(_steps(sample, pid).values()) == {"done"}
        await pilot.press("R")  # nothing stale now: nothing starts
        assert pane._started is None and len(_pipeline_runs(sample)) == 3


async def test_a_failing_repro_shows_failed_and_skipped_with_the_reason(sample):
    script = sample.project_dir / "train.py"
    script.write_text("raise SystemExit(3)\n" + script.read_text())
    app = create_app(sample)
    async with app.run_test(size=SMALL) as pilot:
        pane = await _open(pilot)
        assert _states(app)["train"] == "● changed"
        await pilot.press("R")
        await until(pilot, lambda: _states(app)["train"] == "✗ failed" and _states(app)["evaluate"] == "- skipped"
                    and pane._started is None, timeout=30, what="train to fail")
        await _highlight(pilot, "evaluate")
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, WhyScreen), what="the reasons")
        assert "• upstream stage train failed" in str(app.screen.query_one("#why-lines", Static).render())


async def test_no_mltui_toml_says_how_to_add_one(ws):
    app = create_app(ws)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("6")
        note = app.screen.query_one("#pipelines-empty", Static)
        await until(pilot, lambda: note.display, what="the note")
        assert str(note.render()).startswith(f"There is no mltui.toml in {ws.project_dir}; declare a pipeline")
        assert not app.screen.query_one("#pipelines-body").display
        await pilot.press("r", "R", "s", "enter")  # nothing to act on, and no crash


async def test_a_broken_pipeline_says_its_one_sentence_then_loads_once_fixed(ws):
    shutil.copytree(SAMPLE, ws.project_dir, dirs_exist_ok=True)
    toml = ws.project_dir / "mltui.toml"
    good = toml.read_text()
    toml.write_text(good.replace('deps = ["prepare.py", "data/raw"]', 'deps = ["prepare.py", "eval.json"]'))
    app = create_app(ws)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("6")
        note = app.screen.query_one("#pipelines-empty", Static)
        await until(pilot, lambda: note.display and "cycle" in str(note.render()), what="the cycle")
        assert str(note.render()) == (f"{toml}: the stages form a cycle: prepare -> evaluate -> train -> featurize "
                                      "-> prepare (each reads an out of the next).")
        toml.write_text(good)
        await pilot.press("ctrl+r")
        await until(pilot, lambda: _states(app) == {n: "○ never run" for n in ORDER}, what="the fixed pipeline")
        assert not note.display


async def test_stage_names_and_reasons_are_shown_as_typed_never_as_markup(ws):
    (ws.project_dir / "in[red]put.txt").write_text("x\n")
    (ws.project_dir / "mltui.toml").write_text(
        '[stages."fit[bold]x[/bold]"]\nrun = "python -c pass"\ndeps = ["in[red]put.txt"]\nouts = []\n')
    app = create_app(ws)
    async with app.run_test(size=SMALL) as pilot:
        await _open(pilot)
        table = app.screen.query_one("#pipelines-table", KeyedTable)
        assert table.get_row("fit[bold]x[/bold]")[0].plain == "fit[bold]x[/bold]"
        detail = str(app.screen.query_one("#pipelines-detail", Static).render())
        assert "deps: in[red]put.txt" in detail
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, WhyScreen), what="the reasons")
        assert "fit[bold]x[/bold]: ○ never run" in str(app.screen.query_one("#why-title", Static).render())


def test_the_demo_stages_are_the_sample_stages_under_pipeline_folder():
    from mltui.demo.pipeline import FOLDER, PIPELINE_TOML

    sample = tomllib.loads((SAMPLE / "mltui.toml").read_text())["stages"]
    demo = tomllib.loads(PIPELINE_TOML)["stages"]
    assert list(demo) == list(sample)
    for name, spec in sample.items():
        moved = {key: [f"{FOLDER}/{p}" for p in value] if isinstance(value, list) else value
                 for key, value in spec.items() if key != "run"}
        assert {k: v for k, v in demo[name].items() if k != "run"} == moved, name
        words = spec["run"].split()
        assert demo[name]["run"].split() == [w if w.startswith(("-", "{")) or w == "python" else f"{FOLDER}/{w}"
                                             for w in words], name


async def test_the_demo_pipeline_has_exactly_one_stale_stage(ws):
    from mltui.demo.launch import DEMO_TOML
    from mltui.demo.pipeline import STALE_STAGE, build_pipeline

    (ws.project_dir / "mltui.toml").write_text(DEMO_TOML)
    assert build_pipeline(ws, REPO / "sample_projects") is None
    app = create_app(ws)
    async with app.run_test(size=SMALL) as pilot:
        await _open(pilot)
        states = _states(app)
        assert [s for s, state in states.items() if state != "✓ up to date"] == [STALE_STAGE]
        assert states[STALE_STAGE] == "● changed"


async def test_every_state_has_a_style_every_theme_can_draw(ws):
    """A theme variable that is not a colour (text-muted is 'auto 60%') would crash the drawing."""
    from rich.style import Style

    from mltui.tui.panes.pipelines import LOOK, look

    app = create_app(ws)
    async with app.run_test(size=SMALL):
        for theme in sorted(app.available_themes):
            app.theme = theme
            for state in LOOK:
                icon, style = look(state, app.theme_variables)
                Style.parse(style)  # raises on anything Rich cannot draw
                assert icon and style
