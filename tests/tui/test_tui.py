"""The Textual TUI, driven headless through `App.run_test` against a real SQLite workspace.

Every run here is written through the real tracking API (`create_run` + `Run`, or `mltui.init`)
into a workspace under tmp_path; the assertions read what the screen shows (table cells, the
status line, rendered lines), not internal state where a visible form exists.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from rich.console import Console
from textual.geometry import Region
from textual.widgets import Input, Sparkline, Static, TabbedContent

import mltui
from mltui.core.runs.tracking import Run, create_run
from mltui.core.runs.views import View
from mltui.core.workspace import Workspace, init_workspace
from mltui.tui.app import MltuiApp, create_app
from mltui.tui.screens.main import PANES, MainScreen
from mltui.tui.screens.run_detail import RunDetailScreen
from mltui.tui.widgets.metric_spark import MetricSpark
from mltui.tui.widgets.runs_table import RunsTable

SMALL = (80, 24)
WIDE = (200, 60)
FAST_CONFIG = "[tui]\nrefresh_seconds = 0.2\n"


# -- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(autouse=True)
def tui_env(tmp_path, monkeypatch):
    """No git lookups from the repo, no user themes from ~/.config, no attached run id."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("MLTUI_RUN_ID", raising=False)
    monkeypatch.delenv("MLTUI_WORKSPACE", raising=False)


@pytest.fixture
def tui_ws(tmp_path) -> Workspace:
    (tmp_path / "proj").mkdir()
    ws, created = init_workspace(tmp_path / "proj")
    assert created
    ws.config_path.write_text(FAST_CONFIG, encoding="utf-8")
    return ws


def tui_make_run(ws: Workspace, name: str, *, created: float, status: str = "finished",
                 params: dict | None = None, tags: dict | None = None,
                 metrics: list[dict] | None = None) -> str:
    """A run with a chosen creation time and status, logged through the tracking API."""
    run_id = create_run(ws, name=name, status=status, created=created)
    run = Run(ws, run_id, attached=True, flush_interval=0)  # attached: finish() keeps the status
    if params:
        run.log_params(params)
    if tags:
        run.set_tags(tags)
    for step, point in enumerate(metrics or []):
        run.log(point, step=step)
    run.flush()
    run.finish()
    return run_id


@pytest.fixture
def tui_runs(tui_ws) -> dict[str, str]:
    """Three runs; creation order charlie < alpha < bravo, so newest first is bravo, alpha, charlie."""
    now = time.time()
    return {
        "charlie": tui_make_run(
            tui_ws, "charlie", created=now - 400, status="finished",
            params={"lr": 0.1, "bs": 32}, tags={"team": "nlp"},
            metrics=[{"loss": 1.0, "acc": 0.5}, {"loss": 0.8, "acc": 0.6}]),
        "alpha": tui_make_run(
            tui_ws, "alpha", created=now - 300, status="running",
            params={"lr": 0.01, "bs": 64}, tags={"team": "vision"},
            metrics=[{"loss": 2.0, "acc": 0.1}, {"loss": 1.5, "acc": 0.2}, {"loss": 0.9, "acc": 0.3}]),
        "bravo": tui_make_run(
            tui_ws, "bravo", created=now - 200, status="failed", params={"lr": 0.001}),
    }


def tui_app(ws: Workspace, **kwargs) -> MltuiApp:
    """The app from the real factory, with animations off so key presses settle at once."""
    app = create_app(ws, **kwargs)
    app.animation_level = "none"
    return app


async def tui_type(pilot, text: str) -> None:
    """Put text into the focused Input in one go (pilot.press costs ~60 ms a key)."""
    focused = pilot.app.focused
    assert isinstance(focused, Input)
    focused.insert_text_at_cursor(text)
    await pilot.pause()


async def tui_wait(pilot, predicate, timeout: float = 5.0, step: float = 0.05) -> None:
    """Pause until predicate() is true (fails the test after `timeout` seconds, saying what it saw)."""
    deadline = time.monotonic() + timeout
    while True:
        await pilot.pause(step)
        if predicate():
            return
        if time.monotonic() > deadline:
            app = pilot.app
            seen = {"screen": type(app.screen).__name__, "notifications": tui_messages(app)}
            if isinstance(app.screen, MainScreen):
                seen.update(status=tui_status(app), rows=tui_row_keys(app))
            raise AssertionError(f"condition not met within {timeout}s; saw {seen}")


def tui_table(app) -> RunsTable:
    return app.screen.query_one("#runs-table", RunsTable)


def tui_row_keys(app) -> list[str]:
    """The ids of the rows the table holds (every row, for a result shorter than a page or two)."""
    return tui_table(app).row_keys()


def tui_cell(app, run_id: str, column: str) -> str:
    return tui_table(app).get_cell(run_id, column).plain


def tui_status(app) -> str:
    status = app.screen.query_one("#runs-status", Static)
    return str(status.render())


def tui_lines(widget) -> list[str]:
    """The widget's lines as drawn on screen (trailing blanks stripped)."""
    width, height = widget.size
    if isinstance(widget, RunsTable):
        return [widget.render_line(y).text.rstrip() for y in range(height)]
    return [strip.text.rstrip() for strip in widget.render_lines(Region(0, 0, width, height))]


def tui_preview_lines(app) -> list[str]:
    """The preview panel's lines without its left border."""
    return [line.lstrip("▏").strip() for line in tui_lines(app.screen.query_one("#run-preview"))]


def tui_rich_text(renderable, width: int = 120) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)
    console.print(renderable)
    return console.file.getvalue()


def tui_messages(app) -> list[tuple[str, str]]:
    return [(n.message, n.severity) for n in app._notifications]


def tui_count_polls(pane) -> list[int]:
    """From now on, count the polls `pane` applies (the number is the list's one item)."""
    count = [0]
    real = pane.apply

    def counted(snapshot):
        count[0] += 1
        return real(snapshot)

    pane.apply = counted
    return count


def tui_palette_options(palette) -> list[str]:
    """The commands the command palette lists now, by their titles."""
    from textual.command import CommandList

    found = palette.query(CommandList)
    if not found:
        return []
    options = found.first()
    return [str(options.get_option_at_index(i).prompt).split("\n")[0].strip() for i in range(options.option_count)]


def tui_counted(app) -> bool:
    """The status line says the count: the first page of a result is drawn before it is counted."""
    status = tui_status(app)
    return status != "" and not status.startswith("counting runs")


async def tui_loaded(pilot, rows: int) -> None:
    await tui_wait(pilot, lambda: tui_table(pilot.app).row_count == rows and tui_counted(pilot.app))
    # and drawn: every row has a line on screen (the frame after the rows were read)
    table = tui_table(pilot.app)
    await tui_wait(pilot, lambda: sum(1 for line in tui_lines(table)[1:] if line) >= min(rows, table.size.height - 1))


# -- 1. layout at two sizes ----------------------------------------------------------------


@pytest.mark.parametrize("size", [SMALL, WIDE], ids=["80x24", "200x60"])
async def test_runs_pane_lists_every_run_newest_first(tui_ws, tui_runs, size):
    app = tui_app(tui_ws)
    async with app.run_test(size=size) as pilot:
        await tui_loaded(pilot, 3)
        assert isinstance(app.screen, MainScreen)
        assert tui_row_keys(app) == [tui_runs["bravo"], tui_runs["alpha"], tui_runs["charlie"]]
        expected = [("✗ failed", "bravo"), ("▶ running", "alpha"), ("✓ finished", "charlie")]
        for (status, name), run_id in zip(expected, tui_row_keys(app)):
            assert tui_cell(app, run_id, "status") == status
            assert tui_cell(app, run_id, "name") == name
            assert tui_cell(app, run_id, "id") == run_id
        # the latest metric values, not the first ones
        assert tui_cell(app, tui_runs["alpha"], "m:loss") == "0.9"
        assert tui_cell(app, tui_runs["alpha"], "m:acc") == "0.3"
        assert tui_cell(app, tui_runs["charlie"], "m:loss") == "0.8"
        assert tui_cell(app, tui_runs["bravo"], "m:loss") == "-"
        assert tui_status(app) == "3 runs · 1 running · sort: newest first"

        # what is drawn: header then one line per run, in that order
        lines = tui_lines(tui_table(app))
        assert lines[0].split()[:4] == ["Status", "Name", "Age", "Time"]
        assert "bravo" in lines[1] and "failed" in lines[1]
        assert "alpha" in lines[2] and "running" in lines[2]
        assert "charlie" in lines[3] and "finished" in lines[3]

        columns = [c.key for c in tui_table(app).columns]
        preview = app.screen.query_one("#run-preview")
        if size == WIDE:
            assert columns == ["mark", "status", "name", "age", "time", "m:acc", "m:loss", "p:lr", "p:bs", "id"]
            assert tui_cell(app, tui_runs["alpha"], "p:lr") == "0.01"
            assert tui_cell(app, tui_runs["alpha"], "p:bs") == "64"
            assert tui_cell(app, tui_runs["bravo"], "p:bs") == "-"
            assert preview.display is True
            assert preview.region.width > 0
            shown = "\n".join(tui_preview_lines(app))
            assert tui_preview_lines(app)[0] == "bravo"  # the highlighted (first) run
            assert tui_runs["bravo"] in shown and "params" in shown and "0.001" in shown
        else:
            assert columns == ["mark", "status", "name", "age", "time", "m:acc", "m:loss", "id"]
            assert not any(c.startswith("p:") for c in columns)
            assert preview.display is False


async def test_preview_follows_the_cursor_when_wide(tui_ws, tui_runs):
    app = tui_app(tui_ws)
    async with app.run_test(size=WIDE) as pilot:
        await tui_loaded(pilot, 3)
        await pilot.press("down")
        await tui_wait(pilot, lambda: tui_preview_lines(app)[0] == "alpha")
        shown = "\n".join(tui_preview_lines(app))
        assert "vision" in shown and "0.9" in shown


async def test_resizing_hides_the_preview_and_param_columns(tui_ws, tui_runs):
    app = tui_app(tui_ws)
    async with app.run_test(size=WIDE) as pilot:
        await tui_loaded(pilot, 3)
        assert app.screen.query_one("#run-preview").display is True
        await pilot.resize_terminal(*SMALL)
        await tui_wait(pilot, lambda: app.screen.query_one("#run-preview").display is False)
        assert [c.key for c in tui_table(app).columns] == [
            "mark", "status", "name", "age", "time", "m:acc", "m:loss", "id"]
        assert tui_row_keys(app) == [tui_runs["bravo"], tui_runs["alpha"], tui_runs["charlie"]]


# -- 2. live refresh -----------------------------------------------------------------------


async def test_live_refresh_updates_rows_in_place(tui_ws, tui_runs):
    assert tui_ws.config().refresh_seconds == 0.2
    app = tui_app(tui_ws)
    async with app.run_test(size=SMALL) as pilot:
        await tui_loaded(pilot, 3)
        table = tui_table(app)
        await pilot.press("down")  # the cursor on alpha, the second row
        assert table.highlighted_id == tui_runs["alpha"]
        before_keys = tui_row_keys(app)

        counts: list[int] = []
        sampler = app.set_interval(0.01, lambda: counts.append(table.row_count))

        # real writes from "training scripts", on their own connections
        alpha = Run(tui_ws, tui_runs["alpha"], attached=True, flush_interval=0)
        alpha.log({"loss": 0.25, "acc": 0.35})
        alpha.flush()
        delta = mltui.init(name="delta", params={"lr": 0.5}, workspace=tui_ws.project_dir, flush_interval=0)
        try:
            delta.log({"loss": 3.0, "acc": 0.05})
            delta.flush()
            await tui_wait(pilot, lambda: table.row_count == 4
                           and tui_cell(app, tui_runs["alpha"], "m:loss") == "0.25")
            polls = tui_count_polls(app.screen.runs_pane)
            await tui_wait(pilot, lambda: polls[0] >= 2)  # two more polls applied: nothing flickers back

            assert tui_row_keys(app) == [delta.id, *before_keys]
            assert tui_cell(app, delta.id, "name") == "delta"
            assert tui_cell(app, delta.id, "status") == "▶ running"
            assert tui_cell(app, delta.id, "m:loss") == "3"
            assert tui_cell(app, tui_runs["alpha"], "m:acc") == "0.35"
            assert tui_status(app) == "4 runs · 2 running · sort: newest first"
            # never emptied and refilled: the table held every run at every moment
            assert counts and min(counts) >= 3
            # the cursor stayed on the same run although a row was added above it
            assert table.highlighted_id == tui_runs["alpha"]
            assert table.cursor_row == 2
            line = tui_lines(table)[3]
            assert "alpha" in line and "0.25" in line and "0.35" in line
        finally:
            sampler.stop()
            alpha.finish()
            delta.finish()

        # finishing delta is seen too
        await tui_wait(pilot, lambda: tui_cell(app, delta.id, "status") == "✓ finished")
        assert tui_status(app) == "4 runs · 1 running · sort: newest first"


async def test_live_updated_value_is_drawn_in_full(tui_ws):
    rid = tui_make_run(tui_ws, "beta", created=time.time() - 5, status="running", metrics=[{"loss": 2.0}])
    app = tui_app(tui_ws)
    async with app.run_test(size=SMALL) as pilot:
        await tui_loaded(pilot, 1)
        await tui_wait(pilot, lambda: "2" in tui_lines(tui_table(app))[1])  # drawn once the frame is out
        run = Run(tui_ws, rid, attached=True, flush_interval=0)
        run.log({"loss": 0.123456789})
        run.flush()
        run.finish()
        await tui_wait(pilot, lambda: tui_cell(app, rid, "m:loss") == "0.1235")
        # drawn in full once the next frame is out (under load that can take more than one pause)
        await tui_wait(pilot, lambda: "0.1235" in tui_lines(tui_table(app))[1])


# -- 3. filter -----------------------------------------------------------------------------


async def test_keys_in_the_same_burst_as_slash_are_typed_into_the_filter(tui_ws, tui_runs):
    """A paste, or keys batched by a slow SSH link: everything after `/` is filter text, never the
    table's keys (`s` sorts, `g` groups, `k` asks to kill the highlighted run)."""
    from textual import events

    app = tui_app(tui_ws)
    async with app.run_test(size=SMALL) as pilot:
        await tui_loaded(pilot, 3)
        status = tui_status(app)
        for key, char in [("slash", "/"), ("k", "k"), ("s", "s"), ("g", "g")]:
            app.post_message(events.Key(key, char))  # queued together: no pause between them
        await tui_wait(pilot, lambda: app.screen.query_one("#filter", Input).value == "ksg")
        assert isinstance(app.screen, MainScreen) and tui_status(app) == status  # no kill prompt, no sort
        assert app.focused is app.screen.query_one("#filter", Input)


async def test_a_whole_filter_typed_ahead_applies_and_the_keys_after_enter_reach_the_table(tui_ws, tui_runs):
    """`/params.lr > 0.005⏎s` in one burst (what `tmux send-keys` sends): the filter gets all its text
    before ⏎ submits it, and `s` after ⏎ sorts the table instead of landing in the filter."""
    from textual import events

    app = tui_app(tui_ws)
    async with app.run_test(size=SMALL) as pilot:
        await tui_loaded(pilot, 3)
        keys = [("slash", "/")] + [(c if c.isalnum() else {" ": "space", ".": "full_stop", ">": "greater_than_sign"}[c], c)
                                   for c in "params.lr > 0.005"] + [("enter", "\r"), ("s", "s")]
        for key, char in keys:
            app.post_message(events.Key(key, char))  # queued together: no pause between them
        await tui_wait(pilot, lambda: tui_status(app) == "2 runs · 1 running · sort: oldest first · filter: params.lr > 0.005")
        assert app.screen.query_one("#filter", Input).value == "params.lr > 0.005"
        assert app.focused is tui_table(app)
        assert tui_row_keys(app) == [tui_runs["charlie"], tui_runs["alpha"]]


async def test_filter_applies_rejects_garbage_and_clears(tui_ws, tui_runs):
    app = tui_app(tui_ws)
    async with app.run_test(size=SMALL) as pilot:
        await tui_loaded(pilot, 3)
        error = app.screen.query_one("#filter-error", Static)
        assert error.display is False

        await pilot.press("slash")
        filter_input = app.screen.query_one("#filter", Input)
        assert app.focused is filter_input
        await pilot.press(*"params.lr > 0.005", "enter")
        await tui_wait(pilot, lambda: tui_table(app).row_count == 2)
        assert tui_row_keys(app) == [tui_runs["alpha"], tui_runs["charlie"]]
        assert tui_status(app) == "2 runs · 1 running · sort: newest first · filter: params.lr > 0.005"
        assert app.focused is tui_table(app)
        assert error.display is False

        # a garbage expression: explained, previous rows and filter kept
        await pilot.press("slash", "end", "ctrl+u", *"params.lr >> 1", "enter")
        await tui_wait(pilot, lambda: error.display is True)
        message = str(error.render())
        assert "column" in message
        assert message.startswith("Bad --where at column ")
        assert tui_row_keys(app) == [tui_runs["alpha"], tui_runs["charlie"]]
        assert tui_status(app).endswith("· filter: params.lr > 0.005")
        assert app.focused is filter_input

        # escape in the filter clears it
        await pilot.press("escape")
        await tui_wait(pilot, lambda: tui_table(app).row_count == 3)
        assert filter_input.value == ""
        assert error.display is False
        assert tui_status(app) == "3 runs · 1 running · sort: newest first"
        assert tui_row_keys(app) == [tui_runs["bravo"], tui_runs["alpha"], tui_runs["charlie"]]
        assert app.focused is tui_table(app)


async def test_filter_matching_nothing_says_so(tui_ws, tui_runs):
    app = tui_app(tui_ws)
    async with app.run_test(size=SMALL) as pilot:
        await tui_loaded(pilot, 3)
        await pilot.press("slash")
        await tui_type(pilot, "name = 'zzz' or tags.team = vision")
        await pilot.press("enter")
        await tui_wait(pilot, lambda: tui_table(app).row_count == 1)
        assert tui_row_keys(app) == [tui_runs["alpha"]]
        await pilot.press("slash", "end", "ctrl+u")
        await tui_type(pilot, "name = 'zzz'")
        await pilot.press("enter")
        await tui_wait(pilot, lambda: tui_table(app).row_count == 0)
        assert tui_status(app) == "No runs match this filter. · sort: newest first · filter: name = 'zzz'"


async def test_filter_text_with_markup_is_shown_literally(tui_ws, tui_runs):
    app = tui_app(tui_ws)
    async with app.run_test(size=SMALL) as pilot:
        await tui_loaded(pilot, 3)
        await pilot.press("slash")
        await tui_type(pilot, "name = '[b]x[/b]'")
        await pilot.press("enter")
        await tui_wait(pilot, lambda: tui_table(app).row_count == 0)
        assert tui_status(app).endswith("· filter: name = '[b]x[/b]'")
        await pilot.press("slash", "end", "ctrl+u")
        await tui_type(pilot, "name = [oops")
        await pilot.press("enter")
        error = app.screen.query_one("#filter-error", Static)
        await tui_wait(pilot, lambda: error.display is True)
        assert "column" in str(error.render())


# -- 4. sort -------------------------------------------------------------------------------


async def test_s_cycles_the_sort_order(tui_ws, tui_runs):
    app = tui_app(tui_ws)
    r = tui_runs
    # (label, first row) for each press of s; metric sorts come after the fixed ones
    cycle = [
        ("oldest first", [r["charlie"], r["alpha"], r["bravo"]]),
        ("name", [r["alpha"], r["bravo"], r["charlie"]]),
        ("status", [r["bravo"], r["charlie"], r["alpha"]]),  # failed < finished < running
        ("longest first", [r["alpha"]]),  # only alpha has a start time
        ("acc (high first)", [r["charlie"], r["alpha"], r["bravo"]]),
        ("loss (high first)", [r["alpha"], r["charlie"], r["bravo"]]),
        ("newest first", [r["bravo"], r["alpha"], r["charlie"]]),
    ]
    async with app.run_test(size=SMALL) as pilot:
        await tui_loaded(pilot, 3)
        assert tui_status(app) == "3 runs · 1 running · sort: newest first"
        for label, order in cycle:
            await pilot.press("s")
            await tui_wait(pilot, lambda: tui_status(app).endswith(f"sort: {label}")
                           and tui_row_keys(app)[: len(order)] == order)
            assert tui_status(app) == f"3 runs · 1 running · sort: {label}"
            assert tui_row_keys(app)[: len(order)] == order
            assert (f"Sorted by {label}", "information") in tui_messages(app)
            assert tui_table(app).row_count == 3


async def test_metric_sort_survives_a_filter_that_hides_the_metric(tui_ws, tui_runs):
    app = tui_app(tui_ws)
    async with app.run_test(size=SMALL) as pilot:
        await tui_loaded(pilot, 3)
        for _ in range(6):
            await pilot.press("s")
        await tui_wait(pilot, lambda: tui_status(app).endswith("sort: loss (high first)"))
        await pilot.press("slash")
        await tui_type(pilot, "status = failed")
        await pilot.press("enter")
        await tui_wait(pilot, lambda: tui_row_keys(app) == [tui_runs["bravo"]])
        # a second failed run arrives; the pane must keep refreshing
        late = tui_make_run(tui_ws, "echo", created=time.time() - 1, status="failed")
        await pilot.press("ctrl+r")
        await tui_wait(pilot, lambda: set(tui_row_keys(app)) == {tui_runs["bravo"], late})
        assert [m for m in tui_messages(app) if m[1] == "error"] == []
        assert "sort: oldest first" not in tui_status(app)


# -- 5. run detail -------------------------------------------------------------------------


async def test_enter_opens_the_run_detail_and_escape_returns(tui_ws, tui_runs):
    app = tui_app(tui_ws)
    async with app.run_test(size=SMALL) as pilot:
        await tui_loaded(pilot, 3)
        await pilot.press("down", "enter")
        await tui_wait(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        detail = app.screen
        assert detail.run_id == tui_runs["alpha"]
        await tui_wait(pilot, lambda: len(detail.query(MetricSpark)) == 2
                       and all(str(s.query_one(".metric-label", Static).render()) for s in detail.query(MetricSpark)))
        sparks = {s.key: s for s in detail.query(MetricSpark)}
        assert set(sparks) == {"loss", "acc"}
        assert sparks["loss"].query_one(Sparkline).data == [2.0, 1.5, 0.9]
        assert sparks["acc"].query_one(Sparkline).data == [0.1, 0.2, 0.3]
        label = str(sparks["loss"].query_one(".metric-label", Static).render()).splitlines()
        assert label == ["loss", "0.9 last", "0.9 … 2"]
        assert detail.query_one("#metrics-empty").display is False

        header = str(detail.query_one("#detail-header", Static).render())
        assert header.splitlines()[0] == f"▶ running  alpha  {tui_runs['alpha']}"
        info = tui_rich_text(detail.query_one("#detail-info", Static).content)
        info_rows = [line.split() for line in info.splitlines()]
        assert ["params"] in info_rows and ["tags"] in info_rows
        assert ["lr", "0.01"] in info_rows and ["bs", "64"] in info_rows
        assert ["team", "vision"] in info_rows
        assert ["kind", "other"] in info_rows
        drawn = "\n".join(tui_lines(detail.query_one("#detail-info")))
        assert "vision" in drawn

        # live: a new metric key gets its own sparkline while the screen is open
        run = Run(tui_ws, tui_runs["alpha"], attached=True, flush_interval=0)
        run.log({"val_acc": 0.42})
        run.finish()
        await tui_wait(pilot, lambda: len(detail.query(MetricSpark)) == 3)
        await tui_wait(pilot, lambda: detail.query(MetricSpark)[-1].query_one(Sparkline).data == [0.42])

        await pilot.press("escape")
        await tui_wait(pilot, lambda: isinstance(app.screen, MainScreen))
        assert tui_table(app).highlighted_id == tui_runs["alpha"]
        assert app.focused is tui_table(app)


async def test_detail_of_a_run_without_metrics_or_params(tui_ws):
    rid = tui_make_run(tui_ws, "bare", created=time.time() - 10)
    app = tui_app(tui_ws)
    async with app.run_test(size=SMALL) as pilot:
        await tui_loaded(pilot, 1)
        await pilot.press("enter")
        await tui_wait(pilot, lambda: isinstance(app.screen, RunDetailScreen)
                       and str(app.screen.query_one("#metrics-empty", Static).render()) != "Loading metrics…")
        assert app.screen.run_id == rid
        assert len(app.screen.query(MetricSpark)) == 0
        assert str(app.screen.query_one("#metrics-empty", Static).render()) == "This run has logged no metrics yet."
        info = [line.split() for line in tui_rich_text(app.screen.query_one("#detail-info", Static).content).splitlines()]
        assert ["-", "none"] in info
        assert ["tags"] not in info
        await pilot.press("backspace")
        await tui_wait(pilot, lambda: isinstance(app.screen, MainScreen))


# -- 6. tabs -------------------------------------------------------------------------------


async def test_number_keys_switch_tabs_and_empty_panes_say_what_to_do(tui_ws, tui_runs):
    app = tui_app(tui_ws)
    assert all(text is None for _, _, _, text in PANES)  # every pane is built: no placeholder is left
    async with app.run_test(size=SMALL) as pilot:
        await tui_loaded(pilot, 3)
        tabs = app.screen.query_one(TabbedContent)
        assert tabs.active == "runs"
        await pilot.press("2")
        await tui_wait(pilot, lambda: tabs.active == "compare")
        empty = app.screen.query_one("#compare-empty", Static)
        assert str(empty.render()).startswith("Nothing to compare yet. In the Runs pane (key 1) mark runs")
        assert empty.region.width > 0
        await pilot.press("4")  # the GPUs pane: the GPUs, or one sentence saying why there are none
        error, cards = app.screen.query_one("#gpu-error", Static), app.screen.query_one("#gpu-cards", Static)
        await tui_wait(pilot, lambda: tabs.active == "gpus"
                       and (str(error.render()).strip() or str(cards.render()).strip()))
        assert str(error.render()).strip().endswith(".") or str(cards.render()).strip()
        await pilot.press("3")  # the Datasets pane: with no datasets, what to do to get one
        await tui_wait(pilot, lambda: app.screen.query_one("#data-empty").display)
        assert tabs.active == "datasets"
        empty = app.screen.query_one("#data-empty", Static)
        assert str(empty.render()).startswith("No datasets yet.") and "mltui data add" in str(empty.render())
        assert empty.region.width > 0
        await pilot.press("5")  # the Models pane: with no models, what to do to get one
        await tui_wait(pilot, lambda: app.screen.query_one("#models-empty").display)
        assert tabs.active == "models"
        empty = app.screen.query_one("#models-empty", Static)
        assert str(empty.render()).startswith("No models yet.") and "mltui models register" in str(empty.render())
        assert empty.region.width > 0
        assert app.screen.query_one("#runs-table").region.width == 0  # the runs pane is hidden
        await pilot.press("1")
        await tui_wait(pilot, lambda: tabs.active == "runs" and app.focused is tui_table(app))
        assert tui_row_keys(app) == [tui_runs["bravo"], tui_runs["alpha"], tui_runs["charlie"]]


@pytest.mark.parametrize("key", ["3", "4", "5", "6", "7"])
async def test_a_key_right_after_a_switch_never_reaches_the_pane_left_behind(tui_ws, tui_runs, key):
    """`c` in the same burst as the switch, before the new pane is drawn: the Runs pane's `c` (compare
    the highlighted run) must not fire from behind the new tab."""
    app = tui_app(tui_ws)
    async with app.run_test(size=SMALL) as pilot:
        await tui_loaded(pilot, 3)
        tabs = app.screen.query_one(TabbedContent)
        app.simulate_key(key)  # both queued at once, as a terminal sends a burst: no pause between
        app.simulate_key("c")
        for _ in range(10):
            await pilot.pause(0.05)
        assert tabs.active != "compare" and tabs.active != "runs"
        assert not app.screen.query("#compare-pane")  # never built: nothing asked for it
        assert app.focused is None or app.screen.query_one(TabbedContent).active_pane in app.focused.ancestors_with_self


# -- 7. safety: user text is literal -------------------------------------------------------


@pytest.mark.parametrize("size", [SMALL, WIDE], ids=["80x24", "200x60"])
async def test_markup_and_escapes_in_names_are_shown_literally(tui_ws, size):
    now = time.time()
    boom = tui_make_run(tui_ws, "[bold red]boom[/]", created=now - 20, status="failed",
                        params={"opt": "[b]y[/b]"}, tags={"note": "[/]"},
                        metrics=[{"loss": 1.0}])
    evil = tui_make_run(tui_ws, "\x1b[2Jevil", created=now - 10, params={"opt": "a\x1b]0;t\x07b"})
    app = tui_app(tui_ws)
    async with app.run_test(size=size) as pilot:
        await tui_loaded(pilot, 2)
        assert tui_row_keys(app) == [evil, boom]
        assert tui_cell(app, boom, "name") == "[bold red]boom[/]"
        assert tui_cell(app, evil, "name") == "\\x1b[2Jevil"
        lines = tui_lines(tui_table(app))
        assert "\\x1b[2Jevil" in lines[1]
        assert "[bold red]boom[/]" in lines[2]
        assert not any("\x1b" in line for line in lines)
        if size == WIDE:
            assert tui_cell(app, boom, "p:opt") == "[b]y[/b]"
            assert tui_cell(app, evil, "p:opt") == "a\\x1b]0;t\\x07b"
            assert tui_preview_lines(app)[0] == "\\x1b[2Jevil"
            await pilot.press("down")
            await tui_wait(pilot, lambda: tui_preview_lines(app)[0] == "[bold red]boom[/]")
            preview = tui_preview_lines(app)
            assert ["opt", "[b]y[/b]"] in [line.split() for line in preview]
            assert ["note", "[/]"] in [line.split() for line in preview]
            await pilot.press("up")

        # the detail screen of each
        for run_id, shown in [(evil, "\\x1b[2Jevil"), (boom, "[bold red]boom[/]")]:
            await pilot.press("enter")
            await tui_wait(pilot, lambda: isinstance(app.screen, RunDetailScreen)
                           and shown in str(app.screen.query_one("#detail-header", Static).render()))
            assert app.screen.run_id == run_id
            drawn = "\n".join(tui_lines(app.screen.query_one("#detail-header")))
            assert shown in drawn
            info = "\n".join(tui_lines(app.screen.query_one("#detail-info")))
            if run_id == boom:
                assert "[b]y[/b]" in info
                assert "[/]" in info
            else:
                assert "a\\x1b]0;t\\x07b" in info
            await pilot.press("escape")
            await tui_wait(pilot, lambda: isinstance(app.screen, MainScreen))
            await pilot.press("down")
    assert app.return_code in (None, 0)


# -- 8. themes -----------------------------------------------------------------------------


async def test_theme_is_chosen_by_name(tui_ws):
    app = tui_app(tui_ws, theme="mltui-light")
    async with app.run_test(size=SMALL) as pilot:
        await tui_loaded(pilot, 0)
        assert app.theme == "mltui-light"
        assert not [m for m in tui_messages(app) if m[1] == "warning"]


async def test_default_theme_is_mltui_dark(tui_ws):
    app = tui_app(tui_ws)
    async with app.run_test(size=SMALL) as pilot:
        await tui_loaded(pilot, 0)
        assert app.theme == "mltui-dark"
        assert {"mltui-dark", "mltui-light", "mltui-high-contrast"} <= set(app.available_themes)


async def test_unknown_theme_falls_back_with_a_warning(tui_ws):
    app = tui_app(tui_ws, theme="no-such-theme")
    async with app.run_test(size=SMALL, notifications=True) as pilot:
        await tui_wait(pilot, lambda: tui_messages(app))
        assert app.theme == "mltui-dark"
        assert tui_messages(app) == [("There is no theme called 'no-such-theme'; using mltui-dark.", "warning")]
        assert isinstance(app.screen, MainScreen)


async def test_broken_theme_file_is_skipped(tui_ws):
    themes = tui_ws.root / "themes"
    themes.mkdir()
    (themes / "broken.toml").write_text('name = "broken"\nprimary = "#ff0000\n[[[', encoding="utf-8")
    (themes / "fine.toml").write_text('name = "fine"\nprimary = "#112233"\ndark = true\n', encoding="utf-8")
    app = tui_app(tui_ws, theme="fine")
    async with app.run_test(size=SMALL, notifications=True) as pilot:
        await tui_wait(pilot, lambda: tui_messages(app))
        await tui_loaded(pilot, 0)
        assert app.theme == "fine"
        assert "broken" not in app.available_themes
        messages = tui_messages(app)
        assert len(messages) == 1
        message, severity = messages[0]
        assert severity == "warning"
        assert message.startswith("Theme file broken.toml is not valid TOML (")
        assert message.endswith("; it was skipped.")
        assert isinstance(app.screen, MainScreen)


# -- 9. keymap -----------------------------------------------------------------------------


async def test_keymap_from_config_rebinds_the_filter_key(tui_ws, tui_runs):
    tui_ws.config_path.write_text(FAST_CONFIG + '\n[keys]\n"runs.filter" = "f"\n', encoding="utf-8")
    assert tui_ws.config().keys == {"runs.filter": "f"}
    app = tui_app(tui_ws)
    async with app.run_test(size=SMALL) as pilot:
        await tui_loaded(pilot, 3)
        assert app.focused is tui_table(app)
        await pilot.press("f")
        assert app.focused is app.screen.query_one("#filter", Input)
        assert app.screen.query_one("#filter", Input).value == ""
        await tui_type(pilot, "status = failed")
        await pilot.press("enter")
        await tui_wait(pilot, lambda: tui_row_keys(app) == [tui_runs["bravo"]])


# -- 10. empty workspace -------------------------------------------------------------------


async def test_empty_workspace_says_there_are_no_runs(tui_ws):
    app = tui_app(tui_ws)
    async with app.run_test(size=SMALL) as pilot:
        await tui_wait(pilot, lambda: tui_counted(app))
        assert tui_table(app).row_count == 0
        assert tui_status(app) == (
            "No runs yet. Log one from a training script with mltui.init(), then watch it here."
            " · sort: newest first")
        # keys that act on a run do nothing harmful with none
        await pilot.press("enter", "s", "ctrl+r")
        # the last key's poll is drawn (after the sort's): the keys were all handled
        await tui_wait(pilot, lambda: isinstance(app.screen, MainScreen) and tui_status(app).endswith("sort: oldest first"))
        assert tui_status(app).startswith("No runs yet.")

        # the first run appears by itself
        run = mltui.init(name="first", workspace=tui_ws.project_dir, flush_interval=0)
        try:
            await tui_wait(pilot, lambda: tui_row_keys(app) == [run.id])
            assert tui_cell(app, run.id, "name") == "first"
        finally:
            run.finish()


async def test_empty_workspace_preview_when_wide(tui_ws):
    app = tui_app(tui_ws)
    async with app.run_test(size=WIDE) as pilot:
        await tui_wait(pilot, lambda: tui_counted(app))
        assert app.screen.query_one("#run-preview").display is True
        assert tui_preview_lines(app)[0] == "No run highlighted."
        assert tui_status(app).startswith("No runs yet.")


async def test_status_line_for_one_run_is_singular(tui_ws):
    tui_make_run(tui_ws, "only", created=time.time() - 5)
    app = tui_app(tui_ws)
    async with app.run_test(size=SMALL) as pilot:
        await tui_loaded(pilot, 1)
        assert tui_status(app) == "1 run · sort: newest first"


# -- 11. quitting --------------------------------------------------------------------------


async def test_q_quits(tui_ws, tui_runs):
    app = tui_app(tui_ws)
    async with app.run_test(size=SMALL) as pilot:
        await tui_loaded(pilot, 3)
        # in the filter box q is a letter, not quit
        await pilot.press("slash", "q")
        assert app.screen.query_one("#filter", Input).value == "q"
        assert app.return_code is None
        await pilot.press("escape", "q")
        await pilot.pause()
        assert app.return_code == 0
    assert not app.is_running


# -- 12. command palette -------------------------------------------------------------------


async def test_command_palette_switches_to_gpus(tui_ws, tui_runs):
    app = tui_app(tui_ws)
    async with app.run_test(size=SMALL) as pilot:
        await tui_loaded(pilot, 3)
        await pilot.press("ctrl+p")
        await tui_wait(pilot, lambda: type(app.screen).__name__ == "CommandPalette")
        await pilot.press(*"Show GPUs")
        palette = app.screen
        await tui_wait(pilot, lambda: tui_palette_options(palette) == ["Show GPUs"])  # it searches in the background
        await pilot.press("enter")
        await tui_wait(pilot, lambda: isinstance(app.screen, MainScreen))
        await tui_wait(pilot, lambda: app.screen.query_one(TabbedContent).active == "gpus")


async def test_system_commands_reach_every_pane_and_the_runs_actions(tui_ws, tui_runs):
    app = tui_app(tui_ws)
    async with app.run_test(size=SMALL) as pilot:
        await tui_loaded(pilot, 3)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        for title in ["Show Runs", "Show Compare", "Show Datasets", "Show GPUs", "Show Models",
                      "Filter runs", "Clear the runs filter", "Sort runs", "Open the highlighted run"]:
            assert title in commands
        tabs = app.screen.query_one(TabbedContent)
        for _, title, _, _ in PANES[::-1]:
            pane = next(p for p, t, _, _ in PANES if t == title)
            commands[f"Show {title}"].callback()
            await tui_wait(pilot, lambda: tabs.active == pane)

        commands["Show GPUs"].callback()
        commands["Sort runs"].callback()  # goes back to the runs pane and sorts
        await tui_wait(pilot, lambda: tui_status(app).endswith("sort: oldest first"))
        assert tabs.active == "runs"
        assert tui_row_keys(app)[0] == tui_runs["charlie"]

        commands["Filter runs"].callback()
        await tui_wait(pilot, lambda: app.focused is app.screen.query_one("#filter", Input))

        # from the detail screen, "Show Datasets" pops back to the main screen first
        commands["Open the highlighted run"].callback()
        await tui_wait(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        # the cursor stayed on the run it was on (bravo) while the rows were re-sorted
        assert app.screen.run_id == tui_runs["bravo"]
        commands["Show Datasets"].callback()
        await tui_wait(pilot, lambda: isinstance(app.screen, MainScreen))
        assert app.screen.query_one(TabbedContent).active == "datasets"


# -- 13. many quick switches ---------------------------------------------------------------


async def test_switching_panes_200_times_while_polls_run_keeps_the_app_responsive(tui_ws, tui_runs):
    """Every pane polls the store in a thread (every 0.2 s here, and at once when shown) while keys
    switch panes 200 times, in bursts sent without waiting (each switch starts polls that the next
    ones overtake), and new runs keep arriving: every switch is done, in order, each burst settles in
    moments (none hangs on a poll), no poll fails, and polls still run at the end."""
    import random

    rng = random.Random(1234)
    app = tui_app(tui_ws)
    async with app.run_test(size=WIDE) as pilot:
        await tui_loaded(pilot, 3)
        tabs = app.screen.query_one(TabbedContent)
        app.compare_view(View(runs=list(tui_runs.values())))  # the Compare pane has charts to poll too
        await tui_wait(pilot, lambda: tabs.active == "compare"
                       and str(app.screen.query_one("#compare-status", Static).render()).startswith("3 runs"))
        for key, tab in (("3", "datasets"), ("4", "gpus"), ("5", "models"), ("2", "compare")):
            await pilot.press(key)  # a pane is built on its first visit (screens/main.py): visit each once
            await tui_wait(pilot, lambda: tabs.active == tab and app.screen.pane(tab).is_mounted)
        shown: list[str] = []
        app.screen.watch(tabs, "active", lambda active: shown.append(active), init=False)
        polls = {name: tui_count_polls(app.screen.query_one(f"#{name}-pane"))
                 for name in ("runs", "compare", "datasets", "gpu", "models")}
        wanted: list[str] = []
        now, added, slowest = time.time(), [], 0.0
        pane = tabs.active
        while len(wanted) < 200:
            started = time.monotonic()
            for _ in range(min(rng.randint(1, 8), 200 - len(wanted))):
                pane, _, key, _ = rng.choice([p for p in PANES if p[0] != pane])
                wanted.append(pane)
                app.simulate_key(key)  # like a key from the terminal; no wait for the app to be idle
            await tui_wait(pilot, lambda: len(shown) >= len(wanted), timeout=10, step=0.01)  # a hang fails here
            slowest = max(slowest, time.monotonic() - started)
            if len(added) * 25 <= len(wanted):  # the store changes under the polls
                added.append(tui_make_run(tui_ws, f"late-{len(added)}", created=now + len(added)))
        assert shown == wanted  # every switch was done, in the order of the keys
        # a burst takes ~0.1 s (0.5 s at worst on a loaded 2-core machine): none waited on a poll
        assert slowest < 5.0, f"a burst of switches took {slowest:.1f} s"
        assert not [m for m, severity in tui_messages(app) if severity == "error"], tui_messages(app)
        assert all(count[0] >= 5 for count in polls.values()), polls  # every pane polled meanwhile
        for key in (["2", "1"] if pane == "runs" else ["1"]):  # a last switch, to the Runs pane
            app.simulate_key(key)
        await tui_wait(pilot, lambda: tabs.active == "runs" and tui_row_keys(app)[:len(added)] == added[::-1])
        assert len(tui_row_keys(app)) == 3 + len(added)  # the Runs pane's poll runs still and saw them all
        assert app.focused is tui_table(app)  # the keys reach the table shown


def test_create_app_reads_the_workspace_config(tui_ws):
    tui_ws.config_path.write_text('theme = "mltui-high-contrast"\n[tui]\nrefresh_seconds = 0.5\n', encoding="utf-8")
    app = tui_app(tui_ws, title="my title")
    assert isinstance(app, MltuiApp)
    assert app.config.refresh_seconds == 0.5
    assert app.theme == "mltui-high-contrast"
    assert app.title == "my title"
    assert app.sub_title == str(tui_ws.project_dir)
    assert Path(app.ws.root) == tui_ws.root
