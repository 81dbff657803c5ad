"""Why a pipeline stage is in its state: a small read-only dialog of lines (enter or esc closes it)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static


class WhyScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter,s,q", "close", "Close", id="why.close")]

    def __init__(self, title: Text, lines: list[Text]) -> None:
        super().__init__()
        self.title_text = title
        self.lines = lines

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="why"):
            yield Static(self.title_text, id="why-title")
            yield Static(Text("\n").join(self.lines), id="why-lines")
            yield Label("enter or esc: close", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
