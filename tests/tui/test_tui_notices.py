"""The TUI as a notification channel: an event recorded by any process shows as a notice (and rings the
bell when `[notify] bell = true`); what happened before the screen opened is not replayed; `tui = true`
channels narrow what it shows."""

from __future__ import annotations

import textwrap

import pytest

from mltui.core.notify.events import emit
from mltui.tui.app import create_app
from launching import until


@pytest.fixture(autouse=True)
def _here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def notices(app) -> list[tuple[str, str, str]]:
    return [(n.title, n.message, n.severity) for n in app._notifications]


class Rung:
    """Counts the bells the app rings (the terminal's bell cannot be heard from a test)."""

    def __init__(self, app) -> None:
        self.count = 0
        ring = app.bell

        def bell() -> None:
            self.count += 1
            ring()

        app.bell = bell


async def test_a_new_event_shows_as_a_notice_with_the_bell_and_old_ones_are_not_replayed(ws):
    ws.config_path.write_text(ws.config_path.read_text() + "\n[notify]\nbell = true\n")
    emit(ws, "run.finished", "Run before-the-screen (r0) finished", {})
    app = create_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        bells = Rung(app)
        await until(pilot, lambda: app.notices.feed.after is not None, what="the feed's first look")
        emit(ws, "run.failed", "Run [bold]x[/bold] (r1) failed: the command exited with code 3", {})
        await until(pilot, lambda: notices(app), timeout=15, what="the notice")
        assert notices(app) == [("run.failed", "Run [bold]x[/bold] (r1) failed: the command exited with code 3",
                                 "error")]  # user text shown as it is, never as markup
        assert bells.count == 1


async def test_tui_channels_narrow_what_the_screen_shows(ws):
    ws.config_path.write_text(ws.config_path.read_text() + textwrap.dedent("""
        [[notify.channels]]
        name = "screen"
        tui = true
        events = ["alert"]
    """))
    app = create_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        bells = Rung(app)
        await until(pilot, lambda: app.notices.feed.after is not None, what="the feed's first look")
        emit(ws, "run.finished", "Run quiet (r2) finished", {})
        emit(ws, "alert.opened", "volume == 0 on classifier", {})
        await until(pilot, lambda: notices(app), timeout=15, what="the alert's notice")
        assert notices(app) == [("alert.opened", "volume == 0 on classifier", "error")]
        assert bells.count == 0  # [notify] bell is off by default
