"""Big workspaces for the scale benches (bench/runs_scale.py, bench/tui_scale.py), built fast.

    from scale_workspace import build_workspace
    project = build_workspace(Path("/tmp/ws-100k"), 100_000)      # -> the project folder (holds .mltui/)

Runs are written straight through the store's tables in large multi-row INSERTs (the row formats are the
store's own: `metrics.chunk_rows` for metric chunks and summaries, `values.encode` for params), in
creation order so every primary key is appended, with `synchronous = OFF` while building. 100,000 runs
of 20 params and 10 metrics (10 points each) take well under a minute.

The runs come as a sweep: every `seeds` consecutive runs share one config and differ only in the param
`seed`, so `--group-by '*,-seed'` makes groups of N = seeds. Params: model, lr, batch_size, optimizer,
seed, then p5, p6, ... up to `n_params`; metrics: val_acc, val_loss, train_acc, train_loss, then m4, m5,
... up to `n_metrics`, each logged at steps 0..points-1 (odd seeds log every second step, so series of
one group need the common grid). Statuses: 90% finished, 10% failed; `running` more runs at the newest
end are running (with a fresh heartbeat; nothing supervises them, so a reader may mark them lost later).

A folder already holding a workspace built with the same arguments is reused as it is (a marker file
says how it was built); pass `reuse=False` to build afresh.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from pathlib import Path

MODELS = ("resnet18", "resnet50", "vit-s", "vit-b")
LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
BATCHES = (32, 64, 128)
OPTIMIZERS = ("adam", "sgd", "lion")
METRIC_BASE = ("val_acc", "val_loss", "train_acc", "train_loss")
MARKER = "scale-workspace.json"
BATCH = 5_000  # runs per transaction while building


def param_names(n_params: int) -> list[str]:
    base = ["model", "lr", "batch_size", "optimizer", "seed"]
    return (base + [f"p{i}" for i in range(len(base), n_params)])[:n_params]


def metric_names(n_metrics: int) -> list[str]:
    return (list(METRIC_BASE) + [f"m{i}" for i in range(len(METRIC_BASE), n_metrics)])[:n_metrics]


def build_workspace(root: Path, n_runs: int, n_params: int = 20, n_metrics: int = 10, *, points: int = 10,
                    seeds: int = 5, running: int = 0, reuse: bool = True, quiet: bool = False) -> Path:
    """A workspace of `n_runs` runs in `root` (created; emptied first unless reused); returns `root`."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from mltui.base.ids import new_run_id
    from mltui.base.values import encode
    from mltui.core.workspace import init_workspace
    from mltui.store import metrics as metric_store
    from mltui.store import runs as run_store
    from mltui.store.connection import insert_rows, write_tx
    from mltui.store.opening import open_store

    from mltui.store.schema import SCHEMA_VERSION

    root = Path(root).absolute()
    recipe = {"n_runs": n_runs, "n_params": n_params, "n_metrics": n_metrics, "points": points, "seeds": seeds,
              "running": running, "version": 2, "schema": SCHEMA_VERSION}
    marker = root / ".mltui" / MARKER
    if reuse and marker.is_file():
        try:
            if json.loads(marker.read_text()) == recipe:
                return root
        except ValueError:
            pass
    if (root / ".mltui").exists():
        shutil.rmtree(root / ".mltui")
    ws, _ = init_workspace(root)
    conn = open_store(ws.db_path)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")
    pnames, mnames = param_names(n_params), metric_names(n_metrics)
    rng = random.Random(18)
    now = time.time()
    start = time.perf_counter()
    ids_seen: set[str] = set()
    configs: dict[int, dict] = {}

    def config(c: int) -> dict:
        if c not in configs:
            r = random.Random(c * 7919 + 1)
            values = {"model": r.choice(MODELS), "lr": r.choice(LRS), "batch_size": r.choice(BATCHES),
                      "optimizer": r.choice(OPTIMIZERS)}
            for name in pnames[5:]:
                values[name] = round(r.random(), 4) if int(name[1:]) % 2 else r.randint(0, 9)
            values["quality"] = r.random()  # not a param: how good this config is
            configs.clear()  # consecutive runs share a config: keep one
            configs[c] = values
        return configs[c]

    for begin in range(0, n_runs, BATCH):
        runs, params, chunks, summaries = [], [], [], []
        for i in range(begin, min(n_runs, begin + BATCH)):
            created = now - (n_runs - i) * 30.0  # one every 30 s, the newest just now
            run_id = new_run_id(created)
            while run_id in ids_seen:  # ids are 7 time characters and 3 random ones
                run_id = new_run_id(created)
            ids_seen.add(run_id)
            c, seed = divmod(i, seeds)
            cfg = config(c)
            is_running = i >= n_runs - running
            status = "running" if is_running else ("failed" if rng.random() < 0.1 else "finished")
            duration = 60.0 + rng.random() * 3600
            runs.append((run_id, f"{cfg['model']}-c{c}-s{seed}", "train", status, json.dumps(["python", "train.py"]),
                         str(root), "bench-host", "bench", created, created, None if is_running else created + duration,
                         now if is_running else created + duration, None if is_running else int(status == "failed")))
            for name in pnames:
                value = seed if name == "seed" else cfg[name]
                params.append((run_id, name, *encode(value)))
            steps = list(range(0, points, 2 if seed % 2 else 1))
            times = [created + s for s in steps]
            for k, key in enumerate(mnames):
                up = k % 2 == 0  # acc-like rises, loss-like falls
                target = cfg["quality"] * 0.5 + 0.4 + rng.gauss(0, 0.03)
                values = [(target * (s + 1) / points) if up else (1.5 - target) * (points - s) / points
                          for s in steps]
                chunk, summary = metric_store.chunk_rows(run_id, key, steps, values, times)
                chunks.append(chunk)
                summaries.append(summary)
        with write_tx(conn):
            insert_rows(conn, "INSERT INTO runs(id, name, kind, status, command, cwd, host, user, created, started, "
                        "ended, heartbeat, exit_code)", runs, per=70)
            insert_rows(conn, "INSERT INTO params(run_id, key, value, type)", params, per=200)
            insert_rows(conn, "INSERT INTO metrics(run_id, key, first_step, last_step, n, steps, vals, times)",
                        chunks, per=100)
            insert_rows(conn, "INSERT INTO metric_summary(run_id, key, last, last_step, last_time, min, max, count)",
                        summaries, per=100)
        if not quiet:
            done = min(n_runs, begin + BATCH)
            sys.stderr.write(f"\r  building {done:,}/{n_runs:,} runs ({time.perf_counter() - start:.0f}s)")
    if not quiet:
        sys.stderr.write("\n")
    with write_tx(conn):  # what set_values keeps on each run: its params as one text, for grouping
        run_store.fill_params_keys(conn)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    marker.write_text(json.dumps(recipe))
    return root


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Build a big workspace for the scale benches.")
    parser.add_argument("root", type=Path)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--params", type=int, default=20)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--running", type=int, default=0)
    args = parser.parse_args()
    clock = time.perf_counter()
    build_workspace(args.root, args.runs, args.params, args.metrics, running=args.running, reuse=False)
    print(f"built {args.runs:,} runs in {time.perf_counter() - clock:.1f}s at {args.root}")
