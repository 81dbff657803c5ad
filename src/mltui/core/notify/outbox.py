"""The outbox in the store: the one module that writes notify_events, notify_deliveries and notify_attempts.

An event is recorded once (`add_event`). Routing gives it a delivery row per channel that wants it
(`route`), pending; a deliverer claims a row (pending -> sending, so two deliverers never send the same
row), records each try (`record_try`) and ends it delivered or failed (`settle`). A row left `sending` by a
deliverer that died is pending again after STALE seconds. Each write is its own short transaction: no
transaction is ever held while a channel is being tried. Callers hold nothing; the functions that write
open their own write_tx unless the connection is already in one (then they join it).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

from mltui.store.connection import write_tx

STALE = 600.0  # seconds after which a delivery still `sending` is taken for abandoned


@contextmanager
def _tx(conn: sqlite3.Connection, db_path: Path):
    if conn.in_transaction:  # the caller's transaction: the write is part of it
        yield
    else:
        with write_tx(conn, db_path):
            yield


def add_event(conn: sqlite3.Connection, db_path: Path, kind: str, subject: str, details: dict,
              now: float | None = None, channels: Iterable[str] | None = None) -> int:
    """Record an event; returns its id. With `channels` it is routed at once, to exactly those (a test)."""
    now = time.time() if now is None else now
    text = json.dumps(details, ensure_ascii=False, default=str, allow_nan=True)
    with _tx(conn, db_path):
        event_id = conn.execute(
            "INSERT INTO notify_events(kind, subject, details, created, routed) VALUES (?,?,?,?,?)",
            (kind, subject, text, now, None if channels is None else now)).lastrowid
        for name in channels or ():
            conn.execute("INSERT INTO notify_deliveries(event_id, channel, updated) VALUES (?,?,?)",
                         (event_id, name, now))
    return int(event_id)


def unrouted(conn: sqlite3.Connection, limit: int = 500) -> list[tuple[int, str]]:
    """(id, kind) of events whose channels are not chosen yet, oldest first."""
    return conn.execute("SELECT id, kind FROM notify_events WHERE routed IS NULL ORDER BY id LIMIT ?",
                        (limit,)).fetchall()


def route(conn: sqlite3.Connection, db_path: Path, routes: list[tuple[int, list[str]]]) -> None:
    """Give each event (id, channel names) its delivery rows; an event with no channel is routed all the same."""
    now = time.time()
    with _tx(conn, db_path):
        for event_id, names in routes:
            if conn.execute("UPDATE notify_events SET routed = ? WHERE id = ? AND routed IS NULL",
                            (now, event_id)).rowcount == 0:
                continue  # another deliverer routed it meanwhile
            conn.executemany("INSERT OR IGNORE INTO notify_deliveries(event_id, channel, updated) VALUES (?,?,?)",
                             [(event_id, name, now) for name in names])


def revive_stale(conn: sqlite3.Connection, db_path: Path, now: float | None = None) -> int:
    """Deliveries a dead deliverer left `sending` are pending again."""
    now = time.time() if now is None else now
    with _tx(conn, db_path):
        return conn.execute("UPDATE notify_deliveries SET status = 'pending', updated = ? "
                            "WHERE status = 'sending' AND updated < ?", (now, now - STALE)).rowcount


def pending(conn: sqlite3.Connection, limit: int = 200) -> list[tuple[int, str]]:
    """(event id, channel) of deliveries waiting to be sent, oldest event first."""
    return conn.execute("SELECT event_id, channel FROM notify_deliveries WHERE status = 'pending' "
                        "ORDER BY event_id LIMIT ?", (limit,)).fetchall()


def has_work(conn: sqlite3.Connection) -> bool:
    """Whether anything waits: an event not routed yet, or a delivery not sent yet."""
    return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM notify_events WHERE routed IS NULL) OR "
                             "EXISTS (SELECT 1 FROM notify_deliveries WHERE status = 'pending')").fetchone()[0])


def claim(conn: sqlite3.Connection, db_path: Path, event_id: int, channel: str) -> bool:
    """Take one pending delivery to send it; False when another deliverer took it first."""
    with _tx(conn, db_path):
        return conn.execute("UPDATE notify_deliveries SET status = 'sending', updated = ? "
                            "WHERE event_id = ? AND channel = ? AND status = 'pending'",
                            (time.time(), event_id, channel)).rowcount > 0


def record_try(conn: sqlite3.Connection, db_path: Path, event_id: int, channel: str, attempt: int, started: float,
               seconds: float, ok: bool, detail: str | None) -> None:
    """One try of a delivery and how it went (`detail`: "HTTP 500", "timed out after 5s", ...)."""
    with _tx(conn, db_path):
        conn.execute("INSERT INTO notify_attempts(event_id, channel, attempt, time, seconds, ok, detail) "
                     "VALUES (?,?,?,?,?,?,?)", (event_id, channel, attempt, started, seconds, int(ok), detail))
        conn.execute("UPDATE notify_deliveries SET tries = ?, error = ?, updated = ? WHERE event_id = ? AND channel = ?",
                     (attempt, None if ok else detail, time.time(), event_id, channel))


def settle(conn: sqlite3.Connection, db_path: Path, event_id: int, channel: str, status: str,
           error: str | None = None) -> None:
    """A delivery's outcome: delivered, or failed (with why, after its tries)."""
    with _tx(conn, db_path):
        conn.execute("UPDATE notify_deliveries SET status = ?, error = ?, updated = ? WHERE event_id = ? AND channel = ?",
                     (status, error, time.time(), event_id, channel))


# -- reading -------------------------------------------------------------------------------------
EVENT_COLUMNS = ("id", "kind", "subject", "details", "created", "routed")


def _event(row) -> dict:
    event = dict(zip(EVENT_COLUMNS, row))
    try:
        event["details"] = json.loads(event["details"])
    except ValueError:
        pass
    return event


def get_event(conn: sqlite3.Connection, event_id: int) -> dict | None:
    row = conn.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM notify_events WHERE id = ?", (event_id,)).fetchone()
    return _event(row) if row else None


def recent(conn: sqlite3.Connection, limit: int = 20, kind: str | None = None) -> list[dict]:
    """The newest events (newest first), each with its deliveries per channel."""
    where, args = ("", [])
    if kind:
        where, args = "WHERE kind = ? OR kind LIKE ? ESCAPE '\\'", [kind, _like_prefix(kind)]
    rows = conn.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM notify_events {where} ORDER BY id DESC LIMIT ?",
                        (*args, limit)).fetchall()
    events = [_event(r) for r in rows]
    by_id = {e["id"]: e for e in events}
    for e in events:
        e["deliveries"] = []
    if events:
        for event_id, channel, status, tries, error, updated in conn.execute(
                "SELECT event_id, channel, status, tries, error, updated FROM notify_deliveries "
                "WHERE event_id IN (SELECT value FROM json_each(?)) ORDER BY event_id, channel",
                (json.dumps(list(by_id)),)):
            by_id[event_id]["deliveries"].append({"channel": channel, "status": status, "tries": tries,
                                                  "error": error, "updated": updated})
    return events


def attempts(conn: sqlite3.Connection, event_id: int) -> list[dict]:
    return [{"channel": c, "attempt": a, "time": t, "seconds": s, "ok": bool(ok), "detail": d}
            for c, a, t, s, ok, d in conn.execute(
                "SELECT channel, attempt, time, seconds, ok, detail FROM notify_attempts WHERE event_id = ? "
                "ORDER BY channel, attempt", (event_id,))]


def delivery(conn: sqlite3.Connection, event_id: int, channel: str) -> dict | None:
    row = conn.execute("SELECT status, tries, error, updated FROM notify_deliveries WHERE event_id = ? AND channel = ?",
                       (event_id, channel)).fetchone()
    return dict(zip(("status", "tries", "error", "updated"), row)) if row else None


def latest_id(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT coalesce(max(id), 0) FROM notify_events").fetchone()[0]


def events_after(conn: sqlite3.Connection, after: int, limit: int = 50) -> list[dict]:
    """Events newer than id `after`, oldest first (what the TUI has not shown yet)."""
    return [_event(r) for r in conn.execute(
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM notify_events WHERE id > ? ORDER BY id LIMIT ?", (after, limit))]


def _like_prefix(kind: str) -> str:
    escaped = kind.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + ".%"
