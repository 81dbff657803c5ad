"""Runs a page at a time (store/run_pages.py): the count of a filter's whole result, the running ones
among them, and pages from either end, checked against the same questions answered in Python."""

from __future__ import annotations

import time
from contextlib import closing

import pytest

from mltui.core.workspace import init_workspace
from mltui.store import run_pages
from mltui.store import runs as run_store
from mltui.store.connection import write_tx
from mltui.store.opening import open_store
from mltui.store.where import compile_filter

STATUSES = ("running", "finished", "failed", "queued", "killed")
NOW = time.time()


@pytest.fixture
def conn(tmp_path):
    ws, _ = init_workspace(tmp_path)
    with closing(open_store(ws.db_path)) as conn:
        with write_tx(conn):
            for i in range(300):
                run_id = f"1pages{i:04d}"
                run_store.insert_run(conn, {"id": run_id, "name": f"r{i}", "kind": "train", "status": STATUSES[i % 5],
                                            "created": NOW - i, "started": NOW - i})
                run_store.set_values(conn, "params", run_id, {"lr": i / 1000, "seed": i % 7})
            conn.execute("UPDATE runs SET archived = 1 WHERE id IN ('1pages0000', '1pages0005')")  # two running
        yield conn


def _expected(i_matches) -> tuple[int, int]:
    kept = [i for i in range(300) if i not in (0, 5) and i_matches(i)]  # archived runs are hidden
    return len(kept), sum(1 for i in kept if STATUSES[i % 5] == "running")


@pytest.mark.parametrize("where, matches", [
    (None, lambda i: True),
    ("params.lr > 0.1", lambda i: i / 1000 > 0.1),
    ("params.seed = 2", lambda i: i % 7 == 2),
    ("status = running", lambda i: i % 5 == 0),
    ("params.lr < 0.05 or status = failed", lambda i: i / 1000 < 0.05 or i % 5 == 2),
    ("name = 'r7'", lambda i: i == 7),
    ("name = 'nobody'", lambda i: False),
])
def test_the_count_and_the_running_ones_match_the_runs_themselves(conn, where, matches):
    where_sql, params = compile_filter(where, NOW)
    assert run_pages.count(conn, where_sql, params) == _expected(matches)


def test_pages_from_the_front_and_from_the_back_are_the_same_order(conn):
    where_sql, params = compile_filter("params.seed != 3", NOW)
    total, _ = run_pages.count(conn, where_sql, params)
    whole = run_pages.page_ids(conn, 0, total, None, where_sql, params)  # newest first
    assert len(whole) == total == _expected(lambda i: i % 7 != 3)[0]
    assert whole == sorted(whole)  # newest first: created goes down as the number in the id goes up
    last = run_pages.page_ids(conn, total - 20, 20, total, where_sql, params)  # read from the other end
    assert last == whole[-20:]
    middle = run_pages.page_ids(conn, 100, 30, total, where_sql, params)
    assert middle == whole[100:130]
