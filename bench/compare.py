"""From stored points to a drawn comparison chart: 20 runs x 100,000 points, one metric, 150x40.

    python bench/compare.py [--runs 20] [--points 100000] [--width 150] [--height 40] [--repeat 9]

Logs the runs through the tracking API (mltui.init / run.log / run.finish) into a temporary
workspace, in a child process so that this process's peak memory is the chart's alone. Then times
load_series() for one metric of every run with buckets = chart width (read + smooth + downsample)
plus mltui.chart.draw() at width x height: the first (cold) pass, then the median of several, with
smoothing 0 and 0.6. A second pass through the same steps (read_arrays, ema, downsample) gives the
breakdown. Memory: tracemalloc's peak over one load+draw (Python and numpy allocations; polars'
own allocator is not traced) and the process's max RSS from getrusage.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import sqlite3
import statistics
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, fresh_workspace, timer  # noqa: E402

KEY = "loss"
TARGET_MS = 150


def log_runs(project: str, runs: int, points: int) -> None:
    """The data set, through the real tracking API: `loss` falls with noise, `acc` rises (not charted)."""
    import random

    import mltui

    rng = random.Random(7)
    for r in range(runs):
        run = mltui.init(name=f"run-{r:02d}", params={"lr": 10 ** -(1 + r % 4), "seed": r},
                         workspace=project)
        log = run.log
        scale = 1.0 + r / runs
        for step in range(points):
            loss = scale / (1.0 + step / 5_000) + 0.05 * rng.random()
            log({KEY: loss, "acc": 1.0 - loss / 3}, step=step)
        run.finish()


def build(runs: int, points: int):
    ws = fresh_workspace("mltui-bench-compare-")
    clock = timer()
    child = mp.get_context("fork").Process(target=log_runs, args=(str(ws.project_dir), runs, points))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit("logging the runs failed")
    return ws, clock()


def max_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
    return kb / (1024 * 1024) if sys.platform == "darwin" else kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--points", type=int, default=100_000, help="points per run")
    parser.add_argument("--width", type=int, default=150, help="chart columns (and downsampling buckets)")
    parser.add_argument("--height", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}")

    ws, seconds = build(args.runs, args.points)
    try:
        total = args.runs * args.points
        print(f"logged {args.runs} runs x {args.points:,} points of {KEY!r} (+ 'acc') through run.log in "
              f"{seconds:.1f}s ({os.path.getsize(ws.db_path) / 1e6:.0f} MB store)")
        rss_start = max_rss_mb()
        clock = timer()
        import polars as pl

        from mltui.chart import draw
        from mltui.core.runs.compare import downsample, ema, load_series, read_arrays
        from mltui.store.opening import open_store

        print(f"imports (polars, numpy, plotext, mltui.core.runs.compare, mltui.chart): {clock() * 1000:.0f} ms; "
              f"max RSS {rss_start:.0f} MB before, {max_rss_mb():.0f} MB after")

        from mltui.core.reader import StoreReader

        conn = StoreReader(ws).conn  # the connection kind the Compare pane polls with
        from mltui.chart import buckets_for

        buckets = buckets_for(args.width, args.runs)  # as the Compare pane and `compare --plot` choose
        run_ids = [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY name")]
        names = [f"run-{i:02d}" for i in range(len(run_ids))]
        label = {rid: name for rid, name in zip(run_ids, names)}
        drawn = {}

        def load_and_draw(smoothing: float) -> tuple[float, float]:
            clock = timer()
            series = load_series(conn, run_ids, KEY, axis="step", smoothing=smoothing, buckets=buckets)
            loaded = clock()
            chart = draw(series, [label[s.run_id] for s in series], args.width, args.height, title=KEY)
            total = clock()
            assert len(series) == args.runs and all(s.points == args.points for s in series)
            drawn["chart"], drawn["series"] = chart, series
            return loaded, total

        def breakdown(smoothing: float) -> tuple[float, float, float]:
            """The steps of load_series one by one: read, smooth, downsample (seconds, summed over runs)."""
            t_read = t_smooth = t_down = 0.0
            for rid in run_ids:
                clock = timer()
                steps, values, _ = read_arrays(conn, rid, KEY, with_times=False)
                t_read += clock()
                clock = timer()
                y = ema(pl.Series("y", values), smoothing)
                t_smooth += clock()
                clock = timer()
                downsample(pl.Series("x", steps.astype("f8")), y, buckets)
                t_down += clock()
            return t_read, t_smooth, t_down

        print(f"{total:,} points -> one chart: load_series({args.runs} runs, buckets={buckets}) + "
              f"draw({args.width}x{args.height}); median of {args.repeat}   target under {TARGET_MS} ms")
        cold_load, cold_total = load_and_draw(0.0)
        lines = drawn["chart"].splitlines()
        kept = sum(len(s.x) for s in drawn["series"])
        print(f"  cold (first pass in this process, fresh connection): {cold_total * 1000:6.1f} ms "
              f"(load {cold_load * 1000:.1f} + draw {(cold_total - cold_load) * 1000:.1f})")
        from plotext._utility import uncolorize

        columns = max(len(line) for line in uncolorize(drawn["chart"]).splitlines())
        print(f"  chart: {columns}x{len(lines)} characters, {kept:,} points drawn of {total:,}")
        for smoothing in (0.0, 0.6):
            figures = [load_and_draw(smoothing) for _ in range(args.repeat)]
            totals = [t for _, t in figures]
            med = statistics.median(totals)
            med_load = statistics.median(ld for ld, _ in figures)
            med_draw = statistics.median(t - ld for ld, t in figures)
            verdict = "ok" if med * 1000 < TARGET_MS else "OVER"
            print(f"  smoothing {smoothing:<3}: median {med * 1000:6.1f} ms [{verdict}] = load_series "
                  f"{med_load * 1000:.1f} + draw {med_draw * 1000:.1f}   ({fmt(totals, ' ms', 1000, 1)})")
            steps = [breakdown(smoothing) for _ in range(args.repeat)]
            read, smooth, down = (statistics.median(col) for col in zip(*steps))
            print(f"    breakdown (medians, summed over {args.runs} runs): read_arrays {read * 1000:.1f} ms, "
                  f"ema {smooth * 1000:.1f} ms, downsample {down * 1000:.1f} ms")

        # what-if: SQLite's default page cache (2 MB) is smaller than one run's three blob chains (2.4 MB
        # here), so each read walks overflow pages from disk/OS cache again; a bigger cache shows the cost.
        big = open_store(ws.db_path)
        big.execute("PRAGMA cache_size = -65536")

        def read_all(c) -> float:
            clock = timer()
            for rid in run_ids:
                read_arrays(c, rid, KEY)
            return clock()

        default = statistics.median(read_all(conn) for _ in range(args.repeat))
        bigger = statistics.median(read_all(big) for _ in range(args.repeat))
        big.close()
        print(f"  what-if: read_arrays for {args.runs} runs {default * 1000:.1f} ms with the default page cache, "
              f"{bigger * 1000:.1f} ms with PRAGMA cache_size = -65536 (64 MB)")

        tracemalloc.start()
        load_and_draw(0.6)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"memory: tracemalloc peak over one load+draw {peak / 2**20:.1f} MB "
              f"(raw data: {total * 24 / 2**20:.0f} MB as step+value+time); "
              f"max RSS {max_rss_mb():.0f} MB (was {rss_start:.0f} MB before the imports)")
        conn.close()
    finally:
        shutil.rmtree(ws.project_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
