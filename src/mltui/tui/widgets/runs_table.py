"""The Runs table: one keyed row per run, with a mark column for picking runs to compare."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding

from mltui.core.runs.listing import duration, status_label
from mltui.tui.cells import age, number, plain, span, status_cell
from mltui.tui.widgets.keyed_table import Column, KeyedTable

MARK = "●"


def columns_for(params: list[str], metrics: list[str]) -> list[Column]:
    cols = [Column("mark", " "), Column("status", "Status"), Column("name", "Name"), Column("age", "Age"),
            Column("time", "Time")]
    cols += [Column(f"m:{k}", k) for k in metrics]
    cols += [Column(f"p:{k}", k) for k in params]
    cols.append(Column("id", "ID"))
    return cols


class RunsTable(KeyedTable):
    """One row per run, keyed by run id."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Open", id="runs.open"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.name_width = 28
        self.marked: dict[str, None] = {}  # ordered set of marked run ids

    def cells(self, run: dict, now: float) -> list[Text]:
        colours = self.app.theme_variables
        out: list[Text] = []
        for col in self.synced_columns:
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

    def show(self, runs: list[dict], columns: list[Column], now: float) -> None:
        """Make the table hold exactly `runs`, in order."""
        if columns != self.synced_columns:
            self.sync(columns, [], "id")  # new columns first, so cells() builds them
        self.sync(columns, [(run["id"], self.cells(run, now)) for run in runs], "id")

    @property
    def highlighted_id(self) -> str | None:
        return self.highlighted_key

    def toggle_mark(self, run_id: str) -> bool:
        if run_id in self.marked:
            del self.marked[run_id]
        else:
            self.marked[run_id] = None
        self.update_cell(run_id, "mark", Text(MARK if run_id in self.marked else " ",
                                              style=self.app.theme_variables.get("accent", "")))
        return run_id in self.marked
