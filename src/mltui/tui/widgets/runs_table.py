"""The Runs table: a window onto a result of any size, drawn a line at a time.

It is a ScrollView (Textual's line API, as Toolong does for logs): its virtual height is the whole
result, so the scrollbar, PageDown and End cover every run, but it holds only a window of rows (the
page on screen plus a margin) that its pane reads from the store. Lines outside the window draw as
placeholders until the pane has read them; `WindowMoved` tells the pane what is on screen now.

Drawing costs nothing when nothing changes: a line is drawn again only when its cells changed, the
cursor moved onto or off it, or the view scrolled. A page read again keeps the cells of the rows that
did not change. Column widths are measured when a page arrives, never when the relative times (Age,
Time) tick, and those tick only when their text changes (see widgets/runs_cells.py, which draws the
cells and lines).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from mltui.tui.widgets.runs_cells import (MARK, MIN_WIDTH, TABLE_CSS, TICKING, Column, clock_texts, columns_for,
                                          draw_line, mark_cell, next_change, run_cells, same)

__all__ = ["MARK", "Column", "RunsTable", "columns_for"]


class RunsTable(ScrollView, can_focus=True):
    """Rows of runs keyed by run id; `total` rows in all, `window` of them held (from `start`)."""

    DEFAULT_CSS = TABLE_CSS
    COMPONENT_CLASSES = {"runs-table--header", "runs-table--cursor", "runs-table--even-row",
                         "runs-table--odd-row", "runs-table--placeholder"}
    BINDINGS = [
        Binding("enter", "select_cursor", "Open", id="runs.open"),
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,ctrl+home", "first", "First", id="runs.first", show=False),
        Binding("end,G,ctrl+end", "last", "Last", id="runs.last", show=False),
        Binding("left", "scroll_left", "Left", show=False),
        Binding("right", "scroll_right", "Right", show=False),
    ]

    class WindowMoved(Message):
        """The rows on screen changed (scrolled, resized, cursor moved away): maybe read another page."""

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, RunsTable.WindowMoved)

    @dataclass
    class Highlighted(Message):
        run_id: str | None

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, RunsTable.Highlighted)

    @dataclass
    class Selected(Message):
        run_id: str

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.name_width = 28
        self.marked: dict[str, None] = {}  # ordered set of marked run ids
        self.total = 0  # rows in the whole result
        self.start = 0  # the result index of window[0]
        self.window: list[dict] = []  # the rows held
        self._index: dict[str, int] = {}  # run id -> result index, for the window
        self._cells: list[list[Text] | None] = []  # per window row; None: not made yet (see _row_cells)
        self._columns: list[Column] = []
        self._widths: list[int] = []
        self._strips: dict[int, tuple[tuple, Strip]] = {}  # result index -> (what it showed, strip)
        self._header: tuple[tuple, Strip] | None = None
        self._placeholders: dict[tuple, Strip] = {}  # (odd, cursor, scroll x, width) -> a line not read yet
        self._cells_for: tuple | None = None  # (columns, name width, theme) the held cells were made for
        self._tick_due = 0.0  # when (time.time()) an Age or Time on screen next reads differently
        self.cursor_row = -1
        self.renders = 0  # lines drawn: a table left alone draws none

    # -- what other code reads -------------------------------------------------------------------
    @property
    def row_count(self) -> int:
        """Rows in the whole result (not only those held)."""
        return self.total

    @property
    def columns(self) -> list[Column]:
        return self._columns

    def row_keys(self) -> list[str]:
        """The ids of the rows held, in order."""
        return [row["id"] for row in self.window]

    def get_cell(self, run_id: str, column: str) -> Text:
        """A held row's cell (KeyError for a row or column not there)."""
        index = self._index[run_id] - self.start
        position = [c.key for c in self._columns].index(column) if column in {c.key for c in self._columns} else None
        if position is None:
            raise KeyError(column)
        return self._row_cells(index)[position]

    def row_at(self, index: int) -> dict | None:
        """The row at result index `index`, if held."""
        if self.start <= index < self.start + len(self.window):
            return self.window[index - self.start]
        return None

    @property
    def highlighted_id(self) -> str | None:
        row = self.row_at(self.cursor_row)
        return row["id"] if row else None

    @property
    def rows_on_screen(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)  # less the header

    def visible_range(self) -> tuple[int, int]:
        """[first, last) result indexes of the rows on screen."""
        first = int(self.scroll_offset.y)
        return first, min(self.total, first + self.rows_on_screen)

    # -- cells -----------------------------------------------------------------------------------
    def cells(self, run: dict, now: float) -> list[Text]:
        return run_cells(run, self._columns, now, self.app.theme_variables, run["id"] in self.marked,
                         self.name_width)

    def _row_cells(self, i: int) -> list[Text]:
        """The cells of window row `i`, made when first needed: a page's rows off screen may never be. A
        row made later that is wider than its columns widens them (the table is drawn again)."""
        cells = self._cells[i]
        if cells is None:
            cells = self._cells[i] = self.cells(self.window[i], time.time())
            widths = self._measure(True, [cells])
            if widths != self._widths:
                self._widths = widths
                self._set_virtual_size(Size(sum(widths), self.total + 1))
                self._forget()
                self.refresh()
        return cells

    # -- data in -----------------------------------------------------------------------------------
    def show(self, total: int, offset: int, rows: list[dict], columns: list[Column], now: float,
             keep_widths: bool = True) -> None:
        """Hold `rows` (result indexes offset...) of a result `total` long. Only lines whose cells changed
        are drawn again; `keep_widths` lets columns widen but not narrow (the same result, scrolled)."""
        relayout = columns != self._columns
        self._columns = columns
        made_for = (tuple(columns), self.name_width, self.app.theme)
        # the cells of a row that reads as it did are kept (a relative time in them may be stale: the
        # tick below puts it right); a change of columns, name width or theme makes every cell again
        old = {row["id"]: (self.start + i, row, cells) for i, (row, cells) in enumerate(zip(self.window, self._cells))} \
            if made_for == self._cells_for else {}
        self._cells_for = made_for
        self.total, self.start, self.window = total, offset, rows
        self._index = {row["id"]: offset + i for i, row in enumerate(rows)}
        kept = [old.get(row["id"]) for row in rows]
        self._cells = [before[2] if before is not None and before[1] == row else None for row, before in zip(rows, kept)]
        # made now: the rows on screen, and the page's first screenful (where a new filter or sort puts
        # the view); the rest when they are scrolled to
        first, last = self.visible_range()
        screenful = self.rows_on_screen
        for i in {*range(max(0, first - offset), max(0, min(len(rows), last - offset))), *range(min(screenful, len(rows)))}:
            if self._cells[i] is None:
                self._cells[i] = self.cells(rows[i], now)
        widths = self._measure(keep_widths and not relayout)
        if widths != self._widths:
            self._widths = widths
            relayout = True
        self._set_virtual_size(Size(sum(widths), total + 1))
        if self.cursor_row >= total:
            self.cursor_row = total - 1
        elif self.cursor_row < 0 and total:
            self.cursor_row = 0
        self._tick_due = 0.0
        if relayout:
            self._forget()
            self.refresh()
            self.tick(now)
            return
        for i, cells in enumerate(self._cells):
            index = offset + i
            if not first <= index < last:
                continue
            before = kept[i]
            if before is None or before[0] != index or before[2] is None or cells is None or (
                    before[2] is not cells and (len(before[2]) != len(cells)
                                                or not all(same(a, b) for a, b in zip(before[2], cells)))):
                self._refresh_row(index)
        for index in range(first, last):  # rows no longer held (or never were): placeholders
            if not offset <= index < offset + len(rows) and index in self._strips:
                self._refresh_row(index)
        if last - first < self.rows_on_screen:
            self.refresh()  # the result got shorter: blank the lines below it
        self.tick(now)

    def _set_virtual_size(self, size: Size) -> None:
        """The virtual size, without the layout of the screen that Textual's reactive asks for: the lines
        of this table are all that a new length or width changes (the scrollbars are updated here, and
        showing or hiding one still asks for a layout itself)."""
        if size != self.virtual_size:
            self.set_reactive(RunsTable.virtual_size, size)
            self._scroll_update(size)  # Textual's own update of the scrollbars and the scroll limits
            self.refresh()

    def tick(self, now: float) -> None:
        """The clock moved: redraw the Age and Time cells on screen that read differently now (widths
        stay). Nothing is looked at before one of them is due to change."""
        if now < self._tick_due:
            return
        ticking = [(i, c.key) for i, c in enumerate(self._columns) if c.key in TICKING]
        due = float("inf")
        first, last = self.visible_range()
        for index in range(max(first, self.start), min(last, self.start + len(self.window))) if ticking else ():
            i = index - self.start
            row, cells = self.window[i], self._row_cells(i)
            if row.get("group") is not None:
                continue  # a group row has no times
            due = min(due, next_change(row, now))
            texts = dict(zip(TICKING, clock_texts(row, now)))
            changed = []
            for position, key in ticking:
                if cells[position].plain != texts[key]:
                    cells[position] = Text(texts[key], justify="right")
                    changed.append(position)
            if changed:  # only those cells go to the terminal again
                self._refresh_cells(index, min(changed), max(changed))
        self._tick_due = now + due

    def _refresh_cells(self, index: int, first: int, last: int) -> None:
        """Redraw the cells [first, last] (column positions) of the row at result index `index`."""
        self._strips.pop(index, None)
        x = sum(self._widths[:first]) - int(self.scroll_offset.x)
        self.refresh(Region(x, index + 1 - int(self.scroll_offset.y), sum(self._widths[first:last + 1]), 1))

    def _measure(self, keep: bool, rows: list[list[Text]] | None = None) -> list[int]:
        """Column widths for the cells made (or `rows`); `keep`: none narrower than now."""
        made = [cells for cells in (self._cells if rows is None else rows) if cells is not None]
        widths = []
        for position, col in enumerate(self._columns):
            width = max([Text(col.label).cell_len, MIN_WIDTH.get(col.key, 0),
                         *(cells[position].cell_len for cells in made)])
            if col.key == "name":
                width = min(width, max(self.name_width, 4))
            widths.append(width + 2)  # a space each side
        if keep and len(widths) == len(self._widths):
            widths = [max(a, b) for a, b in zip(widths, self._widths)]
        return widths

    def toggle_mark(self, run_id: str) -> bool:
        if run_id in self.marked:
            del self.marked[run_id]
        else:
            self.marked[run_id] = None
        index = self._index.get(run_id)
        cells = self._cells[index - self.start] if index is not None else None
        if cells is not None and "mark" in {c.key for c in self._columns}:  # (cells not made yet get it when made)
            position = [c.key for c in self._columns].index("mark")
            cells[position] = mark_cell(run_id in self.marked, self.app.theme_variables)
            self._refresh_row(index)
        return run_id in self.marked

    # -- the cursor --------------------------------------------------------------------------------
    def move_cursor(self, row: int, scroll: bool = True) -> None:
        if not self.total:
            return
        row = max(0, min(self.total - 1, row))
        before = self.cursor_row
        self.cursor_row = row
        if before != row:
            self._refresh_row(before)
            self._refresh_row(row)
        if scroll:
            self.scroll_to_cursor()
        if before != row:
            self.post_message(self.Highlighted(self.highlighted_id))

    def scroll_to_cursor(self, keep_offset: int | None = None) -> None:
        """Bring the cursor's row on screen (`keep_offset`: at that line of the screen, when it can be)."""
        rows = self.rows_on_screen
        top = int(self.scroll_offset.y)
        if keep_offset is not None:
            top = self.cursor_row - keep_offset
        elif self.cursor_row < top:
            top = self.cursor_row
        elif self.cursor_row >= top + rows:
            top = self.cursor_row - rows + 1
        top = max(0, min(top, max(0, self.total - rows)))
        if top != int(self.scroll_offset.y):
            self.scroll_to(y=top, animate=False, immediate=True, force=True)

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor_row - self.rows_on_screen)

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor_row + self.rows_on_screen)

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(self.total - 1)

    def action_select_cursor(self) -> None:
        run_id = self.highlighted_id
        if run_id is not None:
            self.post_message(self.Selected(run_id))

    def on_click(self, event: events.Click) -> None:
        if event.y >= 1:
            row = int(self.scroll_offset.y) + event.y - 1
            if row < self.total:
                self.move_cursor(row, scroll=False)
                if event.chain >= 2:
                    self.action_select_cursor()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if round(old_value) != round(new_value):
            self._tick_due = 0.0  # other rows on screen: their times are looked at on the next tick
            self.post_message(self.WindowMoved())

    def on_resize(self) -> None:
        self.post_message(self.WindowMoved())

    # -- drawing -----------------------------------------------------------------------------------
    def _refresh_row(self, index: int) -> None:
        self._strips.pop(index, None)
        if index >= 0:
            self.refresh_line(index + 1)  # line 0 is the header

    def _forget(self) -> None:
        self._strips.clear()
        self._placeholders.clear()
        self._header = None

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._forget()

    def _on_focus(self, event: events.Focus) -> None:
        super()._on_focus(event)
        self._forget()  # the focused cursor and header have their own colours
        self.refresh()

    def _on_blur(self, event: events.Blur) -> None:
        super()._on_blur(event)
        self._forget()
        self.refresh()

    def render_line(self, y: int) -> Strip:
        self.renders += 1
        scroll_x = int(self.scroll_offset.x)
        width = self.scrollable_content_region.width
        if y == 0:
            key = (scroll_x, width)
            if self._header is None or self._header[0] != key:
                style = self.get_component_rich_style("runs-table--header")
                cells = [Text(c.label, style="") for c in self._columns]
                self._header = (key, self._strip(cells, style, style, scroll_x, width))
            return self._header[1]
        index = int(self.scroll_offset.y) + y - 1
        if index >= self.total:
            return Strip.blank(width, self.rich_style)
        row = self.row_at(index)
        cursor = index == self.cursor_row
        key = (row["id"] if row else None, cursor, scroll_x, width)
        cached = self._strips.get(index)
        if cached is not None and cached[0] == key:
            return cached[1]
        if row is None:
            self.post_message(self.WindowMoved())
            template = (index % 2, cursor, scroll_x, width)  # every line not read yet looks the same
            if template not in self._placeholders:
                placeholder = self.get_component_rich_style("runs-table--placeholder", partial=True)
                cells = [Text("…" if c.key == "name" else "", style=placeholder) for c in self._columns]
                self._placeholders[template] = self._strip(cells, *self._line_styles(index, cursor), scroll_x, width)
            strip = self._placeholders[template].apply_offsets(scroll_x, index)
        else:
            cells = self._row_cells(index - self.start)
            strip = self._strip(cells, *self._line_styles(index, cursor), scroll_x, width).apply_offsets(scroll_x, index)
        if len(self._strips) > 4 * max(64, self.rows_on_screen):
            self._strips.clear()
        self._strips[index] = (key, strip)
        return strip

    def _line_styles(self, index: int, cursor: bool) -> tuple[Style, Style | None]:
        """(under, over) a line's cells: the zebra stripe (and the cursor), and the cursor's text colour."""
        zebra = self.get_component_rich_style("runs-table--odd-row" if index % 2 else "runs-table--even-row")
        base = zebra + self.get_component_rich_style("runs-table--cursor") if cursor else zebra
        return base, Style(color=base.color) if cursor else None  # the cursor's text colour wins, as in a DataTable

    def _strip(self, cells: list[Text], base: Style, over: Style | None, scroll_x: int, width: int) -> Strip:
        strip = draw_line(cells, self._widths, base, over, self.app.console)
        return strip.crop_extend(scroll_x, scroll_x + width, base)
