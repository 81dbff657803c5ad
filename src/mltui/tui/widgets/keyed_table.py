"""A DataTable kept in step with data by key: rows removed, cells updated and rows added in place."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import DataTable

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

    def _update_dimensions(self, new_rows) -> None:
        # DataTable widens its columns to new content here, on the idle after add_row/update_cell, but
        # keeps any line drawn in between in its line cache, keyed as if nothing had changed: under
        # load the table could stay drawn with every column cut to its header's width
        super()._update_dimensions(new_rows)
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
            for key, new in rows:
                old = self._cells.get(key)
                if old is None:
                    self.add_row(*new, key=key)
                else:
                    for col, before, after in zip(self._columns, old, new):
                        if not same_cell(before, after):
                            self.update_cell(key, col.key, after, update_width=True)
                self._cells[key] = new
            order = {key: i for i, (key, _) in enumerate(rows)}
            if [row.key.value for row in self.ordered_rows] != [key for key, _ in rows]:
                position = [c.key for c in self._columns].index(order_column)
                keys_by_cell = {self._cells[k][position].plain: k for k in self._cells}
                self.sort(order_column, key=lambda cell: order.get(keys_by_cell.get(cell.plain, ""), 0))
        if highlighted in order:
            self.move_cursor(row=self.get_row_index(highlighted), animate=False)

    @property
    def highlighted_key(self) -> str | None:
        if not self.row_count or self.cursor_row < 0:
            return None
        try:
            return self.coordinate_to_cell_key((self.cursor_row, 0)).row_key.value
        except Exception:
            return None
