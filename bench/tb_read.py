"""Reading TensorBoard event files, and importing MLflow history.

    python bench/tb_read.py [--steps 100000] [--tags 10] [--repeat 3] [--mlflow-runs 100] [--mlflow-points 10000]

1. Writes tags x steps scalars (1,000,000 by default) with torch.utils.tensorboard.SummaryWriter, once
   (kept in /tmp/mltui-bench-tb-<tags>x<steps> for the next run), then times reading them all with
   mltui's reader, with tensorboard's EventAccumulator (size_guidance 0: keep every point) and with
   tbparse where it is installed: medians of --repeat runs, each checked to give every point.
2. Ingest: `mltui import tensorboard` of the same file into a fresh store, against the tracking API's own
   rate (run.log of the same points, one call per step with every tag).
3. `mltui import mlflow` of --mlflow-runs runs x --mlflow-points points of one metric, written to a SQLite
   store by MLflow itself: the whole import's time and how much of it MLflow's own reads took.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, fresh_workspace, median_of, timer  # noqa: E402


def write_events(tags: int, steps: int) -> Path:
    folder = Path(tempfile.gettempdir()) / f"mltui-bench-tb-{tags}x{steps}"
    done = folder / "complete"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    from torch.utils.tensorboard import SummaryWriter

    clock = timer()
    writer = SummaryWriter(str(folder), max_queue=10_000)
    names = [f"group{t % 3}/metric{t}" for t in range(tags)]
    for step in range(steps):
        for t, name in enumerate(names):
            writer.add_scalar(name, (step % 1000) / 1000 + t, step)
    writer.close()
    done.write_text("")
    print(f"wrote {tags * steps:,} scalars with SummaryWriter in {clock():.1f} s "
          f"({sum(p.stat().st_size for p in folder.glob('events.*')) / 2**20:.1f} MiB)")
    return folder


def read_mltui(folder: Path, expected: int) -> float:
    from mltui.core.runs.tb_files import EventSet, find_event_files

    clock = timer()
    events = EventSet()
    for path in find_event_files([folder]):
        events.add(path)
    points = 0
    while True:
        batch = events.read(final=True)
        points += batch.points()
        if not events.more:
            break
    seconds = clock()
    assert points == expected, (points, expected)
    return seconds


def read_event_accumulator(folder: Path, expected: int) -> float:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    clock = timer()
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    points = sum(len(acc.Scalars(tag)) for tag in acc.Tags()["scalars"])
    seconds = clock()
    assert points == expected, (points, expected)
    return seconds


def read_tbparse(folder: Path, expected: int) -> float:
    from tbparse import SummaryReader

    clock = timer()
    frame = SummaryReader(str(folder), pivot=False).scalars
    seconds = clock()
    assert len(frame) == expected, (len(frame), expected)
    return seconds


def ingest_import(folder: Path, expected: int) -> float:
    from mltui.integrations.tensorboard import import_tensorboard

    ws = fresh_workspace()
    try:
        clock = timer()
        report = import_tensorboard(ws, folder)
        seconds = clock()
        assert report["points"] == expected, report
        return expected / seconds
    finally:
        shutil.rmtree(ws.project_dir, ignore_errors=True)


def ingest_store_only(folder: Path, expected: int) -> float:
    """The store's part of an import: points already decoded, written in the import's batches."""
    from mltui.core.runs.ingest import Ingest
    from mltui.core.runs.tb_files import EventSet, find_event_files
    from mltui.integrations.tensorboard import CHUNK

    events = EventSet()
    for path in find_event_files([folder]):
        events.add(path)
    batches = []
    while True:
        batches.append(events.read(max_bytes=CHUNK).columns)
        if not events.more:
            break
    ws = fresh_workspace()
    try:
        clock = timer()
        with Ingest(ws) as ingest:
            run_id = ingest.create("bench", status="finished", created=time.time())
            points = sum(ingest.points(run_id, columns) for columns in batches)
        seconds = clock()
        assert points == expected, points
        return expected / seconds
    finally:
        shutil.rmtree(ws.project_dir, ignore_errors=True)


def ingest_tracking(tags: int, steps: int) -> float:
    import mltui

    ws = fresh_workspace()
    try:
        names = [f"group{t % 3}/metric{t}" for t in range(tags)]
        clock = timer()
        run = mltui.init(name="bench", workspace=str(ws.project_dir))
        log = run.log
        for step in range(steps):
            log({name: (step % 1000) / 1000 + t for t, name in enumerate(names)}, step=step)
        run.finish()
        return tags * steps / clock()
    finally:
        shutil.rmtree(ws.project_dir, ignore_errors=True)


MLFLOW_WRITER = """
import sys, time
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric
uri, runs, points = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = MlflowClient(tracking_uri=uri)
exp = client.create_experiment("bench")
now = int(time.time() * 1000)
for r in range(runs):
    run = client.create_run(exp, run_name=f"run-{r}")
    client.log_batch(run.info.run_id, params=[mlflow.entities.Param("lr", str(0.001 * (r + 1)))])
    for start in range(0, points, 1000):
        client.log_batch(run.info.run_id, metrics=[Metric("loss", 1.0 / (s + 1), now + s, s)
                                                   for s in range(start, min(points, start + 1000))])
    client.set_terminated(run.info.run_id)
"""


def mlflow_import(runs: int, points: int) -> tuple[float, float]:
    from mltui.integrations.mlflow import import_mlflow

    folder = Path(tempfile.gettempdir()) / f"mltui-bench-mlflow-{runs}x{points}"
    db = folder / "mlflow.db"
    if not (folder / "complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        clock = timer()
        subprocess.run([sys.executable, "-c", MLFLOW_WRITER, f"sqlite:///{db}", str(runs), str(points)], cwd=folder,
                       check=True, capture_output=True)
        (folder / "complete").write_text("")
        print(f"wrote {runs} MLflow runs x {points:,} points to SQLite in {clock():.1f} s")
    ws = fresh_workspace()
    try:
        report = import_mlflow(ws, f"sqlite:///{db}")
        assert report["points"] == runs * points, report["points"]
        return report["seconds"], report["mlflow_seconds"]
    finally:
        shutil.rmtree(ws.project_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--tags", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mlflow-runs", type=int, default=100)
    parser.add_argument("--mlflow-points", type=int, default=10_000)
    parser.add_argument("--skip", action="append", default=[], choices=("read", "ingest", "mlflow"),
                        help="leave a part out (repeatable)")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    expected = args.tags * args.steps
    folder = write_events(args.tags, args.steps)

    if "read" not in args.skip:
        read_part(folder, expected, args.repeat)
    if "ingest" not in args.skip:
        ingest_part(folder, expected, args)
    if "mlflow" not in args.skip:
        mlflow_part(args)


def read_part(folder: Path, expected: int, repeat: int) -> None:
    print(f"\nreading {expected:,} scalars (median of {repeat}, seconds):")
    ours, each = median_of(lambda: read_mltui(folder, expected), repeat)
    print(f"  mltui reader         {ours:7.2f}  ({fmt(each, digits=2)})  {expected / ours:,.0f} points/s")
    theirs, each = median_of(lambda: read_event_accumulator(folder, expected), repeat)
    print(f"  EventAccumulator     {theirs:7.2f}  ({fmt(each, digits=2)})  -> mltui is {theirs / ours:.1f}x faster "
          f"(target 5x)")
    try:
        import tbparse  # noqa: F401
    except ImportError:
        print("  tbparse              not installed (pip install tbparse): skipped")
    else:
        parsed, each = median_of(lambda: read_tbparse(folder, expected), repeat)
        print(f"  tbparse              {parsed:7.2f}  ({fmt(each, digits=2)})  -> mltui is {parsed / ours:.1f}x faster")


def ingest_part(folder: Path, expected: int, args) -> None:
    print(f"\ningest of {expected:,} points into a fresh store (median of {args.repeat}, points/s):")
    imported, each = median_of(lambda: ingest_import(folder, expected), args.repeat)
    print(f"  mltui import tensorboard  {imported:12,.0f}  ({fmt(each)})")
    stored, each = median_of(lambda: ingest_store_only(folder, expected), args.repeat)
    print(f"  of which the store's part {stored:12,.0f}  ({fmt(each)})  (decoded points written in the import's batches)")
    tracked, each = median_of(lambda: ingest_tracking(args.tags, args.steps), args.repeat)
    print(f"  tracking API run.log      {tracked:12,.0f}  ({fmt(each)})")
    print(f"  -> the store's part of an import is {stored / tracked:.2f}x the tracking API's rate (target >= 0.5x); "
          f"the whole import, decoding included, {imported / tracked:.2f}x")


def mlflow_part(args) -> None:
    total = args.mlflow_runs * args.mlflow_points
    print(f"\nmltui import mlflow: {args.mlflow_runs} runs x {args.mlflow_points:,} points (SQLite store), "
          f"median of {args.repeat}:")
    results = sorted(mlflow_import(args.mlflow_runs, args.mlflow_points) for _ in range(args.repeat))
    seconds, inside = results[len(results) // 2]
    print(f"  whole import {seconds:.2f} s ({total / seconds:,.0f} points/s); MLflow's own reads {inside:.2f} s "
          f"({100 * inside / seconds:.0f}%); mltui's share {seconds - inside:.2f} s")


if __name__ == "__main__":
    main()
