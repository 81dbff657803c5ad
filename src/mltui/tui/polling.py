"""The refresh loop shared by the panes (panes/base.py) and the screens that poll (the run detail, the
log): a thread worker collects, the UI thread applies, one timer reschedules.

Polls never overlap (one worker group, one timer), and a pane that is not on screen is not polled.
Other thread work (a one-off load or computation) answers with a message of tui/messages.py instead.

Two ways to do less:
- `quick_check`: before a timed poll, the UI thread may tell at once that nothing changed (the store's
  data_version, looked at without waiting); the poll is then skipped, no thread started.
- `poll_now(wait=...)`: a poll a key asked for (a filter, a jump) is read in a thread of its own while
  the UI thread waits a moment for it, so the answer is drawn in the frame after the key, not after a
  frame of the old state; a read that takes longer is applied when it comes, as any poll.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from textual.timer import Timer
from textual.worker import Worker, WorkerState

if TYPE_CHECKING:
    from mltui.core.reader import StoreReader


class Polling:
    """Mix into a Widget or Screen; implement `collect` (in a thread) and `apply` (on the UI thread)."""

    poll_group = "poll"
    poll_interval = 1.0
    _poll_timer: Timer | None = None
    _poll_force = False
    _poll_error: str | None = None
    _poll_worker: Worker | None = None
    _poll_lock: threading.Lock | None = None
    _direct: object | None = None  # the read poll_now(wait=...) started, until its result is applied
    reader: StoreReader | None = None  # a pane that reads the store sets this; polls hold it in use

    def collect(self, force: bool) -> Any:
        """Runs in a thread: return a snapshot, or None when nothing changed."""
        raise NotImplementedError

    def apply(self, snapshot: Any) -> None:
        """Runs on the UI thread with what `collect` returned (None: nothing changed)."""
        raise NotImplementedError

    def should_poll(self) -> bool:
        return True

    def quick_check(self) -> bool:
        """On the UI thread, for a poll that is not forced: True when it is plain at once that nothing
        changed (then `apply(None)` and no thread). By default it never is."""
        return False

    def shown_in_tab(self) -> bool:
        """For a pane inside a tab: mounted, on the screen shown, and its tab the active one."""
        return (self.is_attached and self.screen is self.app.screen  # type: ignore[attr-defined]
                and self.display and self.parent.display)  # type: ignore[attr-defined]

    def poll_now(self, force: bool = False, wait: float = 0.0) -> None:
        """Poll now (`force`: read even if the store looks unchanged; `wait`: seconds the UI thread may
        wait for the answer, to draw it at once)."""
        self._poll_force = self._poll_force or force
        if self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None
        if not self.should_poll():
            self._schedule()
            return
        running = self._direct is not None or (
            self._poll_worker is not None and self._poll_worker.state in (WorkerState.PENDING, WorkerState.RUNNING))
        if running and not self._poll_force:
            return  # the poll under way reschedules when it is done
        if not self._poll_force and self.quick_check():
            self.apply(None)
            self._schedule()
            return
        force, self._poll_force = self._poll_force, False
        if self._poll_lock is None:  # made here, on the UI thread, so every worker shares the one lock
            self._poll_lock = threading.Lock()
        # a forced poll supersedes one under way: that one's result is dropped (see on_worker_state_changed)
        self._poll_worker = None
        if wait > 0:
            self._read_direct(force, wait)
            return
        self._direct = None
        self._poll_worker = self.run_worker(  # type: ignore[attr-defined]
            lambda: self._collect_alone(force), thread=True, exclusive=True, group=self.poll_group,
            exit_on_error=False,
        )

    def _collect_alone(self, force: bool) -> Any:
        from textual.worker import get_current_worker

        assert self._poll_lock is not None
        with self._poll_lock:  # a superseded worker may still be running: never two on one connection
            if get_current_worker() is not self._poll_worker:
                return None  # superseded while it waited: its result would be dropped, so read nothing
            return self._collect_held(force)

    def _collect_held(self, force: bool) -> Any:
        """`collect`, the poll lock held."""
        from mltui.core.reader import ReaderClosed

        reader = self.reader
        if reader is None:
            return self.collect(force)
        try:
            with reader.in_use():  # the pane's unmount waits for this before closing the connection
                return self.collect(force)
        except ReaderClosed:
            return None  # the pane went away while this poll waited

    def _read_direct(self, force: bool, wait: float) -> None:
        """Collect in a thread of its own; wait up to `wait` seconds for it (the UI thread blocked, so the
        read has the GIL to itself), then apply at once, or when it comes."""
        token = self._direct = object()
        box: dict[str, Any] = {}
        done = threading.Event()
        waiting = [True]  # the UI thread still waits: it applies (else the read hands its result over)
        lock = threading.Lock()

        def read() -> None:
            assert self._poll_lock is not None
            try:
                with self._poll_lock:
                    if self._direct is token:
                        box["result"] = self._collect_held(force)
            except Exception as exc:  # noqa: BLE001 - said like a poll's error, on the UI thread
                box["error"] = exc
            with lock:
                done.set()
                late = not waiting[0]
            if late:
                self.call_later(self._direct_done, token, box)  # type: ignore[attr-defined]  # (thread-safe)

        threading.Thread(target=read, name=f"mltui-{self.poll_group}", daemon=True).start()
        done.wait(wait)
        with lock:
            waiting[0] = False
            answered = done.is_set()
        if answered:
            self._direct_done(token, box)

    def _direct_done(self, token: object, box: dict[str, Any]) -> None:
        if token is not self._direct or not self.is_attached:  # type: ignore[attr-defined]
            return  # superseded by a later poll, or the pane went away
        self._direct = None
        if "error" in box:
            self._poll_failed(box["error"])
            return
        self._poll_error = None
        try:
            if "result" in box:
                self.apply(box["result"])
        finally:
            self._schedule()

    def _schedule(self, delay: float | None = None) -> None:
        if self._poll_timer is not None:
            self._poll_timer.stop()
        self._poll_timer = self.set_timer(delay or self.poll_interval, self.poll_now)  # type: ignore[attr-defined]

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != self.poll_group or event.worker is not self._poll_worker:
            return  # another group's worker, or a superseded poll: its result is stale
        if not self.is_attached:  # type: ignore[attr-defined]
            return  # the pane was removed while its last poll ran
        if event.state == WorkerState.SUCCESS:
            self._poll_error = None
            try:
                self.apply(event.worker.result)
            finally:
                self._schedule()
        elif event.state == WorkerState.ERROR:
            self._poll_failed(event.worker.error)

    def _poll_failed(self, error: BaseException | None) -> None:
        message = str(error) if error is not None else "unknown error"
        if message != self._poll_error:  # say it once, not every second
            self._poll_error = message
            self.notify(f"Cannot read the store: {message}", severity="error", timeout=8,  # type: ignore[attr-defined]
                        markup=False)
        self._schedule(self.poll_interval * 5)
