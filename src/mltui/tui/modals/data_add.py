"""The dialog that records a dataset version from the TUI, hashing in a thread with a progress bar; the
thread reports by messages (tui/messages.py: HashProgress, DataAdded, DataAddFailed)."""

from __future__ import annotations

import time

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Label, ProgressBar, Static

from mltui.core.workspace import Workspace
from mltui.tui.messages import DataAddFailed, DataAdded, HashProgress

SHOW_AFTER = 1.0  # seconds of hashing before the progress bar appears


class AddDataScreen(ModalScreen[str | None]):
    """Dismisses with the recorded version's label, or None when cancelled."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="data_add.cancel"),
        Binding("ctrl+s", "add", "Add", id="data_add.go"),
    ]

    def __init__(self, ws: Workspace, name: str | None = None) -> None:
        super().__init__()
        self.ws = ws
        self.initial_name = name or ""
        self.busy = False

    def compose(self) -> ComposeResult:
        with Vertical(id="launch"):
            yield Label("Record a dataset version", classes="title")
            yield Static(id="launch-error")
            for key, placeholder, value in (("path", "data/  (a file or folder, relative to the project)", ""),
                                            ("name", "churn", self.initial_name),
                                            ("message", "what changed (optional)", "")):
                yield Horizontal(Label(key, classes="key"),
                                 Input(value=value, placeholder=placeholder, id=f"data-add-{key}", compact=True),
                                 classes="param-row")
            with Horizontal(id="launch-row"):
                yield Checkbox("store the bytes in the cache (for checkout)", value=True, id="data-add-store",
                               compact=True)
            yield ProgressBar(id="data-add-progress", show_eta=False)
            yield Label("ctrl+s (or enter) adds · tab moves · esc cancels", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#data-add-progress").display = False
        self.query_one("#data-add-path").focus()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_add()

    def action_cancel(self) -> None:
        if not self.busy:
            self.dismiss(None)

    def action_add(self) -> None:
        if self.busy:
            return
        path = self.query_one("#data-add-path", Input).value.strip()
        name = self.query_one("#data-add-name", Input).value.strip()
        if not path or not name:
            self._error("Give the path of a file or folder and a dataset name.")
            return
        self.busy = True
        self._error("")
        self._add(path, name, self.query_one("#data-add-message", Input).value.strip() or None,
                  self.query_one("#data-add-store", Checkbox).value)

    def _error(self, message: str) -> None:
        self.query_one("#launch-error", Static).update(Text(message))

    @work(thread=True, exclusive=True, group="data-add", exit_on_error=False)
    def _add(self, path: str, name: str, message: str | None, store: bool) -> None:
        from pathlib import Path

        from mltui.core.data.versions import add
        from mltui.core.reader import with_writer

        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            if time.monotonic() - started >= SHOW_AFTER:
                self.post_message(HashProgress(done, total))

        try:
            where = Path(path).expanduser()
            where = where if where.is_absolute() else self.ws.project_dir / where
            result = with_writer(self.ws, lambda conn: add(self.ws, conn, where, name, message, store=store,
                                                           progress=progress))
        except Exception as exc:  # a sentence in the dialog, never a crash
            self.post_message(DataAddFailed(str(exc)))
            return
        v = result.version
        said = f"{v.label}: version {v.seq}" if result.created else f"{v.label}: unchanged (already version {v.seq})"
        self.post_message(DataAdded(said))

    def on_hash_progress(self, message: HashProgress) -> None:
        bar = self.query_one("#data-add-progress", ProgressBar)
        bar.display = True
        bar.update(total=max(1, message.total), progress=message.done)

    def on_data_added(self, message: DataAdded) -> None:
        self.dismiss(message.said)

    def on_data_add_failed(self, message: DataAddFailed) -> None:
        self.busy = False
        self.query_one("#data-add-progress").display = False
        self._error(message.error)
