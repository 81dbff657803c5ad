"""The audit trail: an append-only log where each row holds the hash of the row before it.

A row's hash covers its own fields and the previous hash, so editing a row breaks its hash, and
removing one breaks the next row's link. The last row's number and hash are also kept in `meta`
(written in the same transaction), so cutting rows off the end is caught too.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from typing import Any

from mltui.store.schema import set_meta

GENESIS = "0" * 64
HEAD_KEY = "audit_head"


def _digest(seq: int, when: float, actor: str, action: str, model: str | None, details: str, prev: str) -> str:
    body = json.dumps([seq, repr(when), actor, action, model, details, prev], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def append(conn: sqlite3.Connection, actor: str, action: str, model: str | None, details: dict[str, Any]) -> int:
    """Add a row (call inside the transaction that makes the change it records). Returns its number."""
    # chained to the head kept in meta, not to whatever row is last now: rows cut off the end stay a gap
    head = conn.execute("SELECT value FROM meta WHERE key = ?", (HEAD_KEY,)).fetchone()
    if head is not None:
        seq_text, _, prev = str(head[0]).partition(":")
        seq = int(seq_text) + 1
    else:
        last = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    when = time.time()
    text = json.dumps(details, sort_keys=True, ensure_ascii=False)
    digest = _digest(seq, when, actor, action, model, text, prev)
    conn.execute("INSERT INTO audit_log(seq, time, actor, action, model, details, prev_hash, hash) "
                 "VALUES (?,?,?,?,?,?,?,?)", (seq, when, actor, action, model, text, prev, digest))
    set_meta(conn, HEAD_KEY, f"{seq}:{digest}")
    return seq


def entries(conn: sqlite3.Connection, model: str | None = None, limit: int | None = None) -> list[dict]:
    sql = "SELECT seq, time, actor, action, model, details, hash FROM audit_log"
    args: list[Any] = []
    if model is not None:
        sql += " WHERE model = ?"
        args.append(model)
    sql += " ORDER BY seq"
    rows = conn.execute(sql, args).fetchall()
    if limit is not None:
        rows = rows[-limit:] if limit > 0 else []
    out = []
    for seq, when, actor, action, mdl, details, digest in rows:
        try:
            parsed = json.loads(details)
        except ValueError:
            parsed = {"unreadable": details}
        out.append({"seq": seq, "time": when, "actor": actor, "action": action, "model": mdl, "details": parsed,
                    "hash": digest})
    return out


def row_count(conn: sqlite3.Connection) -> int:
    """How many rows the audit trail holds."""
    return conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]


def verify(conn: sqlite3.Connection) -> list[str]:
    """Sentences for every break in the chain; empty when the log is intact."""
    problems: list[str] = []
    prev, expected_seq = GENESIS, 1
    last_seq, last_hash = 0, GENESIS
    for seq, when, actor, action, model, details, prev_hash, digest in conn.execute(
            "SELECT seq, time, actor, action, model, details, prev_hash, hash FROM audit_log ORDER BY seq"):
        if seq != expected_seq:
            problems.append(f"rows {expected_seq} to {seq - 1} are missing" if seq > expected_seq + 1
                            else f"row {expected_seq} is missing")
        if prev_hash != prev:
            problems.append(f"row {seq} does not follow the row before it (a row before it was changed or removed)")
        if _digest(seq, when, actor, action, model, details, prev_hash) != digest:
            problems.append(f"row {seq} ({action} by {actor}) was changed after it was written")
        prev, expected_seq = digest, seq + 1
        last_seq, last_hash = seq, digest
    head = conn.execute("SELECT value FROM meta WHERE key = ?", (HEAD_KEY,)).fetchone()
    if head is not None:
        seq_text, _, head_hash = str(head[0]).partition(":")
        if int(seq_text or 0) != last_seq or head_hash != last_hash:
            problems.append(f"the log ends at row {last_seq}, but row {seq_text} was the last one written "
                            "(rows were removed from the end, or the log was rewritten)")
    elif last_seq:
        problems.append("the log's head record is missing")
    return problems
