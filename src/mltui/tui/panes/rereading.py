"""For panes whose read is big (thousands of dataset or model versions): a forced poll that asks for
nothing new joins the poll under way instead of superseding it.

A forced poll supersedes the one under way (tui/polling.py), whose result is then dropped: right for a
poll asked for because something changed that the one under way may not have seen (a write, another
dataset highlighted), wasted for one that only wants the pane read now (the main screen asks twice as a
pane is first shown, while the pane's own first poll is under way): thousands of versions were read
twice before the first row was drawn. So the pane asks with `reread()` when it needs a fresh read, and
a plain `poll_now(force=True)` while a poll is under way lets that one answer.
"""

from __future__ import annotations

from textual.worker import WorkerState


class Rereads:
    """Mix into a Pane (before it): call `reread()` where the pane itself needs a read that sees a change."""

    _fresh_read = False

    def reread(self) -> None:
        """Read again now, superseding any poll under way (it may not see what just changed)."""
        self._fresh_read = True
        self.poll_now(force=True)

    def poll_now(self, force: bool = False, **kwargs) -> None:
        worker = self._poll_worker  # type: ignore[attr-defined]
        if force and not self._fresh_read and worker is not None and \
                worker.state in (WorkerState.PENDING, WorkerState.RUNNING):
            force = False  # the poll under way answers (it reschedules when done)
        self._fresh_read = False
        super().poll_now(force, **kwargs)  # type: ignore[misc]

    def action_refresh(self) -> None:
        self.reread()
