"""StoreReader: a pane's poll thread and its unmount never use one connection at once."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from mltui.core.reader import ReaderClosed, StoreReader

# A query that runs for many seconds unless interrupted: a recursive count to 10^9.
SLOW = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT count(*) FROM c"


def test_close_interrupts_a_query_in_another_thread_and_waits_for_it(ws):
    reader = StoreReader(ws)
    reader.changed()  # opens the connection
    started = threading.Event()
    outcome: dict = {}

    def poll():
        try:
            with reader.in_use():
                started.set()
                reader.conn.execute(SLOW).fetchone()
                outcome["result"] = "finished"
        except sqlite3.OperationalError as exc:
            outcome["result"] = f"interrupted: {exc}"
        outcome["left"] = time.monotonic()

    thread = threading.Thread(target=poll)
    thread.start()
    assert started.wait(10)
    time.sleep(0.2)  # the query is running now
    reader.close()
    closed = time.monotonic()
    thread.join(10)
    assert not thread.is_alive()
    assert outcome["result"].startswith("interrupted"), outcome
    assert outcome["left"] <= closed  # close returned only after the poll let go of the connection
    with pytest.raises(ReaderClosed):
        reader.conn
    with pytest.raises(ReaderClosed):
        reader.changed()


def test_a_closed_reader_is_not_reopened_by_a_late_poll(ws):
    reader = StoreReader(ws)
    assert reader.changed() is True
    assert reader.changed() is False
    reader.close()
    reader.close()  # twice is fine
    with pytest.raises(ReaderClosed):
        with reader.in_use():
            pass
