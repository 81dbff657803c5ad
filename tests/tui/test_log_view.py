"""The log viewer widget, hosted by a tiny app and driven headless through `App.run_test`.

Assertions read the lines as the widget draws them (`render_lines`), after real file writes.
"""

from __future__ import annotations

import asyncio
import threading
import time

from textual.app import App, ComposeResult
from textual.geometry import Region

from mltui.core.runs.logfile import LogIndex
from mltui.tui.widgets import log_view
from mltui.tui.widgets.log_view import LogView

SIZE = (80, 24)
POLL = 0.05


class LogApp(App):
    """Nothing but the log view, filling the screen."""

    def __init__(self, path, **options) -> None:
        super().__init__()
        self.log_path = path
        self.options = options

    def compose(self) -> ComposeResult:
        yield LogView(self.log_path, poll_interval=POLL, **self.options)


def view_of(app: App) -> LogView:
    return app.screen.query_one(LogView)


def shown(view: LogView) -> list[str]:
    """The lines the view draws, trailing blanks stripped (scrollbars are separate widgets)."""
    width, height = view.size
    return [strip.text.rstrip() for strip in view.render_lines(Region(0, 0, width, height))]


async def until(pilot, condition, timeout: float = 5.0) -> None:
    """Let the app run (polls, workers, refreshes) until `condition()` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.02)
    await pilot.pause()


def record_refreshes(monkeypatch) -> list[tuple[threading.Thread, int]]:
    """From now on, every LogIndex.refresh: (the thread it ran in, the bytes it indexed)."""
    calls: list[tuple[threading.Thread, int]] = []
    real = LogIndex.refresh

    def recorded(self, *args, **kwargs):
        before = self.size
        try:
            return real(self, *args, **kwargs)
        finally:
            calls.append((threading.current_thread(), self.size - before))

    monkeypatch.setattr(LogIndex, "refresh", recorded)
    return calls


def numbered(first: int, last: int) -> bytes:
    return b"".join(b"line %04d\n" % i for i in range(first, last))


def append(path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


async def test_shows_the_first_lines(tmp_path):
    path = tmp_path / "output.log"
    path.write_bytes(numbered(0, 1000))
    app = LogApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = view_of(app)
        await until(pilot, lambda: view.line_count == 1000)
        lines = shown(view)
        assert len(lines) == 24
        assert lines == [f"line {i:04d}" for i in range(24)]
        assert view.virtual_size.height == 1000 and not view.follow
        assert view.path == path


async def test_end_jumps_to_the_last_line_and_home_goes_back(tmp_path):
    path = tmp_path / "output.log"
    path.write_bytes(numbered(0, 1000))
    app = LogApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = view_of(app)
        await until(pilot, lambda: view.line_count == 1000)
        await pilot.press("end")
        await pilot.pause()
        lines = [line for line in shown(view) if line]
        assert lines[-1] == "line 0999" and view.follow
        await pilot.press("home")
        await pilot.pause()
        assert shown(view)[0] == "line 0000" and not view.follow
        await pilot.press("G")
        await pilot.pause()
        assert "line 0999" in shown(view) and view.follow
        await pilot.press("g")
        await pilot.pause()
        assert shown(view)[0] == "line 0000"


async def test_follows_lines_appended_to_the_file(tmp_path):
    path = tmp_path / "output.log"
    path.write_bytes(numbered(0, 100))
    app = LogApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = view_of(app)
        await until(pilot, lambda: view.line_count == 100)
        await pilot.press("end")
        append(path, numbered(100, 150) + b"step 150: lo")  # the last line is not finished yet
        await until(pilot, lambda: "step 150: lo" in shown(view))
        assert shown(view)[-2:] == ["line 0149", "step 150: lo"]
        append(path, b"ss=0.25\nline 0151\n")
        await until(pilot, lambda: "line 0151" in shown(view))
        assert shown(view)[-2:] == ["step 150: loss=0.25", "line 0151"]  # the finished line re-read
        assert view.line_count == 152 and view.follow


async def test_follow_option_starts_at_the_end(tmp_path):
    path = tmp_path / "output.log"
    path.write_bytes(numbered(0, 500))
    app = LogApp(path, follow=True)
    async with app.run_test(size=SIZE) as pilot:
        view = view_of(app)
        await until(pilot, lambda: "line 0499" in shown(view))
        assert shown(view)[0] != "line 0000"


async def test_scrolling_up_stops_following_and_end_resumes(tmp_path):
    path = tmp_path / "output.log"
    path.write_bytes(numbered(0, 200))
    app = LogApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = view_of(app)
        await until(pilot, lambda: view.line_count == 200)
        await pilot.press("end")
        await pilot.press("up", "up", "up")
        await pilot.pause()
        assert not view.follow
        before = shown(view)
        append(path, numbered(200, 260))
        await until(pilot, lambda: view.line_count == 260)
        assert shown(view) == before  # stays where the reader is
        await pilot.press("end")
        await until(pilot, lambda: "line 0259" in shown(view))
        assert view.follow


async def test_short_log_that_fits_keeps_following_as_it_grows(tmp_path):
    path = tmp_path / "output.log"
    path.write_bytes(numbered(0, 3))
    app = LogApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = view_of(app)
        await until(pilot, lambda: view.line_count == 3)
        for first in range(3, 100, 20):  # grows past the screen in several polls
            append(path, numbered(first, first + 20))
            await until(pilot, lambda last=first + 19: f"line {last:04d}" in shown(view))
        assert shown(view)[0] != "line 0000"


async def test_markup_and_escape_sequences_render_literally(tmp_path):
    path = tmp_path / "output.log"
    path.write_bytes("[red]boom[/red]\n\x1b[2J\x1b[Hafter clear\n\x1b[31mred\x1b[0m text\n"
                     "[bold]x[/] and [link=http://x]y[/link]\n10%\r20%\r30%\ncol\tumn\nbell\x07\n"
                     "\x1b]0;title\x07osc\n".encode())
    app = LogApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = view_of(app)
        await until(pilot, lambda: view.line_count == 8)
        assert shown(view)[:8] == ["[red]boom[/red]", "after clear", "red text",
                                   "[bold]x[/] and [link=http://x]y[/link]", "30%", "col     umn", "bell\\x07", "osc"]
        base = view.rich_style
        first = view.render_line(0)
        assert {segment.style.color for segment in first if segment.text.strip()} == {base.color}  # no red


async def test_missing_file_says_no_output_yet_until_it_appears(tmp_path, monkeypatch):
    path = tmp_path / "run" / "output.log"
    refreshes = record_refreshes(monkeypatch)
    app = LogApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = view_of(app)
        await until(pilot, lambda: refreshes)  # the first poll looked
        assert shown(view)[0] == "(no output yet)"
        assert view.line_count == 0
        path.parent.mkdir()
        path.write_bytes(b"")
        seen = len(refreshes)
        await until(pilot, lambda: len(refreshes) >= seen + 3)  # three polls saw the empty file
        assert shown(view)[0] == "(no output yet)"
        path.write_bytes(b"hello\n")
        await until(pilot, lambda: shown(view)[0] == "hello")
        assert shown(view)[1] == ""


async def test_truncated_file_is_shown_again_from_its_start(tmp_path):
    path = tmp_path / "output.log"
    path.write_bytes(numbered(0, 300))
    app = LogApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = view_of(app)
        await until(pilot, lambda: view.line_count == 300)
        await pilot.press("end")
        path.write_bytes(b"restarted\n")
        await until(pilot, lambda: view.line_count == 1)
        assert shown(view)[0] == "restarted"


async def test_big_backlog_is_indexed_in_a_thread(tmp_path, monkeypatch):
    monkeypatch.setattr(log_view, "INLINE_BYTES", 4096)  # the UI thread indexes 4 KiB per poll
    monkeypatch.setattr(log_view, "THREAD_STEP", 64 * 1024)
    refreshes = record_refreshes(monkeypatch)
    path = tmp_path / "output.log"
    data = numbered(0, 50_000)
    path.write_bytes(data)  # 500 KB: the rest goes to the worker, in steps
    app = LogApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = view_of(app)
        await until(pilot, lambda: view.line_count == 50_000)
        ui = threading.main_thread()  # the app's event loop runs in the test's main thread
        assert all(size <= 4096 for thread, size in refreshes if thread is ui), refreshes
        in_worker = [size for thread, size in refreshes if thread is not ui]
        assert sum(in_worker) >= len(data) - 4096  # all but the first poll's 4 KiB, off the UI thread
        assert max(in_worker) <= 64 * 1024 and len([s for s in in_worker if s]) >= 7  # in steps
        assert shown(view)[0] == "line 0000"  # not following: indexing did not move the view
        await pilot.press("end")
        await pilot.pause()
        assert "line 49999" in shown(view)
        view.scroll_to(y=31_000, animate=False, immediate=True)
        await pilot.pause()
        assert shown(view)[0] == "line 31000"


async def test_long_lines_scroll_horizontally(tmp_path):
    path = tmp_path / "output.log"
    path.write_bytes(b"short\n" + b"".join(b"%d" % (i % 10) for i in range(300)) + b"\n")
    app = LogApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = view_of(app)
        await until(pilot, lambda: view.virtual_size.width == 300)
        view.scroll_to(x=125, animate=False, immediate=True)
        await pilot.pause()
        assert shown(view)[1].startswith("567890123")
        assert shown(view)[0] == ""


async def test_a_very_long_line_ends_with_a_marker_within_reach(tmp_path):
    path = tmp_path / "output.log"
    path.write_bytes(b"y" * 100_000 + b"\n")
    app = LogApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = view_of(app)
        await until(pilot, lambda: view.virtual_size.width > 0)
        assert view.virtual_size.width <= log_view.WIDTH_MAX
        await pilot.press("end")  # follow: jumps down, not sideways
        view.scroll_to(x=view.max_scroll_x, animate=False, immediate=True)
        await pilot.pause()
        assert shown(view)[0].endswith(f"y … [{100_000 - log_view.LINE_CHARS:,} more characters]")


async def test_many_polls_do_not_block_the_app(tmp_path):
    """A live file written to continuously while the view follows: no crash, ends on the last line."""
    path = tmp_path / "output.log"
    path.write_bytes(b"")
    app = LogApp(path, follow=True)
    async with app.run_test(size=SIZE) as pilot:
        view = view_of(app)
        for i in range(30):
            append(path, b"tick %d\r" % i + b"tick %d done\n" % i)
            await asyncio.sleep(0.01)
        await until(pilot, lambda: view.line_count == 30)
        await until(pilot, lambda: shown(view)[-1] == "tick 29 done")


async def test_a_read_error_is_reported_once_and_the_app_keeps_running(tmp_path, monkeypatch):
    path = tmp_path / "output.log"
    path.write_bytes(b"fine\n")
    app = LogApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = view_of(app)
        await until(pilot, lambda: view.line_count == 1)
        failed: list[int] = []

        def broken(*args, **kwargs):
            failed.append(1)
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(view._index, "refresh", broken)
        await until(pilot, lambda: len(failed) >= 4)  # several polls fail
        notices = [n.message for n in app._notifications]
        assert len(notices) == 1 and "Input/output error" in notices[0]
        assert shown(view)[0] == "fine"
