"""The Runs pane's filter box: an Input that applies (enter) or clears (escape) the filter at the key
itself, and gives on the keys it gets after it lost the focus.

Keys typed ahead in one burst (a paste, `tmux send-keys`, a slow SSH link) are queued to the widget that
has the focus when the app reads them, so `/params.lr > 0.1⏎G` queues `G` to this input. As an Input's
binding, enter would act only once it had bubbled up to the app, after `G` was typed into the filter;
here it applies the filter in order, the focus moves to the table, and `G` goes on there (the last row).
The other direction, keys queued to the table behind `/`, is MltuiApp._on_key's.
"""

from __future__ import annotations

from collections.abc import Callable

from textual import events
from textual.widgets import Input


def given_on(event: events.Key) -> events.Key:
    """A copy of `event` for the widget that has the focus now, marked so that it is never given on again."""
    key = events.Key(event.key, event.character)
    key.given_on = True  # type: ignore[attr-defined]
    return key


class FilterInput(Input):
    def __init__(self, submit: Callable[[str], object], cancel: Callable[[], object], **kwargs) -> None:
        super().__init__(**kwargs)
        self.submit, self.cancel = submit, cancel

    async def _on_key(self, event: events.Key) -> None:
        focused = self.app.focused
        if focused is not None and focused is not self and focused.screen is self.screen:
            event.prevent_default()  # (Input's own handler would type it in)
            event.stop()
            focused._forward_event(given_on(event))
        elif event.key in ("enter", "escape"):
            event.prevent_default()
            event.stop()
            if event.key == "enter":
                self.submit(self.value)
            else:
                self.cancel()
