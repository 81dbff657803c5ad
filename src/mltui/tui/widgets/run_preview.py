"""A side panel on wide terminals: the highlighted run at a glance."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from mltui.core.runs.listing import duration
from mltui.tui.cells import age, plain, span, status_cell


class RunPreview(Static):
    """Shows params, tags and latest metrics of one run (from the snapshot; no store access). Its size is
    set by the CSS, so new content needs no layout (a layout would draw the whole screen again)."""

    def show_run(self, run: dict | None) -> None:
        if run is None:
            self.update(Text("No run highlighted.", style="dim"), layout=False)
            return
        head = Text.assemble(plain(run["name"]), "\n", Text(run["id"], style="dim"), "  ",
                             status_cell(run["status"], self.app.theme_variables))
        head.append(f"\ncreated {age(run['created'])} ago · ran {span(duration(run))}", style="dim")
        parts: list = [head]
        for title, values, fmt in (
            ("metrics (last)", {k: s["last"] for k, s in run["metrics"].items()}, None),
            ("params", run["params"], None),
            ("tags", run["tags"], None),
        ):
            if not values:
                continue
            grid = Table.grid(padding=(0, 1))
            grid.add_column(style="bold", no_wrap=True, max_width=24)
            grid.add_column(no_wrap=True)
            for key, value in values.items():
                grid.add_row(plain(key, 24), plain(_short(value)))
            parts.extend([Text(""), Text(title, style="underline"), grid])
        self.update(Group(*parts), layout=False)


def _short(value: object) -> str:
    from mltui.base.values import display

    return display(value)
