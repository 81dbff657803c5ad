"""`runs list --where ... --sort ...` over a large store: in-process and as a whole command.

    python bench/query.py [--runs 10000] [--repeat 15]

Builds a workspace of N runs with 20 params and 10 metrics each (through the store's own
writers), then times list_runs() in-process and `mltui runs list` as a subprocess.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, fresh_workspace, median_of, timer  # noqa: E402

WHERE = "params.lr > 0.003 and metrics.val_acc > 0.8 and status = finished"
SORT = "-metrics.val_acc"


def build(n_runs: int):
    from mltui.base.ids import new_run_id
    from mltui.store import metrics as metric_store
    from mltui.store import runs as run_store
    from mltui.store.connection import write_tx
    from mltui.store.opening import open_store

    rng = random.Random(1)
    ws = fresh_workspace()
    conn = open_store(ws.db_path)
    now = time.time()
    clock = timer()
    with write_tx(conn):
        for i in range(n_runs):
            created = now - (n_runs - i) * 60
            run_id = new_run_id(created)
            run_store.insert_run(conn, {
                "id": run_id, "name": f"run-{i}", "kind": "train",
                "status": rng.choice(["finished"] * 8 + ["failed", "running"]),
                "created": created, "started": created, "ended": created + rng.random() * 3600,
            })
            params = {"lr": rng.choice([1e-4, 3e-4, 1e-3, 3e-3, 1e-2]), "batch_size": rng.choice([32, 64, 128]),
                      "optimizer": rng.choice(["adam", "sgd", "lion"]), "augment": rng.random() > 0.5}
            params.update({f"p{j}": rng.random() for j in range(16)})
            run_store.set_values(conn, "params", run_id, params)
            series = {}
            for j, key in enumerate(["val_acc", "val_loss", "train_acc", "train_loss"] + [f"m{k}" for k in range(6)]):
                values = [rng.random() for _ in range(10)]
                series[key] = (list(range(10)), values, [created + s for s in range(10)])
            metric_store.write_batch(conn, run_id, series)
    conn.close()
    return ws, clock()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    from mltui.core.runs.listing import list_runs
    from mltui.store.opening import open_store

    ws, seconds = build(args.runs)
    try:
        print(f"built {args.runs:,} runs x 20 params x 10 metrics in {seconds:.1f}s "
              f"({os.path.getsize(ws.db_path) / 1e6:.0f} MB)")
        conn = open_store(ws.db_path)
        matched = list_runs(conn, where=WHERE, sort=SORT, limit=0, details=False).total
        print(f"--where \"{WHERE}\" --sort {SORT}: {matched:,} of {args.runs:,} runs match")

        def in_process(limit: int) -> float:
            clock = timer()
            result = list_runs(conn, where=WHERE, sort=SORT, limit=limit)
            assert result.total == matched
            return clock()

        for limit, label in ((100, "first 100 with params+metrics"), (0, "all matches with params+metrics")):
            med, figs = median_of(lambda: in_process(limit), args.repeat)
            print(f"in-process list_runs, {label:32}: median {med * 1000:6.1f} ms ({fmt(figs, ' ms', 1000, 1)})")
        conn.close()

        env = {**os.environ, "MLTUI_WORKSPACE": str(ws.root)}

        def command(extra: list[str]) -> float:
            clock = timer()
            out = subprocess.run([sys.executable, "-m", "mltui", "runs", "list", "--where", WHERE, "--sort", SORT,
                                  *extra], env=env, capture_output=True, text=True)
            took = clock()
            if out.returncode != 0:
                raise SystemExit(out.stderr)
            return took

        def baseline() -> float:
            clock = timer()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            return clock()

        med, figs = median_of(baseline, args.repeat)
        print(f"whole command, python -c pass (baseline)                 : median {med * 1000:6.1f} ms")
        for extra, label in (([], "text, default limit 100"), (["--json"], "--json, default limit 100"),
                             (["--json", "--limit", "0"], "--json, all matches")):
            med, figs = median_of(lambda: command(extra), args.repeat)
            print(f"whole command `mltui runs list` {label:26}: median {med * 1000:6.1f} ms ({fmt(figs, ' ms', 1000)})")
        print("targets: in-process under 100 ms, whole command under 400 ms")
    finally:
        shutil.rmtree(ws.project_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
