"""A launched run's output, live: the log view plus a header with the run's status.

A screen pushed over the main screen (screens/). The header's run (name, status, reason) is polled
from the store in a thread worker (tui/polling.py); the line count comes from the log view itself.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from mltui.core.reader import StoreReader
from mltui.base.text import safe
from mltui.core.workspace import Workspace
from mltui.tui.cells import status_cell
from mltui.tui.polling import Polling
from mltui.tui.widgets.log_view import LogView


class LogScreen(Screen, Polling):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="log.back"),
        Binding("k", "app.kill_run", "Kill", id="log.kill"),
        Binding("r", "app.rerun", "Rerun", id="log.rerun"),
    ]
    poll_group = "log-poll"
    poll_interval = 1.0  # the header's line count moves with the log, whatever the store does

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
        self.poll_now(force=True)

    def on_unmount(self) -> None:
        self.reader.close()

    def collect(self, force: bool) -> dict:
        """The run as the store has it now ({}: gone from the store), read on every poll."""
        from mltui.core.runs.listing import runs_by_id

        found = runs_by_id(self.reader.conn, [self.run_id])
        return found[0] if found else {}

    def apply(self, run: dict | None) -> None:
        if run is None:
            return  # the screen went away while the poll waited
        if not run:
            self.query_one("#log-header", Static).update(Text(f"Run {self.run_id} is no longer in the store."))
            return
        name, status, reason = run["name"], run["status"], run["reason"]
        header = Text.assemble(status_cell(status, self.app.theme_variables), "  ",
                               Text(safe(name), style="bold"), "  ", Text(self.run_id, style="dim"))
        if reason and status not in ("running", "queued"):
            header.append(f"  {safe(reason)}", style="dim")
        view = self.query_one(LogView)
        header.append(f"  · {view.line_count:,} lines" + (" · following" if view.follow else ""), style="dim")
        self.query_one("#log-header", Static).update(header)
        self.status = status
