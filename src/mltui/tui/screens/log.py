"""A launched run's output, live: the log view plus a header with the run's status."""

from __future__ import annotations

import sqlite3

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from mltui.core.reader import StoreReader
from mltui.base.text import safe
from mltui.core.workspace import Workspace
from mltui.tui.cells import status_cell
from mltui.tui.widgets.log_view import LogView


class LogScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="log.back"),
        Binding("k", "app.kill_run", "Kill", id="log.kill"),
        Binding("r", "app.rerun", "Rerun", id="log.rerun"),
    ]

    def __init__(self, ws: Workspace, run_id: str) -> None:
        super().__init__()
        self.ws = ws
        self.run_id = run_id
        self.reader = StoreReader(ws)
        self.status: str | None = None

    @property
    def current_run_id(self) -> str:
        return self.run_id

    def compose(self) -> ComposeResult:
        yield Static(id="log-header")
        yield LogView(self.ws.run_dir(self.run_id) / "output.log", follow=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(LogView).focus()
        self._refresh_header()
        self.set_interval(1.0, self._refresh_header)

    def on_unmount(self) -> None:
        self.reader.close()

    def _refresh_header(self) -> None:
        try:
            row = self.reader.conn.execute(
                "SELECT name, status, reason FROM runs WHERE id = ?", (self.run_id,)).fetchone()
        except sqlite3.Error:
            return
        if row is None:
            self.query_one("#log-header", Static).update(Text(f"Run {self.run_id} is no longer in the store."))
            return
        name, status, reason = row
        header = Text.assemble(status_cell(status, self.app.theme_variables), "  ",
                               Text(safe(name), style="bold"), "  ", Text(self.run_id, style="dim"))
        if reason and status not in ("running", "queued"):
            header.append(f"  {safe(reason)}", style="dim")
        view = self.query_one(LogView)
        header.append(f"  · {view.line_count:,} lines" + (" · following" if view.follow else ""), style="dim")
        self.query_one("#log-header", Static).update(header)
        self.status = status
