"""StoreReader: a pane's poll thread and its unmount never use one connection at once, and `close()`
returns promptly whenever it is called: before a poll's query starts, while it runs, or after."""

from __future__ import annotations

import random
import sqlite3
import threading
import time

import pytest

from mltui.core.reader import ReaderClosed, StoreReader

# A query that runs for many seconds unless interrupted: a recursive count to 10^9.
SLOW = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT count(*) FROM c"


def _poll(reader: StoreReader, outcome: dict, entered: threading.Event | None = None,
          look_first: bool = False) -> None:
    """What a pane's poll does: hold the reader (look for a change first), then run a long query."""
    try:
        with reader.in_use():
            outcome["entered"] = True
            if entered is not None:
                entered.set()
            if look_first:
                reader.changed()
            reader.conn.execute(SLOW).fetchone()
            outcome["result"] = "finished"
    except ReaderClosed as exc:
        outcome["result"] = f"closed: {exc}"
    except BaseException as exc:  # anything else is a failure the test reports
        outcome["result"] = f"unexpected: {exc!r}"
    finally:
        outcome["left"] = time.monotonic()


def _assert_closed_for_good(reader: StoreReader) -> None:
    with pytest.raises(ReaderClosed):
        reader.conn
    with pytest.raises(ReaderClosed):
        reader.changed()
    with pytest.raises(ReaderClosed):
        with reader.in_use():
            pass
    assert reader._conn is None  # the connection itself was closed, not just hidden


def test_close_interrupts_a_query_in_another_thread_and_waits_for_it(ws):
    """No pause between the poll entering and the close: the close may land before the query
    starts (SQLite's interrupt alone is lost then, and the count to 10^9 ran on for minutes)."""
    reader = StoreReader(ws)
    reader.changed()  # opens the connection
    entered = threading.Event()
    outcome: dict = {}
    thread = threading.Thread(target=_poll, args=(reader, outcome, entered), daemon=True)
    thread.start()
    assert entered.wait(10)
    closer = threading.Thread(target=reader.close, daemon=True)  # a hang fails the test, not the run
    closer.start()
    closer.join(10)
    assert not closer.is_alive(), "close() hung"
    closed = time.monotonic()
    thread.join(10)
    assert not thread.is_alive(), "the poll ran on after close()"
    assert outcome["result"].startswith("closed"), outcome
    assert outcome["left"] <= closed  # close returned only after the poll let go of the connection
    _assert_closed_for_good(reader)


def test_close_at_random_moments_never_hangs_nor_lets_a_query_run_on(ws):
    """200 polls, each closed at a random moment of its life: before it starts, as it enters,
    while it opens the connection or checks for changes, before or during the long query."""
    rng = random.Random(20240607)
    failures: list[str] = []
    done = threading.Event()
    counts = {"entered": 0, "refused": 0}

    def hammer() -> None:
        try:
            for rep in range(200):
                reader = StoreReader(ws)
                if rep % 2:
                    reader.changed()  # half open the connection first, half leave it to the poll
                outcome: dict = {}
                entered = threading.Event()
                thread = threading.Thread(target=_poll, args=(reader, outcome, entered, rep % 3 == 0),
                                          daemon=True)
                thread.start()
                if rep % 4 == 0:  # any moment from "not started yet" on
                    spin = rng.randrange(3000)
                else:  # from the poll's entering on: before, as, or after its query starts
                    entered.wait(10)
                    spin = rng.randrange(300)
                for _ in range(spin):
                    pass
                reader.close()
                closed = time.monotonic()
                thread.join(10)
                if thread.is_alive():
                    failures.append(f"rep {rep}: the poll ran on after close()")
                    return
                if not outcome["result"].startswith("closed"):
                    failures.append(f"rep {rep}: {outcome}")
                if outcome.get("entered"):
                    counts["entered"] += 1
                    if outcome["left"] > closed:
                        failures.append(f"rep {rep}: close() returned while the poll held the connection")
                else:
                    counts["refused"] += 1
                try:
                    _assert_closed_for_good(reader)
                except AssertionError as exc:
                    failures.append(f"rep {rep}: still open after close(): {exc}")
        except BaseException as exc:
            failures.append(repr(exc))
        finally:
            done.set()

    worker = threading.Thread(target=hammer, daemon=True)
    worker.start()
    assert done.wait(120), f"a close() hung ({counts})"  # a hang fails here instead of blocking the suite
    assert not failures, failures[:5]
    assert counts["entered"] > 0, counts  # the race was met: some polls were inside when closed


def test_a_closed_reader_is_not_reopened_by_a_late_poll(ws):
    reader = StoreReader(ws)
    assert reader.changed() is True
    assert reader.changed() is False
    reader.close()
    reader.close()  # twice is fine
    _assert_closed_for_good(reader)


def test_close_from_inside_a_use_leaves_the_closing_to_its_way_out(ws):
    reader = StoreReader(ws)
    with reader.in_use():
        conn = reader.conn
        reader.close()  # same thread: the query below would crash on a closed connection
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")
    _assert_closed_for_good(reader)


def test_close_does_not_wait_forever_for_a_user_stuck_outside_sqlite(ws):
    reader = StoreReader(ws)
    reader.close_wait = 0.2
    release = threading.Event()
    holding = threading.Event()

    def stuck() -> None:
        with reader.in_use():
            reader.conn
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=stuck, daemon=True)
    thread.start()
    assert holding.wait(10)
    conn = reader._conn
    started = time.monotonic()
    reader.close()
    assert time.monotonic() - started < 5  # bounded: 0.2 s asked
    assert conn.execute("SELECT 1").fetchone() == (1,)  # still the user's until it lets go
    release.set()
    thread.join(10)
    assert not thread.is_alive()
    with pytest.raises(sqlite3.ProgrammingError):  # closed by the user on its way out
        conn.execute("SELECT 1")
    _assert_closed_for_good(reader)


def test_read_runs_on_the_readers_connection_and_names_a_missing_table(ws):
    from mltui.core.reader import TablesMissing

    reader = StoreReader(ws)
    assert reader.read(lambda conn: conn.execute("SELECT count(*) FROM runs").fetchone()[0]) == 0
    with pytest.raises(TablesMissing, match=r"is from an older mltui and lacks a table this needs \(no such table: "
                                            r"nothing_here\)"):
        reader.read(lambda conn: conn.execute("SELECT * FROM nothing_here").fetchall())
    reader.close()
    with pytest.raises(ReaderClosed):
        reader.read(lambda conn: 1)


def test_with_writer_and_with_readonly_close_their_connection_and_speak_in_sentences(ws):
    from mltui.base.errors import StoreError
    from mltui.core.reader import with_readonly, with_writer

    used: list[sqlite3.Connection] = []
    assert with_writer(ws, lambda conn: used.append(conn) or conn.execute("SELECT 1").fetchone()[0]) == 1
    with pytest.raises(StoreError, match=r"^The store .* is read-only here, so nothing can be written to it\.$"):
        with_readonly(ws, lambda conn: used.append(conn) or conn.execute("CREATE TABLE t(x)"))
    for conn in used:
        with pytest.raises(sqlite3.ProgrammingError):  # closed after
            conn.execute("SELECT 1")
