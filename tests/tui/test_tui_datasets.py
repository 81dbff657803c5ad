"""The Datasets pane (key 3) with real keys, on real dataset versions recorded in a real store.

Datasets are recorded with `mltui.core.data.versions.add` from real folders in tmp_path (stored in the
workspace cache, so profiles and drift can read their bytes); the app is the real one from
`create_app` driven by `App.run_test` and `pilot.press`. Every wait polls the app's state with a
deadline (`until`), never a fixed sleep.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from launching import configure, until
from rich.text import Text
from textual.geometry import Region
from textual.widgets import DataTable, Static, TabbedContent

import mltui
from mltui.core.data.versions import add
from mltui.store.opening import open_store
from mltui.tui.app import MltuiApp, create_app
from mltui.tui.panes.datasets import DatasetsPane
from mltui.tui.screens.main import MainScreen
from mltui.tui.screens.run_detail import RunDetailScreen
from mltui.tui.widgets.runs_table import RunsTable

BIG = (120, 40)
SMALL = (80, 24)
MARKUP_NAME = "[bold]x[/bold].csv"
ESCAPE_MESSAGE = "\x1b[31mred alert"


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    """No user themes from ~/.config, no attached run."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for var in ("MLTUI_RUN_ID", "MLTUI_WORKSPACE", "MLTUI_RUN_DIR", "MLTUI_DEBUG"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fast(ws):
    """`ws` whose panes poll every 0.2 s."""
    configure(ws, refresh_seconds=0.2)
    return ws


def app_for(ws) -> MltuiApp:
    app = create_app(ws)
    app.animation_level = "none"
    return app


def write_csv(path: Path, shift: int, third: str) -> None:
    """200 rows: `id` the same in every version, `amount` shifted by `shift`, `region` with every fourth
    row `third`."""
    lines = ["id,amount,region"]
    for i in range(200):
        region = third if i % 4 == 0 else ("north" if i % 2 else "south")
        lines.append(f"{i},{(i % 100) + shift},{region}")
    path.write_text("\n".join(lines) + "\n")


def record(ws, folder: Path, name: str, message: str | None, store: bool = True):
    conn = open_store(ws.db_path)
    try:
        return add(ws, conn, folder, name, message, store=store).version
    finally:
        conn.close()


def make_sales(ws, tmp_path: Path):
    """Dataset `sales`: v1, then v2 where table.csv's `amount` moved and `region` gained a category,
    new.txt was added and old_name.txt renamed to new_name.txt (same bytes)."""
    folder = tmp_path / "sales"
    folder.mkdir()
    write_csv(folder / "table.csv", shift=0, third="south")
    (folder / "notes.txt").write_text("notes\n")
    (folder / "old_name.txt").write_text("these bytes move to a new name\n")
    v1 = record(ws, folder, "sales", "first cut")
    write_csv(folder / "table.csv", shift=60, third="east")
    (folder / "new.txt").write_text("a file that is new in v2\n")
    (folder / "old_name.txt").rename(folder / "new_name.txt")
    v2 = record(ws, folder, "sales", "shifted amounts")
    assert (v1.seq, v2.seq) == (1, 2) and v1.id != v2.id
    return folder, v1, v2


def make_weird(ws, tmp_path: Path):
    """Dataset `weird`: one version whose file name is Rich markup and whose message holds an escape."""
    folder = tmp_path / "weird"
    folder.mkdir()
    (folder / MARKUP_NAME).parent.mkdir()  # the "/" makes "[bold]x[" a folder: the path reads as the markup
    (folder / MARKUP_NAME).write_text("a,b\n1,2\n3,4\n")
    return record(ws, folder, "weird", ESCAPE_MESSAGE)


def pane(app) -> DatasetsPane:
    return app.screen.query_one(DatasetsPane)


def table(app, selector: str) -> DataTable:
    return app.screen.query_one(selector, DataTable)


def cells(app, selector: str) -> list[list[str]]:
    t = table(app, selector)
    return [[c.plain if isinstance(c, Text) else str(c) for c in t.get_row_at(i)] for i in range(t.row_count)]


def column(app, selector: str, index: int) -> list[str]:
    return [row[index] for row in cells(app, selector)]


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def drawn(widget) -> list[str]:
    """The lines a DataTable draws on screen."""
    return [widget.render_line(y).text.rstrip() for y in range(widget.size.height)]


def drawn_static(app, selector: str) -> list[str]:
    """The lines a Static draws on screen."""
    widget = app.screen.query_one(selector, Static)
    width, height = widget.size
    return [strip.text.rstrip() for strip in widget.render_lines(Region(0, 0, width, height))]


def title(app) -> str:
    return text_of(app, "#data-title")


def messages(app) -> list[str]:
    return [n.message for n in app._notifications]


async def open_datasets(pilot, datasets: int) -> DatasetsPane:
    await until(pilot, lambda: isinstance(pilot.app.screen, MainScreen), what="the main screen")
    await pilot.press("3")
    await until(pilot, lambda: pilot.app.screen.query_one(TabbedContent).active == "datasets", what="the Datasets tab")
    p = pane(pilot.app)
    await until(pilot, lambda: p.lists is not None and len(p.lists.datasets) == datasets
                and table(pilot.app, "#data-sets").row_count == datasets, what=f"{datasets} datasets listed")
    return p


async def shown(pilot, mode: str, what: str, check=None):
    """Wait until the right side shows `mode` for the highlighted version (title, and `check()` if given)."""
    app = pilot.app
    await until(pilot, lambda: title(app).endswith(f"· {mode}") and not app.screen.query_one("#data-progress").display
                and (check is None or check()), what=what)


# -- 1. the empty state ------------------------------------------------------------------------


async def test_no_datasets_shows_how_to_add_one_at_80x24(fast):
    app = app_for(fast)
    async with app.run_test(size=SMALL) as pilot:
        p = await open_datasets(pilot, 0)
        empty = app.screen.query_one("#data-empty", Static)
        await until(pilot, lambda: empty.display and "mltui data add" in text_of(app, "#data-empty"),
                    what="the empty-state text")
        assert "--name NAME" in text_of(app, "#data-empty")
        assert app.screen.query_one("#data-body").display is False
        assert empty.region.height > 0 and empty.region.bottom <= SMALL[1]  # drawn on screen
        # marking or diffing with nothing there does nothing and raises nothing
        await pilot.press("space", "f", "p")
        await pilot.pause()
        assert p.marked is None
        assert app.is_running


# -- 2. lists, files, profile, used-by, diff, drift --------------------------------------------


async def test_lists_versions_files_profile_runs_diff_and_drift(fast, tmp_path):
    _, v1, v2 = make_sales(fast, tmp_path)
    weird = make_weird(fast, tmp_path)
    run = mltui.init(name="trainer", workspace=tmp_path)
    used = run.use_dataset("sales")
    run.finish()
    assert used == v2.id  # the folder holds v2 now
    app = app_for(fast)
    async with app.run_test(size=BIG) as pilot:
        p = await open_datasets(pilot, 2)
        assert column(app, "#data-sets", 0) == ["sales", "weird"]
        assert column(app, "#data-sets", 1) == ["2", "1"]
        # the highlighted dataset's versions, newest first, and its latest version's files on the right
        await until(pilot, lambda: column(app, "#data-versions", 0) == ["  v2", "  v1"], what="the versions of sales")
        assert column(app, "#data-versions", 1) == [v2.id[:10], v1.id[:10]]
        assert column(app, "#data-versions", 5) == ["shifted amounts", "first cut"]
        await shown(pilot, "files", "the files of v2",
                    lambda: column(app, "#data-detail", 0) == ["new.txt", "new_name.txt", "notes.txt", "table.csv"])
        assert title(app) == f"{v2.label} · files"
        assert p.version.id == v2.id

        # down in the versions list: v1's files
        assert app.focused is table(app, "#data-versions")
        await pilot.press("down")
        await shown(pilot, "files", "the files of v1",
                    lambda: column(app, "#data-detail", 0) == ["notes.txt", "old_name.txt", "table.csv"])
        assert title(app) == f"{v1.label} · files"

        # p: the profile of v1's table, one row a column
        await pilot.press("p")
        await shown(pilot, "profile", "the profile of v1",
                    lambda: sorted(column(app, "#data-detail", 0)) == ["amount", "id", "region"])
        assert "table.csv: 200 rows, 3 columns" in text_of(app, "#data-chart")
        profile = {row[0]: row for row in cells(app, "#data-detail")}
        numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", profile["amount"][3])]
        assert numbers[0] == 0 and 99 in numbers and 49.5 in numbers  # min first; max and mean among them
        assert "south: 100" in profile["region"][3] and "north: 100" in profile["region"][3]

        # u: who used v1 (nobody), then v2 (the run)
        await pilot.press("u")
        await shown(pilot, "runs that used it", "the runs of v1",
                    lambda: "No run has used this version." in text_of(app, "#data-chart"))
        assert table(app, "#data-detail").row_count == 0
        await pilot.press("up")
        await shown(pilot, "runs that used it", "the runs of v2",
                    lambda: table(app, "#data-detail").row_count == 1)
        assert title(app) == f"{v2.label} · runs that used it"
        assert cells(app, "#data-detail")[0][:4] == [run.id, "trainer", "finished", "explicit"]
        assert cells(app, "#data-detail")[0][4] == "-"  # not changed during the run

        # d with nothing marked: a notification, and the right side stays as it was
        before = cells(app, "#data-detail")
        await pilot.press("d")
        await until(pilot, lambda: any("Mark a version" in m for m in messages(app)), what="the mark-first hint")
        await pilot.press("D")
        await pilot.pause()
        assert p.mode == "runs" and p.marked is None
        assert title(app) == f"{v2.label} · runs that used it"
        assert cells(app, "#data-detail") == before

        # space on v1 marks it; up to v2; d: the diff v1 -> v2
        await pilot.press("down", "space")
        await until(pilot, lambda: p.marked is not None and column(app, "#data-versions", 0) == ["  v2", "● v1"],
                    what="v1 marked")
        await pilot.press("up", "d")
        await shown(pilot, "diff", "the diff v1 -> v2", lambda: table(app, "#data-detail").row_count == 3)
        assert title(app) == f"{v1.label} → {v2.label} · diff"
        diff = sorted((row[0], row[1]) for row in cells(app, "#data-detail"))
        assert diff == [("+", "new.txt"), ("M", "table.csv"), ("R", "old_name.txt → new_name.txt")]
        assert text_of(app, "#data-chart") == "1 added · 0 removed · 1 modified · 1 renamed"

        # D: the drift, the changed columns ranked first, bars in the chart
        await pilot.press("D")
        await shown(pilot, "drift", "the drift v1 -> v2", lambda: table(app, "#data-detail").row_count == 3)
        drift = cells(app, "#data-detail")
        ranked = [row[0] for row in drift]
        assert set(ranked[:2]) == {"amount", "region"} and ranked[2] == "id"
        psi = {row[0]: float(row[3]) for row in drift}
        assert psi["amount"] > 0.25 and psi["region"] > 0.25 and psi["id"] == pytest.approx(0.0, abs=1e-9)
        assert psi[ranked[0]] >= psi[ranked[1]]
        chart = text_of(app, "#data-chart")
        assert re.search(r"table\.csv: 200 \S+ 200 rows", chart), chart
        bars = [line for line in chart.splitlines() if "█" in line]
        assert [line.split()[0] for line in bars] == ranked  # most drifted first
        widths = {line.split()[0]: line.count("█") for line in bars}
        assert widths[ranked[0]] == 30 and widths[ranked[1]] > 1 and widths["id"] == 1  # to scale; none under 1
        region_note = next(row[5] for row in drift if row[0] == "region")
        assert re.fullmatch(r"(east: 0\.0%|south: 50\.0%) \S+ 25\.0%", region_note), region_note  # a tie

        # space on the marked version again unmarks it
        await pilot.press("down", "space")
        await until(pilot, lambda: p.marked is None and column(app, "#data-versions", 0) == ["  v2", "  v1"],
                    what="v1 unmarked")

        # the other dataset: focus the list of datasets, down
        await pilot.press("f")
        sets = table(app, "#data-sets")
        sets.focus()
        await pilot.pause()
        await pilot.press("down")
        await until(pilot, lambda: column(app, "#data-versions", 1) == [weird.id[:10]], what="the versions of weird")
        await shown(pilot, "files", "the files of weird", lambda: column(app, "#data-detail", 0) == [MARKUP_NAME])
        assert title(app) == f"{weird.label} · files"
        # markup in a file name is shown as written, an escape in a message is shown, not obeyed
        detail = table(app, "#data-detail")
        assert any(MARKUP_NAME in line for line in drawn(detail))
        message = cells(app, "#data-versions")[0][5]
        assert message == "\\x1b[31mred alert"
        lines = drawn(table(app, "#data-versions"))
        assert not any("\x1b" in line for line in lines)
        assert any("\\x1b[31" in line for line in lines)  # drawn as text (the column is cut at the pane's edge)
        # and back up: sales again
        await pilot.press("up")
        await until(pilot, lambda: column(app, "#data-versions", 0) == ["  v2", "  v1"], what="sales again")
        await pilot.press("p")
        await shown(pilot, "profile", "the profile of sales' v2",
                    lambda: sorted(column(app, "#data-detail", 0)) == ["amount", "id", "region"])
        assert "east: 50" in {row[0]: row for row in cells(app, "#data-detail")}["region"][3]
        assert app.is_running


async def test_a_profile_of_a_markup_named_table_keeps_the_name(fast, tmp_path):
    make_weird(fast, tmp_path)
    app = app_for(fast)
    async with app.run_test(size=BIG) as pilot:
        await open_datasets(pilot, 1)
        await shown(pilot, "files", "the files of weird", lambda: column(app, "#data-detail", 0) == [MARKUP_NAME])
        await pilot.press("p")
        await shown(pilot, "profile", "the profile", lambda: sorted(column(app, "#data-detail", 0)) == ["a", "b"])
        assert f"{MARKUP_NAME}: 2 rows, 2 columns" in text_of(app, "#data-chart")


ESC_TABLE = "t\x1b[31m.csv"  # a file name holding an escape sequence
ESC_COLUMN = "b\x1b[32mZ"  # and a column name holding one


def make_escapes(ws, tmp_path: Path):
    folder = tmp_path / "esc"
    folder.mkdir()
    (folder / ESC_TABLE).write_text(f"a,{ESC_COLUMN}\n1,2\n3,4\n")
    v1 = record(ws, folder, "esc", "one")
    (folder / ESC_TABLE).write_text(f"a,{ESC_COLUMN}\n50,90\n70,80\n")
    v2 = record(ws, folder, "esc", "two")
    return v1, v2


async def test_escapes_in_file_and_column_names_are_shown_as_text_in_the_tables(fast, tmp_path):
    make_escapes(fast, tmp_path)
    app = app_for(fast)
    async with app.run_test(size=BIG) as pilot:
        await open_datasets(pilot, 1)
        detail = table(app, "#data-detail")
        await shown(pilot, "files", "the files", lambda: column(app, "#data-detail", 0) == ["t\\x1b[31m.csv"])
        assert not any("\x1b" in line for line in drawn(detail))
        await pilot.press("p")
        await shown(pilot, "profile", "the profile", lambda: column(app, "#data-detail", 0) == ["a", "b\\x1b[32mZ"])
        assert not any("\x1b" in line for line in drawn(detail))
        assert any("b\\x1b[32mZ" in line for line in drawn(detail))
        await pilot.press("down", "space", "up", "D")
        await shown(pilot, "drift", "the drift", lambda: sorted(column(app, "#data-detail", 0)) == ["a", "b\\x1b[32mZ"])
        assert not any("\x1b" in line for line in drawn(detail))


async def test_escapes_in_file_and_column_names_are_not_drawn_raw_in_the_chart(fast, tmp_path):
    make_escapes(fast, tmp_path)
    app = app_for(fast)
    async with app.run_test(size=BIG) as pilot:
        await open_datasets(pilot, 1)
        await shown(pilot, "files", "the files", lambda: table(app, "#data-detail").row_count == 1)
        await pilot.press("p")
        await shown(pilot, "profile", "the profile", lambda: table(app, "#data-detail").row_count == 2)
        profile_chart = drawn_static(app, "#data-chart")
        await pilot.press("down", "space", "up", "D")
        await shown(pilot, "drift", "the drift", lambda: table(app, "#data-detail").row_count == 2)
        drift_chart = drawn_static(app, "#data-chart")
    assert any("2 rows, 2 columns" in line for line in profile_chart)
    assert any("█" in line for line in drift_chart)
    raw = [line for line in profile_chart + drift_chart if "\x1b" in line]
    assert raw == [], raw
    assert any("t\\x1b[31m.csv" in line for line in profile_chart)
    assert any("\\x1b[32m" in line for line in drift_chart)


# -- 3. an error is a sentence ------------------------------------------------------------------


async def test_profile_and_drift_of_bytes_that_are_gone_is_a_sentence(fast, tmp_path):
    folder = tmp_path / "gone"
    folder.mkdir()
    write_csv(folder / "t.csv", shift=0, third="south")
    record(fast, folder, "gone", "one", store=False)
    write_csv(folder / "t.csv", shift=30, third="west")
    record(fast, folder, "gone", "two", store=False)
    shutil.rmtree(folder)
    app = app_for(fast)
    async with app.run_test(size=BIG) as pilot:
        p = await open_datasets(pilot, 1)
        await shown(pilot, "files", "the files of gone", lambda: column(app, "#data-detail", 0) == ["t.csv"])
        chart = app.screen.query_one("#data-chart", Static)

        await pilot.press("p")
        await shown(pilot, "profile", "the profile error", lambda: chart.display and "t.csv" in text_of(app, "#data-chart"))
        error = text_of(app, "#data-chart")
        assert "not in the cache" in error and "--store" in error
        assert error.strip().endswith(".") and "\n" not in error.strip() and "Traceback" not in error
        assert table(app, "#data-detail").row_count == 0

        await pilot.press("down", "space", "up", "D")
        await shown(pilot, "drift", "the drift error",
                    lambda: chart.display and "not in the cache" in text_of(app, "#data-chart"))
        error = text_of(app, "#data-chart")
        assert error.strip().endswith(".") and "\n" not in error.strip()
        assert table(app, "#data-detail").row_count == 0
        assert p.marked is not None and app.is_running
        assert not [n for n in app._notifications if n.severity == "error"]


# -- 4. the poll ---------------------------------------------------------------------------------


async def test_a_dataset_added_while_the_app_runs_appears(fast, tmp_path):
    weird = make_weird(fast, tmp_path)
    app = app_for(fast)
    async with app.run_test(size=BIG) as pilot:
        await open_datasets(pilot, 1)
        folder = tmp_path / "late"
        folder.mkdir()
        (folder / "late.txt").write_text("late\n")
        late = record(fast, folder, "alpha", "added while open")
        await until(pilot, lambda: column(app, "#data-sets", 0) == ["alpha", "weird"], timeout=10,
                    what="the new dataset in the list")
        # the highlight stays on the dataset it was on, though a new one was listed above it
        sets = table(app, "#data-sets")
        assert sets.cursor_row == 1 and pane(app).dataset == "weird"
        assert column(app, "#data-versions", 1) == [weird.id[:10]]
        # up to the new one; a new version of it also appears, newest first
        sets.focus()
        await pilot.pause()
        await pilot.press("up")
        await until(pilot, lambda: column(app, "#data-versions", 1) == [late.id[:10]], what="alpha's versions")
        (folder / "later.txt").write_text("later\n")
        later = record(fast, folder, "alpha", "second")
        await until(pilot, lambda: column(app, "#data-versions", 1) == [later.id[:10], late.id[:10]], timeout=10,
                    what="alpha's new version")
        assert column(app, "#data-sets", 1) == ["2", "1"]


async def test_the_empty_state_gives_way_to_the_first_dataset(fast, tmp_path):
    app = app_for(fast)
    async with app.run_test(size=SMALL) as pilot:
        await open_datasets(pilot, 0)
        folder = tmp_path / "first"
        folder.mkdir()
        (folder / "a.txt").write_text("a\n")
        v = record(fast, folder, "first", "hello")
        await until(pilot, lambda: table(app, "#data-sets").row_count == 1
                    and app.screen.query_one("#data-body").display, timeout=10, what="the first dataset")
        assert app.screen.query_one("#data-empty").display is False
        await shown(pilot, "files", "the files of the first version", lambda: column(app, "#data-detail", 0) == ["a.txt"])
        assert title(app) == f"{v.label} · files"


# -- 5. run detail -------------------------------------------------------------------------------


async def test_run_detail_shows_the_data_a_run_used(fast, tmp_path):
    _, v1, v2 = make_sales(fast, tmp_path)
    run = mltui.init(name="learner", workspace=tmp_path)
    run.use_dataset("sales@v1")
    run.finish()
    app = app_for(fast)
    async with app.run_test(size=BIG) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen), what="the main screen")
        runs = app.screen.query_one("#runs-table", RunsTable)
        await until(pilot, lambda: runs.row_count == 1, what="the run listed")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="the run's detail")
        detail = app.screen
        assert detail.run_id == run.id
        info = detail.query_one("#detail-info", Static)
        await until(pilot, lambda: "data" in _rich(info.content).split(), what="the data section")
        rows = [line.split() for line in _rich(info.content).splitlines()]
        assert ["data"] in rows
        assert [v1.label, "v1", "·", "explicit"] in rows
        assert not any(v2.label in " ".join(r) for r in rows)


def _rich(renderable, width: int = 120) -> str:
    import io

    from rich.console import Console

    console = Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)
    console.print(renderable)
    return console.file.getvalue()
