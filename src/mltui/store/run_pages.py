"""Runs a page at a time: the count of a compiled --where's whole result, and one page of its ids in a
compiled --sort order, so a screen never holds more than it shows.

A page deep in the result (the last one, after End) is read from the other end: the order is turned
round and the offset counted from the end, so SQLite never steps over more than half the result.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence

from mltui.store.where import HIDE_ARCHIVED

DEFAULT_ORDER = "runs.created DESC NULLS LAST"
TIE_BREAK = "runs.id DESC NULLS LAST"  # a total order: pages neither repeat nor skip a run
_DIRECTION = re.compile(r" (ASC|DESC) NULLS (LAST|FIRST)\b")


def _order(order_sql: str | None) -> str:
    """The full ORDER BY text: the compiled sort (every term ends with a direction and NULLS), newest
    first among equals, then the id."""
    if not order_sql:
        return f"{DEFAULT_ORDER}, {TIE_BREAK}"
    return f"{order_sql}, {DEFAULT_ORDER}, {TIE_BREAK}"


_NOT_NULL = re.compile(r"(runs\.(?:id|name|kind|status|created)) (ASC|DESC) NULLS (?:LAST|FIRST)\b")


def _indexable(order: str) -> str:
    """Drop NULLS LAST/FIRST from columns that are never NULL: it changes nothing there, but SQLite reads
    an index in order only for the default NULLS placement (oldest first, by status)."""
    return _NOT_NULL.sub(r"\1 \2", order)


def reverse_order(order: str) -> str:
    """The same order turned round (the text only holds fixed SQL: values are bound parameters)."""
    return _DIRECTION.sub(lambda m: " {} NULLS {}".format("DESC" if m[1] == "ASC" else "ASC",
                                                        "FIRST" if m[2] == "LAST" else "LAST"), order)


def count(conn: sqlite3.Connection, where_sql: str | None = None,
          where_params: Sequence[object] = ()) -> tuple[int, int]:
    """(runs matching, of which running), over the whole result."""
    if not where_sql or where_sql == HIDE_ARCHIVED:  # two index walks instead of reading every row
        hide = where_sql == HIDE_ARCHIVED
        total = conn.execute(f"SELECT count(*) FROM runs{' WHERE runs.archived = 0' if hide else ''}").fetchone()[0]
        # the unary + keeps SQLite on the status index (the few running runs), not the archived one (all)
        running = conn.execute("SELECT count(*) FROM runs WHERE runs.status = 'running'"
                               + (" AND +runs.archived = 0" if hide else "")).fetchone()[0]
        return total, running
    # two counts, of one state of the store: the whole result from the index the filter walks (without
    # reading the runs' rows, which counting the running ones among them would: twice as slow at 1M
    # runs), then the running ones from the status index (a few rows)
    with snapshot(conn):
        total = conn.execute(f"SELECT count(*) FROM runs WHERE {where_sql}", list(where_params)).fetchone()[0]
        try:
            running = conn.execute(f"SELECT count(*) FROM runs INDEXED BY runs_status WHERE runs.status = "
                                   f"'running' AND ({where_sql})", list(where_params)).fetchone()[0]
        except sqlite3.OperationalError as exc:  # a store from before the status index (opened read-only)
            if "no such index" not in str(exc):
                raise
            running = conn.execute(f"SELECT count(*) FROM runs WHERE runs.status = 'running' AND ({where_sql})",
                                   list(where_params)).fetchone()[0]
    return total, running


def page_ids(conn: sqlite3.Connection, offset: int, limit: int, total: int | None, where_sql: str | None = None,
             where_params: Sequence[object] = (), order_sql: str | None = None,
             order_params: Sequence[object] = ()) -> list[str]:
    """Ids of the runs at [offset, offset + limit) of the result (`total` long, as `count` gave it; None:
    not counted yet, so read from the front)."""
    if total is not None:
        offset = max(0, min(offset, total))
        limit = max(0, min(limit, total - offset))
    if limit <= 0:
        return []
    order = _order(order_sql)
    reverse = total is not None and offset + limit / 2 > total / 2
    if reverse:  # from the other end: the rows [total - offset - limit, total - offset) of the reversed order
        order, offset = reverse_order(order), total - offset - limit
    sql = "SELECT runs.id FROM runs"
    if where_sql:
        sql += f" WHERE {where_sql}"
    sql += f" ORDER BY {_indexable(order)} LIMIT ? OFFSET ?"
    ids = [r[0] for r in conn.execute(sql, [*where_params, *order_params, limit, offset])]
    return ids[::-1] if reverse else ids


def active_count(conn: sqlite3.Connection) -> int:
    """Runs queued or running in the whole store (an index walk)."""
    return conn.execute("SELECT count(*) FROM runs WHERE status IN ('queued', 'running')").fetchone()[0]


class snapshot:
    """`with snapshot(conn):` reads that see one state of the store (a deferred read transaction), so a
    count and the page read after it agree although writers commit in between."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.began = False

    def __enter__(self) -> sqlite3.Connection:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")
            self.began = True
        return self.conn

    def __exit__(self, *exc) -> None:
        if self.began and self.conn.in_transaction:
            try:
                self.conn.execute("COMMIT")  # nothing was written: this only lets go of the snapshot
            except sqlite3.Error:
                pass
