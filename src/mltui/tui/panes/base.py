"""What the main screen's panes have in common: a `Pane` is a Vertical that polls (tui/polling.py).

- The reader: a pane that reads the store (`reads_store`, the default) owns a StoreReader from
  construction to unmount; its polls hold it in use (see Polling), and unmounting closes it.
- The refresh: `poll_interval` is the refresh period it is built with; it polls once on mount
  (`first_poll`), then only while its tab is shown (`should_poll`); ctrl+r (`action_refresh`) polls at once.
- Reading: `collect` skips the read when nothing was committed since the last one (unless forced),
  else returns `read(conn)`. A store older than the tables `read` needs (opened read-only, so never
  migrated) gives `before_tables()` (by default the error stands).
- The empty state: a pane with `empty_id` composes `empty_note()`, a sentence on what to do, and
  `show_empty(True)` shows it instead of the widgets named by `body_ids`.
- The focus: focus given to the pane itself passes on to `focus_id` once the body is shown. Its keys
  do nothing until it is mounted (a switch focuses a pane it has just built).

Subclasses add their own mount handlers (Textual runs each class's `on_mount`, the subclass's first),
so a pane sets up its widgets and then this base polls.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import Static

from mltui.core.reader import StoreReader, TablesMissing
from mltui.core.workspace import Workspace
from mltui.tui.polling import Polling


class Pane(Vertical, Polling):
    reads_store: ClassVar[bool] = True
    empty_id: ClassVar[str | None] = None  # the Static saying what to do while there is nothing to show
    empty_text: ClassVar[str] = ""
    body_ids: ClassVar[tuple[str, ...]] = ()  # what the empty note stands in for
    focus_id: ClassVar[str | None] = None  # where focus given to the pane goes once the body shows

    def __init__(self, ws: Workspace, refresh_seconds: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ws = ws
        self.poll_interval = refresh_seconds
        self.reader = StoreReader(ws) if self.reads_store else None

    # -- lifecycle ---------------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.first_poll()

    def first_poll(self) -> None:
        """The poll on mount (a pane that has read its first snapshot already may skip it)."""
        self.poll_now(force=True)

    def on_unmount(self) -> None:
        if self.reader is not None:
            self.reader.close()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # a key that reaches a pane just built (focused at once by a switch) before it is composed
        # passes on: the pane's actions read widgets it does not have yet
        return super().check_action(action, parameters) if self.is_mounted else False

    def on_focus(self) -> None:
        if self.focus_id and self.body_ids and self.query_one(f"#{self.body_ids[0]}").display:
            self.app.set_focus(self.query_one(f"#{self.focus_id}"))

    # -- polling -----------------------------------------------------------------------------------
    def should_poll(self) -> bool:
        return self.shown_in_tab()

    def collect(self, force: bool) -> Any:
        assert self.reader is not None, "a pane that reads no store implements collect itself"
        if not self.reader.changed() and not force:
            return None
        try:
            return self.reader.read(self.read)
        except TablesMissing as exc:
            return self.before_tables(exc)

    def read(self, conn) -> Any:
        """Runs in the poll's thread: the pane's snapshot, read on `conn`."""
        raise NotImplementedError

    def before_tables(self, exc: TablesMissing) -> Any:
        """The snapshot for a store older than the tables `read` needs; by default the error stands."""
        raise exc

    def action_refresh(self) -> None:
        self.poll_now(force=True)

    # -- the empty state ---------------------------------------------------------------------------
    def empty_note(self) -> Static:
        """The sentence shown instead of the body while there is nothing; hidden until `show_empty`."""
        note = Static(Text(self.empty_text), id=self.empty_id)
        note.display = False
        return note

    def show_empty(self, empty: bool) -> None:
        """The empty note instead of the body (True), or the body (False). Focus inside the pane stays
        inside it: on the pane itself while the body is hidden (a hidden widget would drop it, and then
        the pane's keys), back on `focus_id` once the body shows."""
        focused = self.app.focused
        self.query_one(f"#{self.empty_id}").display = empty
        for body in self.body_ids:
            self.query_one(f"#{body}").display = not empty
        if focused is None or not self.can_focus or self not in focused.ancestors_with_self:
            return
        if empty and focused is not self:
            self.app.set_focus(self, scroll_visible=False)
        elif not empty and focused is self and self.focus_id:
            self.app.set_focus(self.query_one(f"#{self.focus_id}"))
