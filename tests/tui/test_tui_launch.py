"""Launching, following, killing and rerunning runs from the TUI, with real keys and real processes.

Every test drives the app from `create_app(ws)` through `App.run_test` with `pilot.press(...)`, on a
real workspace in tmp_path (`tmp_path/.mltui`) whose project folder holds a `mltui.toml` with tiny
Python commands. Launched runs are real detached supervisors and children: the tests poll the
store and the screen with deadlines, never a fixed sleep, and the fixture `project`
SIGKILLs whatever a test left running (by the pids in the runs table, plus the queue worker).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import textwrap
import time
from pathlib import Path

import pytest
from textual.geometry import Region
from textual.widgets import Checkbox, DataTable, Input, Select, Static

from mltui.base.procs import pid_alive
from mltui.core.runs.listing import get_run
from mltui.core.workspace import Workspace
from mltui.tui.app import MltuiApp, create_app
from mltui.tui.modals.confirm import ConfirmScreen
from mltui.tui.modals.launch import LaunchScreen
from mltui.tui.screens.log import LogScreen
from mltui.tui.screens.main import MainScreen
from mltui.tui.screens.run_detail import RunDetailScreen
from mltui.tui.panes.runs import RunsPane
from mltui.tui.widgets.log_view import LogView
from mltui.tui.widgets.runs_table import RunsTable
from launching import kill_workspace_processes, output, wait_for  # noqa: E402

SMALL = (80, 24)
BIG = (160, 50)

CONFIG = """\
[tui]
refresh_seconds = 0.2

[runs]
heartbeat_seconds = 0.5
lost_after_seconds = 30.0
kill_grace_seconds = 2.0

[queue]
max_parallel = 1
"""

# The commands of the project. `python` in a template is the interpreter mltui runs in.
PROJECT = """\
[commands.count]
run = "python count.py --n {n} --pause {pause}"
params = { n = 3, pause = 0.05 }

[commands.gate]
run = "python gate.py"

[commands.fail]
run = "python fail.py"
kind = "eval"

[commands.echo]
run = "python echo.py --msg {msg} --tag {tag}"
params = { msg = "hello" }

[commands.art]
run = "python art.py"
"""

SCRIPTS = {
    # numbered lines, slowly
    "count.py": """
        import sys, time
        def arg(flag, default):
            return sys.argv[sys.argv.index(flag) + 1] if flag in sys.argv else default
        n, pause = int(arg("--n", 3)), float(arg("--pause", 0))
        for i in range(1, n + 1):
            print(f"line {i}", flush=True)
            time.sleep(pause)
    """,
    # three lines, then waits for the file `go` (the test says when), three more, exits 0
    "gate.py": """
        import os, time
        for i in range(1, 4):
            print(f"before {i}", flush=True)
        end = time.time() + 60
        while not os.path.exists("go") and time.time() < end:
            time.sleep(0.05)
        for i in range(4, 7):
            print(f"after {i}", flush=True)
    """,
    "fail.py": """
        import sys
        print("about to fail", flush=True)
        sys.exit(3)
    """,
    # its argv one element a line, then output that looks like markup and terminal escapes
    "echo.py": """
        import sys, time
        for arg in sys.argv[1:]:
            print("arg=" + repr(arg), flush=True)
        print("[bold]x[/]", flush=True)
        print("\\x1b[31mred\\x1b[0m plain", flush=True)
        print("bell\\x07here", flush=True)
        print("[link=https://example.com]click[/link]", flush=True)
        time.sleep(30)
    """,
    # writes an artifact into its run folder, then waits for `go`
    "art.py": """
        import os, pathlib, time
        out = pathlib.Path(os.environ["MLTUI_RUN_DIR"]) / "artifacts" / "model.txt"
        out.write_text("weights\\n")
        print("saved", flush=True)
        end = time.time() + 60
        while not os.path.exists("go") and time.time() < end:
            time.sleep(0.05)
    """,
    "sleeper.py": """
        import time
        print("ready", flush=True)
        time.sleep(60)
    """,
}

ACTIVE = ("running", "queued")
ENDED = ("finished", "failed", "killed", "lost")


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def tui_env(tmp_path, monkeypatch):
    """No user themes from ~/.config, no attached run, cwd in the project (where mltui.toml is)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for var in ("MLTUI_RUN_ID", "MLTUI_WORKSPACE", "MLTUI_RUN_DIR", "MLTUI_DEBUG"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def project(ws):
    """`ws` (tmp_path/.mltui) with a fast config, and tmp_path holding mltui.toml and the scripts.

    Afterwards nothing the test launched is left running: every pid the runs table names (and the
    queue worker) gets SIGKILL, and the fixture checks they are gone."""
    ws.config_path.write_text(CONFIG, encoding="utf-8")
    (ws.project_dir / "mltui.toml").write_text(PROJECT, encoding="utf-8")
    for name, body in SCRIPTS.items():
        (ws.project_dir / name).write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    yield ws
    kill_workspace_processes(ws.root)
    conn = sqlite3.connect(ws.db_path, timeout=10)
    try:
        rows = conn.execute("SELECT pid, sup_pid FROM runs").fetchall()
    finally:
        conn.close()
    pids = [p for r in rows for p in r if p]
    deadline = time.monotonic() + 5
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if pid_alive(p)], "a launched process outlived its test"


# -- helpers -----------------------------------------------------------------------------------


async def until(pilot, fn, timeout: float = 10.0, what: str = "the condition"):
    """Let the app run until `fn()` is truthy (returned); fails saying what the app showed."""
    deadline = time.monotonic() + timeout
    while True:
        await pilot.pause()
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            app = pilot.app
            seen = {"screen": type(app.screen).__name__, "notifications": messages(app)}
            if isinstance(app.screen, LaunchScreen):
                seen["error"] = launch_error(app)
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; saw {seen}")
        await asyncio.sleep(0.05)


def app_for(ws: Workspace) -> MltuiApp:
    app = create_app(ws)
    app.animation_level = "none"
    return app


def runs(ws: Workspace) -> list[dict]:
    """Every run in the store, oldest first, in full."""
    conn = sqlite3.connect(ws.db_path, timeout=10)
    try:
        ids = [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY created, id")]
        return [get_run(conn, run_id) for run_id in ids]
    finally:
        conn.close()


def run_row(ws: Workspace, run_id: str) -> dict:
    conn = sqlite3.connect(ws.db_path, timeout=10)
    try:
        return get_run(conn, run_id)
    finally:
        conn.close()


def status_of(ws: Workspace, run_id: str) -> str:
    return run_row(ws, run_id)["status"]


def messages(app) -> list[str]:
    return [n.message for n in app._notifications]


def launch_error(app) -> str:
    return str(app.screen.query_one("#launch-error", Static).render())


def table(app) -> RunsTable:
    return app.screen.query_one("#runs-table", RunsTable)


def row_keys(app) -> list[str]:
    return table(app).row_keys()


def cell(app, run_id: str, column: str) -> str | None:
    """The cell's text, or None while the table does not hold the run yet (it shows a run from the
    first poll after it was recorded)."""
    try:
        return table(app).get_cell(run_id, column).plain
    except KeyError:
        return None


def drawn(widget) -> list[str]:
    """The widget's lines as drawn (trailing blanks stripped)."""
    width, height = widget.size
    if isinstance(widget, (DataTable, RunsTable, LogView)):
        return [widget.render_line(y).text.rstrip() for y in range(height)]
    return [strip.text.rstrip() for strip in widget.render_lines(Region(0, 0, width, height))]


def log_lines(app) -> list[str]:
    return [line for line in drawn(app.screen.query_one(LogView)) if line]


def screen_text(app) -> str:
    """Every line of the terminal as the app last composed it."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def ready(pilot) -> None:
    """The main screen has polled the store once."""
    await until(pilot, lambda: isinstance(pilot.app.screen, MainScreen)
                and str(pilot.app.screen.query_one("#runs-status", Static).render()) != "", what="the Runs pane")


async def open_dialog(pilot) -> LaunchScreen:
    await pilot.press("n")
    screen = await until(pilot, lambda: isinstance(pilot.app.screen, LaunchScreen) and pilot.app.screen,
                         what="the launch dialog")
    await until(pilot, lambda: screen.query("#launch-fields Input"), what="the dialog's fields")
    return screen


async def choose(pilot, option: str) -> None:
    """Pick an option of the dialog's command Select with the keyboard: focus it, open it, walk to it."""
    app = pilot.app
    select = app.screen.query_one("#launch-command", Select)
    for _ in range(8):
        if app.focused is select:
            break
        await pilot.press("shift+tab")
    assert app.focused is select
    await pilot.press("enter")  # opens the list
    labels = [str(prompt) for prompt, _ in select._options]
    want = labels.index(option)
    now = next(i for i, (_, value) in enumerate(select._options) if value == select.value)
    keys = ["down"] * (want - now) if want >= now else ["up"] * (now - want)
    await pilot.press(*keys, "enter")
    await until(pilot, lambda: labels[[v for _, v in select._options].index(select.value)] == option,
                what=f"the Select to show {option!r}")


def param_input(app, key: str) -> Input:
    return next(i for i in app.screen.query("#launch-fields Input.param").results(Input) if i.name == key)


async def focus(pilot, widget) -> None:
    """Tab (keys only) until `widget` has the focus."""
    for _ in range(12):
        if pilot.app.focused is widget:
            return
        await pilot.press("tab")
    assert pilot.app.focused is widget, f"tab never reached {widget!r}"


async def retype(pilot, text: str) -> None:
    """Select everything in the focused Input, delete it, type `text` key by key."""
    assert isinstance(pilot.app.focused, Input)
    await pilot.press("ctrl+shift+a", "backspace")
    assert pilot.app.focused.value == ""
    await pilot.press(*text)
    assert pilot.app.focused.value == text


async def launch_with_keys(pilot, ws, command: str | None = None, **params) -> str:
    """Open the dialog with n, choose `command` (default: the first), type params, enter; the new run's id."""
    before = {r["id"] for r in runs(ws)}
    await open_dialog(pilot)
    if command is not None:
        await choose(pilot, command)
    for key, value in params.items():
        field = param_input(pilot.app, key)
        await focus(pilot, field)
        await retype(pilot, value)
    # enter launches from an Input; a command without params leaves the focus on the Select (enter
    # would open it again), so ctrl+s
    await pilot.press("enter" if isinstance(pilot.app.focused, Input) else "ctrl+s")
    await until(pilot, lambda: isinstance(pilot.app.screen, MainScreen), what="the dialog to close")
    new = [r["id"] for r in runs(ws) if r["id"] not in before]
    assert len(new) == 1, new
    return new[0]


async def highlight(pilot, run_id: str) -> None:
    """Move the Runs table's cursor onto `run_id` with up/down."""
    await until(pilot, lambda: run_id in row_keys(pilot.app), what=f"{run_id} in the table")
    t = table(pilot.app)
    target = row_keys(pilot.app).index(run_id)
    while t.cursor_row != target:
        await pilot.press("down" if t.cursor_row < target else "up")
        target = row_keys(pilot.app).index(run_id)
    assert t.highlighted_id == run_id


# -- 1. n, edit a param, enter --------------------------------------------------------------------


@pytest.mark.parametrize("size", [SMALL, BIG], ids=["80x24", "160x50"])
async def test_n_opens_the_dialog_and_enter_launches_with_the_typed_param(project, size):
    app = app_for(project)
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        screen = await open_dialog(pilot)
        select = screen.query_one("#launch-command", Select)
        assert [str(prompt) for prompt, _ in select._options] == ["count", "gate", "fail", "echo", "art",
                                                                    "a command line…"]
        assert select.value == "count"
        template = str(screen.query_one("#launch-template", Static).render())
        assert template == "python count.py --n {n} --pause {pause}"
        assert [(i.name, i.value) for i in screen.query("#launch-fields Input.param").results(Input)] == [
            ("n", "3"), ("pause", "0.05")]
        # the dialog is drawn inside the terminal, the error line empty
        assert screen.query_one("#launch").region.right <= size[0]
        assert launch_error(app) == ""
        assert app.focused is param_input(app, "n")  # the first param has the focus

        await retype(pilot, "7")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), what="the dialog to close")

        (run,) = runs(project)
        assert run["params"] == {"n": 7, "pause": 0.05}
        argv = run["command"]
        assert argv[argv.index("--n") + 1] == "7"
        assert run["kind"] == "other"
        assert f"Started count as run {run['id']}." in messages(app)

        # it runs and its output is there; the table shows it
        await until(pilot, lambda: run["id"] in row_keys(app), what="the run in the table")
        assert cell(app, run["id"], "name") == run["name"]
        wait_for(lambda: status_of(project, run["id"]) == "finished", what="the run to finish")
        assert output(project, run["id"]).splitlines() == [f"line {i}" for i in range(1, 8)]
        await until(pilot, lambda: cell(app, run["id"], "status") == "✓ finished", what="finished in the table")


async def test_markup_and_shell_characters_in_a_param_reach_argv_as_one_element(project):
    value = "[bold]x[/] $(touch pwned)|'q'\"d\";*"
    app = app_for(project)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot)
        run_id = await launch_with_keys(pilot, project, "echo", tag=value)
        run = run_row(project, run_id)
        assert run["params"] == {"msg": "hello", "tag": value}
        argv = run["command"]
        assert argv[argv.index("--tag") + 1] == value
        assert argv[-4:] == ["--msg", "hello", "--tag", value]
        wait_for(lambda: f"arg={value!r}" in output(project, run_id), what="the child to print its argv")
        assert not (project.project_dir / "pwned").exists()  # no shell ever saw it
        # the notice and the table show the name literally
        assert f"Started echo as run {run_id}." in messages(app)


# -- 2. an ad-hoc command line ---------------------------------------------------------------------


async def test_a_typed_command_line_launches_an_ad_hoc_run(project):
    app = app_for(project)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot)
        screen = await open_dialog(pilot)
        await choose(pilot, "a command line…")
        argv_input = await until(pilot, lambda: screen.query("#launch-argv") and screen.query_one("#launch-argv", Input),
                                 what="the command line input")
        assert not screen.query("#launch-fields Input.param")
        assert "never run by one" in str(screen.query_one("#launch-template", Static).render())
        await focus(pilot, argv_input)
        await pilot.press(*"python count.py --n 2", "enter")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), what="the dialog to close")
        (run,) = runs(project)
        assert run["command"][1:] == ["count.py", "--n", "2"]
        assert Path(run["command"][0]).name.startswith("python")
        assert run["params"] == {}
        assert f"Started count as run {run['id']}." in messages(app)
        wait_for(lambda: status_of(project, run["id"]) == "finished", what="the ad-hoc run to finish")
        assert output(project, run["id"]) == "line 1\nline 2\n"


# -- 3. errors stay in the dialog ------------------------------------------------------------------


async def test_errors_are_one_sentence_in_the_dialog_and_nothing_is_recorded(project):
    app = app_for(project)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot)
        screen = await open_dialog(pilot)

        # a required param left empty
        await choose(pilot, "echo")
        tag = await until(pilot, lambda: [i for i in screen.query("#launch-fields Input.param").results(Input)
                                          if i.name == "tag"], what="echo's fields")
        assert tag[0].value == "" and tag[0].placeholder == "(required)"
        await focus(pilot, tag[0])
        await pilot.press("enter")
        await until(pilot, lambda: launch_error(app), what="an error")
        error = launch_error(app)
        assert error.startswith("Fill in tag")
        assert error.count(". ") == 0 and error.endswith(".")  # one sentence
        assert app.screen is screen
        assert runs(project) == []

        # an unknown program, typed as a command line
        await choose(pilot, "a command line…")
        argv_input = await until(pilot, lambda: screen.query("#launch-argv") and screen.query_one("#launch-argv", Input))
        await focus(pilot, argv_input)
        await pilot.press(*"nope-zz -x", "ctrl+s")
        await until(pilot, lambda: "nope-zz" in launch_error(app), what="the unknown program error")
        assert launch_error(app) == "Cannot run 'nope-zz': it is not on PATH."
        # a command line that cannot be split, and an empty one
        await retype(pilot, "python 'x")
        await pilot.press("enter")
        await until(pilot, lambda: "cannot be split" in launch_error(app))
        await pilot.press("ctrl+shift+a", "backspace", "enter")
        await until(pilot, lambda: launch_error(app) == "Type the command to run.")
        assert app.screen is screen
        assert runs(project) == []

        # esc cancels: nothing recorded, back on the Runs table
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        assert app.focused is table(app)
        assert runs(project) == []
        assert not [m for m in messages(app) if "Started" in m]


async def test_negative_gpus_are_refused_in_the_dialog(project):
    app = app_for(project)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot)
        screen = await open_dialog(pilot)
        gpus = screen.query_one("#launch-gpus", Input)
        await focus(pilot, gpus)
        await pilot.press("-", "1", "enter")
        await until(pilot, lambda: launch_error(app), what="an error")
        assert "0 or more" in launch_error(app)
        assert app.screen is screen and runs(project) == []


async def test_a_broken_mltui_toml_is_explained_in_the_dialog(project):
    (project.project_dir / "mltui.toml").write_text('[commands.count]\nrun = "python count.py\n', encoding="utf-8")
    app = app_for(project)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot)
        await pilot.press("n")
        screen = await until(pilot, lambda: isinstance(app.screen, LaunchScreen) and app.screen)
        await until(pilot, lambda: launch_error(app), what="the problem to be shown")
        error = launch_error(app)
        assert error.startswith(f"{project.project_dir / 'mltui.toml'} is not valid TOML")
        # only the command line is left to choose, and it still works
        select = screen.query_one("#launch-command", Select)
        assert [str(p) for p, _ in select._options] == ["a command line…"]
        argv_input = await until(pilot, lambda: screen.query("#launch-argv") and screen.query_one("#launch-argv", Input))
        assert app.focused is not None
        await focus(pilot, argv_input)
        await pilot.press(*"python count.py", "enter")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        (run,) = runs(project)
        wait_for(lambda: status_of(project, run["id"]) == "finished")


# -- 4. the queue ----------------------------------------------------------------------------------


async def test_queue_it_puts_the_run_in_the_queue(project):
    app = app_for(project)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot)
        screen = await open_dialog(pilot)
        await choose(pilot, "gate")
        box = screen.query_one("#launch-queue", Checkbox)
        assert box.value is False
        await focus(pilot, box)
        await pilot.press("space")
        assert box.value is True
        await pilot.press("ctrl+s")  # enter on the checkbox would toggle it
        await until(pilot, lambda: isinstance(app.screen, MainScreen), what="the dialog to close")
        (run,) = runs(project)
        assert run["status"] in ACTIVE
        assert run["spec"]["queue"] is True
        assert f"Queued gate as run {run['id']}." in messages(app)
        # the queue worker starts it (max_parallel = 1, nothing else running)
        wait_for(lambda: "before 3" in output(project, run["id"]), what="the queue worker to start it")
        await until(pilot, lambda: cell(app, run["id"], "status") == "▶ running", what="running in the table")
        (project.project_dir / "go").touch()
        wait_for(lambda: status_of(project, run["id"]) == "finished", what="the queued run to finish")


# -- 5. the log screen -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [SMALL, BIG], ids=["80x24", "160x50"])
async def test_l_shows_the_output_as_it_arrives_and_escape_goes_back(project, size):
    app = app_for(project)
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        run_id = await launch_with_keys(pilot, project, "gate")
        await highlight(pilot, run_id)
        wait_for(lambda: "before 3" in output(project, run_id), what="the first lines")
        await pilot.press("l")
        log = await until(pilot, lambda: isinstance(app.screen, LogScreen) and app.screen)
        assert log.run_id == run_id
        await until(pilot, lambda: log_lines(app) == ["before 1", "before 2", "before 3"], what="the first lines")
        header = str(log.query_one("#log-header", Static).render())
        assert "running" in header and run_id in header

        (project.project_dir / "go").touch()  # the rest arrives while the screen is open
        await until(pilot, lambda: log_lines(app)[-1:] == ["after 6"], what="the lines that came later")
        assert log_lines(app) == ["before 1", "before 2", "before 3", "after 4", "after 5", "after 6"]
        await until(pilot, lambda: "finished" in str(log.query_one("#log-header", Static).render()),
                    what="the header to say finished")

        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        assert app.focused is table(app)


async def test_the_log_shows_markup_and_escapes_literally(project):
    app = app_for(project)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot)
        run_id = await launch_with_keys(pilot, project, "echo", tag="[red]t[/]")
        await highlight(pilot, run_id)
        wait_for(lambda: "[link=" in output(project, run_id), what="the markup lines")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogScreen))
        await until(pilot, lambda: len(log_lines(app)) >= 8, what="every line")
        lines = log_lines(app)
        assert "[bold]x[/]" in lines
        assert "red plain" in lines  # the colour sequences dropped, the text kept
        assert "bell\\x07here" in lines  # a control character made visible
        assert "[link=https://example.com]click[/link]" in lines
        assert "arg='[red]t[/]'" in lines
        assert not any("\x1b" in line or "\x07" in line for line in lines)
        # and on the screen as a whole
        shown = screen_text(app)
        assert "[bold]x[/]" in shown and "red plain" in shown
        assert "\x1b" not in shown
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))


# -- 6. kill ---------------------------------------------------------------------------------------


async def test_k_asks_first_n_keeps_it_k_y_kills_it(project):
    app = app_for(project)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot)
        run_id = await launch_with_keys(pilot, project, "gate")
        wait_for(lambda: run_row(project, run_id)["pid"], what="the child to start")
        await highlight(pilot, run_id)
        await until(pilot, lambda: cell(app, run_id, "status") == "▶ running")

        kills: list[str] = []  # what the answers asked to kill (the kill itself still happens)
        real_kill = app._kill
        app._kill = lambda kill_id, name: (kills.append(kill_id), real_kill(kill_id, name))[1]

        await pilot.press("k")
        confirm = await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen)
        question = " ".join(" ".join(drawn(confirm.query(Static).first())).split())
        name = run_row(project, run_id)["name"]
        assert question.startswith(f"Kill {name} ({run_id})? SIGTERM")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))

        await pilot.press("k")
        # the app handles its messages in order: by the time k asks again, the answer n was dealt with
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen is not confirm)
        assert kills == []  # n asked for nothing
        assert status_of(project, run_id) == "running"
        assert pid_alive(run_row(project, run_id)["pid"])
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        wait_for(lambda: status_of(project, run_id) == "killed", timeout=5, what="the run to be killed")
        assert kills == [run_id]
        run = run_row(project, run_id)
        assert "runs kill" in run["reason"]
        wait_for(lambda: not pid_alive(run["pid"]), timeout=5, what="the child to be gone")
        await until(pilot, lambda: cell(app, run_id, "status") == "■ killed" or "killed" in cell(app, run_id, "status"))
        await until(pilot, lambda: any(m.endswith("killed.") for m in messages(app)), what="the kill notice")

        # k on an ended run says there is nothing to kill, without asking
        await pilot.press("k")
        await until(pilot, lambda: any("nothing to kill" in m for m in messages(app)))
        assert isinstance(app.screen, MainScreen)


# -- 7. rerun --------------------------------------------------------------------------------------


async def test_r_reruns_the_highlighted_run_with_the_same_params(project):
    app = app_for(project)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot)
        first = await launch_with_keys(pilot, project, "count", n="4", pause="0")
        wait_for(lambda: status_of(project, first) == "finished")
        await highlight(pilot, first)
        await pilot.press("r")
        second = await until(pilot, lambda: [r["id"] for r in runs(project) if r["id"] != first], what="a rerun")
        assert len(second) == 1
        rerun = run_row(project, second[0])
        original = run_row(project, first)
        assert rerun["rerun_of"] == first
        assert rerun["params"] == original["params"] == {"n": 4, "pause": 0}
        assert rerun["command"] == original["command"]
        await until(pilot, lambda: any(m == f"Started {rerun['id']}, a rerun of {original['name']}." for m in messages(app)))
        await until(pilot, lambda: row_keys(app)[:1] == [rerun["id"]], what="the rerun at the top")
        wait_for(lambda: status_of(project, rerun["id"]) == "finished")
        assert output(project, rerun["id"]) == "line 1\nline 2\nline 3\nline 4\n"


# -- 8. live status in the table -------------------------------------------------------------------


async def test_the_table_follows_a_run_from_running_to_finished_without_keys(project):
    app = app_for(project)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot)
        run_id = await launch_with_keys(pilot, project, "gate")
        await until(pilot, lambda: run_id in row_keys(app) and cell(app, run_id, "status") == "▶ running",
                    what="running in the table")
        (project.project_dir / "go").touch()
        await until(pilot, lambda: cell(app, run_id, "status") == "✓ finished", what="finished in the table")
        name = run_row(project, run_id)["name"]
        await until(pilot, lambda: any(name in line and "finished" in line for line in drawn(table(app))),
                    what="finished drawn on the run's line")


async def test_a_run_whose_supervisor_was_sigkilled_becomes_lost_in_the_table(project):
    app = app_for(project)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot)
        pane = app.screen.query_one(RunsPane)
        run_id = await launch_with_keys(pilot, project, "gate")
        run = wait_for(lambda: (r := run_row(project, run_id))["pid"] and r, what="the child to start")
        await until(pilot, lambda: run_id in row_keys(app) and cell(app, run_id, "status") == "▶ running")
        pane.reap_every = 0.2
        os.kill(run["sup_pid"], signal.SIGKILL)
        await until(pilot, lambda: "lost" in cell(app, run_id, "status"), what="lost in the table")
        lost = run_row(project, run_id)
        assert lost["status"] == "lost"
        assert str(run["sup_pid"]) in lost["reason"]
        os.killpg(run["pgid"], signal.SIGKILL)  # its orphaned child


# -- 9. the run detail -----------------------------------------------------------------------------


async def test_detail_shows_the_artifact_a_run_wrote(project):
    app = app_for(project)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot)
        run_id = await launch_with_keys(pilot, project, "art")
        await highlight(pilot, run_id)
        await pilot.press("enter")
        detail = await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen)
        assert detail.run_id == run_id

        def info() -> str:
            return "\n".join(drawn(detail.query_one("#detail-info")))

        await until(pilot, lambda: "model.txt" in info(), what="the artifact in the detail")
        row = next(line for line in info().splitlines() if "model.txt" in line)
        assert "8 B" in row
        assert {a["path"] for a in run_row(project, run_id)["artifacts"]} == {"artifacts/model.txt"}
        assert "artifacts/model.txt" in row

        # l from the detail opens the log; escape comes back to the detail
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogScreen))
        await until(pilot, lambda: log_lines(app)[:1] == ["saved"])
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is detail)
        (project.project_dir / "go").touch()
        wait_for(lambda: status_of(project, run_id) == "finished")


async def test_detail_shows_why_the_exit_3_run_failed(project):
    app = app_for(project)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot)
        run_id = await launch_with_keys(pilot, project, "fail")
        await until(pilot, lambda: run_id in row_keys(app) and "failed" in cell(app, run_id, "status"),
                    what="failed in the table")
        await highlight(pilot, run_id)
        await pilot.press("enter")
        detail = await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen)

        def header() -> str:
            return " ".join(" ".join(drawn(detail.query_one("#detail-header"))).split())

        await until(pilot, lambda: "exit code 3" in header(), what="the exit code in the header")
        assert "failed" in header()
        assert "the command exited with code 3" in header()
        assert run_row(project, run_id)["reason"] == "the command exited with code 3"
        assert run_row(project, run_id)["kind"] == "eval"


# -- 10. key bindings can be remapped --------------------------------------------------------------


def test_the_run_actions_have_binding_ids():
    ids = {b.id: b.action for cls in (RunsPane, RunDetailScreen, LogScreen) for b in cls.BINDINGS}
    assert ids["runs.launch"] == "app.launch"
    assert ids["runs.log"] == "app.open_log"
    assert ids["runs.kill"] == "app.kill_run"
    assert ids["runs.rerun"] == "app.rerun"
    assert ids["detail.log"] == "app.open_log"
    assert ids["log.back"] == "app.pop_screen"


async def test_keys_from_config_remap_launch_and_log(project):
    project.config_path.write_text(CONFIG + '\n[keys]\n"runs.launch" = "a"\n"runs.log" = "o"\n"log.back" = "b"\n',
                                   encoding="utf-8")
    app = app_for(project)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot)
        launches: list[int] = []
        real_launch = app.action_launch
        app.action_launch = lambda: (launches.append(1), real_launch())[1]
        await pilot.press("n", "s")  # n is no longer bound; s sorts the Runs pane
        # keys are handled in order: once the sort shows, n has been dealt with (had n opened the
        # dialog, s would have gone to the dialog and the Runs pane stayed as it was)
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and str(
            app.screen.query_one("#runs-status", Static).render()).endswith("sort: oldest first"), what="the sort")
        assert launches == [] and isinstance(app.screen, MainScreen)
        await pilot.press("a")
        screen = await until(pilot, lambda: isinstance(app.screen, LaunchScreen) and app.screen)
        await until(pilot, lambda: screen.query("#launch-fields Input.param"))
        assert launches == [1]
        await retype(pilot, "2")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        (run,) = runs(project)
        await highlight(pilot, run["id"])
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, LogScreen))
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        wait_for(lambda: status_of(project, run["id"]) == "finished")


# -- queued runs: k takes one off the queue ------------------------------------------------------------


async def test_k_on_a_queued_run_takes_it_off_the_queue(project):
    app = app_for(project)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot)
        blocker = await launch_with_keys(pilot, project, "gate")  # max_parallel = 1 is taken by it
        wait_for(lambda: run_row(project, blocker)["pid"], what="the first run to start")
        before = {r["id"] for r in runs(project)}
        screen = await open_dialog(pilot)
        await choose(pilot, "gate")
        await focus(pilot, screen.query_one("#launch-queue", Checkbox))
        await pilot.press("space", "ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        (waiting,) = [r["id"] for r in runs(project) if r["id"] not in before]
        await until(pilot, lambda: waiting in row_keys(app) and "queued" in cell(app, waiting, "status"),
                    what="queued in the table")
        await highlight(pilot, waiting)
        await pilot.press("k")
        confirm = await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen)
        question = " ".join(" ".join(drawn(confirm.query(Static).first())).split())
        assert question.startswith("Take ") and question.endswith("off the queue?")
        await pilot.press("y")
        wait_for(lambda: status_of(project, waiting) == "killed", timeout=5, what="the queued run to be taken off")
        assert run_row(project, waiting)["reason"] == "removed from the queue before it started"
        assert run_row(project, waiting)["pid"] is None  # it never started
        assert status_of(project, blocker) == "running"
        await until(pilot, lambda: "killed" in cell(app, waiting, "status"))


# -- bugs found while writing these tests --------------------------------------------------------------


MANY_PARAMS = """\
[commands.many]
run = "python count.py --n {n} --pause {pause} {a} {b} {c} {need}"
params = { n = 1, pause = 0, a = "a", b = "b", c = "c" }
"""


async def test_the_error_is_visible_at_80x24_for_a_command_with_six_params(project):
    (project.project_dir / "mltui.toml").write_text(MANY_PARAMS, encoding="utf-8")
    app = app_for(project)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot)
        await open_dialog(pilot)
        await pilot.press("enter")  # {need} is empty
        await until(pilot, lambda: launch_error(app), what="an error")
        assert launch_error(app).startswith("Fill in need")
        assert "Fill in need: many needs a value for it." in screen_text(app)  # on screen, not clipped


async def test_an_untouched_string_default_is_recorded_as_the_cli_records_it(project, cli):
    (project.project_dir / "mltui.toml").write_text(
        '[commands.strs]\nrun = "python count.py --n {n} --pause 0"\nparams = { n = "2" }\n', encoding="utf-8")
    done = cli("run", "strs", "--wait")
    assert done.returncode == 0, done.stderr
    (by_cli,) = runs(project)
    assert by_cli["params"] == {"n": "2"}
    app = app_for(project)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot)
        run_id = await launch_with_keys(pilot, project)  # enter, nothing edited
        wait_for(lambda: status_of(project, run_id) == "finished")
        assert run_row(project, run_id)["params"] == by_cli["params"]


async def test_a_half_typed_gpu_count_is_explained_in_words(project):
    app = app_for(project)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot)
        screen = await open_dialog(pilot)
        await focus(pilot, screen.query_one("#launch-gpus", Input))
        await pilot.press("-", "enter")
        await until(pilot, lambda: launch_error(app), what="an error")
        assert runs(project) == []
        assert launch_error(app) == "GPUs must be a whole number, 0 or more (not '-')."
        assert isinstance(app.screen, LaunchScreen)  # the dialog stays open to fix it


async def test_rerunning_a_queued_run_says_it_was_queued(project):
    app = app_for(project)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot)
        screen = await open_dialog(pilot)
        await choose(pilot, "gate")
        await focus(pilot, screen.query_one("#launch-queue", Checkbox))
        await pilot.press("space", "ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        (first,) = [r["id"] for r in runs(project)]
        wait_for(lambda: run_row(project, first)["pid"], what="the queue worker to start it")
        await highlight(pilot, first)
        await pilot.press("r")
        (rerun,) = await until(pilot, lambda: [r["id"] for r in runs(project) if r["id"] != first])
        assert status_of(project, rerun) == "queued"  # max_parallel = 1: it waits behind the first
        notice = await until(pilot, lambda: [m for m in messages(app) if rerun in m], what="the rerun's notice")
        assert not notice[0].startswith("Started"), notice


@pytest.mark.parametrize("size", [SMALL, BIG], ids=["80x24", "160x50"])
async def test_the_dialogs_are_centred(project, size):
    app = app_for(project)
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        screen = await open_dialog(pilot)
        box = screen.query_one("#launch").region
        assert abs(box.x - (size[0] - box.right)) <= 1
