"""Metric ingest through the tracking API: one process, then 8 at once, against plain sqlite3.

    python bench/ingest.py [--calls 500000] [--procs 8] [--repeat 5]

Prints points per second (2 metrics per run.log call, final flush included) as the median of
several runs, next to plain sqlite3 executemany into an indexed table in the same run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, fresh_workspace, median_of, timer  # noqa: E402


def log_points(ws_root: str, calls: int, name: str) -> float:
    """One process logging `calls` steps of two metrics; returns seconds from init to finish."""
    import mltui

    clock = timer()
    run = mltui.init(name=name, workspace=ws_root)
    log = run.log
    for step in range(calls):
        log({"loss": 1.0 / (step + 1), "acc": step / calls}, step=step)
    run.finish()
    return clock()


def one_process(calls: int) -> float:
    ws = fresh_workspace()
    try:
        seconds = log_points(str(ws.project_dir), calls, "bench-1")
        _check(ws, {"bench-1": calls})
        return 2 * calls / seconds
    finally:
        shutil.rmtree(ws.project_dir, ignore_errors=True)


def _worker(ws_root: str, calls: int, name: str, start, done) -> None:
    start.wait()
    done.put(log_points(ws_root, calls, name))


def many_processes(procs: int, calls: int) -> float:
    ws = fresh_workspace()
    try:
        ctx = mp.get_context("fork")
        start = ctx.Event()
        done = ctx.Queue()
        workers = [ctx.Process(target=_worker, args=(str(ws.project_dir), calls, f"bench-{i}", start, done))
                   for i in range(procs)]
        for w in workers:
            w.start()
        time.sleep(0.5)  # let every process import and wait at the line
        clock = timer()
        start.set()
        for w in workers:
            w.join()
        seconds = clock()
        if any(w.exitcode != 0 for w in workers):
            raise SystemExit("a logging process failed")
        _check(ws, {f"bench-{i}": calls for i in range(procs)})
        return 2 * calls * procs / seconds
    finally:
        shutil.rmtree(ws.project_dir, ignore_errors=True)


def _check(ws, expected: dict[str, int]) -> None:
    """Every point must be in the store: count them from the chunks and the summary."""
    conn = sqlite3.connect(ws.db_path)
    for name, calls in expected.items():
        (run_id,) = conn.execute("SELECT id FROM runs WHERE name = ?", (name,)).fetchone()
        stored = conn.execute("SELECT coalesce(sum(n), 0) FROM metrics WHERE run_id = ?", (run_id,)).fetchone()[0]
        counted = conn.execute("SELECT sum(count) FROM metric_summary WHERE run_id = ?", (run_id,)).fetchone()[0]
        if stored != 2 * calls or counted != 2 * calls:
            raise SystemExit(f"lost points in {name}: stored {stored}, summary {counted}, expected {2 * calls}")
    conn.close()


def plain_sqlite(points: int) -> float:
    """The floor: executemany of (run, key, step, value, time) rows into an indexed table."""
    folder = Path(fresh_workspace().project_dir)
    try:
        conn = sqlite3.connect(folder / "plain.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("CREATE TABLE m (run TEXT, key TEXT, step INTEGER, value REAL, time REAL)")
        conn.execute("CREATE INDEX m_i ON m(run, key, step)")
        now = time.time()
        clock = timer()
        batch = []
        for step in range(points // 2):
            batch.append(("r1", "loss", step, 1.0 / (step + 1), now))
            batch.append(("r1", "acc", step, 0.5, now))
            if len(batch) >= 20_000:
                conn.execute("BEGIN")
                conn.executemany("INSERT INTO m VALUES (?,?,?,?,?)", batch)
                conn.execute("COMMIT")
                batch = []
        if batch:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO m VALUES (?,?,?,?,?)", batch)
            conn.execute("COMMIT")
        seconds = clock()
        conn.close()
        return points / seconds
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500_000, help="run.log calls in the one-process case")
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--calls-per-proc", type=int, default=125_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}")

    med, figs = median_of(lambda: plain_sqlite(2 * args.calls), args.repeat)
    print(f"plain sqlite3 executemany, indexed table : median {med:,.0f} rows/s   ({fmt(figs)})")
    med, figs = median_of(lambda: one_process(args.calls), args.repeat)
    print(f"run.log, 1 process, {2 * args.calls:,} points  : median {med:,.0f} points/s ({fmt(figs)})"
          f"   target >= 400,000")
    med, figs = median_of(lambda: many_processes(args.procs, args.calls_per_proc), max(3, args.repeat // 2))
    total = 2 * args.calls_per_proc * args.procs
    print(f"run.log, {args.procs} processes, {total:,} points : median {med:,.0f} points/s ({fmt(figs)})"
          f"   target >= 300,000; every point counted afterwards")


if __name__ == "__main__":
    main()
