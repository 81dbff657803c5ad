"""The Runs table: a window onto a result of any size, drawn a line at a time.

It is a ScrollView (Textual's line API, as Toolong does for logs): its virtual height is the whole
result, so the scrollbar, PageDown and End cover every run, but it holds only a window of rows (the
page on screen plus a margin) that its pane reads from the store. Lines outside the window draw as
placeholders until the pane has read them; `WindowMoved` tells the pane what is on screen now.

Drawing costs nothing when nothing changes: a line is drawn again only when its cells changed, the
cursor moved onto or off it, or the view scrolled. Column widths are measured when a page arrives,
never when the relative times (Age, Time) tick.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from mltui.base.values import display
from mltui.core.runs.listing import duration, status_label
from mltui.tui.cells import age, number, plain, span, status_cell

MARK = "●"
TICKING = ("age", "time")  # columns whose text moves with the clock
MIN_WIDTH = {"age": 6, "time": 6}  # wide enough for any tick of "59m59s" or "23h59m"


@dataclass(frozen=True)
class Column:
    key: str
    label: str


def columns_for(params: list[str], metrics: list[str]) -> list[Column]:
    cols = [Column("mark", " "), Column("status", "Status"), Column("name", "Name"), Column("age", "Age"),
            Column("time", "Time")]
    cols += [Column(f"m:{k}", k) for k in metrics]
    cols += [Column(f"p:{k}", k) for k in params]
    cols.append(Column("id", "ID"))
    return cols


def mean_std(stats) -> str:
    """A group's metric: mean ± sample std (the mean alone for one run, '-' for none)."""
    if stats is None or stats.n == 0 or stats.mean is None:
        return "-"
    return display(stats.mean) if stats.std is None else f"{display(stats.mean)}±{display(stats.std)}"


def group_cells(table, row: dict) -> list[Text]:
    """A group row's cells: N, the group's params, the mean ± std of each metric column."""
    group = row["group"]
    out: list[Text] = []
    for col in table.columns:
        key = col.key
        if key == "status":
            out.append(Text(f"{'▾' if row['open'] else '▸'} N={group.n}", style="bold"))
        elif key == "name":
            label = plain(row["label"])  # param values are data: literal text
            label.stylize("bold")
            out.append(label)
        elif key.startswith("m:"):
            out.append(Text(mean_std(group.stats.get(key[2:])), justify="right"))
        else:
            out.append(Text(""))
    return out


def _same(a: Text, b: Text) -> bool:
    """Text's == looks at the characters and spans only; a restyled cell counts as changed."""
    return a.plain == b.plain and a.style == b.style and a.spans == b.spans and a.justify == b.justify


class RunsTable(ScrollView, can_focus=True):
    """Rows of runs keyed by run id; `total` rows in all, `window` of them held (from `start`)."""

    DEFAULT_CSS = """
    RunsTable {
        background: $surface;
        color: $foreground;
        &:focus {
            background-tint: $foreground 5%;
            & > .runs-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .runs-table--header {
                background-tint: $foreground 5%;
            }
        }
        &:dark > .runs-table--even-row {
            background: $surface-darken-1 40%;
        }
        & > .runs-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .runs-table--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .runs-table--even-row {
            background: $surface-lighten-1 50%;
        }
        & > .runs-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        & > .runs-table--placeholder {
            color: $text-muted;
        }
    }
    """
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
        self._cells: list[list[Text]] = []  # per window row
        self._columns: list[Column] = []
        self._widths: list[int] = []
        self._strips: dict[int, tuple[tuple, Strip]] = {}  # result index -> (what it showed, strip)
        self._header: tuple[tuple, Strip] | None = None
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
        return self._cells[index][position]

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
        if run.get("group") is not None:
            return group_cells(self, run)
        colours = self.app.theme_variables
        out: list[Text] = []
        for col in self._columns:
            key = col.key
            if key == "mark":
                out.append(Text(MARK if run["id"] in self.marked else " ", style=colours.get("accent", "")))
            elif key == "status":
                out.append(status_cell(run["status"], colours, status_label(run)))
            elif key == "name":
                out.append(plain(run["name"], self.name_width))
            elif key == "age":
                out.append(Text(age(run["created"], now), justify="right"))
            elif key == "time":
                out.append(Text(span(duration(run, now)), justify="right"))
            elif key == "id":
                out.append(Text(run["id"], style="dim"))
            elif key.startswith("p:"):
                params = run["params"]
                out.append(number(params[key[2:]]) if key[2:] in params else Text("-", justify="right", style="dim"))
            else:
                summary = run["metrics"].get(key[2:])
                out.append(number(summary["last"]) if summary else Text("-", justify="right", style="dim"))
        return out

    # -- data in -----------------------------------------------------------------------------------
    def show(self, total: int, offset: int, rows: list[dict], columns: list[Column], now: float,
             keep_widths: bool = True) -> None:
        """Hold `rows` (result indexes offset...) of a result `total` long. Only lines whose cells changed
        are drawn again; `keep_widths` lets columns widen but not narrow (the same result, scrolled)."""
        relayout = columns != self._columns
        self._columns = columns
        old = {row["id"]: (self.start + i, cells) for i, (row, cells) in enumerate(zip(self.window, self._cells))}
        self.total, self.start, self.window = total, offset, rows
        self._index = {row["id"]: offset + i for i, row in enumerate(rows)}
        self._cells = [self.cells(row, now) for row in rows]
        widths = self._measure(keep_widths and not relayout)
        if widths != self._widths:
            self._widths = widths
            relayout = True
        self.virtual_size = Size(sum(widths), total + 1)
        if self.cursor_row >= total:
            self.cursor_row = total - 1
        elif self.cursor_row < 0 and total:
            self.cursor_row = 0
        if relayout:
            self._forget()
            self.refresh()
            return
        first, last = self.visible_range()
        for i, cells in enumerate(self._cells):
            index = offset + i
            if not first <= index < last:
                continue
            before = old.get(rows[i]["id"])
            if before is None or before[0] != index or len(before[1]) != len(cells) \
                    or not all(_same(a, b) for a, b in zip(before[1], cells)):
                self._refresh_row(index)
        for index in range(first, last):  # rows no longer held (or never were): placeholders
            if not offset <= index < offset + len(rows) and index in self._strips:
                self._refresh_row(index)
        if last - first < self.rows_on_screen:
            self.refresh()  # the result got shorter: blank the lines below it

    def tick(self, now: float) -> None:
        """The clock moved: redraw the Age and Time cells that read differently now (widths stay)."""
        ticking = [(i, c.key) for i, c in enumerate(self._columns) if c.key in TICKING]
        if not ticking:
            return
        first, last = self.visible_range()
        for index in range(max(first, self.start), min(last, self.start + len(self.window))):
            i = index - self.start
            row, cells = self.window[i], self._cells[i]
            if row.get("group") is not None:
                continue  # a group row has no times
            changed = False
            for position, key in ticking:
                text = age(row["created"], now) if key == "age" else span(duration(row, now))
                if cells[position].plain != text:
                    cells[position] = Text(text, justify="right")
                    changed = True
            if changed:
                self._refresh_row(index)

    def _measure(self, keep: bool) -> list[int]:
        widths = []
        for position, col in enumerate(self._columns):
            width = max([Text(col.label).cell_len, MIN_WIDTH.get(col.key, 0),
                         *(cells[position].cell_len for cells in self._cells)])
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
        if index is not None and "mark" in {c.key for c in self._columns}:
            position = [c.key for c in self._columns].index("mark")
            self._cells[index - self.start][position] = Text(
                MARK if run_id in self.marked else " ", style=self.app.theme_variables.get("accent", ""))
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
        zebra = self.get_component_rich_style("runs-table--odd-row" if index % 2 else "runs-table--even-row")
        base = zebra + self.get_component_rich_style("runs-table--cursor") if cursor else zebra
        over = Style(color=base.color) if cursor else None  # the cursor's text colour wins, as in a DataTable
        if row is None:
            placeholder = self.get_component_rich_style("runs-table--placeholder", partial=True)
            cells = [Text("…" if c.key == "name" else "", style=placeholder) for c in self._columns]
            self.post_message(self.WindowMoved())
        else:
            cells = self._cells[index - self.start]
        strip = self._strip(cells, base, over, scroll_x, width).apply_offsets(scroll_x, index)
        if len(self._strips) > 4 * max(64, self.rows_on_screen):
            self._strips.clear()
        self._strips[index] = (key, strip)
        return strip

    def _strip(self, cells: list[Text], base: Style, over: Style | None, scroll_x: int, width: int) -> Strip:
        line = Text(no_wrap=True, end="")
        for cell, full in zip(cells, self._widths):
            inner = full - 2
            text = cell.copy()
            if text.cell_len > inner:
                text.truncate(inner, overflow="ellipsis")
            gap = inner - text.cell_len
            line.append(" " * (1 + (gap if text.justify == "right" else 0)))
            line.append_text(text)
            line.append(" " * (1 + (0 if text.justify == "right" else gap)))
        line.stylize_before(base)
        if over is not None:
            line.stylize(over)
        strip = Strip(line.render(self.app.console), line.cell_len)
        return strip.crop_extend(scroll_x, scroll_x + width, base)
