"""What the Runs table (widgets/runs_table.py) draws: its columns, a row's cells, and a line of cells as a
Strip.

A line is drawn straight to segments (a padded cell is three: the gap, the text, the gap), not through a
Rich Text the width of the table: a page of lines is drawn on every filter, sort and jump, and this is
most of what that costs. Relative times (Age, and Time while a run runs) say when they will next read
differently (`next_change`), so the table wakes for them only then: once a second for times under an
hour, once a minute under a day, once an hour past that.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

from mltui.base.values import display
from mltui.core.runs.listing import duration, status_label
from mltui.tui.cells import age, number, plain, span, status_cell

MARK = "●"
TICKING = ("age", "time")  # columns whose text moves with the clock
MIN_WIDTH = {"age": 6, "time": 6}  # wide enough for any tick of "59m59s" or "23h59m"
_NULL = Style.null()
# the table's look: its header, zebra stripes, cursor (focused and not) and lines not read yet
TABLE_CSS = """
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


def group_cells(columns: list[Column], row: dict) -> list[Text]:
    """A group row's cells: N, the group's params, the mean ± std of each metric column."""
    group = row["group"]
    out: list[Text] = []
    for col in columns:
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


def mark_cell(marked: bool, colours: dict[str, str]) -> Text:
    return Text(MARK if marked else " ", style=colours.get("accent", ""))


def run_cells(run: dict, columns: list[Column], now: float, colours: dict[str, str], marked: bool,
              name_width: int) -> list[Text]:
    """A run's cells, one per column (user data as literal text)."""
    if run.get("group") is not None:
        return group_cells(columns, run)
    out: list[Text] = []
    for col in columns:
        key = col.key
        if key == "mark":
            out.append(mark_cell(marked, colours))
        elif key == "status":
            out.append(status_cell(run["status"], colours, status_label(run)))
        elif key == "name":
            out.append(plain(run["name"], name_width))
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


def clock_texts(run: dict, now: float) -> tuple[str, str]:
    """(Age, Time) as they read at `now`."""
    return age(run["created"], now), span(duration(run, now))


def next_change(run: dict, now: float) -> float:
    """Seconds from `now` until the run's Age or Time reads differently (span's resolution: seconds under
    an hour, minutes under a day, hours past that)."""
    soonest = _until_next(now - run["created"]) if run.get("created") is not None else float("inf")
    if run.get("started") is not None and not run.get("ended"):  # a finished run's Time stays as it is
        soonest = min(soonest, _until_next(now - run["started"]))
    return soonest


def _until_next(elapsed: float) -> float:
    elapsed = max(0.0, elapsed)
    step = 1 if elapsed < 3600 else 60 if elapsed < 86400 else 3600
    return step - elapsed % step


def same(a: Text, b: Text) -> bool:
    """Text's == looks at the characters and spans only; a restyled cell counts as changed."""
    return a.plain == b.plain and a.style == b.style and a.spans == b.spans and a.justify == b.justify


def draw_line(cells: list[Text], widths: list[int], base: Style, over: Style | None, console) -> Strip:
    """One line of cells, each padded to its width (a space each side; right-justified cells pad on the
    left): `base` under everything, each cell's own style over it, `over` (the cursor's colour) on top.

    The segments are those Rich would give for the line as one Text (a styled cell is a segment of its own,
    unstyled text runs on with the padding), drawn without building that Text."""
    if any(cell.spans for cell in cells):
        return _draw_line_text(cells, widths, base, over, console)
    get_style = console.get_style
    pad = base + over if over is not None else base
    segments: list[Segment] = []
    run: list[str] = []  # text in the padding's style, not yet a segment
    total = 0
    for cell, full in zip(cells, widths):
        total += full
        text, length, inner = cell, cell.cell_len, full - 2
        if length > inner:
            text = text.copy()
            text.truncate(inner, overflow="ellipsis")
            length = text.cell_len
        gap = inner - length
        right = text.justify == "right"
        run.append(" " * (1 + gap) if right else " ")
        own = text.style
        if own:  # a segment of its own, even where it looks like the padding (as Rich splits it)
            if run:
                segments.append(Segment("".join(run), pad))
                run.clear()
            if text.plain:
                style = base + (get_style(own, default=_NULL) if isinstance(own, str) else own)
                segments.append(Segment(text.plain, style + over if over is not None else style))
        else:
            run.append(text.plain)
        run.append(" " if right else " " * (1 + gap))
    if run:
        segments.append(Segment("".join(run), pad))
    return Strip(segments, total)


def _draw_line_text(cells: list[Text], widths: list[int], base: Style, over: Style | None, console) -> Strip:
    """draw_line through a Rich Text, for cells with spans of their own (a group row's label)."""
    line = Text(no_wrap=True, end="")
    for cell, full in zip(cells, widths):
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
    return Strip(line.render(console), line.cell_len)
