"""A DataTable kept in step with data by key: rows removed, cells updated and rows added in place.

Thousands of rows (a dataset's or a model's versions) stay quick: a column's width is the widest cell's
plain text, counted directly (DataTable measures each cell through Rich, about 25 µs a cell, and rescans
a whole column for every cell that got narrower); and `update_rows` changes a few rows without the
caller building every row again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text
from textual.geometry import Size
from textual.render import measure
from textual.widgets import DataTable
from textual.widgets._data_table import CellKey, ColumnKey, DuplicateKey, Row, RowKey, default_cell_formatter

from mltui.tui.cells import plain


def same_cell(a: Text, b: Text) -> bool:
    """Text's == looks at the characters and spans only; a cell restyled (a new best) must count as changed."""
    return a.plain == b.plain and a.style == b.style and a.spans == b.spans and a.justify == b.justify


@dataclass(frozen=True)
class Column:
    key: str
    label: str


class KeyedTable(DataTable):
    """`sync(columns, rows)` makes the table hold exactly `rows` (key, cells) in order; never clear-and-refill
    on a tick (the columns are rebuilt only when they change)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", True)
        super().__init__(**kwargs)
        self._columns: list[Column] = []
        self._cells: dict[str, list[Text]] = {}

    def _cell_width(self, cell: object, height: int) -> int:
        """What DataTable's measure gives for a cell: a Text's widest line, counted without Rich."""
        if isinstance(cell, Text):
            text = cell.plain
            return cell_len(text) if "\n" not in text else max(map(cell_len, text.splitlines()), default=0)
        return measure(self.app.console, default_cell_formatter(cell, wrap=height != 1, height=height), 1)

    def _update_column_widths(self, updated_cells: set[CellKey]) -> None:
        # DataTable's own rescans the whole column for each updated cell that got narrower: with an age
        # column, thousands of cells x thousands of rows. Here each column is rescanned at most once.
        widths: dict = {}
        for row_key, column_key in updated_cells:
            row = self.rows.get(row_key)
            if column_key in self.columns and row is not None:
                widths.setdefault(column_key, []).append(self._cell_width(self._data[row_key][column_key],
                                                                          row.height))
        for column_key, found in widths.items():
            column = self.columns[column_key]
            label = measure(self.app.console, column.label, 1)
            if min(found) < column.content_width:  # may have got narrower: the widest cell now
                found = [self._cell_width(self._data[key][column_key], row.height) for key, row in self.rows.items()]
            column.content_width = max([*found, label])
        self._require_update_dimensions = True

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        rows = [row for key in new_rows if key in self._row_locations and (row := self.rows.get(key)) is not None]
        if any(row.label is not None or row.auto_height for row in rows):
            super()._update_dimensions(new_rows)  # labels and rows of their own height: DataTable's way
        else:
            columns = self.ordered_columns
            for row in rows:
                data = self._data[row.key]
                for column in columns:
                    width = self._cell_width(data.get(column.key), row.height)
                    if width > column.content_width:
                        column.content_width = width
            header = self.header_height if self.show_header else 0
            self.virtual_size = Size(sum(c.get_render_width(self) for c in self.columns.values())
                                     + self._row_label_column_width, self._total_row_height + header)
        # DataTable widens its columns to new content here, on the idle after add_row/update_cell, but
        # keeps any line drawn in between in its line cache, keyed as if nothing had changed: under
        # load the table could stay drawn with every column cut to its header's width
        self._update_count += 1
        self._line_cache.clear()
        self.refresh()

    @property
    def synced_columns(self) -> list[Column]:
        return self._columns

    def sync(self, columns: list[Column], rows: list[tuple[str, list[Text]]], order_column: str) -> None:
        highlighted = self.highlighted_key
        if columns != self._columns:
            self.clear(columns=True)
            self._cells.clear()
            self._columns = columns
            for col in columns:
                self.add_column(plain(col.label, 24), key=col.key)
        wanted = {key for key, _ in rows}
        with self.app.batch_update():
            for key in [k for k in self._cells if k not in wanted]:
                self.remove_row(key)
                del self._cells[key]
            added, changed = [], False
            for key, new in rows:
                old = self._cells.get(key)
                if old is None:
                    added.append((key, new))
                else:
                    changed = self._update(key, old, new) or changed
            self._updated(changed)
            self._add_rows(added)
            order = {key: i for i, (key, _) in enumerate(rows)}
            if [row.key.value for row in self.ordered_rows] != [key for key, _ in rows]:
                position = [c.key for c in self._columns].index(order_column)
                keys_by_cell = {self._cells[k][position].plain: k for k in self._cells}
                self.sort(order_column, key=lambda cell: order.get(keys_by_cell.get(cell.plain, ""), 0))
        if highlighted in order:
            self.move_cursor(row=self.get_row_index(highlighted), animate=False)

    def _add_rows(self, rows: list[tuple[str, list[Text]]]) -> None:
        """DataTable.add_row for many rows at once, each of height 1 without a label: add_row works out
        the ordered columns twice and sets (so validates) the cursor for each row, most of the time it
        takes to fill a table with thousands of rows."""
        if not rows:
            return
        columns = self.ordered_columns
        before = self.row_count
        for key, cells in rows:
            row_key = RowKey(key)
            if row_key in self._row_locations:
                raise DuplicateKey(f"The row key {row_key!r} already exists.")
            if len(cells) > len(columns):
                raise ValueError("More values provided than there are columns.")
            self._row_locations[row_key] = self.row_count
            self._data[row_key] = {column.key: cells[i] if i < len(cells) else None for i, column in enumerate(columns)}
            self.rows[row_key] = Row(row_key, 1, None, False)
            self._new_rows.add(row_key)
            self._cells[key] = cells
        self._require_update_dimensions = True
        self.cursor_coordinate = self.cursor_coordinate
        if before == 0 and columns and self.show_cursor and self.cursor_type != "none":
            self._highlight_cursor()  # a cell to highlight where there was none: as add_row posts it
        self._update_count += 1
        self.check_idle()

    def update_rows(self, rows: list[tuple[str, list[Text]]]) -> None:
        """New cells for rows already held (by key), in place; the others and the order stay as they are."""
        changed = False
        for key, new in rows:
            if (old := self._cells.get(key)) is not None:
                changed = self._update(key, old, new) or changed
        self._updated(changed)

    def _update(self, key: str, old: list[Text], new: list[Text]) -> bool:
        """update_cell(..., update_width=True) for each cell of a row that changed, less what `_updated`
        then does once for them all (update_cell refreshes the table for each cell); True if one did."""
        changed = False
        data = self._data[RowKey(key)]
        for col, before, after in zip(self._columns, old, new):
            if not same_cell(before, after):
                column_key = ColumnKey(col.key)
                data[column_key] = after
                self._updated_cells.add(CellKey(RowKey(key), column_key))
                changed = True
        self._cells[key] = new
        return changed

    def _updated(self, changed: bool) -> None:
        if changed:
            self._update_count += 1
            self._require_update_dimensions = True  # the widths measured again on idle
            self.refresh()

    @property
    def highlighted_key(self) -> str | None:
        if not self.row_count or self.cursor_row < 0:
            return None
        try:
            return self.coordinate_to_cell_key((self.cursor_row, 0)).row_key.value
        except Exception:
            return None
