"""The one writer of the monitor tables: how far each log was read, windows, waiting labels, alerts
and checks. (monitor_refs is written by reference.py, which owns what a reference summary is.)"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from typing import Any

from mltui.core.monitor.windows import merge
from mltui.store.connection import write_tx


def offsets(conn: sqlite3.Connection) -> dict[str, tuple[int | None, int]]:
    return {path: (inode, offset) for path, inode, offset in conn.execute("SELECT path, inode, offset FROM monitor_files")}


def load_windows(conn: sqlite3.Connection, keys: Iterable[tuple[str, str, float]], seconds: float) -> dict:
    out = {}
    for model, version, start in keys:
        row = conn.execute("SELECT data FROM monitor_windows WHERE model = ? AND version = ? AND seconds = ? AND start = ?",
                           (model, version, seconds, start)).fetchone()
        if row:
            out[(model, version, start)] = json.loads(row[0])
    return out


def save_chunk(conn: sqlite3.Connection, db_path, seconds: float, windows: Mapping[tuple[str, str, float], dict],
               file_state: tuple[str, int | None, int] | None) -> None:
    """Fold a chunk's window aggregates into the stored ones, and move the file's offset past the
    chunk, in one transaction: an interrupted check never counts a line twice or loses one."""
    now = time.time()
    with write_tx(conn, db_path):
        stored = load_windows(conn, windows.keys(), seconds)
        for key, agg in windows.items():
            merged = merge(stored[key], agg) if key in stored else agg
            conn.execute("INSERT OR REPLACE INTO monitor_windows(model, version, start, seconds, n, data, updated) "
                         "VALUES (?,?,?,?,?,?,?)", (*key[:2], key[2], seconds, merged["n"], json.dumps(merged), now))
        if file_state is not None:
            conn.execute("INSERT OR REPLACE INTO monitor_files(path, inode, offset, checked) VALUES (?,?,?,?)",
                         (*file_state, now))


def windows(conn: sqlite3.Connection, model: str, seconds: float, since: float | None = None) -> list[dict[str, Any]]:
    """Stored windows of a model (every version), oldest first."""
    rows = conn.execute("SELECT version, start, n, data FROM monitor_windows WHERE model = ? AND seconds = ? "
                        "AND start >= ? ORDER BY start, version", (model, seconds, since or 0.0)).fetchall()
    return [{"version": v, "start": s, "n": n, "data": json.loads(d)} for v, s, n, d in rows]


def models(conn: sqlite3.Connection) -> list[str]:
    return [m for (m,) in conn.execute("SELECT DISTINCT model FROM monitor_windows ORDER BY model")]


# -- labels waiting for their prediction ---------------------------------------------------------
def add_waiting(conn: sqlite3.Connection, db_path, labels: Iterable[tuple[str, str, str]]) -> None:
    now = time.time()
    with write_tx(conn, db_path):
        conn.executemany("INSERT OR REPLACE INTO monitor_labels(model, id, label, seen) VALUES (?,?,?,?)",
                         [(m, i, lab, now) for m, i, lab in labels])


def waiting(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    return conn.execute("SELECT model, id, label FROM monitor_labels").fetchall()


def drop_waiting(conn: sqlite3.Connection, db_path, keys: Iterable[tuple[str, str]], older_than: float | None = None) -> None:
    with write_tx(conn, db_path):
        conn.executemany("DELETE FROM monitor_labels WHERE model = ? AND id = ?", list(keys))
        if older_than is not None:
            conn.execute("DELETE FROM monitor_labels WHERE seen < ?", (older_than,))


# -- alerts ---------------------------------------------------------------------------------------
def open_alerts(conn: sqlite3.Connection, model: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM monitor_alerts WHERE closed IS NULL" + (" AND model = ?" if model else "") + " ORDER BY opened"
    return _dicts(conn.execute(sql, (model,) if model else ()))


def alerts(conn: sqlite3.Connection, model: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    sql = "SELECT * FROM monitor_alerts" + (" WHERE model = ?" if model else "") + " ORDER BY opened DESC LIMIT ?"
    return _dicts(conn.execute(sql, (model, limit) if model else (limit,)))


def _dicts(cur) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    out = []
    for row in cur:
        item = dict(zip(names, row))
        item["actions"] = json.loads(item["actions"] or "[]")
        item["value"] = json.loads(item["value"]) if item.get("value") else None  # stored as JSON by open_alert
        out.append(item)
    return out


def open_alert(conn: sqlite3.Connection, db_path, model: str, rule: str, window: float, value: Any) -> int:
    with write_tx(conn, db_path):
        cur = conn.execute("INSERT INTO monitor_alerts(model, rule, opened, window, value, actions) VALUES (?,?,?,?,?,?)",
                           (model, rule, time.time(), window, json.dumps(value), "[]"))
        return int(cur.lastrowid)


def close_alert(conn: sqlite3.Connection, db_path, alert_id: int) -> None:
    with write_tx(conn, db_path):
        conn.execute("UPDATE monitor_alerts SET closed = ? WHERE id = ? AND closed IS NULL", (time.time(), alert_id))


def note_action(conn: sqlite3.Connection, db_path, alert_id: int, action: str, outcome: str, **fields: Any) -> None:
    """Every action an alert took, with its outcome, kept on the alert."""
    with write_tx(conn, db_path):
        (actions,) = conn.execute("SELECT actions FROM monitor_alerts WHERE id = ?", (alert_id,)).fetchone()
        done = json.loads(actions or "[]")
        done.append({"action": action, "outcome": outcome, "time": time.time()})
        sets = ", ".join(f"{k} = ?" for k in fields if k in ("retrain_run", "request_id"))
        conn.execute(f"UPDATE monitor_alerts SET actions = ?{', ' + sets if sets else ''} WHERE id = ?",
                     (json.dumps(done), *[v for k, v in fields.items() if k in ("retrain_run", "request_id")], alert_id))


def record_check(conn: sqlite3.Connection, db_path, records: int, malformed: int, labels: int, report: Any) -> None:
    with write_tx(conn, db_path):
        conn.execute("INSERT INTO monitor_checks(time, records, malformed, labels, report) VALUES (?,?,?,?,?)",
                     (time.time(), records, malformed, labels, json.dumps(report, default=str)))


def last_check(conn: sqlite3.Connection) -> dict[str, Any] | None:
    row = conn.execute("SELECT time, records, malformed, labels, report FROM monitor_checks ORDER BY id DESC "
                       "LIMIT 1").fetchone()
    if not row:
        return None
    return {"time": row[0], "records": row[1], "malformed": row[2], "labels": row[3], "report": json.loads(row[4] or "{}")}
