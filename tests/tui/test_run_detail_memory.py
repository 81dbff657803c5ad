"""The run detail view shows the command's peak RSS (what the supervisor samples with its heartbeat) and
a store that could not be written for a while, as `runs show` does; both are data, drawn literally.

Driven headless through `App.run_test` with real keys, against a real workspace whose runs are written
through the tracking API and whose peak RSS and store trouble are set through the store's own writers."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console
from textual.geometry import Region
from textual.widgets import Static

from mltui.base.text import gigabytes
from mltui.core.runs.tracking import Run, create_run
from mltui.core.workspace import init_workspace
from mltui.store import runs as run_store
from mltui.store.connection import write_tx
from mltui.store.opening import open_store
from mltui.tui.app import create_app
from mltui.tui.screens.main import MainScreen
from mltui.tui.screens.run_detail import RunDetailScreen
from mltui.tui.widgets.runs_table import RunsTable

SIZE = (120, 40)
GB = 2**30


@pytest.fixture(autouse=True)
def quiet_env(tmp_path, monkeypatch):
    """No user themes from ~/.config, no attached run id, no workspace from the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("MLTUI_RUN_ID", raising=False)
    monkeypatch.delenv("MLTUI_WORKSPACE", raising=False)


@pytest.fixture
def ws(tmp_path):
    (tmp_path / "proj").mkdir()
    ws, _ = init_workspace(tmp_path / "proj")
    ws.config_path.write_text("[tui]\nrefresh_seconds = 0.2\n", encoding="utf-8")
    return ws


def make_run(ws, name: str, created: float) -> str:
    run_id = create_run(ws, name=name, status="finished", created=created)
    run = Run(ws, run_id, attached=True, flush_interval=0)  # attached: finish() keeps the status
    run.log({"loss": 1.0}, step=0)
    run.finish()
    return run_id


def write(ws, change) -> None:
    """`change(conn)` through the store's writers, in one transaction."""
    conn = open_store(ws.db_path)
    try:
        with write_tx(conn, ws.db_path):
            change(conn)
    finally:
        conn.close()


async def wait(pilot, predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (screen {type(pilot.app.screen).__name__})")
        await pilot.pause(0.05)


def drawn(widget) -> list[str]:
    """The widget's lines as drawn on screen."""
    width, height = widget.size
    return [strip.text.rstrip() for strip in widget.render_lines(Region(0, 0, width, height))]


def info_rows(screen) -> list[str]:
    """The side table's rows, each with its runs of spaces made one."""
    console = Console(file=io.StringIO(), width=120, color_system=None, legacy_windows=False)
    console.print(screen.query_one("#detail-info", Static).content)
    return [" ".join(line.split()) for line in console.file.getvalue().splitlines()]


async def open_detail(pilot, run_id: str) -> RunDetailScreen:
    app = pilot.app
    table = app.screen.query_one(RunsTable)
    await wait(pilot, lambda: table.row_count == 2)
    while table.highlighted_id != run_id:
        await pilot.press("down")
    await pilot.press("enter")
    await wait(pilot, lambda: isinstance(app.screen, RunDetailScreen)
               and any(row.startswith("kind ") for row in info_rows(app.screen)))
    assert app.screen.run_id == run_id
    return app.screen


async def test_the_detail_view_shows_the_peak_rss_and_the_store_trouble_and_follows_the_peak(ws):
    now = time.time()
    plain = make_run(ws, "plain", created=now - 20)
    heavy = make_run(ws, "heavy", created=now - 10)
    cause = "[bold red]the disk is full[/]\x1b[2J"  # stands for anything a store row might hold
    write(ws, lambda conn: (run_store.raise_peak_rss(conn, heavy, 3 * GB + GB // 4),
                            run_store.note_store_trouble(conn, heavy, cause, 1234)))

    app = create_app(ws)
    app.animation_level = "none"
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(pilot, heavy)
        rows = info_rows(detail)
        assert f"peak RSS {gigabytes(3 * GB + GB // 4)}" in rows and gigabytes(3 * GB + GB // 4) == "3.25 GB"
        on_screen = " ".join(" ".join(drawn(detail.query_one("#detail-info"))).split())  # wrapped lines joined
        assert "peak RSS 3.25 GB" in on_screen
        assert "([bold red]the disk is full[/]\\x1b[2J); 1,234 metric points dropped" in on_screen  # literal
        assert "\x1b" not in on_screen

        # live: the supervisor raises the peak at its heartbeat; the open view follows it
        write(ws, lambda conn: run_store.raise_peak_rss(conn, heavy, 12 * GB))
        await wait(pilot, lambda: "peak RSS 12.0 GB" in info_rows(detail))

        await pilot.press("escape")
        await wait(pilot, lambda: isinstance(app.screen, MainScreen))
        detail = await open_detail(pilot, plain)  # no sample, no trouble: no such lines
        rows = info_rows(detail)
        assert not [row for row in rows if row.startswith(("peak", "store"))], rows
