"""The Runs table: keyed rows updated in place, never cleared and refilled on a tick."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from mltui.core.runs import duration
from mltui.tui.cells import age, number, plain, span, status_cell


@dataclass(frozen=True)
class Column:
    key: str  # "status", "name", ..., "p:<param>" or "m:<metric>"
    label: str


def columns_for(params: list[str], metrics: list[str]) -> list[Column]:
    cols = [Column("status", "Status"), Column("name", "Name"), Column("age", "Age"), Column("time", "Time")]
    cols += [Column(f"m:{k}", k) for k in metrics]
    cols += [Column(f"p:{k}", k) for k in params]
    cols.append(Column("id", "ID"))
    return cols


class RunsTable(DataTable):
    """One row per run, keyed by run id."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Open", id="runs.open"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._columns: list[Column] = []
        self._cells: dict[str, list[Text]] = {}
        self.name_width = 28

    def cells(self, run: dict, now: float) -> list[Text]:
        colours = self.app.theme_variables
        out: list[Text] = []
        for col in self._columns:
            key = col.key
            if key == "status":
                out.append(status_cell(run["status"], colours))
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
        """Make the table hold exactly `runs`, in order: remove, update and add rows by key."""
        highlighted = self.highlighted_id
        if columns != self._columns:
            self.clear(columns=True)
            self._cells.clear()
            self._columns = columns
            for col in columns:
                self.add_column(plain(col.label, 16), key=col.key)
        wanted = {run["id"] for run in runs}
        with self.app.batch_update():
            for run_id in [rid for rid in self._cells if rid not in wanted]:
                self.remove_row(run_id)
                del self._cells[run_id]
            for run in runs:
                new = self.cells(run, now)
                old = self._cells.get(run["id"])
                if old is None:
                    self.add_row(*new, key=run["id"])
                else:
                    for col, before, after in zip(self._columns, old, new):
                        if before != after:
                            self.update_cell(run["id"], col.key, after, update_width=True)
                self._cells[run["id"]] = new
            order = {run["id"]: i for i, run in enumerate(runs)}
            current = [row.key.value for row in self.ordered_rows]
            if current != [run["id"] for run in runs]:
                self.sort("id", key=lambda cell: order.get(cell.plain, 0))
        if highlighted in order:
            self.move_cursor(row=self.get_row_index(highlighted), animate=False)

    @property
    def highlighted_id(self) -> str | None:
        if not self.row_count or self.cursor_row < 0:
            return None
        try:
            return self.coordinate_to_cell_key((self.cursor_row, 0)).row_key.value
        except Exception:
            return None
