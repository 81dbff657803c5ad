"""The Runs pane on a result longer than many pages: 3,000 runs, written through the store in bulk.

The pane holds only the page on screen plus a margin (read from SQL); these tests press real keys and
check what is drawn: End reaches the oldest run, the count is the whole result's, a filter repaints
with its own count, marks outlive scrolling, a live run's row follows its logging, and a poll that
finds the store unchanged reads nothing and draws nothing.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from textual.widgets import Input, Static

from mltui.core.runs.tracking import Run
from mltui.core.workspace import Workspace, find_workspace, init_workspace
from mltui.store import metrics as metric_store
from mltui.store import runs as run_store
from mltui.store.connection import write_tx
from mltui.store.opening import open_store
from mltui.tui.app import create_app
from mltui.tui.panes.runs import RunsPane
from mltui.tui.widgets.runs_table import MARK, RunsTable

N = 3000
RUNNING = (100, 1500, 2900)  # the runs (by creation order, 0 the oldest) left running
SMALL, WIDE = (80, 24), (200, 60)
BASE = time.time() - 40 * 86400  # 40 days ago: ages read "3xd..h" and change only hourly


def _name(i: int) -> str:
    return f"run-{i:05d}"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A project of N runs (run i created i minutes after BASE; seed = i % 5), built once per module."""
    project = tmp_path_factory.mktemp("paging") / "proj"
    project.mkdir()
    ws, _ = init_workspace(project)
    ws.config_path.write_text("[tui]\nrefresh_seconds = 0.2\n", encoding="utf-8")
    conn = open_store(ws.db_path)
    with write_tx(conn):
        for i in range(N):
            rid = f"1paging{i:05d}"
            created = BASE + 60 * i
            running = i in RUNNING
            run_store.insert_run(conn, {"id": rid, "name": _name(i), "kind": "train",
                                        "status": "running" if running else "finished", "created": created,
                                        "started": created, "ended": None if running else created + 30})
            run_store.set_values(conn, "params", rid, {"seed": i % 5, "lr": 0.001 * (1 + i % 7)})
            metric_store.write_batch(conn, rid, {"loss": ([0, 1], [1.0, 1.0 / (i + 1)], [created, created + 1])})
    conn.close()
    return project


@pytest.fixture
def ws(built, tmp_path, monkeypatch) -> Workspace:
    """A copy of the built project for one test."""
    project = tmp_path / "proj"
    shutil.copytree(built, project)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("MLTUI_WORKSPACE", raising=False)
    monkeypatch.delenv("MLTUI_RUN_ID", raising=False)
    return find_workspace(project)


def app_for(ws: Workspace):
    app = create_app(ws)
    app.animation_level = "none"
    return app


async def wait(pilot, predicate, timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            app = pilot.app
            raise AssertionError(f"not seen within {timeout}s: {what}; status {status(app)!r}, "
                                 f"lines {lines(table(app))[:4]}")
        await pilot.pause(0.05)


def table(app) -> RunsTable:
    return app.screen.query_one("#runs-table", RunsTable)


def status(app) -> str:
    return str(app.screen.query_one("#runs-status", Static).render())


def lines(t: RunsTable) -> list[str]:
    """The table's lines as drawn on screen."""
    return [t.render_line(y).text.rstrip() for y in range(t.size.height)]


def row_line(t: RunsTable, name: str) -> str | None:
    return next((line for line in lines(t)[1:] if f" {name} " in f"{line} "), None)


def cursor_line(t: RunsTable) -> str:
    return lines(t)[t.cursor_row - int(t.scroll_offset.y) + 1]


async def loaded(pilot) -> None:
    app = pilot.app
    await wait(pilot, lambda: table(app).total == N and row_line(table(app), _name(N - 1)) is not None,
               what="the newest run drawn")


@pytest.mark.parametrize("size", [SMALL, WIDE], ids=["80x24", "200x60"])
async def test_end_reaches_the_oldest_run_and_the_count_is_the_whole_result(ws, size):
    app = app_for(ws)
    async with app.run_test(size=size) as pilot:
        await loaded(pilot)
        t = table(app)
        # the count is every run, running ones included, though only a few pages are held
        assert status(app) == f"{N:,} runs · {len(RUNNING)} running · sort: newest first"
        assert len(t.window) < N // 10
        assert t.virtual_size.height == N + 1  # the scrollbar covers the whole result
        assert _name(N - 1) in cursor_line(t)

        await pilot.press("end")
        await wait(pilot, lambda: t.cursor_row == N - 1 and _name(0) in cursor_line(t), what="the oldest run")
        assert t.highlighted_id == "1paging00000"
        assert row_line(t, _name(1)) is not None  # the rows above it are drawn too, not placeholders
        assert not any(line.split()[-1:] == ["…"] or " … " in line for line in lines(t)[1:])

        await pilot.press("home")
        await wait(pilot, lambda: t.cursor_row == 0 and _name(N - 1) in cursor_line(t), what="the newest run")
        await pilot.press("G")  # G is End too
        await wait(pilot, lambda: t.cursor_row == N - 1 and _name(0) in cursor_line(t), what="G to the oldest")
        await pilot.press("ctrl+home")
        await wait(pilot, lambda: t.cursor_row == 0, what="ctrl+home to the first")

        # PageDown moves a screenful at a time, through rows read as they come on screen
        page = t.rows_on_screen
        for n in range(1, 6):
            await pilot.press("pagedown")
            await wait(pilot, lambda: t.cursor_row == n * page and _name(N - 1 - n * page) in cursor_line(t),
                       what=f"page {n}")


async def test_a_filter_repaints_with_the_count_of_its_whole_result(ws):
    app = app_for(ws)
    async with app.run_test(size=SMALL) as pilot:
        await loaded(pilot)
        t = table(app)
        await pilot.press("slash")
        app.focused.insert_text_at_cursor("params.seed = 2")
        await pilot.press("enter")
        # runs 2, 7, 12, ...: 600 of them, one running (1500 % 5 == 0, 100 % 5 == 0, 2900 % 5 == 0: none)
        await wait(pilot, lambda: t.total == 600 and row_line(t, _name(2997)) is not None, what="filtered")
        assert status(app) == "600 runs · sort: newest first · filter: params.seed = 2"
        assert app.focused is t
        await pilot.press("end")
        await wait(pilot, lambda: _name(2) in cursor_line(t), what="the oldest matching run")

        await pilot.press("slash", "end", "ctrl+u")
        app.focused.insert_text_at_cursor("params.seed = 0 and status = running")
        await pilot.press("enter")
        await wait(pilot, lambda: t.total == 3, what="the running ones")
        assert status(app) == "3 runs · 3 running · sort: newest first · filter: params.seed = 0 and status = running"
        assert [line.split()[2] for line in lines(t)[1:4]] == [_name(2900), _name(1500), _name(100)]
        assert t.cursor_row == 0

        await pilot.press("s")  # oldest first, over the whole result again once the filter is cleared
        await pilot.press("slash", "escape")
        await wait(pilot, lambda: t.total == N and _name(0) in cursor_line(t), what="oldest first, unfiltered")
        assert status(app) == f"{N:,} runs · 3 running · sort: oldest first"


async def test_marks_and_the_highlighted_run_survive_scrolling_and_refreshes(ws):
    app = app_for(ws)
    async with app.run_test(size=SMALL) as pilot:
        await loaded(pilot)
        t = table(app)
        await pilot.press("space", "space")  # the two newest runs; the cursor moves down each time
        await pilot.press("end")
        await wait(pilot, lambda: _name(0) in cursor_line(t), what="the oldest run")
        await pilot.press("space")  # the oldest run: the cursor stays on the last row
        await wait(pilot, lambda: " · 3 marked" in status(app), what="three marked")
        assert cursor_line(t).lstrip().startswith(MARK)
        await pilot.press("ctrl+r")  # a refresh reads the page again
        await pilot.press("home")
        await wait(pilot, lambda: _name(N - 1) in lines(t)[1], what="back at the top")
        assert [line.lstrip().startswith(MARK) for line in lines(t)[1:4]] == [True, True, False]
        assert " · 3 marked" in status(app)

        # c compares the marked runs, in the table's order
        await pilot.press("c")
        pane = app.screen.query_one("#compare-pane")
        await wait(pilot, lambda: pane.state.view.runs, what="a comparison")
        assert pane.state.view.runs == ["1paging02999", "1paging02998", "1paging00000"]
        await pilot.press("1")

        # a run added while the cursor is deep in the result: the cursor stays on the same run
        await pilot.press("end", "up", "up")
        await wait(pilot, lambda: _name(2) in cursor_line(t), what="the third-oldest run")
        conn = open_store(ws.db_path)
        with write_tx(conn):
            run_store.insert_run(conn, {"id": "1paging99999", "name": "late", "kind": "train",
                                        "status": "finished", "created": time.time()})
        conn.close()
        await wait(pilot, lambda: t.total == N + 1, what="the new run counted")
        assert t.highlighted_id == "1paging00002" and _name(2) in cursor_line(t)
        assert t.cursor_row == N - 2


async def test_a_live_runs_row_updates_in_place(ws):
    app = app_for(ws)
    async with app.run_test(size=WIDE) as pilot:
        await loaded(pilot)
        t = table(app)
        # scroll to the running run 2900 (100 rows below the top) and watch its row
        await pilot.press("home", *["down"] * (N - 1 - 2900))
        await wait(pilot, lambda: _name(2900) in cursor_line(t), what="the running run")
        assert t.get_cell("1paging02900", "m:loss").plain == f"{1 / 2901:.4g}"
        run = Run(ws, "1paging02900", attached=True, flush_interval=0)
        try:
            run.log({"loss": 0.123456789}, step=5)
            run.flush()
            await wait(pilot, lambda: "0.1235" in cursor_line(t), what="the new loss drawn")
            assert t.get_cell("1paging02900", "m:loss").plain == "0.1235"
            assert t.highlighted_id == "1paging02900"
        finally:
            run.finish()


async def test_an_unchanged_poll_reads_nothing_and_draws_nothing(ws, monkeypatch):
    from mltui.tui.panes import runs as runs_module

    frozen = time.time()
    monkeypatch.setattr("time.time", lambda: frozen)  # the relative times stand still
    reads: list[int] = []
    real_read = runs_module.read_page

    def counted(*args, **kwargs):
        reads.append(1)
        return real_read(*args, **kwargs)

    monkeypatch.setattr(runs_module, "read_page", counted)
    app = app_for(ws)
    async with app.run_test(size=WIDE) as pilot:
        await loaded(pilot)
        t = table(app)
        pane = app.screen.query_one(RunsPane)
        await pilot.press("end")  # a page far from the first, read on the way
        await wait(pilot, lambda: _name(0) in cursor_line(t), what="the oldest run")
        await pilot.pause(0.5)
        polls = [0]  # polls done, counted as they are applied: a poll that finds nothing new may not
        real_apply = pane.apply  # even start a read (Polling.quick_check), but it applies its nothing

        def counting(snapshot):
            polls[0] += 1
            return real_apply(snapshot)

        pane.apply = counting
        # attaching to a run writes to the store: done before counting, so the change below is one commit
        run = Run(ws, "1paging00000", attached=True, flush_interval=0)
        run.flush()  # what attaching waits to write goes in its own transaction: let it land now
        await wait(pilot, lambda: polls[0] >= 2, what="two polls")
        await pilot.pause(0.1)
        polls[0] = 0
        before_reads, before_lines = len(reads), t.renders
        await wait(pilot, lambda: polls[0] >= 5, what="five polls")
        await pilot.pause(0.1)
        assert len(reads) == before_reads  # nothing read but the change counter
        assert t.renders == before_lines  # nothing drawn

        # one change: read once and the changed row drawn again, not the whole screen
        run.log({"loss": 0.5}, step=9)
        run.flush()
        await wait(pilot, lambda: t.get_cell("1paging00000", "m:loss").plain == "0.5", what="the change read")
        await pilot.pause(0.5)  # (the predicate above draws nothing itself: it reads the cell)
        assert len(reads) == before_reads + 1
        assert 0 < t.renders - before_lines <= 2  # its line (and maybe the header), not every line
        assert "0.5" in cursor_line(t)
        run.finish()


async def test_compare_all_reads_the_first_runs_of_the_whole_result(ws):
    app = app_for(ws)
    async with app.run_test(size=SMALL) as pilot:
        await loaded(pilot)
        await pilot.press("C")
        await wait(pilot, lambda: type(app.screen).__name__ == "PromptScreen", what="the question")
        field = app.screen.query_one("#prompt-n", Input)
        field.value = "120"  # more than the pane holds near the top
        await pilot.press("enter")
        pane = app.screen.query_one("#compare-pane")
        await wait(pilot, lambda: len(pane.state.view.runs or []) == 120, what="120 runs compared")
        assert pane.state.view.runs == [f"1paging{i:05d}" for i in range(N - 1, N - 121, -1)]


async def test_g_groups_a_sweep_over_its_seeds_with_n_and_mean_and_std(tmp_path, monkeypatch):
    """4 configs x 5 seeds: g (accepting '*,-seed') shows 4 group rows with N=5 and the mean ± std of
    val_acc computed by hand; enter unfolds a group into its runs; g again gives the plain list."""
    import statistics

    from mltui.base.values import display

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    ws, _ = init_workspace(tmp_path / "sweep")
    ws.config_path.write_text("[tui]\nrefresh_seconds = 0.2\n", encoding="utf-8")
    configs = [("resnet", 0.1), ("resnet", 0.01), ("vit", 0.1), ("vit", 0.01)]
    acc: dict[tuple, list[float]] = {}
    conn = open_store(ws.db_path)
    with write_tx(conn):
        for c, (model, lr) in enumerate(configs):
            for seed in range(5):
                rid = f"1sweep{c}{seed}xx"
                value = 0.5 + 0.1 * c + 0.013 * seed * seed
                acc.setdefault((model, lr), []).append(value)
                run_store.insert_run(conn, {"id": rid, "name": f"{model}-{lr}-s{seed}", "kind": "train",
                                            "status": "finished", "created": BASE + 10 * c + seed})
                run_store.set_values(conn, "params", rid, {"model": model, "lr": lr, "seed": seed})
                metric_store.write_batch(conn, rid, {"val_acc": ([0], [value], [BASE])})
    conn.close()
    app = app_for(find_workspace(ws.project_dir))
    async with app.run_test(size=WIDE) as pilot:
        t = table(app)
        await wait(pilot, lambda: t.total == 20, what="20 runs")
        await pilot.press("g")
        await wait(pilot, lambda: type(app.screen).__name__ == "PromptScreen", what="the group-by question")
        assert app.screen.query_one("#prompt-spec", Input).value == "*,-seed"
        await pilot.press("enter")
        await wait(pilot, lambda: t.total == 4 and status(app).startswith("4 groups of 20 runs"), what="4 groups")
        assert "grouped by lr, model" in status(app)
        drawn = lines(t)[1:5]
        for (model, lr), values in acc.items():
            line = next(line for line in drawn if f"model={model} " in f"{line} " and f"lr={lr} " in f"{line} ")
            assert "▸ N=5" in line
            assert f"{display(statistics.mean(values))}±{display(statistics.stdev(values))}" in line
        # enter unfolds the highlighted group: its five runs under it
        first = t.row_at(0)["group"]
        await pilot.press("enter")
        await wait(pilot, lambda: t.total == 9, what="the group unfolded")
        assert "▾ N=5" in lines(t)[1]
        assert sorted(t.row_keys()[1:6]) == sorted(first.run_ids)
        await pilot.press("down", "enter")  # enter on a run opens it
        await wait(pilot, lambda: type(app.screen).__name__ == "RunDetailScreen", what="the run's detail")
        assert app.screen.run_id == t.row_keys()[1]
        await pilot.press("escape")
        await pilot.press("g")  # back to the plain list
        await wait(pilot, lambda: t.total == 20 and status(app).startswith("20 runs"), what="ungrouped")
