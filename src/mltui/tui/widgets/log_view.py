"""A run's `output.log`, any size, scrolled without loading it and followed live (tail -f).

Only the visible lines are rendered (`render_line`), read through a sparse `LogIndex`, and
kept in small LRU caches. The file is polled every `poll_interval` seconds: a small growth is
indexed right away, a big backlog (a multi-GB log opened for the first time) in a thread
worker that posts `Indexed` back as it goes.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import var
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.worker import Worker, WorkerState, get_current_worker

from mltui.core.runs.logfile import LogIndex, clean

PAGE = 128
"""Lines read from the file at a time (the page around a line that is not cached)."""
WIDTH_MAX = 2000
"""The widest the view scrolls horizontally, in cells."""
LINE_CHARS = WIDTH_MAX - 40
"""Characters of a line kept for showing; the cut marker after them still fits in WIDTH_MAX."""
INLINE_BYTES = 1 << 20
"""A poll indexes up to this much on the UI thread; more is left to the thread worker."""
THREAD_STEP = 64 << 20
"""The thread worker posts progress after indexing this much."""
EMPTY = "(no output yet)"


class LogView(ScrollView, can_focus=True):
    """Scroll through a log file of any size and follow it as it grows.

    `follow` is on while the view sticks to the last line: new lines scroll into view.
    Scrolling up turns it off; reaching the bottom again, or `end`/`G`, turns it back on.
    """

    DEFAULT_CSS = """
    LogView {
        background: $surface;
        color: $foreground;
        &:focus {
            background-tint: $foreground 5%;
        }
        & > .log-view--empty {
            color: $text-muted;
            text-style: italic;
        }
    }
    """
    COMPONENT_CLASSES = {"log-view--empty"}
    BINDINGS = [
        Binding("end,G", "follow", "Follow", id="log_view.follow",
                tooltip="Jump to the last line and keep following new output"),
        Binding("home,g", "top", "Top", id="log_view.top", tooltip="Jump to the first line and stop following"),
    ]

    follow: var[bool] = var(False)
    """Stick to the last line as the file grows."""

    class Indexed(Message, bubble=False):
        """The thread worker indexed more of the file (a flood of these collapses into one)."""

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, LogView.Indexed)

    def __init__(self, path: str | os.PathLike[str], *, follow: bool = False, poll_interval: float = 0.5,
                 name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._index = LogIndex(path)
        self.poll_interval = poll_interval
        self.set_reactive(LogView.follow, follow)
        self._texts: LRUCache[int, str] = LRUCache(4096)  # line number -> cleaned text
        self._strips: LRUCache[tuple, Strip] = LRUCache(1024)  # (line, scroll_x, width, style) -> strip
        self._lines = 0  # lines shown (the index's count at the last sync)
        self._width = 0  # widest line seen so far, in cells (at most WIDTH_MAX)
        self._generation = self._index.generation
        self._indexing = False
        self._width_pending = False
        self._error: str | None = None

    # -- public ------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The log file shown."""
        return self._index.path

    @property
    def line_count(self) -> int:
        """Lines shown now (the file may already hold more, until the next poll)."""
        return self._lines

    def action_follow(self) -> None:
        """Jump to the last line and keep following."""
        self.follow = True
        self._scroll_to_end()

    def action_top(self) -> None:
        """Jump to the first line; stop following."""
        self.follow = False
        self.scroll_to(y=0, animate=False, immediate=True)

    # -- polling -------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.poll()
        self.set_interval(self.poll_interval, self.poll)

    def poll(self) -> None:
        """Index what was appended since the last poll and show it."""
        if self._indexing:
            return  # the thread worker is on it
        try:
            changed = self._index.refresh(max_bytes=INLINE_BYTES)
        except OSError as error:  # a read error (a missing file is just an empty log)
            self._report(error)
            return
        if changed:
            self._sync()
        if self._index.pending:
            self._indexing = True
            self._index_backlog()

    @work(thread=True, exclusive=True, exit_on_error=False, group="log-view-index")
    def _index_backlog(self) -> None:
        worker = get_current_worker()
        while not worker.is_cancelled:
            if self._index.refresh(max_bytes=THREAD_STEP):
                self.post_message(self.Indexed())
            if not self._index.pending:
                return

    @on(Indexed)
    def _indexed(self) -> None:
        self._sync()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "log-view-index" or event.state not in (
                WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        self._indexing = False
        self._sync()
        if event.state == WorkerState.ERROR:
            self._report(event.worker.error)

    def _report(self, error: BaseException | None) -> None:
        if str(error) != self._error:  # said once, not on every poll
            self._error = str(error)
            self.notify(f"Cannot read {self.path}: {error}", severity="error", markup=False)

    def _sync(self) -> None:
        """Show the index's current state: new lines, a rewritten file, following the end."""
        if self._index.generation != self._generation:  # truncated or replaced: start over
            self._generation = self._index.generation
            self._texts.clear()
            self._strips.clear()
            self._lines = self._width = 0
        else:
            self._forget_from(self._lines - 1)  # an unfinished last line may have grown
        at_end = self.follow or (self._lines > 0 and self.scroll_offset.y >= self.max_scroll_y)
        self._lines = self._index.line_count
        self.virtual_size = Size(self._width, self._lines)
        if at_end:
            self._scroll_to_end()
        self.refresh()

    def _forget_from(self, line: int) -> None:
        for key in [k for k in self._texts.keys() if k >= line]:
            self._texts.discard(key)
        for key in [k for k in self._strips.keys() if k[0] >= line]:
            self._strips.discard(key)

    # -- scrolling -----------------------------------------------------------------------------

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value < old_value and new_value < self.max_scroll_y:
            self.follow = False  # the user scrolled up
        elif new_value > old_value and new_value >= self.max_scroll_y:
            self.follow = True  # back at the bottom

    def _scroll_to_end(self) -> None:
        # force: the scrollbars of a view that just outgrew the screen are only updated on the next layout
        self.scroll_end(animate=False, immediate=True, force=True, x_axis=False)

    def on_resize(self) -> None:
        if self.follow:  # a taller or shorter view still ends on the last line
            self._scroll_to_end()

    def watch_follow(self, follow: bool) -> None:
        if follow and self.is_mounted:
            self._scroll_to_end()

    # -- rendering -----------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        style = self.rich_style
        line = scroll_y + y
        if self._lines == 0:
            return self._empty(y, width, style)
        if line >= self._lines:
            return Strip.blank(width, style)
        key = (line, scroll_x, width, style)
        strip = self._strips.get(key)
        if strip is None:
            strip = self._render_text(self._text(line), line, scroll_x, width, style)
            self._strips.set(key, strip)
        return strip

    def _render_text(self, text: str, line: int, scroll_x: int, width: int, style: Style) -> Strip:
        rich_text = Text(text, no_wrap=True, end="")
        rich_text.stylize(style)  # a span: Text.render ignores a base style
        strip = Strip(rich_text.render(self.app.console), rich_text.cell_len)
        return strip.crop_extend(scroll_x, scroll_x + width, style).apply_offsets(scroll_x, line)

    def _empty(self, y: int, width: int, style: Style) -> Strip:
        if y != 0:
            return Strip.blank(width, style)
        empty = style + self.get_component_rich_style("log-view--empty", partial=True)
        return self._render_text(EMPTY, 0, 0, width, empty)

    def _text(self, line: int) -> str:
        """The cleaned text of a line, reading the page around it when it is not cached."""
        text = self._texts.get(line)
        if text is not None:
            return text
        first = line - line % PAGE
        widest = 0
        for number, raw in enumerate(self._index.lines(first, PAGE), first):
            shown = clean(raw, LINE_CHARS)
            self._texts.set(number, shown)
            widest = max(widest, cell_len(shown))
            if number == line:
                text = shown
        self._grow_width(widest)
        return "" if text is None else text

    def _grow_width(self, widest: int) -> None:
        """Widen the scrollable area (after this render: not while the screen is being drawn)."""
        widest = min(widest, WIDTH_MAX)
        if widest > self._width:
            self._width = widest
            if not self._width_pending:
                self._width_pending = True
                self.call_later(self._apply_width)

    def _apply_width(self) -> None:
        self._width_pending = False
        self.virtual_size = Size(self._width, self._lines)
