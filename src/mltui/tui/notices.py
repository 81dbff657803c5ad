"""The TUI as a notification channel: every new event of the outbox (core/notify) becomes a notice on
whatever screen is shown, and the terminal bell rings with it when `[notify] bell = true`.

A thread worker collects (core/notify/feed.py); the UI thread shows. Looks never overlap, and an error is
said once, not at every look.
"""

from __future__ import annotations

from textual.app import App

from mltui.core.workspace import Workspace

MAX_SHOWN = 4  # notices at once; past that, one more says how many others came


class NoticeFeed:
    interval = 2.0  # seconds between looks at the outbox

    def __init__(self, app: App, ws: Workspace) -> None:
        from mltui.core.notify.feed import Feed

        self.app = app
        self.feed = Feed(ws)
        self._busy = False
        self._error: str | None = None
        self._timer = None

    def start(self) -> None:
        self._look()  # notes where the outbox stands: the history is not replayed
        self._timer = self.app.set_interval(self.interval, self._look)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self.feed.close()

    def _look(self) -> None:
        if self._busy:
            return
        self._busy = True
        self.app.run_worker(self._collect, thread=True, group="notices", exit_on_error=False)

    def _collect(self) -> None:
        try:
            events, bell = self.feed.poll()
            error = None
        except Exception as exc:  # the reader closed as the app left, a store that cannot be read
            events, bell, error = [], False, str(exc)
        try:
            self.app.call_from_thread(self._show, events, bell, error)
        except RuntimeError:
            pass  # the app is gone

    def _show(self, events: list[dict], bell: bool, error: str | None) -> None:
        from mltui.core.notify.feed import severity

        self._busy = False
        if error and error != self._error and "closed" not in error:
            self.app.notify(f"Cannot read the notifications: {error}", severity="warning", timeout=8, markup=False)
        self._error = error
        for event in events[-MAX_SHOWN:]:
            self.app.notify(event["subject"], title=event["kind"], severity=severity(event["kind"]), timeout=10,
                            markup=False)
        if len(events) > MAX_SHOWN:
            self.app.notify(f"and {len(events) - MAX_SHOWN} more events (mltui notify list)", timeout=10,
                            markup=False)
        if events and bell:
            self.app.bell()
