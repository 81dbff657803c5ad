"""Monitoring at scale: `mltui monitor check` against Evidently's DataDriftPreset on the same windows.

    python bench/monitor.py [--rows 1000000] [--windows 24] [--repeat 3] [--incremental 50000]
                            [--big 10000000] [--no-evidently]

Builds a reference table (100,000 rows x 20 features: 15 numbers, 5 categories, and a target) recorded
as a stored dataset, and a prediction log of --rows JSON lines spread over --windows hourly windows,
whose inputs shift from the middle window on. Then, each as a whole process, the median of --repeat:

- the full `mltui monitor check --json` of the whole log (the windows and offsets emptied before each
  run), and its peak RSS;
- Evidently's DataDriftPreset on the same windows against the same reference (this script with
  --evidently, in this interpreter, where evidently imports): its compute alone, and with reading;
- an incremental check: --incremental more rows appended as one new window, then one check;
- with --big N: one check of an N-line log of 5 features, for the peak RSS (bounded memory).

Targets: at least 10x quicker than Evidently on the same windows; an incremental 50,000-row window in
under 1 s. Evidently belongs in the bench's own virtualenv (`pip install 'pandas<3' evidently`).
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

NUMBERS, CATEGORIES = 15, 5
LEVELS = (4, 8, 12, 3, 20)
HOUR = 3600.0
TARGET_EVIDENTLY = 10.0
TARGET_INCREMENTAL_S = 1.0


def reference(rows: int, seed: int = 0):
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    cols = {f"n{i}": rng.normal(i, 1 + i / 10, rows) for i in range(NUMBERS)}
    cols.update({f"c{i}": rng.choice([f"v{j}" for j in range(LEVELS[i])], rows) for i in range(CATEGORIES)})
    frame = pl.DataFrame(cols)
    return frame.with_columns((pl.col("n0") > 0).cast(pl.Int64).alias("target"))


def predictions(rows: int, windows: int, start: float, seed: int = 1, shift_from: int | None = None,
                features: int = NUMBERS + CATEGORIES):
    """A frame of prediction records (ts, model, id, inputs struct, output, latency_ms)."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    ts = start + np.sort(rng.uniform(0, windows * HOUR, rows))
    window = ((ts - start) // HOUR).astype(int)
    shifted = window >= (shift_from if shift_from is not None else windows)
    numbers = min(NUMBERS, features)
    inputs = {f"n{i}": rng.normal(i, 1 + i / 10, rows) + np.where(shifted & (i % 5 == 0), 1.5, 0.0)
              for i in range(numbers)}
    for i in range(features - numbers):
        levels = np.array([f"v{j}" for j in range(LEVELS[i])])
        pick = rng.integers(0, LEVELS[i], rows)
        inputs[f"c{i}"] = levels[np.where(shifted & (i == 1), 0, pick)]
    frame = pl.DataFrame({"ts": ts, "model": ["classifier@1"] * rows,
                          "id": [f"r{seed}-{i}" for i in range(rows)], **inputs,
                          "output": (inputs["n0"] > 0).astype(np.int64), "latency_ms": rng.gamma(2.0, 10.0, rows)})
    names = list(inputs)
    return frame.select("ts", "model", "id", pl.struct(names).alias("inputs"), "output", "latency_ms"), names


def mltui(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTUI_")}
    return subprocess.run([sys.executable, "-m", "mltui", *args], cwd=project, capture_output=True, text=True, env=env)


def timed_check(project: Path) -> tuple[float, float, dict]:
    """(seconds, peak RSS MB, report) of one `mltui monitor check --json` as its own process."""
    wrapper = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
               "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); s = time.perf_counter() - t; "
               "print(json.dumps({'s': s, 'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "
               "'out': p.stdout, 'err': p.stderr, 'rc': p.returncode}))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTUI_")}
    done = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "mltui", "monitor", "check", "--json"],
                          cwd=project, capture_output=True, text=True, env=env)
    got = json.loads(done.stdout)
    if got["rc"] not in (0, 1):
        raise SystemExit(f"mltui monitor check failed: {got['err']}")
    return got["s"], got["rss"], json.loads(got["out"])


def forget(project: Path) -> None:
    conn = sqlite3.connect(project / ".mltui" / "mltui.db")
    with conn:
        for table in ("monitor_windows", "monitor_files", "monitor_labels", "monitor_alerts", "monitor_checks"):
            conn.execute(f"DELETE FROM {table}")
    conn.close()
    shutil.rmtree(project / ".mltui" / "monitor-ids", ignore_errors=True)


def setup(folder: Path, rows: int, windows: int) -> tuple[Path, float]:
    project = folder / "project"
    (project / "ref").mkdir(parents=True)
    reference(100_000).write_parquet(project / "ref" / "train.parquet")
    for args in (("init",), ("data", "add", "ref", "--name", "ref", "--store")):
        done = mltui(project, *args)
        if done.returncode:
            raise SystemExit(done.stderr)
    config = project / ".mltui" / "config.toml"
    config.write_text(config.read_text() + '\n[monitor]\nwindow = "1h"\n\n[monitor.models.classifier]\n'
                      'reference = "ref"\ntarget = "target"\n')
    start = (time.time() // HOUR - windows - 2) * HOUR
    frame, _ = predictions(rows, windows, start, shift_from=windows // 2)
    (project / ".mltui" / "monitor").mkdir(exist_ok=True)
    frame.write_ndjson(project / ".mltui" / "monitor" / "predictions.jsonl")
    return project, start


def evidently_run(ref_path: str, log_path: str) -> None:
    """--evidently: DataDriftPreset per hourly window; prints compute seconds and read seconds."""
    import pandas as pd
    import polars as pl
    from evidently import Report
    from evidently.presets import DataDriftPreset

    t = time.perf_counter()
    ref = pl.read_parquet(ref_path).drop("target").to_pandas()
    log = pl.read_ndjson(log_path).unnest("inputs")
    log = log.with_columns((pl.col("ts") // HOUR).alias("__w"))
    frames = [g.drop("ts", "model", "id", "output", "latency_ms", "__w").to_pandas()
              for _, g in log.group_by("__w", maintain_order=True)]
    read = time.perf_counter() - t
    t = time.perf_counter()
    drifted = []
    for cur in frames:
        snap = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
        for metric in snap.dict().get("metrics", []):
            if "DriftedColumnsCount" in str(metric.get("metric_name", "")):
                drifted.append(metric.get("value", {}).get("count"))
    assert isinstance(pd.DataFrame(), pd.DataFrame)
    print(json.dumps({"compute_s": time.perf_counter() - t, "read_s": read, "windows": len(frames),
                      "drifted": drifted}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--windows", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--incremental", type=int, default=50_000)
    parser.add_argument("--big", type=int, default=0, help="also check an N-line log of 5 features, for peak RSS")
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--evidently", nargs=2, metavar=("REF", "LOG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.evidently:
        evidently_run(*args.evidently)
        return
    folder = Path(tempfile.mkdtemp(prefix="mltui-bench-monitor-"))
    try:
        t = time.perf_counter()
        project, start = setup(folder, args.rows, args.windows)
        log = project / ".mltui" / "monitor" / "predictions.jsonl"
        print(f"reference: 100,000 rows x 20 features; log: {args.rows:,} predictions x 20 features in "
              f"{args.windows} hourly windows ({log.stat().st_size / 1e6:.0f} MB of JSON lines), shifted from window "
              f"{args.windows // 2}; built in {time.perf_counter() - t:.1f} s; load average {os.getloadavg()[0]:.1f}")
        runs = []
        for _ in range(args.repeat):
            forget(project)
            runs.append(timed_check(project))
        secs = [r[0] for r in runs]
        report = runs[-1][2]
        ours = statistics.median(secs)
        print(f"mltui monitor check (full): median {ours:.2f} s of {', '.join(f'{s:.2f}' for s in secs)}; "
              f"peak RSS {max(r[1] for r in runs):.0f} MB; {report['records']:,} records, {report['windows']} "
              "window updates")
        drifted = [w["health"]["drift_share"] for w in json.loads(mltui(project, "monitor", "show", "classifier",
                                                                         "--json", "-n", "0").stdout)]
        print(f"  drift share per window: {' '.join(f'{d:.2f}' for d in drifted)}")
        if not args.no_evidently:
            probe = subprocess.run([sys.executable, "-c", "import evidently"], capture_output=True, text=True)
            if probe.returncode:
                print("Evidently: not installed in this interpreter (pip install 'pandas<3' evidently)")
            else:
                done = subprocess.run([sys.executable, __file__, "--evidently", str(project / "ref" / "train.parquet"),
                                       str(log)], capture_output=True, text=True)
                if done.returncode:
                    print(f"Evidently failed: {done.stderr.strip().splitlines()[-1:]}")
                else:
                    ev = json.loads(done.stdout.strip().splitlines()[-1])
                    ratio = ev["compute_s"] / ours
                    print(f"Evidently DataDriftPreset, same {ev['windows']} windows: compute {ev['compute_s']:.1f} s "
                          f"(+{ev['read_s']:.1f} s reading the log); mltui is {ratio:.1f}x quicker on compute alone "
                          f"(target {TARGET_EVIDENTLY:.0f}x: {'met' if ratio >= TARGET_EVIDENTLY else 'NOT met'}); "
                          f"drifted columns per window: {ev['drifted']}")
        incr = []
        for i in range(args.repeat):
            extra, _ = predictions(args.incremental, 1, start + (args.windows + i) * HOUR, seed=100 + i)
            with open(log, "ab") as fh:
                extra.write_ndjson(fh)
            incr.append(timed_check(project))
        med = statistics.median(r[0] for r in incr)
        print(f"incremental check of one new {args.incremental:,}-row window: median {med:.2f} s of "
              f"{', '.join(f'{r[0]:.2f}' for r in incr)} (target under {TARGET_INCREMENTAL_S:.0f} s: "
              f"{'met' if med < TARGET_INCREMENTAL_S else 'NOT met'}); peak RSS {max(r[1] for r in incr):.0f} MB")
        if args.big:
            big = project / ".mltui" / "monitor" / "big.jsonl"
            forget(project)
            log.unlink()
            step = 1_000_000
            with open(big, "wb") as fh:
                for part in range(0, args.big, step):
                    frame, _ = predictions(min(step, args.big - part), args.windows, start, seed=part, features=5)
                    frame.write_ndjson(fh)
            s, rss, rep = timed_check(project)
            print(f"big log: {rep['records']:,} lines ({big.stat().st_size / 1e9:.1f} GB) checked in {s:.1f} s, "
                  f"peak RSS {rss:.0f} MB")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
