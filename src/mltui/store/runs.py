"""Reading and writing runs, their params and tags."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence

from mltui.base.errors import NotFound, UsageError
from mltui.base.values import decode, encode
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (import mltui stays lean)

if TYPE_CHECKING:
    from typing import Any

RUN_COLUMNS = (
    "id", "name", "kind", "status", "command", "cwd", "host", "user", "pid", "pgid", "gpus",
    "git_commit", "git_dirty", "python", "env_hash", "parent_id", "created", "started", "ended",
    "heartbeat", "exit_code", "run_dir", "note", "bad_lines",
    "sup_pid", "reason", "spec", "rerun_of", "fingerprint", "kill_requested", "pid_start",
    "executor", "job_id", "job_state",
)
STATUSES = ("queued", "running", "finished", "failed", "killed", "lost")
ACTIVE = ("queued", "running")


def insert_run(conn: sqlite3.Connection, fields: Mapping[str, Any]) -> None:
    cols = [c for c in fields if c in RUN_COLUMNS]
    conn.execute(
        f"INSERT INTO runs({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
        [fields[c] for c in cols],
    )


def update_run(conn: sqlite3.Connection, run_id: str, **fields: Any) -> None:
    bad = [c for c in fields if c not in RUN_COLUMNS or c == "id"]
    if bad:
        raise ValueError(f"unknown run fields: {bad}")
    sets = ", ".join(f"{c} = ?" for c in fields)
    conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", [*fields.values(), run_id])


def set_values(conn: sqlite3.Connection, table: str, run_id: str, values: Mapping[str, Any]) -> None:
    """Upsert params or tags, keeping each value's type."""
    if table not in ("params", "tags"):
        raise ValueError(table)
    rows = [(run_id, key, *encode(value)) for key, value in values.items()]
    conn.executemany(
        f"INSERT INTO {table}(run_id, key, value, type) VALUES (?,?,?,?) "
        "ON CONFLICT(run_id, key) DO UPDATE SET value = excluded.value, type = excluded.type",
        rows,
    )


def _json(items) -> str:
    import json

    return json.dumps(list(items))


def values_for(conn: sqlite3.Connection, table: str, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    if table not in ("params", "tags"):
        raise ValueError(table)
    out: dict[str, dict[str, Any]] = {rid: {} for rid in run_ids}
    if not run_ids:
        return out
    for rid, key, value, kind in conn.execute(
        f"SELECT run_id, key, value, type FROM {table} WHERE run_id IN (SELECT value FROM json_each(?)) "
        "ORDER BY run_id, key",
        (_json(run_ids),),
    ):
        out[rid][key] = decode(value, kind)
    return out


def row_dict(row: Sequence[Any]) -> dict[str, Any]:
    import json

    d = dict(zip(RUN_COLUMNS, row))
    if d.get("command"):
        try:
            d["command"] = json.loads(d["command"])
        except ValueError:
            pass
    for key in ("gpus", "spec", "fingerprint"):
        if d.get(key):
            try:
                d[key] = json.loads(d[key])
            except ValueError:
                pass
    if d.get("git_dirty") is not None:
        d["git_dirty"] = bool(d["git_dirty"])
    return d


def get_runs(conn: sqlite3.Connection, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Run rows in the order of `run_ids` (missing ids are skipped)."""
    if not run_ids:
        return []
    rows = conn.execute(
        f"SELECT {', '.join('r.' + c for c in RUN_COLUMNS)} FROM runs r "
        "WHERE r.id IN (SELECT value FROM json_each(?))",
        (_json(run_ids),),
    ).fetchall()
    by_id = {row[0]: row_dict(row) for row in rows}
    return [by_id[rid] for rid in run_ids if rid in by_id]


def resolve_id(conn: sqlite3.Connection, prefix: str) -> str:
    """The full id of the one run whose id starts with `prefix` (like git)."""
    prefix = prefix.strip().lower()
    if not prefix or not all(ch.isalnum() for ch in prefix):
        raise UsageError(f"{prefix!r} is not a run id.")
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    rows = conn.execute(
        "SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 6", (prefix, upper)
    ).fetchall()
    if not rows:
        raise NotFound(f"No run has an id starting with {prefix!r}.")
    if len(rows) > 1:
        shown = ", ".join(r[0] for r in rows[:5])
        more = " and more" if len(rows) > 5 else ""
        raise UsageError(f"The id prefix {prefix!r} is ambiguous: it matches {shown}{more}.")
    return rows[0][0]


def resolve_ids(conn: sqlite3.Connection, prefixes: Iterable[str]) -> list[str]:
    return [resolve_id(conn, p) for p in prefixes]


def delete_run(conn: sqlite3.Connection, run_id: str) -> None:
    conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))


def metric_keys(conn: sqlite3.Connection, run_id: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT key FROM metric_summary WHERE run_id = ? ORDER BY key", (run_id,))]


def select_ids(
    conn: sqlite3.Connection,
    where_sql: str | None = None,
    where_params: Sequence[object] = (),
    order_sql: str | None = None,
    order_params: Sequence[object] = (),
) -> list[str]:
    """Ids of the runs matching a compiled --where, in the compiled --sort order (newest first by default)."""
    sql = "SELECT runs.id FROM runs"
    if where_sql:
        sql += f" WHERE {where_sql}"
    sql += f" ORDER BY {order_sql}, runs.created DESC" if order_sql else " ORDER BY runs.created DESC, runs.id DESC"
    return [r[0] for r in conn.execute(sql, [*where_params, *order_params])]


def artifacts_for(conn: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    return [
        {"path": p, "size": size, "sha256": sha, "modified": mod}
        for p, size, sha, mod in conn.execute(
            "SELECT path, size, sha256, modified FROM artifacts WHERE run_id = ? ORDER BY path", (run_id,)
        )
    ]
