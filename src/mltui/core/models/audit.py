"""The audit trail: an append-only log where each row holds the hash of the row before it.

A row's hash covers its own fields and the previous hash, so editing a row breaks its hash, and
removing one breaks the next row's link. The last row's number and hash are also kept in `meta`
(written in the same transaction), so cutting rows off the end is caught too.

Anyone who can write the database can still rewrite a row and recompute every hash after it. So a
decision is also signed with its actor's SSH key (signing.py), over the row and the hash of the row
before it: a rewritten history no longer verifies against allowed_signers (trail.py checks it). This is
the one module that writes `audit_log`.
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


def _digest(seq: int, when: float, actor: str, action: str, model: str | None, details: str, prev: str,
            extra: tuple = (None, None, None, None)) -> str:
    fields = [seq, repr(when), actor, action, model, details, prev]
    if any(v is not None for v in extra):  # rows from before signing (#16) keep their hashes
        fields += list(extra)
    body = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def payload(seq: int, when: float, actor: str, action: str, model: str | None, details: str, prev: str,
            identity: str | None, policy: str | None) -> bytes:
    """The canonical bytes a decision's signature covers: the row, the hash of the row before it (so a
    signed row pins all history before it) and the hash of the policy it was decided under."""
    return json.dumps({"mltui": "decision/1", "seq": seq, "time": repr(when), "actor": actor, "action": action,
                       "model": model, "details": details, "prev": prev, "identity": identity, "policy": policy},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def append(conn: sqlite3.Connection, actor, action: str, model: str | None, details: dict[str, Any]) -> int:
    """Add a row (call inside the transaction that makes the change it records). Returns its number.

    `actor` is an account name, or an identity.Actor: then the row records whether the identity was the
    OS account's or only asserted, and, for a decision, the policy hash and the actor's signature."""
    name = actor if isinstance(actor, str) else actor.name
    identity = None if isinstance(actor, str) else actor.identity
    policy = None if isinstance(actor, str) else actor.policy_hash
    key = None if isinstance(actor, str) else actor.key
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
    signature = fp = None
    if key is not None:
        from mltui.core.models.signing import sign

        signature = sign(key, payload(seq, when, name, action, model, text, prev, identity, policy))
        fp = key.fingerprint
    digest = _digest(seq, when, name, action, model, text, prev, (identity, policy, signature, fp))
    conn.execute("INSERT INTO audit_log(seq, time, actor, action, model, details, prev_hash, hash, identity, "
                 "policy_hash, signature, signer_key) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                 (seq, when, name, action, model, text, prev, digest, identity, policy, signature, fp))
    set_meta(conn, HEAD_KEY, f"{seq}:{digest}")
    return seq


def recorded_policy(conn: sqlite3.Connection) -> str | None:
    """The policy hash decisions are held to: the last `policy` row's, else the first decision's (the
    baseline); None before any."""
    row = conn.execute("SELECT policy_hash FROM audit_log WHERE action = 'policy' AND policy_hash IS NOT NULL "
                       "ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        row = conn.execute("SELECT policy_hash FROM audit_log WHERE policy_hash IS NOT NULL ORDER BY seq "
                           "LIMIT 1").fetchone()
    return row[0] if row else None


COLUMNS = "seq, time, actor, action, model, details, prev_hash, hash, identity, policy_hash, signature, signer_key"


def rows(conn: sqlite3.Connection) -> list[tuple]:
    """Every row as stored, in order (for checking)."""
    return conn.execute(f"SELECT {COLUMNS} FROM audit_log ORDER BY seq").fetchall()


def entries(conn: sqlite3.Connection, model: str | None = None, limit: int | None = None) -> list[dict]:
    sql = "SELECT seq, time, actor, action, model, details, hash, identity, signer_key FROM audit_log"
    args: list[Any] = []
    if model is not None:
        sql += " WHERE model = ?"
        args.append(model)
    sql += " ORDER BY seq"
    found = conn.execute(sql, args).fetchall()
    if limit is not None:
        found = found[-limit:] if limit > 0 else []
    out = []
    for seq, when, actor, action, mdl, details, digest, identity, key in found:
        try:
            parsed = json.loads(details)
        except ValueError:
            parsed = {"unreadable": details}
        out.append({"seq": seq, "time": when, "actor": actor, "action": action, "model": mdl, "details": parsed,
                    "hash": digest, "identity": identity, "signed_by": key})
    return out


def row_count(conn: sqlite3.Connection) -> int:
    """How many rows the audit trail holds."""
    return conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]


def chain(conn: sqlite3.Connection) -> list[tuple[int | None, str]]:
    """(row, sentence) for every break in the hash chain, in row order; empty when it is intact. A row
    taken out of its place is named as reordered; the stored head catches rows cut off the end."""
    problems: list[tuple[int | None, str]] = []
    found = rows(conn)
    where = {r[7]: r[0] for r in found}  # hash -> the row that has it
    prev, expected_seq = GENESIS, 1
    last_seq, last_hash = 0, GENESIS
    for seq, when, actor, action, model, details, prev_hash, digest, identity, policy, sig, key in found:
        if seq != expected_seq:
            problems.append((expected_seq, f"rows {expected_seq} to {seq - 1} are missing" if seq > expected_seq + 1
                             else f"row {expected_seq} is missing"))
        if prev_hash != prev:
            before = where.get(prev_hash)
            if before is not None and before != seq - 1:
                problems.append((seq, f"row {seq} ({action} by {actor}) is out of order: it was written after "
                                      f"row {before} (rows were reordered)"))
            else:
                problems.append((seq, f"row {seq} does not follow the row before it (a row before it was changed "
                                      "or removed)"))
        if _digest(seq, when, actor, action, model, details, prev_hash, (identity, policy, sig, key)) != digest:
            problems.append((seq, f"row {seq} ({action} by {actor}) was changed after it was written"))
        prev, expected_seq = digest, seq + 1
        last_seq, last_hash = seq, digest
    head = conn.execute("SELECT value FROM meta WHERE key = ?", (HEAD_KEY,)).fetchone()
    if head is not None:
        seq_text, _, head_hash = str(head[0]).partition(":")
        if int(seq_text or 0) != last_seq or head_hash != last_hash:
            problems.append((last_seq + 1, f"the log ends at row {last_seq}, but row {seq_text} was the last one "
                                           "written (rows were removed from the end, or the log was rewritten)"))
    elif last_seq:
        problems.append((None, "the log's head record is missing"))
    return problems


def verify(conn: sqlite3.Connection) -> list[str]:
    """Sentences for every break in the chain; empty when the log is intact (signatures: trail.check)."""
    return [sentence for _, sentence in chain(conn)]
