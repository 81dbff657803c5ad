"""Data drift of two Parquet tables: `mltui data drift` against a plain floor and Evidently, in one run.

    python bench/drift.py [--rows 1000000 100000] [--repeat 5] [--evidently-repeat 1]
                          [--before DIR] [--before-repeat 3] [--no-evidently]

Builds a reference and a current table of N rows x 20 columns, seeded, as Parquet: 15 numbers
(normal, lognormal with NaN, uniform, integers with many ties, rounded gamma with nulls) and 5
categories (3 to 40 values); the current one moves 3 numbers and 2 categories. Both are recorded
as two versions of one dataset (stored in a temporary workspace's cache). Then for each size, in
the same run, each as a whole process (start-up and imports included), the median of --repeat
runs and each process's peak RSS:

- `mltui data drift NAME@v1 NAME@v2 --json`;
- the floor: scipy.stats.ks_2samp per numeric column, numpy PSI over the reference's deciles,
  polars category shares (this script with --floor, in this interpreter);
- Evidently's DataDriftPreset (this script with --evidently), where evidently imports here;
- `mltui data profile NAME@v1 --json`, the profile cache emptied before each run;
- with --before DIR, the same two mltui commands from the source folder DIR (say, a copy of
  src/ before a change), for before/after figures under the same conditions.

Also in-process: mltui's drift() with 1 thread and with its default pool, wall and CPU seconds
(CPU above wall is the second core at work; on a busy machine the wall gain shrinks). mltui's KS
and PSI are checked against the floor's (KS must equal scipy's; PSI the floor's, to 4 decimals).

The peers belong in a virtualenv of their own, never in mltui's dependencies:
    python3 -m venv /work/benchvenv
    /work/benchvenv/bin/pip install -e . scipy 'pandas<3' evidently   # Evidently 0.7 needs pandas < 3
    /work/benchvenv/bin/python bench/drift.py
Peers that do not import in this interpreter are skipped, and the output says why.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, median_of, timer  # noqa: E402

NUMBERS, CATEGORIES = 15, 5
LEVELS = (5, 12, 30, 3, 40)  # values per category column (at most 50: mltui pools the rest)
SHIFTED_NUMBERS = (0, 6, 12)
SHIFTED_CATEGORIES = (1, 4)
DECILES = [i / 10 for i in range(1, 10)]
EPS = 1e-4
TARGET_RATIO_FLOOR = 1.2  # mltui at most 1.2x the floor's whole-process time at the largest size
TARGET_EVIDENTLY = 15.0  # at least 15x quicker than Evidently
TARGET_SMALL_S = 0.8  # under 0.8 s at 100,000 rows
TARGET_RSS_MB = 350
TARGET_PROFILE = 2.0  # profile at least 2x quicker than before


# -- the data --------------------------------------------------------------------------------------
def table(rows: int, seed: int, shifted: bool):
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    cols = {}
    for j in range(NUMBERS):
        kind = j % 5
        move = shifted and j in SHIFTED_NUMBERS
        if kind == 0:
            cols[f"num_{j:02d}"] = rng.normal(0.25 if move else 0.0, 1.0, rows)
        elif kind == 1:
            x = rng.lognormal(0.0, 1.0, rows) * (1.15 if move else 1.0)
            x[rng.random(rows) < 0.005] = np.nan  # NaN is a value polars keeps: left out of KS and PSI
            cols[f"num_{j:02d}"] = x
        elif kind == 2:
            cols[f"num_{j:02d}"] = rng.uniform(5.0 if move else 0.0, 105.0 if move else 100.0, rows)
        elif kind == 3:
            cols[f"num_{j:02d}"] = rng.integers(0, 50, rows)  # Int64, many ties
        else:
            cols[f"num_{j:02d}"] = np.round(rng.gamma(2.0, 2.0, rows), 2)
    for j, k in enumerate(LEVELS):
        weights = np.linspace(1.0, 2.0, k)
        if shifted and j in SHIFTED_CATEGORIES:
            weights = weights[::-1]
        codes = rng.choice(k, rows, p=weights / weights.sum())
        cols[f"cat_{j}"] = pl.Series([f"v{i:02d}" for i in range(k)]).gather(codes)
    df = pl.DataFrame(cols)
    nulls = (pl.int_range(rows) % 97 == 0)
    return df.with_columns(pl.when(nulls).then(None).otherwise(pl.col("num_04")).alias("num_04"))


def build(folder: Path, rows: int) -> tuple[Path, Path]:
    ref, cur = folder / f"ref_{rows}.parquet", folder / f"cur_{rows}.parquet"
    table(rows, 1, False).write_parquet(ref)
    table(rows, 2, True).write_parquet(cur)
    return ref, cur


# -- the floor and Evidently (each run by this script in a child process) ----------------------------
def floor(ref: str, cur: str) -> dict:
    """scipy's ks_2samp per numeric column, numpy PSI over the reference's deciles, polars category shares."""
    import numpy as np
    import polars as pl
    from scipy.stats import ks_2samp

    clock = timer()
    a, b = pl.read_parquet(ref), pl.read_parquet(cur)
    out = {}
    for name, dtype in a.schema.items():
        if dtype.is_numeric():
            x, y = (f[name].cast(pl.Float64).to_numpy() for f in (a, b))
            x, y = x[np.isfinite(x)], y[np.isfinite(y)]
            ks = float(ks_2samp(x, y).statistic)
            edges = np.unique(np.quantile(x, DECILES))
            # bins (-inf, e1], (e1, e2], ..., (ek, inf): searchsorted 'left' on the edges puts v == e_i in bin i
            e, f = (np.bincount(np.searchsorted(edges, v, side="left"), minlength=len(edges) + 1) / len(v)
                    for v in (x, y))
        else:
            sa, sb = ({v: n / f.height for v, n in f[name].cast(pl.String).value_counts().rows()} for f in (a, b))
            keys = sorted(set(sa) | set(sb), key=str)
            e, f = (np.array([s.get(k, 0.0) for k in keys]) for s in (sa, sb))
            ks = None
        e, f = np.maximum(e, EPS), np.maximum(f, EPS)
        out[name] = {"psi": float(np.sum((f - e) * np.log(f / e))), "ks": ks}
    return {"compute_s": clock(), "columns": out}


def evidently(ref: str, cur: str) -> dict:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    clock = timer()
    a, b = pd.read_parquet(ref), pd.read_parquet(cur)
    snapshot = Report([DataDriftPreset()]).run(current_data=b, reference_data=a)
    drifted = None
    for metric in snapshot.dict().get("metrics", []):
        if "DriftedColumnsCount" in str(metric.get("metric_name", "")):
            drifted = metric.get("value", {}).get("count")
    return {"compute_s": clock(), "drifted": drifted}


def peer_missing(module: str) -> str | None:
    """Why a peer cannot run in this interpreter, or None."""
    got = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    if got.returncode == 0:
        return None
    lines = [line for line in got.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"import {module} failed"


# -- whole processes -----------------------------------------------------------------------------------
# A small process that runs the command and writes its seconds and peak RSS: the peak must come from a
# process forked from a small parent (on Linux a child's peak counts the pages of the parent it was
# forked from, and this script holds the tables).
MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[2:]).returncode
seconds = time.perf_counter() - start
with open(sys.argv[1], "w") as fh:
    json.dump({"seconds": seconds, "peak_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}, fh)
sys.exit(code)
"""


def run(cmd: list[str], cwd: Path, env: dict | None = None) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, stdout) of one command as a whole process."""
    with tempfile.TemporaryFile("w+") as out, tempfile.NamedTemporaryFile("r", suffix=".json") as figures:
        got = subprocess.run([sys.executable, "-c", MEASURE, figures.name, *cmd], cwd=cwd, env=env, stdout=out,
                             stderr=subprocess.PIPE, text=True)
        if got.returncode != 0:
            err = got.stderr.strip().splitlines()
            raise SystemExit(f"{' '.join(cmd)} failed: {err[-1] if err else got.returncode}")
        measured = json.load(figures)
        out.seek(0)
        return measured["seconds"], measured["peak_kb"] / 1024, out.read()


def timed(label: str, cmd: list[str], cwd: Path, repeat: int, env: dict | None = None,
          before_each=None) -> dict:
    peaks, outs = [], []

    def once() -> float:
        if before_each:
            before_each()
        seconds, peak, out = run(cmd, cwd, env)
        peaks.append(peak)
        outs.append(out)
        return seconds

    med, times = median_of(once, repeat)
    print(f"  {label:<44} {med:7.2f} s   peak {max(peaks):6,.0f} MB   ({fmt(times, ' s', digits=2)})", flush=True)
    return {"median": med, "times": times, "peak": max(peaks), "out": outs[-1]}


def mltui_env(src: str | None, project: Path) -> dict:
    env = dict(os.environ, MLTUI_WORKSPACE=str(project))
    if src:
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def workspace(folder: Path, tables: dict[int, tuple[Path, Path]]) -> Path:
    """A workspace holding dataset drift<N> with the reference as v1 and the current table as v2."""
    project = folder / "project"
    project.mkdir()
    mltui = [sys.executable, "-m", "mltui"]
    env = dict(os.environ, MLTUI_WORKSPACE=str(project))
    subprocess.run([*mltui, "init"], cwd=project, env=env, check=True, capture_output=True)
    for rows, (ref, cur) in tables.items():
        data = project / f"data{rows}"
        data.mkdir()
        for side in (ref, cur):
            shutil.copyfile(side, data / "table.parquet")
            subprocess.run([*mltui, "data", "add", str(data), "--name", f"drift{rows}", "--store"], cwd=project,
                           env=env, check=True, capture_output=True)
    return project


def forget_profiles(project: Path) -> None:
    from mltui.core.workspace import find_workspace

    conn = sqlite3.connect(find_workspace(project).db_path)
    with conn:
        conn.execute("DELETE FROM dataset_profiles")
    conn.close()


# -- in process: the thread pool's gain ------------------------------------------------------------------
def threads_gain(ref: Path, cur: Path, repeat: int) -> str:
    import inspect

    from mltui.core.data.columns import THREADS
    from mltui.core.data.drift import drift

    if "threads" not in inspect.signature(drift).parameters:
        return "n/a (this drift() has no thread pool)"
    parts = []
    for threads in (1, THREADS):
        cpus = []

        def once(threads: int = threads) -> float:
            clock, cpu = timer(), time.process_time()
            drift(str(ref), "parquet", str(cur), "parquet", threads=threads)
            cpus.append(time.process_time() - cpu)
            return clock()

        wall, _ = median_of(once, repeat)
        parts.append((threads, wall, statistics.median(cpus)))
    (_, w1, c1), (tn, wn, cn) = parts
    return (f"1 thread {w1:.2f} s wall, {c1:.2f} s CPU; {tn} threads {wn:.2f} s wall, {cn:.2f} s CPU "
            f"({w1 / wn:.2f}x the speed of 1 thread)")


def agreement(mltui_json: str, peer: dict) -> str:
    [t] = json.loads(mltui_json)["tables"]
    cols = {c["name"]: c for c in t["columns"]}
    dks = max(abs(cols[n]["ks"] - v["ks"]) for n, v in peer["columns"].items() if v["ks"] is not None)
    dpsi = max(abs(cols[n]["psi"] - v["psi"]) for n, v in peer["columns"].items())
    top = [c["name"] for c in t["columns"][:len(SHIFTED_NUMBERS) + len(SHIFTED_CATEGORIES)]]
    shifted = sorted([f"num_{j:02d}" for j in SHIFTED_NUMBERS] + [f"cat_{j}" for j in SHIFTED_CATEGORIES])
    return (f"max |KS - scipy| {dks:.2g}, max |PSI - floor| {dpsi:.2g} over 20 columns; mltui ranks the "
            f"5 moved columns first: {'yes' if sorted(top) == shifted else 'no: ' + ', '.join(top)}; "
            f"read: {t.get('read', '?')}, KS: {t.get('ks_method', '?')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 100_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--evidently-repeat", type=int, default=1)
    parser.add_argument("--before", metavar="DIR", help="also time mltui from this source folder (the code before)")
    parser.add_argument("--before-repeat", type=int, default=3)
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--floor", nargs=2, metavar=("REF", "CUR"), help=argparse.SUPPRESS)
    parser.add_argument("--evidently", nargs=2, metavar=("REF", "CUR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor:
        print(json.dumps(floor(*args.floor)))
        return
    if args.evidently:
        print(json.dumps(evidently(*args.evidently)))
        return

    import numpy as np
    import polars as pl

    versions = [f"polars {pl.__version__}", f"numpy {np.__version__}"]
    missing = {m: peer_missing(m) for m in ("scipy", "evidently")}
    for m in ("scipy", "evidently"):
        if not missing[m]:
            got = subprocess.run([sys.executable, "-c", f"import {m}; print({m}.__version__)"], capture_output=True,
                                 text=True)
            versions.append(f"{m} {got.stdout.strip()}")
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, {', '.join(versions)}; "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    for m, why in missing.items():
        if why:
            print(f"{m} is skipped: it does not import here ({why})")
    if args.no_evidently:
        missing["evidently"] = "--no-evidently"

    folder = Path(tempfile.mkdtemp(prefix="mltui-bench-drift-"))
    try:
        clock = timer()
        tables = {rows: build(folder, rows) for rows in args.rows}
        project = workspace(folder, tables)
        sizes = ", ".join(f"{r:,} rows" for r in args.rows)
        print(f"data: {sizes} x 20 columns, built and recorded in {clock():.1f} s")
        now_env, before_env = mltui_env(None, project), mltui_env(args.before, project)
        mltui = [sys.executable, "-m", "mltui"]
        results = {}
        for rows, (ref, cur) in tables.items():
            mb = (ref.stat().st_size + cur.stat().st_size) / 1e6
            print(f"\n== {rows:,} rows x 20 columns (15 numbers, 5 categories), Parquet, {mb:.0f} MB for both; "
                  f"load average {os.getloadavg()[0]:.1f} ==")
            r = results[rows] = {}
            drift_cmd = [*mltui, "data", "drift", f"drift{rows}@v1", f"drift{rows}@v2", "--json"]
            profile_cmd = [*mltui, "data", "profile", f"drift{rows}@v1", "--json"]
            r["drift"] = timed("mltui data drift --json", drift_cmd, project, args.repeat, now_env)
            if args.before:
                r["drift_before"] = timed("mltui data drift --json, before", drift_cmd, project, args.before_repeat,
                                          before_env)
            if not missing["scipy"]:
                r["floor"] = timed("floor: ks_2samp + numpy PSI + polars shares",
                                   [sys.executable, __file__, "--floor", str(ref), str(cur)], project, args.repeat)
                peer = json.loads(r["floor"]["out"])
                print(f"  {'':<44} (compute alone {peer['compute_s']:.2f} s in the last run)")
            if not missing["evidently"]:
                r["evidently"] = timed("Evidently DataDriftPreset",
                                       [sys.executable, __file__, "--evidently", str(ref), str(cur)], project,
                                       args.evidently_repeat)
                ev = json.loads(r["evidently"]["out"])
                print(f"  {'':<44} (compute alone {ev['compute_s']:.1f} s; it flags {ev['drifted']} columns "
                      "as drifted)")
            r["profile"] = timed("mltui data profile --json (cache emptied)", profile_cmd, project, args.repeat,
                                 now_env, lambda: forget_profiles(project))
            if args.before:
                r["profile_before"] = timed("mltui data profile --json, before", profile_cmd, project,
                                            args.before_repeat, before_env, lambda: forget_profiles(project))
            print(f"  in process, drift(): {threads_gain(ref, cur, max(3, args.repeat // 2))}")
            if "floor" in r:
                print(f"  answers: {agreement(r['drift']['out'], json.loads(r['floor']['out']))}")
            if args.before:
                same = json.loads(r["drift"]["out"])["tables"][0]["columns"]
                old = json.loads(r["drift_before"]["out"])["tables"][0]["columns"]
                d = max(abs((a.get(k) or 0.0) - (b.get(k) or 0.0)) for a, b in zip(same, old) for k in ("psi", "ks"))
                order = [c["name"] for c in same] == [c["name"] for c in old]
                print(f"  before vs now: same column order {'yes' if order else 'NO'}, max |change| of PSI and KS "
                      f"{d:.2g}")
        summary(results, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def summary(results: dict, args) -> None:
    print(f"\n== ratios and targets (load average {os.getloadavg()[0]:.1f} at the end) ==")
    big, small = max(results), min(results)
    r = results[big]

    def line(ok: bool | None, text: str) -> None:
        print(f"  {'-   ' if ok is None else 'ok  ' if ok else 'MISS'} {text}")

    if "floor" in r:
        ratio = r["drift"]["median"] / r["floor"]["median"]
        line(ratio <= TARGET_RATIO_FLOOR,
             f"{big:,} rows: mltui / floor = {ratio:.2f}x (target <= {TARGET_RATIO_FLOOR}x)")
    else:
        line(None, "no floor (scipy does not import here)")
    if "evidently" in r:
        ratio = r["evidently"]["median"] / r["drift"]["median"]
        line(ratio >= TARGET_EVIDENTLY,
             f"{big:,} rows: Evidently / mltui = {ratio:.1f}x quicker (target >= {TARGET_EVIDENTLY:.0f}x)")
    for rows in sorted(results):
        s = results[rows]
        if "evidently" in s and rows != big:
            ratio = s["evidently"]["median"] / s["drift"]["median"]
            line(None, f"{rows:,} rows: Evidently / mltui = {ratio:.1f}x quicker")
        if "floor" in s and rows != big:
            line(None, f"{rows:,} rows: mltui / floor = {s['drift']['median'] / s['floor']['median']:.2f}x")
    if small != big:
        t = results[small]["drift"]["median"]
        line(t < TARGET_SMALL_S if small <= 100_000 else None,
             f"{small:,} rows: mltui data drift {t:.2f} s (target < {TARGET_SMALL_S} s at 100,000 rows)")
    line(r["drift"]["peak"] < TARGET_RSS_MB, f"{big:,} rows: mltui peak RSS {r['drift']['peak']:.0f} MB "
         f"(target < {TARGET_RSS_MB} MB)" + (f"; the floor {r['floor']['peak']:.0f} MB" if "floor" in r else "")
         + (f"; Evidently {r['evidently']['peak']:,.0f} MB" if "evidently" in r else ""))
    if "profile_before" in r:
        gain = r["profile_before"]["median"] / r["profile"]["median"]
        line(gain >= TARGET_PROFILE, f"{big:,} rows: mltui data profile {r['profile_before']['median']:.2f} s "
             f"before, {r['profile']['median']:.2f} s now: {gain:.1f}x (target >= {TARGET_PROFILE:.0f}x)")
        gain = r["drift_before"]["median"] / r["drift"]["median"]
        line(None, f"{big:,} rows: mltui data drift {r['drift_before']['median']:.2f} s before, "
             f"{r['drift']['median']:.2f} s now: {gain:.1f}x")
    else:
        line(None, f"{big:,} rows: mltui data profile {r['profile']['median']:.2f} s "
             "(give --before DIR for the gain)")


if __name__ == "__main__":
    main()
