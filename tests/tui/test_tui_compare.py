"""The Compare pane of the TUI, driven headless through `App.run_test` against a real SQLite workspace.

Runs are inserted with fixed ids through mltui.store (one transaction, fast); live points are logged
through the real tracking API. Assertions read what the pane shows: the status line, the chart
Static's drawn lines, the best-of and params tables' cells, notifications and the views table.

plotext (behind mltui.chart.draw) looks at the terminal of the *process* (shutil.get_terminal_size),
which under pytest is not the app's. So that nothing here depends on the terminal pytest runs in,
every test pins COLUMNS/LINES to a large terminal, and one test pretends it is smaller than the app
(the chart must still be drawn at the pane's size).
"""

from __future__ import annotations

import json
import math
import re
import time
from contextlib import closing

import pytest
from rich.style import Style
from textual.geometry import Region
from textual.widgets import DataTable, Input, Static, TabbedContent

from mltui.core.runs.tracking import Run
from mltui.core.runs.views import View
from mltui.core.workspace import Workspace, init_workspace
from mltui.store import metrics as metric_store
from mltui.store import runs as run_store
from mltui.store.connection import write_tx
from mltui.store.opening import open_store
from mltui.tui.app import MltuiApp, create_app
from mltui.tui.screens.main import MainScreen
from mltui.tui.modals.prompt import PromptScreen
from mltui.tui.modals.save_view import SaveViewScreen
from mltui.tui.widgets.runs_table import RunsTable

SMALL = (80, 24)
LARGE = (160, 50)
SIZES = pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x50"])
FAST_CONFIG = "[tui]\nrefresh_seconds = 0.2\n"
MARK = "●"

# -- data ----------------------------------------------------------------------------------
# id, name, seconds before now it was created, params, metrics (logged at steps 0, 1, 2, ...)
CMP_RUNS = [
    ("cmp0000aaa", "alpha", 100, {"lr": 0.1, "bs": 32, "opt": "adam"}, {
        "acc": [0.1, 0.5, 0.8, 0.6], "f1": [0.2, 0.3, 0.4, 0.45],
        "loss": [2.0, 1.0, 0.5, 0.7], "val/loss": [2.5, 1.5, 1.0, 1.2]}),
    ("cmp0000bbb", "bravo", 200, {"lr": 0.01, "bs": 32, "opt": "adam"}, {
        "acc": [0.2, 0.4, 0.6, 0.7], "f1": [0.1, 0.2, 0.5, 0.55],
        "loss": [1.5, 0.9, 0.4, 0.3], "val/loss": [2.0, 1.1, 0.9, 0.8]}),
    ("cmp0000ccc", "charlie", 300, {"lr": 0.001, "bs": 64, "opt": "adam"}, {
        "acc": [0.05, 0.1, 0.15, 0.2], "f1": [0.05, 0.05, 0.1, 0.1],
        "loss": [3.0, 2.5, 2.0, 1.9], "val/loss": [3.2, 2.9, 2.4, 2.5]}),
    ("cmp0000ddd", "delta", 400, {"lr": 0.5, "bs": 16, "opt": "sgd"}, {
        "acc": [0.9, 0.95], "loss": [0.1, 0.05]}),
]
A, B, C, D = (r[0] for r in CMP_RUNS)
NAMES = {r[0]: r[1] for r in CMP_RUNS}
METRIC_COLUMNS = ["name", "b:acc", "l:acc", "b:f1", "l:f1", "b:loss", "l:loss", "b:val/loss", "l:val/loss", "id"]
# what the best-of table must say for alpha, bravo, charlie (the three marked runs)
EXPECTED_METRICS = {
    A: ["alpha", "0.8 @2", "0.6", "0.45 @3", "0.45", "0.5 @2", "0.7", "1 @2", "1.2", A],
    B: ["bravo", "0.7 @3", "0.7", "0.55 @3", "0.55", "0.3 @3", "0.3", "0.8 @3", "0.8", B],
    C: ["charlie", "0.2 @3", "0.2", "0.1 @2", "0.1", "1.9 @3", "1.9", "2.4 @2", "2.5", C],
}
BEST = {"acc": A, "f1": B, "loss": B, "val/loss": B}  # which run's best cell is bold


# -- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(autouse=True)
def cmp_env(tmp_path, monkeypatch):
    """No git lookups, no user themes, no attached run id; a process terminal larger than any app here."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("MLTUI_RUN_ID", raising=False)
    monkeypatch.delenv("MLTUI_WORKSPACE", raising=False)
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setenv("LINES", "200")


@pytest.fixture
def cmp_ws(tmp_path) -> Workspace:
    (tmp_path / "proj").mkdir()
    ws, created = init_workspace(tmp_path / "proj")
    assert created
    ws.config_path.write_text(FAST_CONFIG, encoding="utf-8")
    return ws


def cmp_insert(ws: Workspace, runs, now: float | None = None) -> None:
    """Insert runs (id, name, age, params, {key: values}) with fixed ids in one transaction."""
    now = time.time() if now is None else now
    with closing(open_store(ws.db_path)) as conn, write_tx(conn):
        for run_id, name, ago, params, metrics in runs:
            created = now - ago
            run_store.insert_run(conn, {"id": run_id, "name": name, "kind": "train", "status": "finished",
                                        "created": created, "started": created, "ended": created + 60})
            if params:
                run_store.set_values(conn, "params", run_id, params)
            batch = {}
            for key, values in metrics.items():
                steps = list(range(len(values)))
                batch[key] = (steps, list(values), [created + 10 * s for s in steps])
            metric_store.write_batch(conn, run_id, batch)


@pytest.fixture
def cmp_runs(cmp_ws) -> float:
    """The four runs of CMP_RUNS (newest first: alpha, bravo, charlie, delta); returns the time they are relative to."""
    now = time.time()
    cmp_insert(cmp_ws, CMP_RUNS, now)
    return now


def cmp_app(ws: Workspace) -> MltuiApp:
    app = create_app(ws)
    app.animation_level = "none"
    return app


def cmp_messages(app) -> list[tuple[str, str]]:
    return [(n.message, n.severity) for n in app._notifications]


def cmp_text(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def cmp_runs_status(app) -> str:
    return cmp_text(app, "#runs-status")


def cmp_status(app) -> str:
    return cmp_text(app, "#compare-status")


def cmp_nothing_compared(app) -> bool:
    """The Compare pane compares nothing: it is not built yet (the main screen builds it when it is first
    shown or given runs to compare), or it shows its empty note."""
    return not app.screen.query("#compare-pane") or app.screen.query_one("#compare-empty").display is True


def cmp_runs_table(app) -> RunsTable:
    return app.screen.query_one("#runs-table", RunsTable)


def cmp_lines(widget) -> list[str]:
    """The widget's lines as drawn on screen (trailing blanks stripped)."""
    width, height = widget.size
    return [strip.text.rstrip() for strip in widget.render_lines(Region(0, 0, width, height))]


def cmp_charts(app) -> list[Static]:
    """The chart widgets that are shown."""
    return [w for w in app.screen.query(".chart") if w.display]


def cmp_chart_text(chart: Static) -> str:
    return "\n".join(cmp_lines(chart))


def cmp_chart_title(chart: Static) -> str:
    lines = cmp_lines(chart)
    return lines[0].strip() if lines else ""


def cmp_chart_xlabel(chart: Static) -> str:
    """The last non-blank drawn line: plotext's x label."""
    return [line for line in cmp_lines(chart) if line.strip()][-1].strip()


def cmp_fits(chart: Static) -> bool:
    """The chart was drawn for this widget's size (not a first draw before the layout settled).

    A chart fills the widget's width; its height is the widget's or, in a 2 x 2 grid of odd height, one
    less. A chart with nothing to draw is one sentence.
    """
    content = chart.content
    lines = content.plain.splitlines() if hasattr(content, "plain") else []
    if len(lines) == 1 and "┌" not in lines[0]:
        return True
    width, height = chart.size
    return height - 1 <= len(lines) <= height and max(map(len, lines), default=0) == width


def cmp_legend(chart: Static, names=("alpha", "bravo", "charlie", "delta")) -> list[str]:
    """Which of `names` the chart shows, top to bottom (the legend box lists one run a line)."""
    lines = cmp_lines(chart)
    found = [(i, line.find(f" {name}"), name) for i, line in enumerate(lines) for name in names
             if re.search(rf" {re.escape(name)}(\s|$)", line)]
    return [name for _, _, name in sorted(found)]


def cmp_table(app, name: str) -> DataTable:
    return app.screen.query_one(f"#compare-{name}", DataTable)


def cmp_columns(table: DataTable) -> list[str]:
    return [c.key.value for c in table.ordered_columns]


def cmp_rows(table: DataTable) -> dict[str, list[str]]:
    return {row.key.value: [table.get_cell(row.key, c.key).plain for c in table.ordered_columns]
            for row in table.ordered_rows}


def cmp_row_keys(table: DataTable) -> list[str]:
    return [row.key.value for row in table.ordered_rows]


def cmp_bold(table: DataTable, run_id: str, column: str) -> bool:
    style = table.get_cell(run_id, column).style
    return bool((Style.parse(style) if isinstance(style, str) else style).bold)


def cmp_drawn_bold(table: DataTable, run_id: str, text: str) -> bool:
    """Whether `text` in the run's drawn table line is bold on screen."""
    y = table.get_row_index(run_id) + 1  # below the header
    segments = [s for s in table.render_line(y) if text in s.text]
    assert segments, f"{text!r} not drawn in row {run_id}: {table.render_line(y).text!r}"
    return all(bool(s.style and s.style.bold) for s in segments)


async def cmp_wait(pilot, predicate, timeout: float = 5.0, step: float = 0.05, nudge: bool = False) -> None:
    """Pause until predicate() is true (fails the test after `timeout` seconds, saying what it saw).

    No forced redraws here: every key's effect and every live change must reach the screen through
    the pane's own polling (`nudge` is accepted for old call sites and ignored).
    """
    deadline = time.monotonic() + timeout
    while True:
        await pilot.pause(step)
        if predicate():
            return
        app = pilot.app
        if time.monotonic() > deadline:
            seen = {"screen": type(app.screen).__name__, "notifications": cmp_messages(app)}
            if isinstance(app.screen, MainScreen):
                seen.update(runs=cmp_runs_status(app), compare=cmp_status(app),
                            tab=app.screen.query_one(TabbedContent).active,
                            charts=[(cmp_chart_title(c), tuple(c.size), cmp_fits(c)) for c in cmp_charts(app)])
            raise AssertionError(f"condition not met within {timeout}s; saw {seen}")


async def cmp_loaded(pilot, rows: int) -> None:
    await cmp_wait(pilot, lambda: cmp_runs_table(pilot.app).row_count == rows and cmp_runs_status(pilot.app) != ""
                   and not cmp_runs_status(pilot.app).startswith("counting runs"))  # drawn before it is counted


async def cmp_drawn(pilot, status_start: str, titles: list[str], timeout: float = 5.0, fit: bool = True) -> None:
    """Wait until the pane shows `status_start`, and charts with these titles (drawn at their final size)."""
    app = pilot.app

    def ready() -> bool:
        charts = cmp_charts(app)
        return (cmp_status(app).startswith(status_start) and len(charts) == len(titles)
                and (not fit or all(cmp_fits(c) for c in charts)) and [cmp_chart_title(c) for c in charts] == titles)

    await cmp_wait(pilot, ready, timeout)


async def cmp_compare_three(pilot) -> None:
    """Compare alpha, bravo and charlie the way c does (the keys themselves are tested once, in section 1)."""
    await cmp_loaded(pilot, 4)
    pilot.app.compare_view(View(runs=[A, B, C]))
    await cmp_drawn(pilot, "3 runs", ["acc"])


# -- 1. the whole flow by keys -------------------------------------------------------------


@SIZES
async def test_mark_three_runs_and_compare_them(cmp_ws, cmp_runs, size):
    app = cmp_app(cmp_ws)
    async with app.run_test(size=size) as pilot:
        await cmp_loaded(pilot, 4)
        table = cmp_runs_table(app)
        assert table.row_keys() == [A, B, C, D]
        await pilot.press("space", "space", "space")
        await cmp_wait(pilot, lambda: " · 3 marked" in cmp_runs_status(app))
        assert cmp_runs_status(app) == "4 runs · 3 marked · sort: newest first"
        assert [table.get_cell(rid, "mark").plain for rid in (A, B, C, D)] == [MARK, MARK, MARK, " "]
        assert table.highlighted_id == D  # space moved the cursor down each time
        drawn = cmp_lines(table)
        assert [line.lstrip().startswith(MARK) for line in drawn[1:5]] == [True, True, True, False]

        await pilot.press("c")
        tabs = app.screen.query_one(TabbedContent)
        await cmp_wait(pilot, lambda: tabs.active == "compare")
        await cmp_drawn(pilot, "3 runs", ["acc"])
        assert app.focused is app.screen.query_one("#compare-pane")
        assert cmp_status(app) == "3 runs · metric acc · x step · smoothing 0"
        assert app.screen.query_one("#compare-empty").display is False

        # one chart, titled with the metric, the three run names in its legend (not delta)
        [chart] = cmp_charts(app)
        assert chart.region.width == size[0]
        lines = cmp_lines(chart)
        assert lines[0].strip() == "acc"
        text = "\n".join(lines)
        assert cmp_legend(chart) == ["alpha", "bravo", "charlie"]
        assert "delta" not in text
        assert cmp_chart_xlabel(chart) == "step"

        # best-of table: one row per marked run, in the Runs table's order
        metrics = cmp_table(app, "metrics")
        assert cmp_columns(metrics) == METRIC_COLUMNS
        assert cmp_row_keys(metrics) == [A, B, C]
        assert cmp_rows(metrics) == EXPECTED_METRICS
        headers = [str(c.label) for c in metrics.ordered_columns]
        assert headers[:3] == ["Run", "acc best↑", "acc last"]
        assert headers[5] == "loss best↓"
        for key, winner in BEST.items():
            for rid in (A, B, C):
                assert cmp_bold(metrics, rid, f"b:{key}") is (rid == winner), (key, rid)
                assert cmp_bold(metrics, rid, f"l:{key}") is False
        # and on screen: alpha's best acc is drawn bold, bravo's and charlie's are not
        assert cmp_drawn_bold(metrics, A, "0.8 @2") is True
        assert cmp_drawn_bold(metrics, B, "0.7 @3") is False
        assert cmp_drawn_bold(metrics, C, "0.2 @3") is False

        # params: only those that differ (opt is adam for all three) ...
        params = cmp_table(app, "params")
        assert cmp_columns(params) == ["name", "p:bs", "p:lr", "id"]
        assert cmp_rows(params) == {A: ["alpha", "32", "0.1", A], B: ["bravo", "32", "0.01", B],
                                    C: ["charlie", "64", "0.001", C]}
        # ... and a shows them all, a again hides the equal ones
        await pilot.press("a")
        await cmp_wait(pilot, lambda: cmp_columns(params) == ["name", "p:bs", "p:lr", "p:opt", "id"])
        assert cmp_rows(params)[B] == ["bravo", "32", "0.01", "adam", B]
        await pilot.press("a")
        await cmp_wait(pilot, lambda: cmp_columns(params) == ["name", "p:bs", "p:lr", "id"])
        assert not [m for m in cmp_messages(app) if m[1] == "error"]


async def test_c_without_marks_compares_the_highlighted_run(cmp_ws, cmp_runs):
    app = cmp_app(cmp_ws)
    async with app.run_test(size=SMALL) as pilot:
        await cmp_loaded(pilot, 4)
        await pilot.press("down", "c")
        await cmp_drawn(pilot, "1 run", ["acc"])
        assert cmp_row_keys(cmp_table(app, "metrics")) == [B]
        text = cmp_chart_text(cmp_charts(app)[0])
        assert "bravo" in text and "alpha" not in text


async def test_status_for_one_compared_run_is_singular(cmp_ws, cmp_runs):
    app = cmp_app(cmp_ws)
    async with app.run_test(size=SMALL) as pilot:
        await cmp_loaded(pilot, 4)
        await pilot.press("c")
        await cmp_drawn(pilot, "1 run", ["acc"])
        assert cmp_status(app) == "1 run · metric acc · x step · smoothing 0 · same params"


# -- 2. the view keys ----------------------------------------------------------------------


@SIZES
async def test_metric_multiples_axis_and_legend_keys(cmp_ws, cmp_runs, size):
    app = cmp_app(cmp_ws)
    async with app.run_test(size=size) as pilot:
        await cmp_compare_three(pilot)
        base = "3 runs · metric {} · x {} · smoothing 0"

        # m / M: the next and previous metric (wrapping both ways), in the status line and the chart title
        for key, metric in [("m", "f1"), ("M", "acc"), ("M", "val/loss"), ("m", "acc")]:
            await pilot.press(key)
            await cmp_drawn(pilot, f"3 runs · metric {metric} ·", [metric])
            assert cmp_status(app) == base.format(metric, "step")
        single = cmp_charts(app)[0].size
        assert single.width == size[0]

        # v: four small charts (one per metric, from the current one), v again: one
        await pilot.press("v")
        await cmp_drawn(pilot, "3 runs · metric acc, f1, loss, val/loss ·", ["acc", "f1", "loss", "val/loss"])
        assert cmp_status(app) == base.format("acc, f1, loss, val/loss", "step")
        charts = cmp_charts(app)
        assert len(app.screen.query(".chart")) == 4
        assert all(c.size.width == single.width // 2 for c in charts)
        assert all(c.size.height < single.height for c in charts)
        assert app.screen.query_one("#charts").has_class("-multiples")
        if size == LARGE:  # at 80x24 each small chart is 6 lines: a one-line plot with no room for a legend
            assert [cmp_legend(c) for c in charts] == [["alpha", "bravo", "charlie"]] * 4
        await pilot.press("v")
        await cmp_drawn(pilot, "3 runs · metric acc ·", ["acc"])
        [chart] = cmp_charts(app)
        assert chart.size == single
        assert not app.screen.query_one("#charts").has_class("-multiples")

        # x: step -> wall time -> time since each run started -> step
        assert cmp_chart_xlabel(chart) == "step"
        await pilot.press("x")
        await cmp_wait(pilot, lambda: cmp_status(app) == base.format("acc", "time")
                       and cmp_chart_xlabel(chart).startswith("wall time"))
        t0 = cmp_runs - 300  # charlie's first point; the span is 300 s + 30 s, shown in minutes
        assert cmp_chart_xlabel(chart) == f"wall time (min since {time.strftime('%Y-%m-%d %H:%M', time.localtime(t0))})"
        await pilot.press("x")
        await cmp_wait(pilot, lambda: cmp_status(app) == base.format("acc", "relative")
                       and cmp_chart_xlabel(chart).startswith("time since"))
        assert cmp_chart_xlabel(chart) == "time since each run started (s)"
        await pilot.press("x")
        await cmp_wait(pilot, lambda: cmp_status(app) == base.format("acc", "step") and cmp_chart_xlabel(chart) == "step")

        # l: the legend goes (no run names in the chart) and comes back
        assert cmp_legend(chart) == ["alpha", "bravo", "charlie"]
        await pilot.press("l")
        await cmp_wait(pilot, lambda: "alpha" not in cmp_chart_text(chart))
        text = cmp_chart_text(chart)
        assert cmp_chart_title(chart) == "acc"
        assert cmp_legend(chart) == []
        assert not any(name in text for name in ("alpha", "bravo", "charlie"))
        await pilot.press("l")
        await cmp_wait(pilot, lambda: cmp_legend(chart) == ["alpha", "bravo", "charlie"])
        assert cmp_status(app) == base.format("acc", "step")
        # the tables did not change with any of this
        assert cmp_rows(cmp_table(app, "metrics")) == EXPECTED_METRICS
        assert not [m for m in cmp_messages(app) if m[1] == "error"]


async def test_log_smoothing_and_clip_keys(cmp_ws, cmp_runs):
    app = cmp_app(cmp_ws)
    async with app.run_test(size=SMALL) as pilot:
        await cmp_compare_three(pilot)
        base = "3 runs · metric acc · x step · smoothing {}"
        [chart] = cmp_charts(app)
        plain = cmp_chart_text(chart)

        # y: log scale (the y ticks change), y again: linear
        await pilot.press("y")
        await cmp_wait(pilot, lambda: cmp_status(app) == base.format(0) + " · log y" and cmp_chart_text(chart) != plain)
        await pilot.press("y")
        await cmp_wait(pilot, lambda: cmp_status(app) == base.format(0) and cmp_chart_text(chart) == plain)

        # ] and [: up and down the ladder 0, 0.3, 0.6, 0.8, 0.9, 0.95, 0.99, stopping at both ends
        for key, shown in [("left_square_bracket", "0"), ("right_square_bracket", "0.3"),
                           ("right_square_bracket", "0.6"), ("left_square_bracket", "0.3")]:
            await pilot.press(key)
            await cmp_wait(pilot, lambda: cmp_status(app) == base.format(shown))
        await cmp_wait(pilot, lambda: cmp_chart_text(chart) != plain)  # smoothed curves
        app.compare_view(View(runs=[A, B, C], smoothing=0.95))  # the top of the ladder, without 5 more keys
        await cmp_wait(pilot, lambda: cmp_status(app) == base.format("0.95"))
        for key, shown in [("right_square_bracket", "0.99"), ("right_square_bracket", "0.99"),
                           ("left_square_bracket", "0.95")]:
            await pilot.press(key)
            await cmp_wait(pilot, lambda: cmp_status(app) == base.format(shown))
        app.compare_view(View(runs=[A, B, C]))
        await cmp_wait(pilot, lambda: cmp_status(app) == base.format("0") and cmp_chart_text(chart) == plain)

        # o: outliers clipped, o again: not
        await pilot.press("o")
        await cmp_wait(pilot, lambda: cmp_status(app) == base.format(0) + " · outliers clipped")
        await pilot.press("o")
        await cmp_wait(pilot, lambda: cmp_status(app) == base.format(0) and cmp_chart_text(chart) == plain)
        assert cmp_rows(cmp_table(app, "metrics")) == EXPECTED_METRICS
        assert not [m for m in cmp_messages(app) if m[1] == "error"]


TWO_METRICS = [("two0000aaa", "two-a", 20, {}, {"acc": [0.1, 0.2], "loss": [1.0, 0.5]}),
               ("two0000bbb", "two-b", 10, {}, {"acc": [0.3, 0.4], "loss": [0.9, 0.8]})]


async def test_multiples_with_fewer_than_four_metrics_shows_one_chart_per_metric(cmp_ws):
    cmp_insert(cmp_ws, TWO_METRICS)
    app = cmp_app(cmp_ws)
    async with app.run_test(size=LARGE) as pilot:
        await cmp_loaded(pilot, 2)
        await pilot.press("C")
        await cmp_drawn(pilot, "2 runs", ["acc"])
        await pilot.press("v")
        await cmp_drawn(pilot, "2 runs · metric acc, loss ·", ["acc", "loss"], fit=False)
        assert cmp_status(app) == "2 runs · metric acc, loss · x step · smoothing 0 · same params"
        assert [cmp_legend(c, ("two-a", "two-b")) for c in cmp_charts(app)] == [["two-b", "two-a"]] * 2
        assert [c.size.width for c in cmp_charts(app)] == [80, 80]


async def test_two_small_multiples_fill_their_height(cmp_ws):
    cmp_insert(cmp_ws, TWO_METRICS)
    app = cmp_app(cmp_ws)
    async with app.run_test(size=LARGE) as pilot:
        await cmp_loaded(pilot, 2)
        await pilot.press("C", "v")
        await cmp_drawn(pilot, "2 runs · metric acc, loss ·", ["acc", "loss"], fit=False)
        await cmp_wait(pilot, lambda: [len(c.content.plain.splitlines()) for c in cmp_charts(app)]
                       == [c.size.height for c in cmp_charts(app)])
        assert len(cmp_charts(app)) == 2


async def test_view_keys_with_nothing_to_compare_explain_themselves(cmp_ws, cmp_runs):
    app = cmp_app(cmp_ws)
    async with app.run_test(size=SMALL) as pilot:
        await cmp_loaded(pilot, 4)
        await pilot.press("2")
        await cmp_wait(pilot, lambda: app.screen.query_one(TabbedContent).active == "compare")
        empty = app.screen.query_one("#compare-empty", Static)
        assert empty.display is True and empty.region.width > 0
        assert str(empty.render()).startswith("Nothing to compare yet. In the Runs pane (key 1) mark runs with space")
        await pilot.press("m", "x", "ctrl+s")
        await cmp_wait(pilot, lambda: len(cmp_messages(app)) == 3)  # each key answered: none did more
        assert isinstance(app.screen, MainScreen)
        assert cmp_messages(app) == [("Nothing to compare yet: mark runs in the Runs pane first.", "information")] * 2 \
            + [("Nothing to save yet: mark runs in the Runs pane first.", "information")]
        assert empty.display is True
        assert app.screen.query_one("#charts").display is False
        assert app.screen.query_one("#compare-tables").display is False


async def test_empty_compare_pane_has_a_status_line(cmp_ws):
    app = cmp_app(cmp_ws)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("2")
        await cmp_wait(pilot, lambda: app.screen.query_one(TabbedContent).active == "compare"
                       and cmp_status(app) == "Compare")


# -- 3. live -------------------------------------------------------------------------------


async def test_best_and_last_values_follow_new_points(cmp_ws, cmp_runs):
    assert cmp_ws.config().refresh_seconds == 0.2
    app = cmp_app(cmp_ws)
    async with app.run_test(size=SMALL) as pilot:
        await cmp_compare_three(pilot)
        metrics = cmp_table(app, "metrics")
        chart = cmp_charts(app)[0]
        before = cmp_chart_text(chart)
        run = Run(cmp_ws, C, attached=True, flush_interval=0)
        try:
            run.log({"acc": 0.65, "loss": 0.2})  # step 4: charlie's best acc, and the best loss of all three
            run.flush()
            # no nudge: the pane's own timer must find the new points
            await cmp_wait(pilot, lambda: cmp_rows(metrics)[C][5:7] == ["0.2 @4", "0.2"], nudge=False)
            assert cmp_rows(metrics)[C] == ["charlie", "0.65 @4", "0.65", "0.1 @2", "0.1", "0.2 @4", "0.2",
                                            "2.4 @2", "2.5", C]
            assert cmp_rows(metrics)[A] == EXPECTED_METRICS[A]
            assert cmp_rows(metrics)[B] == EXPECTED_METRICS[B]
            assert cmp_bold(metrics, C, "b:loss") is True  # a new best run
            await cmp_wait(pilot, lambda: cmp_chart_text(chart) != before, nudge=False)  # the chart was redrawn too
            run.log({"acc": 0.3}, step=5)
            run.flush()
            await cmp_wait(pilot, lambda: cmp_rows(metrics)[C][1:3] == ["0.65 @4", "0.3"], nudge=False)
        finally:
            run.finish()
        assert app.screen.query_one(TabbedContent).active == "compare"
        assert not [m for m in cmp_messages(app) if m[1] == "error"]


async def test_bold_moves_off_the_old_best_when_a_new_best_arrives(cmp_ws, cmp_runs):
    app = cmp_app(cmp_ws)
    async with app.run_test(size=SMALL) as pilot:
        await cmp_compare_three(pilot)
        metrics = cmp_table(app, "metrics")
        assert cmp_bold(metrics, B, "b:loss") is True
        run = Run(cmp_ws, C, attached=True, flush_interval=0)
        try:
            run.log({"loss": 0.2})
            run.flush()
            await cmp_wait(pilot, lambda: cmp_rows(metrics)[C][5] == "0.2 @4", nudge=False)
        finally:
            run.finish()
        await cmp_wait(pilot, lambda: cmp_bold(metrics, C, "b:loss"))
        assert cmp_bold(metrics, B, "b:loss") is False  # bravo's 0.3 @3 is no longer the best


# -- 4. C: every run the filter shows ------------------------------------------------------


async def test_compare_all_with_a_filter_compares_exactly_the_filtered_runs(cmp_ws, cmp_runs):
    app = cmp_app(cmp_ws)
    async with app.run_test(size=LARGE) as pilot:
        await cmp_loaded(pilot, 4)
        await pilot.press("slash")
        app.focused.insert_text_at_cursor("params.lr < 0.05 or params.opt = sgd")
        await pilot.press("enter")
        await cmp_wait(pilot, lambda: cmp_runs_table(app).row_keys() == [B, C, D])
        await pilot.press("C")
        await cmp_drawn(pilot, "3 runs", ["acc"])
        assert cmp_status(app) == "3 runs · where params.lr < 0.05 or params.opt = sgd · metric acc · x step · smoothing 0"
        metrics = cmp_table(app, "metrics")
        assert cmp_row_keys(metrics) == [B, C, D]
        assert cmp_rows(metrics)[D] == ["delta", "0.95 @1", "0.95", "-", "-", "0.05 @1", "0.05", "-", "-", D]
        assert cmp_bold(metrics, D, "b:acc") and not cmp_bold(metrics, B, "b:acc")
        text = cmp_chart_text(cmp_charts(app)[0])
        assert all(n in text for n in ("bravo", "charlie", "delta")) and "alpha" not in text
        params = cmp_table(app, "params")
        assert cmp_columns(params) == ["name", "p:bs", "p:lr", "p:opt", "id"]

        # without a filter, C compares all four
        await pilot.press("1", "slash", "escape")
        await cmp_wait(pilot, lambda: cmp_runs_table(app).row_count == 4)
        await pilot.press("C")
        await cmp_drawn(pilot, "4 runs", ["acc"])
        assert cmp_status(app) == "4 runs · metric acc · x step · smoothing 0"
        assert cmp_row_keys(metrics) == [A, B, C, D]


async def test_compare_all_asks_how_many_when_the_filter_shows_more_than_fifty(cmp_ws):
    many = [(f"many{i:06d}", f"run-{i:02d}", 1000 - i, {"i": i}, {"loss": [1.0 / (i + 1)]}) for i in range(51)]
    cmp_insert(cmp_ws, many)
    app = cmp_app(cmp_ws)
    async with app.run_test(size=SMALL, notifications=True) as pilot:
        await cmp_loaded(pilot, 51)
        await pilot.press("C")
        await cmp_wait(pilot, lambda: isinstance(app.screen, PromptScreen))
        assert "The filter shows 51 runs" in " ".join(str(w.render()) for w in app.screen.query(Static))
        field = app.screen.query_one("#prompt-n", Input)
        assert field.value == "50"
        # esc: nothing is compared
        await pilot.press("escape")
        await cmp_wait(pilot, lambda: isinstance(app.screen, MainScreen))
        assert app.screen.query_one(TabbedContent).active == "runs"
        assert cmp_nothing_compared(app)
        # a number out of range is refused with a sentence
        await pilot.press("C")
        await cmp_wait(pilot, lambda: isinstance(app.screen, PromptScreen))
        app.screen.query_one("#prompt-n", Input).value = "0"
        await pilot.press("enter")
        await cmp_wait(pilot, lambda: cmp_messages(app))
        assert cmp_messages(app) == [("Give a number of runs from 1 to 200.", "warning")]
        assert cmp_nothing_compared(app)
        # all 51: the first 51 in the order shown, newest first
        await pilot.press("C")
        await cmp_wait(pilot, lambda: isinstance(app.screen, PromptScreen))
        app.screen.query_one("#prompt-n", Input).value = "51"
        await pilot.press("enter")
        await cmp_drawn(pilot, "51 runs", ["loss"])
        assert cmp_row_keys(cmp_table(app, "metrics")) == [f"many{i:06d}" for i in range(50, -1, -1)]
        await pilot.press("1")
        await cmp_wait(pilot, lambda: app.screen.query_one(TabbedContent).active == "runs")

        # exactly 50 is fine
        await pilot.press("slash")
        app.focused.insert_text_at_cursor("params.i > 0")
        await pilot.press("enter")
        await cmp_wait(pilot, lambda: cmp_runs_table(app).row_count == 50)
        await pilot.press("C")
        await cmp_drawn(pilot, "50 runs", ["loss"])
        assert cmp_status(app) == "50 runs · where params.i > 0 · metric loss · x step · smoothing 0"
        metrics = cmp_table(app, "metrics")
        assert cmp_row_keys(metrics) == [f"many{i:06d}" for i in range(50, 0, -1)]
        assert cmp_bold(metrics, "many000001", "b:loss") is False
        assert cmp_rows(metrics)["many000050"][1] == f"{1 / 51:.4g} @0"
        assert cmp_bold(metrics, "many000050", "b:loss") is True


# -- 5. saved views ------------------------------------------------------------------------


async def test_ctrl_s_saves_a_view_that_the_palette_reopens(cmp_ws, cmp_runs):
    app = cmp_app(cmp_ws)
    async with app.run_test(size=SMALL) as pilot:  # the dialog (60 wide) in the smallest terminal
        await cmp_compare_three(pilot)
        await pilot.press("x", "x", "right_square_bracket", "y")
        wanted = "3 runs · metric acc · x relative · smoothing 0.3 · log y"
        await cmp_wait(pilot, lambda: cmp_status(app) == wanted)
        assert not any(c.title.startswith("Open view:") for c in app.get_system_commands(app.screen))

        # esc cancels, saving nothing
        await pilot.press("ctrl+s")
        await cmp_wait(pilot, lambda: isinstance(app.screen, SaveViewScreen))
        await pilot.press("escape")
        await cmp_wait(pilot, lambda: isinstance(app.screen, MainScreen))
        with closing(open_store(cmp_ws.db_path)) as conn:
            assert conn.execute("SELECT count(*) FROM views").fetchone()[0] == 0

        await pilot.press("ctrl+s")
        await cmp_wait(pilot, lambda: isinstance(app.screen, SaveViewScreen))
        assert app.focused is app.screen.query_one("#view-name", Input)
        await pilot.press("enter")  # an empty name is refused, the dialog stays
        await cmp_wait(pilot, lambda: cmp_messages(app))
        assert cmp_messages(app) == [("A view name must be 1-80 printable characters.", "error")]
        assert isinstance(app.screen, SaveViewScreen)
        app.focused.insert_text_at_cursor("lr-sweep")
        await pilot.press("enter")
        await cmp_wait(pilot, lambda: isinstance(app.screen, MainScreen))
        assert cmp_messages(app)[-1] == ("Saved view 'lr-sweep'; reopen it from the command palette.", "information")

        with closing(open_store(cmp_ws.db_path)) as conn:
            rows = conn.execute("SELECT name, spec FROM views").fetchall()
        assert len(rows) == 1 and rows[0][0] == "lr-sweep"
        assert json.loads(rows[0][1]) == {"runs": [A, B, C], "where": None, "metrics": [], "axis": "relative",
                                          "smoothing": 0.3, "log_y": True, "clip": False, "group_by": None,
                                          "band": "std"}

        # compare something else, then reopen the view from its palette command
        await pilot.press("1", "C")
        await cmp_drawn(pilot, "4 runs", ["acc"])
        assert cmp_status(app) == "4 runs · metric acc · x step · smoothing 0"
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        assert "Open view: lr-sweep" in commands
        assert commands["Open view: lr-sweep"].help == "Saved comparison of 3 runs"
        commands["Open view: lr-sweep"].callback()
        await cmp_drawn(pilot, "3 runs · metric acc · x relative · smoothing 0.3 · log y", ["acc"])
        assert app.screen.query_one(TabbedContent).active == "compare"
        assert cmp_row_keys(cmp_table(app, "metrics")) == [A, B, C]
        assert cmp_chart_xlabel(cmp_charts(app)[0]) == "time since each run started (s)"


async def test_compare_marked_runs_palette_command(cmp_ws, cmp_runs):
    app = cmp_app(cmp_ws)
    async with app.run_test(size=SMALL) as pilot:
        await cmp_loaded(pilot, 4)
        await pilot.press("down", "down", "space", "space")
        await cmp_wait(pilot, lambda: " · 2 marked" in cmp_runs_status(app))
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        commands["Compare marked runs"].callback()
        await cmp_drawn(pilot, "2 runs", ["acc"])
        assert app.screen.query_one(TabbedContent).active == "compare"
        assert cmp_row_keys(cmp_table(app, "metrics")) == [C, D]


@pytest.mark.parametrize("title", ["Compare marked runs", "Compare every run the filter shows"])
async def test_compare_palette_commands_from_another_tab_show_the_comparison(cmp_ws, cmp_runs, title):
    app = cmp_app(cmp_ws)
    async with app.run_test(size=SMALL) as pilot:
        await cmp_loaded(pilot, 4)
        await pilot.press("space", "4")  # mark alpha, then look at the GPUs tab
        await cmp_wait(pilot, lambda: app.screen.query_one(TabbedContent).active == "gpus")
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        commands[title].callback()
        await cmp_wait(pilot, lambda: cmp_status(app).startswith(("1 run", "4 runs"))
                       and app.screen.query_one(TabbedContent).active == "compare")


async def test_saved_where_view_reopens_with_the_runs_matching_now(cmp_ws, cmp_runs):
    with closing(open_store(cmp_ws.db_path)) as conn:
        from mltui.core.runs.views import save_view

        save_view(conn, "fast lr", View(where="params.lr >= 0.1", metrics=["loss"], clip=True))
    app = cmp_app(cmp_ws)
    async with app.run_test(size=SMALL) as pilot:
        await cmp_loaded(pilot, 4)
        command = next(c for c in app.get_system_commands(app.screen) if c.title == "Open view: fast lr")
        assert command.help == "Saved comparison of params.lr >= 0.1"
        command.callback()
        await cmp_drawn(pilot, "2 runs", ["loss"])
        assert cmp_status(app) == ("2 runs · where params.lr >= 0.1 · metric loss · x step · smoothing 0"
                                   " · outliers clipped")
        metrics = cmp_table(app, "metrics")
        assert cmp_columns(metrics) == ["name", "b:loss", "l:loss", "id"]
        assert cmp_rows(metrics) == {A: ["alpha", "0.5 @2", "0.7", A], D: ["delta", "0.05 @1", "0.05", D]}


# -- 6. edge cases -------------------------------------------------------------------------

EDGE_RUNS = [
    ("edge000nan", "nan-inf", 50, {"lr": 1.0}, {"loss": [1.0, math.nan, 0.5, math.inf], "acc": [math.nan, math.nan]}),
    ("edge00none", "no-metrics", 40, {"lr": 2.0}, {}),
    ("edge00disa", "disjoint-a", 30, {}, {"only_a": [1.0, 2.0, 3.0]}),
    ("edge00disb", "disjoint-b", 20, {}, {"only_b": [5.0, 4.0]}),
    ("edge00one1", "one-point", 10, {}, {"loss": [0.7]}),
]


@SIZES
async def test_nan_inf_empty_disjoint_and_one_point_runs_draw(cmp_ws, size):
    cmp_insert(cmp_ws, EDGE_RUNS)
    app = cmp_app(cmp_ws)
    ids = [r[0] for r in EDGE_RUNS]
    async with app.run_test(size=size, notifications=True) as pilot:
        await cmp_loaded(pilot, 5)
        app.compare_view(View(runs=ids))
        await cmp_drawn(pilot, "5 runs", ["acc: no points to draw."])  # acc is all NaN
        assert cmp_status(app) == "5 runs · metric acc · x step · smoothing 0"
        metrics = cmp_table(app, "metrics")
        assert cmp_columns(metrics) == ["name", "b:acc", "l:acc", "b:loss", "l:loss", "b:only_a", "l:only_a",
                                        "b:only_b", "l:only_b", "id"]
        assert cmp_rows(metrics) == {
            "edge000nan": ["nan-inf", "-", "-", "0.5 @2", "inf", "-", "-", "-", "-", "edge000nan"],
            "edge00none": ["no-metrics", "-", "-", "-", "-", "-", "-", "-", "-", "edge00none"],
            "edge00disa": ["disjoint-a", "-", "-", "-", "-", "3 @2", "3", "-", "-", "edge00disa"],
            "edge00disb": ["disjoint-b", "-", "-", "-", "-", "-", "-", "5 @0", "4", "edge00disb"],
            "edge00one1": ["one-point", "-", "-", "0.7 @0", "0.7", "-", "-", "-", "-", "edge00one1"],
        }
        assert cmp_bold(metrics, "edge000nan", "b:loss") is True
        assert cmp_bold(metrics, "edge00one1", "b:loss") is False
        assert cmp_columns(cmp_table(app, "params")) == ["name", "p:lr", "id"]

        # loss: the NaN and the inf are left out and counted, the one-point run is drawn as a dot
        await pilot.press("m")
        await cmp_drawn(pilot, "5 runs · metric loss", ["loss  (2 non-finite points not drawn)"])
        text = cmp_chart_text(cmp_charts(app)[0])
        assert "nan-inf" in text and "one-point" in text
        assert not any(n in text for n in ("no-metrics", "disjoint-a", "disjoint-b"))
        await pilot.press("y")  # log y, then clipped: still drawn
        await cmp_wait(pilot, lambda: cmp_status(app).endswith("· log y"))
        await pilot.press("o")
        await cmp_drawn(pilot, "5 runs · metric loss · x step · smoothing 0 · log y · outliers clipped",
                        ["loss  (2 non-finite points not drawn)"])
        # each of the disjoint metrics has only its own run
        for metric, name in [("only_a", "disjoint-a"), ("only_b", "disjoint-b")]:
            await pilot.press("m")
            await cmp_drawn(pilot, f"5 runs · metric {metric}", [metric])
            text = cmp_chart_text(cmp_charts(app)[0])
            assert name in text
            assert not any(n in text for n in ("nan-inf", "one-point", "disjoint-a", "disjoint-b") if n != name)
        await pilot.press("y", "o", "v", "x", "right_square_bracket")
        titles = ["only_b", "acc: no points to draw.", "loss  (2 non-finite points not drawn)", "only_a"]
        if size == SMALL:
            titles[2] = "loss  (2 not drawn)"  # the short note fits a 40-column chart
        await cmp_drawn(pilot, "5 runs · metric only_b, acc, loss, only_a · x time · smoothing 0.3", titles)
        assert cmp_status(app) == "5 runs · metric only_b, acc, loss, only_a · x time · smoothing 0.3"
        await pilot.press("x")
        await cmp_drawn(pilot, "5 runs · metric only_b, acc, loss, only_a · x relative", titles)  # redrawn
        assert cmp_messages(app) == []


async def test_runs_without_any_metrics_say_so(cmp_ws):
    cmp_insert(cmp_ws, [r for r in EDGE_RUNS if r[0] == "edge00none"]
               + [("edge0none2", "no-metrics-2", 5, {"lr": 3.0}, {})])
    app = cmp_app(cmp_ws)
    async with app.run_test(size=SMALL, notifications=True) as pilot:
        await cmp_loaded(pilot, 2)
        await pilot.press("C")
        await cmp_wait(pilot, lambda: cmp_status(app).startswith("2 runs")
                       and "no metrics" in str(cmp_charts(app)[0].render()))
        assert cmp_status(app) == "2 runs · x step · smoothing 0"
        [chart] = cmp_charts(app)
        assert cmp_lines(chart)[0] == "These runs have logged no metrics yet."
        assert cmp_columns(cmp_table(app, "metrics")) == ["name", "id"]
        assert cmp_rows(cmp_table(app, "params")) == {"edge0none2": ["no-metrics-2", "3", "edge0none2"],
                                                      "edge00none": ["no-metrics", "2", "edge00none"]}
        await pilot.press("m", "v", "x", "y", "o", "l", "right_square_bracket")
        await cmp_wait(pilot, lambda: cmp_status(app) == "2 runs · x time · smoothing 0.3 · log y · outliers clipped"
                       and cmp_lines(cmp_charts(app)[0])[:1] == ["These runs have logged no metrics yet."])
        assert cmp_messages(app) == []


async def test_small_multiple_keeps_its_title(cmp_ws):
    cmp_insert(cmp_ws, EDGE_RUNS)
    app = cmp_app(cmp_ws)
    async with app.run_test(size=SMALL) as pilot:
        await cmp_loaded(pilot, 5)
        app.compare_view(View(runs=[r[0] for r in EDGE_RUNS]))
        await cmp_drawn(pilot, "5 runs", ["acc: no points to draw."])
        await pilot.press("v")
        await cmp_wait(pilot, lambda: len(cmp_charts(app)) == 4 and cmp_chart_title(cmp_charts(app)[0]) == "acc: no points to draw."
                       and "loss" in cmp_chart_title(cmp_charts(app)[1]))


async def test_control_characters_in_run_names_are_shown_literally_in_the_legend(cmp_ws):
    cmp_insert(cmp_ws, [("esc0000aaa", "\x1b[31mred\nline", 10, {}, {"loss": [0.9, 0.8]}),
                        ("esc0000bbb", "plain", 20, {}, {"loss": [1.0, 0.7]})])
    app = cmp_app(cmp_ws)
    async with app.run_test(size=SMALL) as pilot:
        await cmp_loaded(pilot, 2)
        await pilot.press("C")
        await cmp_drawn(pilot, "2 runs", ["loss"], fit=False)
        assert cmp_rows(cmp_table(app, "metrics"))["esc0000aaa"][0] == "\\x1b[31mred\\nline"
        text = cmp_chart_text(cmp_charts(app)[0])
        assert "\\x1b[31mred\\nline" in text


async def test_chart_fills_a_wide_pane_whatever_the_process_terminal(cmp_ws, cmp_runs, monkeypatch):
    """plotext must not shrink the chart to the test process's (pretend) 80x24 terminal."""
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "24")
    app = cmp_app(cmp_ws)
    async with app.run_test(size=LARGE) as pilot:
        await cmp_loaded(pilot, 4)
        await pilot.press("C")
        await cmp_drawn(pilot, "4 runs", ["acc"])
        chart = cmp_charts(app)[0]
        assert tuple(chart.size) == (160, 27)
        lines = chart.content.plain.splitlines()
        assert max(map(len, lines)) == 160
        assert len(lines) == chart.size.height


# -- 7. snapshot ---------------------------------------------------------------------------

NOW = 1_790_000_000.0
SNAP_RUNS = [  # id, name, created (s before NOW), lr, optimizer, accuracy scale, loss floor
    ("1mz0000aaa", "resnet18-baseline", 9000, 0.001, "adamw", 0.91, 0.10),
    ("1mz0000bbb", "resnet18-lr-sweep", 7000, 0.1, "sgd", 0.42, 0.60),
    ("1mz0000ccc", "vit-small [bold]x[/bold]", 5000, 0.0003, "adamw", 0.88, 0.15),
]


@pytest.fixture
def cmp_frozen_ws(tmp_path, monkeypatch):
    monkeypatch.setattr("time.time", lambda: NOW)
    ws, _ = init_workspace(tmp_path)
    with closing(open_store(ws.db_path)) as conn, write_tx(conn):
        for run_id, name, ago, lr, opt, scale, floor in SNAP_RUNS:
            created = NOW - ago
            run_store.insert_run(conn, {"id": run_id, "name": name, "kind": "train", "status": "finished",
                                        "created": created, "started": created, "ended": created + 600})
            run_store.set_values(conn, "params", run_id, {"lr": lr, "optimizer": opt, "epochs": 10})
            steps = list(range(40))
            times = [created + 15 * s for s in steps]
            metric_store.write_batch(conn, run_id, {
                "val/acc": (steps, [scale * (1 - math.exp(-s / 8)) for s in steps], times),
                "val/loss": (steps, [2.3 * math.exp(-s / 10) + floor for s in steps], times),
            })
    return ws


@SIZES
def test_compare_screen_snapshot(cmp_frozen_ws, snap_compare, size):
    async def mark_and_compare(pilot):
        await cmp_loaded(pilot, 3)
        await pilot.press("space", "space", "space", "c")
        await cmp_drawn(pilot, "3 runs", ["val/acc"])
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()  # and idle: what the workers posted is drawn
        assert cmp_status(pilot.app) == "3 runs · metric val/acc · x step · smoothing 0"

    assert snap_compare(cmp_app(cmp_frozen_ws), terminal_size=size, run_before=mark_and_compare)


def test_a_mark_loads_the_chart_modules_before_c_asks_for_them(tmp_path):
    """The Compare pane is built on its first use; what it draws with (polars, plotext) loads in the
    background at the first mark, so `c` does not wait for it. In a fresh process: these tests' own
    process has loaded them long ago."""
    import subprocess
    import sys
    import textwrap

    import mltui

    init_workspace(tmp_path)
    run = mltui.init(name="a", workspace=tmp_path)
    run.log({"loss": 1.0}, step=0)
    run.finish()
    script = textwrap.dedent("""
        import asyncio, sys, time
        from mltui.core.workspace import find_workspace
        from mltui.tui.app import create_app

        async def main():
            app = create_app(find_workspace(sys.argv[1]))
            async with app.run_test(size=(80, 24)) as pilot:
                table = app.screen.query_one("#runs-table")
                while table.total == 0:
                    await pilot.pause(0.01)
                before = "polars" in sys.modules or "plotext" in sys.modules
                await pilot.press("space")
                end = time.monotonic() + 30
                while not ("polars" in sys.modules and "mltui.chart" in sys.modules) and time.monotonic() < end:
                    await pilot.pause(0.05)
                print(before, "polars" in sys.modules, "mltui.chart" in sys.modules,
                      bool(app.screen.query("#compare-pane")))

        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "True", "False"]  # loaded, and no pane built for it
