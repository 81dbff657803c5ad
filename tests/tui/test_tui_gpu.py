"""The GPUs pane with real keys: simulated GPUs (the only stand-in), real launched runs owning GPU processes."""

from __future__ import annotations

import pytest
from textual.widgets import Static, TabbedContent

from launching import kill_workspace_processes, status, until, wait_for, wait_output
from mltui.core.launch.launcher import Launch, launch
from mltui.tui.app import create_app
from mltui.tui.modals.confirm import ConfirmScreen
from mltui.tui.panes.gpus import GpuPane
from mltui.tui.screens.main import MainScreen
from mltui.tui.screens.run_detail import RunDetailScreen

SLEEPER = "import time; print('ready', flush=True); time.sleep(60)"


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for var in ("MLTUI_RUN_ID", "MLTUI_WORKSPACE", "MLTUI_RUN_DIR", "MLTUI_GPU_SIM", "MLTUI_GPU_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    yield
    kill_workspace_processes(tmp_path / ".mltui")


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def show_gpus(pilot) -> GpuPane:
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, MainScreen)
                and str(app.screen.query_one("#runs-status", Static).render()) != "", what="the main screen")
    await pilot.press("4")
    await until(pilot, lambda: app.screen.query_one(TabbedContent).active == "gpus", what="the GPUs tab")
    pane = app.screen.query_one(GpuPane)
    await until(pilot, lambda: pane.snapshot is not None, what="the first GPU poll")
    return pane


async def test_eight_gpus_fit_at_80x24(ws, monkeypatch):
    monkeypatch.setenv("MLTUI_GPU", "sim:8")
    app = create_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await show_gpus(pilot)
        cards = app.screen.query_one("#gpu-cards", Static)
        lines = text_of(app, "#gpu-cards").splitlines()
        assert [line.split()[0] for line in lines] == [str(i) for i in range(8)]
        assert all("%" in line and "/80G" in line for line in lines)
        assert cards.region.height == 8 and cards.region.bottom <= 23  # all on screen above the footer
        assert app.screen.query_one("#gpu-error").display is False


async def test_no_gpu_is_one_sentence(ws, monkeypatch):
    monkeypatch.setenv("MLTUI_GPU", "none")
    app = create_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await show_gpus(pilot)
        error = text_of(app, "#gpu-error")
        assert error.endswith(".") and "\n" not in error.strip()
        assert text_of(app, "#gpu-cards").strip() == ""


async def test_a_gpu_process_shows_its_run_and_keys_open_and_kill_it(ws, monkeypatch):
    monkeypatch.setenv("MLTUI_GPU", "sim:2")
    run_id = launch(ws, Launch(["python", "-c", SLEEPER], name="on-the-gpu", gpus=1))
    wait_output(ws, run_id, "ready")
    app = create_app(ws)
    async with app.run_test(size=(120, 30)) as pilot:
        pane = await show_gpus(pilot)
        table = app.screen.query_one("#gpu-procs")
        await until(pilot, lambda: table.row_count == 1, what="the run's GPU process")
        assert "on-the-gpu" in [str(cell) for cell in table.get_row_at(0)]
        assert pane.highlighted_run_id() == run_id
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="the run's detail")
        assert app.screen.run_id == run_id
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, RunDetailScreen), what="back to the pane")
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the kill question")
        await pilot.press("y")
        await until(pilot, lambda: status(ws, run_id) == "killed", timeout=15, what="the run to be killed")
    wait_for(lambda: status(ws, run_id) == "killed", 5)
