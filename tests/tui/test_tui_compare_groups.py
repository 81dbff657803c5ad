"""The Compare pane in groups (keys g and b), driven by real keys through `App.run_test` against a real
SQLite workspace whose runs are logged through the tracking API: a sweep of 4 configs x 5 seeds (odd
seeds log every second step only, so a group's series meet on a common grid).

Assertions read what the pane shows: the status line, the chart's drawn lines (legend, title, shading)
and the best-of table's cells, against values computed by hand here.
"""

from __future__ import annotations

import json
import statistics
import time
from contextlib import closing

import pytest
from rich.text import Text
from textual.geometry import Region
from textual.widgets import DataTable, Input, Static, TabbedContent

import mltui
from mltui.base.values import display
from mltui.chart import FILL_MARKER
from mltui.core.workspace import Workspace, init_workspace
from mltui.store.opening import open_store
from mltui.tui.app import MltuiApp, create_app
from mltui.tui.modals.save_view import SaveViewScreen
from mltui.tui.screens.main import MainScreen

SIZES = pytest.mark.parametrize("size", [(80, 24), (200, 60)], ids=["80x24", "200x60"])
CONFIGS = [("mlp", 0.01), ("mlp", 0.1), ("cnn", 0.01), ("cnn", 0.1)]  # logged in this order
SEEDS = 5
LAST = 8  # every run logs its last point at this step


def loss(c: int, seed: int, step: int) -> float:
    return (c + 1) * (1 + 0.3 * (seed - 2)) / (1 + step)


def val_acc(c: int, seed: int, step: int) -> float:
    return 0.5 + 0.1 * c + 0.01 * seed * seed - 0.2 / (1 + step)


def label(model: str, lr: float) -> str:
    return f"lr={display(lr)}  model={model}"


@pytest.fixture
def sweep(tmp_path, monkeypatch) -> Workspace:
    """4 configs x 5 seeds, logged through mltui.init; the process's terminal is larger than any app here
    (plotext must draw at the pane's size, not the terminal's)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("MLTUI_RUN_ID", raising=False)
    monkeypatch.delenv("MLTUI_WORKSPACE", raising=False)
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setenv("LINES", "200")
    (tmp_path / "proj").mkdir()
    ws, created = init_workspace(tmp_path / "proj")
    assert created
    ws.config_path.write_text("[tui]\nrefresh_seconds = 0.2\n", encoding="utf-8")
    for c, (model, lr) in enumerate(CONFIGS):
        for seed in range(SEEDS):
            run = mltui.init(name=f"{model}-{lr}-s{seed}", params={"model": model, "lr": lr, "seed": seed, "epochs": 9},
                             workspace=ws.project_dir, flush_interval=60.0)
            for step in range(0, LAST + 1, 2 if seed % 2 else 1):
                run.log({"loss": loss(c, seed, step), "val_acc": val_acc(c, seed, step)}, step=step)
            run.finish()
    return ws


def make_app(ws: Workspace) -> MltuiApp:
    app = create_app(ws)
    app.animation_level = "none"
    return app


def status(app) -> str:
    return str(app.screen.query_one("#compare-status", Static).render())


def runs_status(app) -> str:
    return str(app.screen.query_one("#runs-status", Static).render())


def chart(app) -> Static:
    return [w for w in app.screen.query(".chart") if w.display][0]


def chart_lines(app) -> list[str]:
    widget = chart(app)
    width, height = widget.size
    return [strip.text.rstrip() for strip in widget.render_lines(Region(0, 0, width, height))]


def chart_text(app) -> str:
    return "\n".join(chart_lines(app))


def drawn_at_size(app) -> bool:
    """The chart was drawn for its widget's size (not a first draw before the layout settled)."""
    widget = chart(app)
    content = widget.content
    lines = content.plain.splitlines() if isinstance(content, Text) else []
    width, height = widget.size
    return height - 1 <= len(lines) <= height and max(map(len, lines), default=0) == width


def rows(app, name: str) -> dict[str, list[str]]:
    table = app.screen.query_one(f"#compare-{name}", DataTable)
    return {row.key.value: [table.get_cell(row.key, c.key).plain for c in table.ordered_columns]
            for row in table.ordered_rows}


async def wait(pilot, predicate, timeout: float = 20.0, what: str = "") -> None:
    """Pause until predicate() holds (generous: the box is shared); fail saying what the pane showed."""
    deadline = time.monotonic() + timeout
    while True:
        await pilot.pause(0.05)
        if predicate():
            return
        if time.monotonic() > deadline:
            app = pilot.app
            seen = {"screen": type(app.screen).__name__,
                    "notifications": [n.message for n in app._notifications]}
            if isinstance(app.screen, MainScreen) and app.screen.query("#compare-status"):
                seen["compare"] = status(app)
            raise AssertionError(f"{what or 'condition'} not met within {timeout}s; saw {seen}")


async def compare_all(pilot) -> None:
    """C in the Runs pane: the 20 runs of the sweep compared, one line each."""
    app = pilot.app
    await wait(pilot, lambda: runs_status(app).startswith("20 runs"), what="the runs counted")
    await pilot.press("C")
    await wait(pilot, lambda: app.screen.query_one(TabbedContent).active == "compare"
               and status(app).startswith("20 runs · metric loss") and drawn_at_size(app), what="20 runs compared")


def grouped_ready(app, band_text: str) -> bool:
    return (status(app).startswith(f"20 runs in 4 groups · band {band_text} · by lr, model · metric loss")
            and drawn_at_size(app) and "mean per group" in chart_lines(app)[0])


@SIZES
async def test_g_draws_four_groups_of_five_and_b_cycles_the_band(sweep, size):
    app = make_app(sweep)
    async with app.run_test(size=size) as pilot:
        await compare_all(pilot)
        assert "N=" not in chart_text(app)
        await pilot.press("g")
        await wait(pilot, lambda: grouped_ready(app, "± std"), what="4 groups drawn")
        assert status(app) == "20 runs in 4 groups · band ± std · by lr, model · metric loss · x step · smoothing 0"
        lines = chart_lines(app)
        assert lines[0].strip() == "loss · mean per group, band ± std"
        text = "\n".join(lines)
        for model, lr in CONFIGS:  # the legend: each group's label and N (5 runs at every step)
            assert f"{label(model, lr)}  N=5" in text, text
        assert text.count("N=") == 4
        assert FILL_MARKER in text  # the ± std band is shaded
        assert chart(app).size.width == size[0]

        # the table: per group N and the mean ± std of each metric's last value, by hand
        table = rows(app, "metrics")
        assert len(table) == 4
        for c, (model, lr) in enumerate(CONFIGS):
            [row] = [r for r in table.values() if r[0] == label(model, lr)]
            losses = [loss(c, s, LAST) for s in range(SEEDS)]
            accs = [val_acc(c, s, LAST) for s in range(SEEDS)]
            assert row == [label(model, lr), "5",
                           f"{display(statistics.mean(losses))} ± {display(statistics.stdev(losses))}",
                           f"{display(statistics.mean(accs))} ± {display(statistics.stdev(accs))}"]
        headers = [str(col.label) for col in app.screen.query_one("#compare-metrics", DataTable).ordered_columns]
        assert headers == ["Group", "N", "loss mean ± std↓", "val_acc mean ± std↑"]

        # b: min–max, then no band, then ± std again
        await pilot.press("b")
        await wait(pilot, lambda: grouped_ready(app, "min–max")
                   and chart_lines(app)[0].strip() == "loss · mean per group, band min–max", what="min–max")
        minmax = chart_text(app)
        assert minmax != text and FILL_MARKER in minmax and minmax.count("N=5") == 4
        await pilot.press("b")
        await wait(pilot, lambda: grouped_ready(app, "off")
                   and chart_lines(app)[0].strip() == "loss · mean per group", what="no band")
        bare = chart_text(app)
        assert FILL_MARKER not in bare and bare.count("N=5") == 4
        await pilot.press("b")
        await wait(pilot, lambda: grouped_ready(app, "± std")
                   and chart_lines(app)[0].strip() == "loss · mean per group, band ± std", what="± std again")

        # m: the next metric, still in groups
        await pilot.press("m")
        await wait(pilot, lambda: status(app).startswith("20 runs in 4 groups · band ± std · by lr, model · "
                                                          "metric val_acc") and drawn_at_size(app)
                   and chart_lines(app)[0].strip().startswith("val_acc · mean per group"), what="val_acc")

        # g again: one line per run
        await pilot.press("g")
        await wait(pilot, lambda: status(app).startswith("20 runs · metric val_acc") and drawn_at_size(app)
                   and "N=" not in chart_text(app), what="ungrouped")
        assert len(rows(app, "metrics")) == 20
        assert not [n.message for n in app._notifications]


async def test_b_before_g_says_what_to_do_and_x_stays_on_steps(sweep):
    app = make_app(sweep)
    async with app.run_test(size=(120, 40)) as pilot:
        await compare_all(pilot)
        await pilot.press("b")
        await wait(pilot, lambda: app._notifications, what="a notice")
        assert [n.message for n in app._notifications] == [
            "The band is drawn around each group's mean: press g to group the runs first."]
        await pilot.press("g")
        await wait(pilot, lambda: grouped_ready(app, "± std"), what="groups")
        await pilot.press("x")
        await wait(pilot, lambda: len(app._notifications) == 2, what="a second notice")
        assert [n.message for n in app._notifications][-1] == \
            "Groups are drawn by step (their runs are aligned step by step); g ungroups."
        assert status(app).endswith("x step · smoothing 0")


async def test_a_view_grouped_by_a_param_no_run_has_says_so_and_shows_the_runs(sweep):
    """A saved view can name a param that is gone: a notice, and the runs one line each."""
    from mltui.core.runs.views import View

    app = make_app(sweep)
    async with app.run_test(size=(120, 40)) as pilot:
        await compare_all(pilot)
        ids = list(app.screen.query_one("#compare-pane").state.view.runs)
        app.compare_view(View(runs=ids, group_by="params.nosuch"))
        await wait(pilot, lambda: app._notifications, what="a notice")
        assert [n.message for n in app._notifications] == [
            "No run has a param called 'nosuch'; `mltui runs list --json` shows the params."]
        await wait(pilot, lambda: status(app).startswith("20 runs · metric loss") and drawn_at_size(app)
                   and "N=" not in chart_text(app), what="the runs, ungrouped")


async def test_groups_follow_the_runs_pane_grouping_and_a_saved_view_keeps_them(sweep):
    """Grouped in the Runs pane by model, the Compare pane's g makes the same 2 groups (N = 10); ctrl+s
    saves the grouping and the band with the view."""
    app = make_app(sweep)
    async with app.run_test(size=(200, 60)) as pilot:
        await compare_all(pilot)
        await pilot.press("1", "g")
        await wait(pilot, lambda: type(app.screen).__name__ == "PromptScreen", what="the group-by question")
        app.screen.query_one("#prompt-spec", Input).value = "params.model"
        await pilot.press("enter")
        await wait(pilot, lambda: isinstance(app.screen, MainScreen)
                   and runs_status(app).startswith("2 groups of 20 runs"), what="the Runs pane grouped")
        await pilot.press("2")
        await wait(pilot, lambda: app.screen.query_one(TabbedContent).active == "compare", what="Compare shown")
        await pilot.press("g")
        await wait(pilot, lambda: status(app).startswith("20 runs in 2 groups · band ± std · by model")
                   and drawn_at_size(app), what="2 groups")
        text = chart_text(app)
        assert "model=mlp  N=10" in text and "model=cnn  N=10" in text
        assert sorted(r[:2] for r in rows(app, "metrics").values()) == [["model=cnn", "10"], ["model=mlp", "10"]]

        await pilot.press("b", "ctrl+s")
        await wait(pilot, lambda: isinstance(app.screen, SaveViewScreen), what="the save dialog")
        app.focused.insert_text_at_cursor("by-model")
        await pilot.press("enter")
        await wait(pilot, lambda: isinstance(app.screen, MainScreen), what="saved")
        with closing(open_store(sweep.db_path)) as conn:
            [(spec,)] = conn.execute("SELECT spec FROM views WHERE name = 'by-model'").fetchall()
        saved = json.loads(spec)
        assert (saved["group_by"], saved["band"], len(saved["runs"])) == ("params.model", "minmax", 20)

        # ungrouped, then the saved view reopened from the palette: grouped again, min–max band
        await pilot.press("g")
        await wait(pilot, lambda: status(app).startswith("20 runs · metric loss"), what="ungrouped")
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        commands["Open view: by-model"].callback()
        await wait(pilot, lambda: status(app).startswith("20 runs in 2 groups · band min–max · by model")
                   and drawn_at_size(app), what="the view reopened in groups")
