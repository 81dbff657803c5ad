"""A yes/no question before something that cannot be undone (killing a run)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: Text | str, hint: str = "y: yes · n or esc: no") -> None:
        super().__init__()
        self.question = question if isinstance(question, Text) else Text(question)
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(self.question)
            yield Label(self.hint, classes="hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
