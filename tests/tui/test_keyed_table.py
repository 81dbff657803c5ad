"""The KeyedTable (tui/widgets/keyed_table.py) with many rows, and the Datasets pane over hundreds of
versions: real Textual apps driven by the pilot, a real store in tmp_path.

KeyedTable counts its columns' widths itself (DataTable measured each cell through Rich and rescanned a
whole column for every cell that got narrower); these tests hold it to DataTable's own answer.
"""

from __future__ import annotations

import pytest
from launching import configure, until
from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from mltui.tui.widgets.keyed_table import Column, KeyedTable

COLUMNS = [Column("v", "Ver"), Column("age", "Added"), Column("msg", "Message")]


class Both(App):
    """A KeyedTable beside a plain DataTable given the same cells the plain way."""

    def compose(self) -> ComposeResult:
        yield KeyedTable(id="keyed")
        yield DataTable(id="plain")


def rows(n: int, age: str, old_age: str = "14d ago") -> list[tuple[str, list[Text]]]:
    """`n` versions, the newest first; the oldest tenth `old_age`, the rest `age`; names in wide characters."""
    return [(f"k{i}", [Text(f"v{n - i}"), Text(age if i < n - n // 10 else old_age),
                       Text(f"导出 #{n - i}" + ("  🙂" if i == 3 else ""))]) for i in range(n)]


def widths(table: DataTable) -> list[int]:
    return [c.content_width for c in table.ordered_columns]


async def settled(pilot, table: DataTable) -> None:
    """Until the table's idle pass has measured what changed."""
    await until(pilot, lambda: not table._require_update_dimensions and not table._updated_cells,
                what="the columns measured")


@pytest.mark.parametrize("n", [40, 400])
async def test_column_widths_are_datatables_own_after_filling_narrowing_and_widening(n):
    app = Both()
    async with app.run_test(size=(120, 30)) as pilot:
        keyed, plain = app.query_one("#keyed", KeyedTable), app.query_one("#plain", DataTable)
        for col in COLUMNS:
            plain.add_column(col.label, key=col.key)

        def plain_sync(new: list[tuple[str, list[Text]]]) -> None:
            for key, cells in new:
                if key in plain.rows:
                    for col, cell in zip(COLUMNS, cells):
                        plain.update_cell(key, col.key, cell, update_width=True)
                else:
                    plain.add_row(*cells, key=key)

        steps = [rows(n, "59s ago"),  # filled
                 rows(n, "1m ago"),  # most ages narrower, the oldest still wider: the column keeps their width
                 rows(n, "1m ago", old_age="1y ago"),  # the widest ones narrower too: the column shrinks
                 rows(n, "12 months ago")]  # wider than all
        for step in steps:
            keyed.sync(COLUMNS, step, "v")
            plain_sync(step)
            await settled(pilot, keyed)
            await settled(pilot, plain)
            assert widths(keyed) == widths(plain)
            assert keyed.virtual_size == plain.virtual_size
        assert widths(keyed)[1] == len("12 months ago")
        assert keyed.row_count == n and [keyed.get_row_at(i)[0].plain for i in (0, n - 1)] == [f"v{n}", "v1"]
        assert [keyed.get_row_at(i)[1].plain for i in (0, n - 1)] == ["12 months ago", "14d ago"]


async def test_update_rows_changes_the_rows_named_and_nothing_else():
    app = Both()
    async with app.run_test(size=(120, 30)) as pilot:
        keyed = app.query_one("#keyed", KeyedTable)
        keyed.sync(COLUMNS, rows(300, "1m ago"), "v")
        await settled(pilot, keyed)
        keyed.move_cursor(row=120)
        await pilot.pause()
        before = [[c.plain for c in keyed.get_row_at(i)] for i in range(keyed.row_count)]
        keyed.update_rows([("k5", [Text("● v295", style="bold"), Text("1m ago"), Text("marked")]),
                           ("no-such-row", [Text("x"), Text("y"), Text("z")])])
        await settled(pilot, keyed)
        after = [[c.plain for c in keyed.get_row_at(i)] for i in range(keyed.row_count)]
        assert after[5] == ["● v295", "1m ago", "marked"]
        assert after[:5] + after[6:] == before[:5] + before[6:]
        assert keyed.cursor_row == 120 and keyed.highlighted_key == "k120"
        assert widths(keyed)[0] == len("● v295")


async def test_the_datasets_pane_over_hundreds_of_versions_draws_nothing_while_other_data_changes(
        ws, tmp_path, monkeypatch):
    """A run logging changes the store every moment; the versions read as they are shown, so the pane keeps
    what it drew (its lists untouched) until a version is added, which then comes in on top."""
    import mltui
    from mltui.core.data.versions import add
    from mltui.store.opening import open_store
    from mltui.tui.app import create_app
    from mltui.tui.panes.datasets import DatasetsPane

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    configure(ws, refresh_seconds=0.2)
    folder = tmp_path / "exports"
    folder.mkdir()
    conn = open_store(ws.db_path)
    n = 300
    try:
        for i in range(n):
            (folder / "part.csv").write_text(f"x\n{i}\n")
            add(ws, conn, folder, "clicks", f"export {i + 1}")
    finally:
        conn.close()

    app = create_app(ws)
    app.animation_level = "none"
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        pane = await until(pilot, lambda: next(iter(app.screen.query(DatasetsPane)), None), what="the pane")
        await until(pilot, lambda: pane.lists is not None and len(pane.lists.versions) == n, what="the versions")
        versions = app.screen.query_one("#data-versions", KeyedTable)
        await until(pilot, lambda: versions.row_count == n and app.focused is versions, what="the table")
        await pilot.press("down", "down")
        assert versions.highlighted_key == pane.lists.versions[2].id
        shown, highlighted = pane.lists, versions.highlighted_key

        collects: list = []
        collect = pane.collect
        pane.collect = lambda force: collects.append(collect(force)) or collects[-1]
        run = mltui.init(name="logger", params={"lr": 0.1}, workspace=str(ws.project_dir))
        for step in range(20):
            run.log({"loss": 1 / (step + 1)}, step=step)
        run.finish()
        mark = len(collects)
        await until(pilot, lambda: len(collects) >= mark + 2, what="two polls after the run's writes")
        assert collects[mark:] == [None] * (len(collects) - mark)  # read, found as shown: nothing to apply
        assert pane.lists is shown and versions.row_count == n

        conn = open_store(ws.db_path)
        try:
            (folder / "part.csv").write_text("x\nnew\n")
            added = add(ws, conn, folder, "clicks", "the newest").version
        finally:
            conn.close()
        await until(pilot, lambda: pane.lists.versions[0].id == added.id, what="the new version read")
        await until(pilot, lambda: versions.row_count == n + 1 and versions.get_row_at(0)[0].plain == f"  v{n + 1}",
                    what="the new version on top")
        assert versions.highlighted_key == highlighted  # the highlight stays on the version it was on
