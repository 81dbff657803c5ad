"""Reading and writing runs, their params, tags and artifact rows.

The one owner of those tables: every write of them in mltui is a function here (the caller holds the
transaction, through write_tx), so the guards that keep concurrent writers apart are written once."""

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
    "peak_rss", "boot_id", "store_trouble", "dropped_points", "archived", "stalled_since",
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


# -- a run's life: every write that moves a run from one state to the next ------------------------
# Each takes a connection whose transaction (write_tx) the caller owns. The WHERE guards are what
# keep concurrent writers (a supervisor, `runs kill`, the queue worker, a reader reaping lost runs,
# a Slurm poll) from undoing one another: a write whose guard no longer holds changes nothing, and
# the functions that have one say whether it did.
_KEEP = object()  # leave the column as it is


def mark_ended(
    conn: sqlite3.Connection,
    run_id: str,
    status: str,
    reason: Any = _KEEP,
    ended: float | None = None,
    *,
    exit_code: Any = _KEEP,
    heartbeat: Any = _KEEP,
    started: Any = _KEEP,
    job_state: Any = _KEEP,
    keep_ended: bool = False,
    keep_exit_code: bool = False,
    only_from: Sequence[str] = (),
    if_heartbeat: Any = _KEEP,
) -> bool:
    """The run's final status (finished, failed, killed, lost) and why; returns whether a row changed.

    `ended` is now unless given. What is not given is left as it is: `reason`, `exit_code`,
    `heartbeat`, Slurm's `job_state`; `started` fills in only a start not yet recorded. `keep_ended`
    and `keep_exit_code` keep an end time or exit code already recorded (another writer's word wins).
    Guards: `only_from` the run must still be in one of these statuses; `if_heartbeat` its heartbeat
    must still be the one read (IS, so None matches a run that never beat)."""
    import time

    sets = ["status = ?", "stalled_since = NULL"]  # an ended run is no longer stalled
    args: list[Any] = [status]
    if reason is not _KEEP:
        sets.append("reason = ?")
        args.append(reason)
    sets.append("ended = coalesce(ended, ?)" if keep_ended else "ended = ?")
    args.append(time.time() if ended is None else ended)
    if exit_code is not _KEEP:
        sets.append("exit_code = coalesce(exit_code, ?)" if keep_exit_code else "exit_code = ?")
        args.append(exit_code)
    if heartbeat is not _KEEP:
        sets.append("heartbeat = ?")
        args.append(heartbeat)
    if started is not _KEEP:
        sets.append("started = coalesce(started, ?)")
        args.append(started)
    if job_state is not _KEEP:
        sets.append("job_state = ?")
        args.append(job_state)
    where = "id = ?"
    args.append(run_id)
    if only_from:
        where += f" AND status IN ({', '.join('?' for _ in only_from)})"
        args.extend(only_from)
    if if_heartbeat is not _KEEP:
        where += " AND heartbeat IS ?"
        args.append(if_heartbeat)
    return conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE {where}", args).rowcount > 0


def mark_failed(conn: sqlite3.Connection, run_id: str, reason: str, *, job_state: Any = _KEEP) -> bool:
    """Failed now, before its command could run (no supervisor, a refused submission), whatever it was."""
    return mark_ended(conn, run_id, "failed", reason, job_state=job_state)


def mark_lost(conn: sqlite3.Connection, run_id: str, reason: str, ended: float | None = None, *,
              job_state: Any = _KEEP, if_heartbeat: Any = _KEEP) -> bool:
    """Lost: nothing is left to report the run's end. With `if_heartbeat` (a reader that found it dead):
    only while it is still running on the heartbeat read, keeping an end time already recorded, so a
    run that ends or beats at the same moment keeps its word."""
    if if_heartbeat is _KEEP:
        return mark_ended(conn, run_id, "lost", reason, ended, job_state=job_state)
    return mark_ended(conn, run_id, "lost", reason, ended, job_state=job_state, keep_ended=True,
                      only_from=("running",), if_heartbeat=if_heartbeat)


def mark_started(conn: sqlite3.Connection, run_id: str, *, pid: int, sup_pid: int, started: float, host: str,
                 user: str, pid_start: int | None, boot_id: str | None = None) -> None:
    """The supervisor started the command (its own process group, led by `pid`) in boot `boot_id`."""
    conn.execute(
        "UPDATE runs SET status = 'running', pid = ?, pgid = ?, sup_pid = ?, started = ?, heartbeat = ?, "
        "host = ?, user = ?, pid_start = ?, boot_id = ? WHERE id = ?",
        (pid, pid, sup_pid, started, started, host, user, pid_start, boot_id, run_id),
    )


def note_supervisor(conn: sqlite3.Connection, run_id: str, sup_pid: int, now: float) -> None:
    """The launcher spawned the run's supervisor; what the supervisor itself has written wins."""
    conn.execute("UPDATE runs SET sup_pid = coalesce(sup_pid, ?), heartbeat = coalesce(heartbeat, ?) "
                 "WHERE id = ?", (sup_pid, now, run_id))


def beat(conn: sqlite3.Connection, run_id: str, now: float, peak_rss: int | None = None) -> None:
    """The supervisor's heartbeat: a run taken for lost while its supervisor was slow is running again.
    `peak_rss` (bytes) raises the command's recorded peak, never lowers it."""
    conn.execute(
        "UPDATE runs SET heartbeat = ?, status = 'running', reason = NULL, "
        "ended = CASE WHEN status = 'lost' THEN NULL ELSE ended END, "
        "peak_rss = CASE WHEN ? > coalesce(peak_rss, 0) THEN ? ELSE peak_rss END "
        "WHERE id = ? AND status IN ('running', 'lost')", (now, peak_rss, peak_rss, run_id))


def set_stalled(conn: sqlite3.Connection, run_id: str, since: float | None) -> bool:
    """A running run went silent at `since` (no output line, no metric past runs.stall_seconds), or, with
    None, spoke again; returns whether the flag changed (only a running run is ever flagged)."""
    if since is None:
        return conn.execute("UPDATE runs SET stalled_since = NULL WHERE id = ? AND stalled_since IS NOT NULL",
                            (run_id,)).rowcount > 0
    return conn.execute("UPDATE runs SET stalled_since = ? WHERE id = ? AND status = 'running' "
                        "AND stalled_since IS NULL", (since, run_id)).rowcount > 0


def raise_peak_rss(conn: sqlite3.Connection, run_id: str, peak_rss: int) -> None:
    """The command's peak RSS (bytes) at the end, whatever the run's status; never lowered."""
    conn.execute("UPDATE runs SET peak_rss = ? WHERE id = ? AND ? > coalesce(peak_rss, 0)",
                 (peak_rss, run_id, peak_rss))


def note_store_trouble(conn: sqlite3.Connection, run_id: str, cause: str | None, dropped: int = 0) -> None:
    """Why the store could not be written for a while (`cause`, kept once known) and how many more metric
    points were dropped meanwhile (added to the count on the run)."""
    conn.execute("UPDATE runs SET store_trouble = coalesce(?, store_trouble), "
                 "dropped_points = dropped_points + ? WHERE id = ?", (cause, int(dropped), run_id))


def claim_queued(conn: sqlite3.Connection, run_id: str, gpus: Sequence[int] | None, now: float) -> bool:
    """The queue worker takes a queued run to start it; False when it was removed or killed meanwhile."""
    import json

    return conn.execute(
        "UPDATE runs SET status = 'running', gpus = ?, heartbeat = ? WHERE id = ? AND status = 'queued'",
        (json.dumps(gpus) if gpus is not None else None, now, run_id)).rowcount > 0


def request_kill(conn: sqlite3.Connection, run_id: str, deadline: float) -> None:
    """`runs kill` asks: the supervisor (or Slurm's verdict) sees it and stops the run by `deadline`."""
    conn.execute("UPDATE runs SET kill_requested = ? WHERE id = ?", (deadline, run_id))


def submitted(conn: sqlite3.Connection, run_id: str, job_id: str) -> None:
    """Slurm took the run's batch job."""
    conn.execute("UPDATE runs SET job_id = ?, reason = 'submitted to Slurm' WHERE id = ?", (job_id, run_id))


def set_job_state(conn: sqlite3.Connection, run_id: str, state: str, waiting: str | None = None) -> None:
    """What Slurm says of the run's job; `waiting` (why it is pending) becomes the reason of a run still queued."""
    if waiting is None:
        conn.execute("UPDATE runs SET job_state = ? WHERE id = ?", (state, run_id))
    else:
        conn.execute("UPDATE runs SET job_state = ?, reason = ? WHERE id = ? AND status = 'queued'",
                     (state, waiting, run_id))


def set_reason(conn: sqlite3.Connection, run_id: str, reason: str) -> None:
    conn.execute("UPDATE runs SET reason = ? WHERE id = ?", (reason, run_id))


# -- artifacts: files a run made, by path inside its folder (or a watched one) -------------------------
def record_artifact(conn: sqlite3.Connection, run_id: str, path: str, size: int, sha256: str | None,
                    modified: float, location: Any = _KEEP) -> None:
    """Insert or refresh one artifact row; `location` (where a watched file lives) is left alone unless given."""
    if location is _KEEP:
        conn.execute(
            "INSERT INTO artifacts(run_id, path, size, sha256, modified) VALUES (?,?,?,?,?) "
            "ON CONFLICT(run_id, path) DO UPDATE SET size=excluded.size, sha256=excluded.sha256, "
            "modified=excluded.modified",
            (run_id, path, size, sha256, modified))
    else:
        conn.execute(
            "INSERT INTO artifacts(run_id, path, size, sha256, modified, location) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT(run_id, path) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256, "
            "modified = excluded.modified, location = excluded.location",
            (run_id, path, size, sha256, modified, location))


def artifact_at(conn: sqlite3.Connection, run_id: str, path: str) -> tuple[int, str | None] | None:
    """(size, sha256) of the artifact recorded at `path`, or None."""
    row = conn.execute("SELECT size, sha256 FROM artifacts WHERE run_id = ? AND path = ?", (run_id, path)).fetchone()
    return (row[0], row[1]) if row else None


def replace_artifact(conn: sqlite3.Connection, run_id: str, path: str, size: int, sha256: str, modified: float,
                     old_size: int | None, old_sha256: str | None, when: float, *, location: Any = _KEEP) -> None:
    """Record new bytes at `path` over older ones, keeping what was replaced in the row's `replaced` list.

    One replacement is listed once: when two writers record it (the script that overwrote a file in its
    artifacts/ folder, and the supervisor watching that folder), the second finds the replaced sha256
    already last in the list and only refreshes the row. `location` as in record_artifact."""
    import json

    old = json.dumps({"sha256": old_sha256, "size": old_size, "replaced": when})
    keep_location = location is _KEEP
    conn.execute(
        "INSERT INTO artifacts(run_id, path, size, sha256, modified, location, replaced) "
        "VALUES (?,?,?,?,?,?,json_array(json(?))) "
        "ON CONFLICT(run_id, path) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256, "
        "modified = excluded.modified, "
        "location = CASE WHEN ? THEN location ELSE excluded.location END, "
        "replaced = CASE WHEN ? IS NOT NULL AND json_extract(replaced, '$[#-1].sha256') IS ? THEN replaced "
        "ELSE json_insert(coalesce(replaced, '[]'), '$[#]', json(?)) END",
        (run_id, path, size, sha256, modified, None if keep_location else location, old,
         keep_location, old_sha256, old_sha256, old))


def forget_artifact(conn: sqlite3.Connection, run_id: str, path: str) -> None:
    conn.execute("DELETE FROM artifacts WHERE run_id = ? AND path = ?", (run_id, path))


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
    if table == "params" and rows:
        refresh_params_key(conn, run_id)


# A run's params as one canonical text, kept on the run (runs.params_key) so that grouping runs by their
# params reads one column per run instead of twenty rows: each param as RS key US type US quote(value),
# in key order. Triggers on `params` (schema 11) set it to NULL whenever a param row changes, whoever
# writes; set_values writes it back at once, and a read meets a NULL by computing it (PARAMS_KEY_OF).
PARAMS_KEY_OF = ("coalesce((SELECT group_concat(char(30) || p.key || char(31) || p.type || char(31) || quote(p.value), '') "
                 "FROM (SELECT key, type, value FROM params WHERE run_id = {run} ORDER BY key) p), '')")


def refresh_params_key(conn: sqlite3.Connection, run_id: str) -> None:
    conn.execute(f"UPDATE runs SET params_key = {PARAMS_KEY_OF.format(run='?')} WHERE id = ?", (run_id, run_id))


def fill_params_keys(conn: sqlite3.Connection) -> int:
    """Write the params key of every run that lacks one (runs whose params were written by other means);
    returns how many. The caller owns the transaction."""
    return conn.execute(f"UPDATE runs SET params_key = {PARAMS_KEY_OF.format(run='runs.id')} "
                        "WHERE params_key IS NULL").rowcount


def set_archived(conn: sqlite3.Connection, run_ids: Sequence[str], archived: bool) -> int:
    """Archive (hide from listings) or bring back these runs; returns how many changed."""
    return conn.execute("UPDATE runs SET archived = ? WHERE id IN (SELECT value FROM json_each(?)) AND archived != ?",
                        (int(archived), _json(run_ids), int(archived))).rowcount


def delete_runs(conn: sqlite3.Connection, run_ids: Sequence[str], *, keep_active: bool = True) -> list[str]:
    """Delete these runs (params, tags, metrics and artifact rows go with them); with `keep_active` a run
    that is queued or running now is kept, whatever it was when chosen. Returns the ids deleted, in id order.

    The big child tables are emptied one at a time, each in one pass in run id order, before the runs rows
    go (the foreign keys' cascade would look into every child table run by run, interleaving their pages;
    it still covers whatever is left, such as run_inputs, and parent_id's SET NULL)."""
    from mltui.store import metrics as metric_store

    guard = f" AND status NOT IN ({', '.join(repr(s) for s in ACTIVE)})" if keep_active else ""
    doomed = [r[0] for r in conn.execute(
        f"SELECT id FROM runs WHERE id IN (SELECT value FROM json_each(?)){guard} ORDER BY id", (_json(run_ids),))]
    if not doomed:
        return []
    ids = _json(doomed)
    metric_store.delete_for_runs(conn, ids)
    for table in ("params", "tags", "artifacts"):
        conn.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT value FROM json_each(?))", (ids,))
    conn.execute("DELETE FROM runs WHERE id IN (SELECT value FROM json_each(?))", (ids,))
    return doomed


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


def run_status(conn: sqlite3.Connection, run_id: str) -> str | None:
    """A run's status now, or None once it is gone from the store."""
    row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    return row[0] if row else None


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


def delete_run(conn: sqlite3.Connection, run_id: str, *, only_queued: bool = False) -> None:
    """Delete a run (its params, tags, metrics and artifact rows go with it); `only_queued`: only while
    it is still queued (the queue worker may have started it meanwhile)."""
    if only_queued:
        conn.execute("DELETE FROM runs WHERE id = ? AND status = 'queued'", (run_id,))
    else:
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
    """A run's artifact rows; `replaced` lists the bytes each replacement overwrote ({sha256, size, replaced})."""
    import json

    return [
        {"path": p, "size": size, "sha256": sha, "modified": mod, "replaced": json.loads(replaced) if replaced else []}
        for p, size, sha, mod, replaced in conn.execute(
            "SELECT path, size, sha256, modified, replaced FROM artifacts WHERE run_id = ? ORDER BY path", (run_id,)
        )
    ]
