"""A small form: a title, a few text fields, enter or ctrl+s to accept, esc to cancel."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    placeholder: str = ""
    value: str = ""
    required: bool = False


class PromptScreen(ModalScreen[dict | None]):
    """Dismisses with {key: text} for every field, or None when cancelled."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="prompt.cancel"),
        Binding("ctrl+s", "accept", "OK", id="prompt.ok"),
    ]

    def __init__(self, title: str, fields: list[Field], note: Text | str | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.fields = fields
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical(id="launch", classes="prompt"):
            yield Label(Text(self.title_text), classes="title")
            if self.note:
                yield Static(self.note if isinstance(self.note, Text) else Text(self.note), classes="hint")
            yield Static(id="launch-error")
            for f in self.fields:
                yield Horizontal(Label(Text(f.label), classes="key"),
                                 Input(value=f.value, placeholder=f.placeholder, id=f"prompt-{f.key}", compact=True),
                                 classes="param-row")
            yield Label("enter accepts · tab moves · esc cancels", classes="hint")

    def on_mount(self) -> None:
        if self.fields:
            self.query_one(f"#prompt-{self.fields[0].key}").focus()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_accept()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_accept(self) -> None:
        values = {f.key: self.query_one(f"#prompt-{f.key}", Input).value.strip() for f in self.fields}
        missing = [f.label for f in self.fields if f.required and not values[f.key]]
        if missing:
            self.query_one("#launch-error", Static).update(Text(f"{missing[0]} is needed."))
            return
        self.dismiss(values)
