"""The TUI's channel: the events recorded since the screen opened, for its notices (no Textual here).

`Feed.poll()` runs in a worker thread: the first call only notes where the outbox stands (a screen opened
now does not replay history); each later call returns the newer events the TUI shows (every kind, unless
`tui = true` channels narrow it) and whether to ring the bell. Now and then it also starts the delivery
process for deliveries left waiting (a deliverer killed with the Slurm job it ran in, say).
"""

from __future__ import annotations

import sqlite3
import time

from mltui.core.workspace import Workspace

KICK_EVERY = 30.0  # seconds between looks for deliveries left waiting


class Feed:
    def __init__(self, ws: Workspace) -> None:
        from mltui.core.reader import StoreReader

        self.ws = ws
        self.reader = StoreReader(ws)
        self.after: int | None = None  # the newest event already seen
        self._kicked = time.monotonic()

    def poll(self, limit: int = 50) -> tuple[list[dict], bool]:
        """(new events to show, ring the bell)."""
        try:
            return self._poll(limit)
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # an older store opened read-only: it has no outbox to show
                return [], False
            raise

    def _poll(self, limit: int) -> tuple[list[dict], bool]:
        from mltui.base.errors import MltuiError
        from mltui.core.notify import outbox
        from mltui.core.notify.channels import Settings, load

        with self.reader.in_use():
            if not self.reader.changed() and self.after is not None:
                return [], False
            conn = self.reader.conn
            if self.after is None:
                self.after = outbox.latest_id(conn)
                return [], False
            events = outbox.events_after(conn, self.after, limit)
            if events:
                self.after = events[-1]["id"]
            waiting = time.monotonic() - self._kicked > KICK_EVERY and outbox.has_work(conn)
        if waiting:
            self._kicked = time.monotonic()
            from mltui.core.notify.events import kick

            try:
                kick(self.ws)
            except Exception:
                pass
        try:
            settings = load(self.ws)
        except MltuiError:
            settings = Settings()  # wrong settings: show everything, ring nothing
        return [e for e in events if settings.screen_wants(e["kind"])], settings.bell

    def close(self) -> None:
        self.reader.close()


SEVERITY = {"run.failed": "error", "run.lost": "error", "alert.opened": "error", "run.stalled": "warning",
            "promotion.requested": "warning"}


def severity(kind: str) -> str:
    """How loud a notice of this kind is: error, warning or information."""
    return SEVERITY.get(kind, "information")
