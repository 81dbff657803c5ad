"""The runs table at any history size: the whole result counted, and only the page on screen read.

The Runs pane asks for `read_page(conn, query, offset, limit)`: the count of every matching run (and of
those running) and the runs at [offset, offset + limit) with their params, tags and metric summaries.
The filter and the sort are the --where and --sort languages, compiled to SQL (store/where.py), so
SQLite does the filtering and ordering; nothing here holds more runs than the page.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field

from mltui.core.runs.listing import attach_details
from mltui.store import run_pages
from mltui.store import runs as run_store
from mltui.store.where import compile_filter, compile_sort


@dataclass(frozen=True)
class Query:
    """What the table shows: a --where filter and a --sort spec (None: every run, newest first)."""

    where: str | None = None
    sort: str | None = None
    archived: bool = False  # show archived runs too (a filter that names `archived` shows them anyway)


@dataclass(frozen=True)
class Counts:
    total: int  # runs matching the filter
    running: int  # of which running


@dataclass
class Page:
    counts: Counts | None  # None: not counted yet (read_page with count=False)
    offset: int  # the result position of runs[0]
    runs: list[dict] = field(default_factory=list)


def _compiled(query: Query, now: float) -> tuple[str | None, list, str | None, list]:
    where_sql, where_params = compile_filter(query.where, now, query.archived)  # archived runs hidden unless asked
    order_sql, order_params = compile_sort(query.sort, now) if query.sort and query.sort.strip() else (None, [])
    return where_sql, list(where_params), order_sql, list(order_params)


def count_runs(conn: sqlite3.Connection, query: Query) -> Counts:
    """How many runs the filter matches, and how many of those are running."""
    where_sql, where_params, _, _ = _compiled(query, time.time())
    return Counts(*run_pages.count(conn, where_sql, where_params))


def page_ids(conn: sqlite3.Connection, query: Query, offset: int, limit: int, total: int) -> list[str]:
    """The ids at [offset, offset + limit) of the result (`total` runs long)."""
    where_sql, where_params, order_sql, order_params = _compiled(query, time.time())
    return run_pages.page_ids(conn, offset, limit, total, where_sql, where_params, order_sql, order_params)


def read_page(conn: sqlite3.Connection, query: Query, offset: int, limit: int,
              counts: Counts | None = None, count: bool = True, exact: bool = True) -> Page:
    """The runs at [offset, offset + limit) with their details, and the count of the whole result (unless
    `counts` is given, the store being known unchanged, or `count` is False: a first page shown before
    its result is counted), read from one state of the store. An offset past the end (the result
    shrank) is moved back so the page ends on the last run. `exact=False`: the `counts` given are of an
    earlier state of the store (kept for the count line while a slow count waits its turn), so they do
    not bound the page: runs added since are read too."""
    now = time.time()
    where_sql, where_params, order_sql, order_params = _compiled(query, now)
    with run_pages.snapshot(conn):
        if counts is None and count:
            counts = Counts(*run_pages.count(conn, where_sql, where_params))
        bound = counts.total if counts is not None and exact else None
        if bound is not None:
            offset = max(0, min(offset, bound - limit))
        ids = run_pages.page_ids(conn, offset, limit, bound, where_sql, where_params, order_sql, order_params)
        runs = run_store.get_runs(conn, ids)
        attach_details(conn, runs)
    return Page(counts, offset, runs)


def active_runs(conn: sqlite3.Connection) -> int:
    """Runs queued or running anywhere in the store: with none, there is nothing to reap or follow."""
    return run_pages.active_count(conn)
