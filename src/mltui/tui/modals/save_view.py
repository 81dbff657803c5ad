"""A small dialog that names the current comparison and saves it as a view."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from mltui.base.errors import MltuiError
from mltui.core.runs.views import View, save_view
from mltui.core.reader import with_writer
from mltui.core.workspace import Workspace


class SaveViewScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="save_view.cancel")]

    def __init__(self, ws: Workspace, view: View) -> None:
        super().__init__()
        self.ws = ws
        self.view = view

    def compose(self) -> ComposeResult:
        with Vertical(id="save-view"):
            yield Label("Save this comparison as a view. Name:")
            yield Input(placeholder="e.g. lr-sweep-nov", id="view-name")
            yield Label("enter saves · esc cancels", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        name = event.value.strip()
        try:
            with_writer(self.ws, lambda conn: save_view(conn, name, self.view))
        except MltuiError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self.notify(f"Saved view {name!r}; reopen it from the command palette.", markup=False)
        self.dismiss(name)

    def action_cancel(self) -> None:
        self.dismiss(None)
