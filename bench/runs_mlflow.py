"""Runs at scale (#18) beside MLflow: listing and filtering N runs, each side as a whole command.

    python bench/runs_mlflow.py [--runs 10000] [--repeat 3] [--keep DIR]

Builds (once; reused from --keep DIR) a mltui workspace of N runs (bench/scale_workspace.py: 20 params, 10
metrics) and an MLflow SQLite store holding the same runs, written through MLflow's public client
(MlflowClient.create_run + log_batch, one experiment): the same names and start times, the same 20 params
(as strings, MLflow's way) and the last value of each of the 10 metrics (one point per metric, where the
mltui store holds up to 10 points each), read back from `mltui runs list --jsonl --limit 0`. MLflow runs
keep the status RUNNING (setting it is one more call per run); no filter here names the status.

Then times, in fresh subprocesses (median of --repeat), each query answered with every matching run as JSON:
  a. params.model = vit-b and params.seed = 0     b. metrics.val_acc > 0.8     c. every run
ours `mltui runs list --where ... --json --limit 0`, MLflow's MlflowClient.search_runs paged (50,000 a page
at most for the SQLite store) with each run's to_dictionary() dumped as JSON. Both write to a file; the
bench counts the runs each found from it and checks, by name, that both found the same runs. Also, in the
same kind of child: the query alone after imports (MLflow: search_runs paging, then the JSON dump; mltui:
select_ids, then iter_runs_json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_workspace import build_workspace  # noqa: E402

QUERIES = [  # (label, mltui --where, MLflow filter_string)
    ("params model & seed", "params.model = vit-b and params.seed = 0", "params.model = 'vit-b' and params.seed = '0'"),
    ("metrics.val_acc > 0.8", "metrics.val_acc > 0.8", "metrics.val_acc > 0.8"),
    ("all runs", None, ""),
]

MLFLOW_QUERY = """
import json, sys, time
t0 = time.perf_counter()
from mlflow import MlflowClient
from mlflow.entities import ViewType
uri, exp, flt, timing = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
client = MlflowClient(tracking_uri=uri)
t1 = time.perf_counter()
runs, token = [], None
while True:
    page = client.search_runs([exp], filter_string=flt, run_view_type=ViewType.ACTIVE_ONLY,
                              max_results=50000, page_token=token)
    runs.extend(page)
    token = page.token
    if not token:
        break
t2 = time.perf_counter()
json.dump([r.to_dictionary() for r in runs], sys.stdout)
t3 = time.perf_counter()
if timing:
    print(json.dumps({"import": t1 - t0, "query": t2 - t1, "dump": t3 - t2, "n": len(runs)}), file=sys.stderr)
"""

MLTUI_QUERY = """
import json, sys, time
t0 = time.perf_counter()
from mltui.core.reader import open_workspace
from mltui.core.runs.listing import iter_runs_json, select_ids
where = sys.argv[1] or None
ws, conn = open_workspace()
t1 = time.perf_counter()
ids = select_ids(conn, where, None, False)
t2 = time.perf_counter()
n = sum(len(batch) for batch in iter_runs_json(conn, ids))
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "query": t2 - t1, "dump": t3 - t2, "n": n}), file=sys.stderr)
"""


def build_mlflow(ws_root: Path, folder: Path, n_runs: int) -> tuple[str, str]:
    """An MLflow SQLite store in `folder` with the runs of the mltui workspace; (tracking uri, experiment id)."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    marker = folder / "complete.json"
    if marker.is_file():
        done = json.loads(marker.read_text())
        if done.get("n_runs") == n_runs:
            return uri, done["experiment"]
    if folder.exists():
        for path in folder.iterdir():
            path.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLTUI_WORKSPACE": str(ws_root / ".mltui")}
    out = subprocess.run([sys.executable, "-m", "mltui", "runs", "list", "--jsonl", "--limit", "0"], env=env,
                         capture_output=True, text=True, check=True).stdout
    runs = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(runs) == n_runs, (len(runs), n_runs)
    runs.reverse()  # oldest first, as they were made
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    clock = time.perf_counter()
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("runs-scale")
    print(f"  MLflow store: created in {time.perf_counter() - clock:.1f} s (schema migrations)", flush=True)
    clock = time.perf_counter()
    for i, run in enumerate(runs, 1):
        made = client.create_run(exp, start_time=int(run["created"] * 1000), run_name=run["name"])
        params = [Param(k, str(v)) for k, v in run["params"].items()]
        metrics = [Metric(k, m["last"], int(m["last_time"] * 1000), m["last_step"])
                   for k, m in run["metrics"].items()]
        client.log_batch(made.info.run_id, metrics=metrics, params=params)
        if i % 1000 == 0 or i == n_runs:
            took = time.perf_counter() - clock
            print(f"  MLflow: {i:,}/{n_runs:,} runs written in {took:.0f} s ({i / took:.0f} runs/s)", flush=True)
    print(f"  MLflow build: {n_runs:,} runs in {time.perf_counter() - clock:.1f} s (mlflow {mlflow.__version__})")
    marker.write_text(json.dumps({"n_runs": n_runs, "experiment": exp}))
    return uri, exp


def timed(argv: list[str], env: dict, out: Path) -> tuple[float, str]:
    """Seconds of `argv` as a child writing stdout to `out`; its stderr."""
    with open(out, "w") as sink, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.run(argv, env=env, stdout=sink, stderr=err, check=False)
        took = time.perf_counter() - start
        err.seek(0)
        text = err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed: {text}")
    return took, text


def names(out: Path) -> list[str]:
    """The run names in a JSON list of runs, as mltui (`name`) or MLflow (`info.run_name`) prints them."""
    with open(out) as f:
        return [r["name"] if "name" in r else r["info"]["run_name"] for r in json.load(f)]


def last_json(text: str) -> dict:
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=Path(tempfile.gettempdir()) / "mltui-bench-runs-mlflow")
    args = parser.parse_args()
    ws_root = args.keep / f"ws-{args.runs}"
    clock = time.perf_counter()
    build_workspace(ws_root, args.runs)
    print(f"mltui workspace: {args.runs:,} runs at {ws_root} ({time.perf_counter() - clock:.1f} s, reused if built)")
    clock = time.perf_counter()
    uri, exp = build_mlflow(ws_root, args.keep / f"mlflow-{args.runs}", args.runs)
    print(f"MLflow store: {uri} experiment {exp} ({time.perf_counter() - clock:.1f} s, reused if built)")
    print("MLflow holds one point per metric (the last); mltui holds up to 10 points per metric.")

    env = {**os.environ, "MLTUI_WORKSPACE": str(ws_root / ".mltui"), "MLFLOW_TRACKING_URI": uri}
    out = args.keep / "out.json"
    rows = []
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True, check=True).stdout.strip()}")
    for label, where, flt in QUERIES:
        ours = [sys.executable, "-m", "mltui", "runs", "list", "--json", "--limit", "0"]
        if where:
            ours += ["--where", where]
        theirs = [sys.executable, "-c", MLFLOW_QUERY, uri, exp, flt, "0"]
        t_ours, t_theirs = [], []
        for _ in range(args.repeat):  # alternated, so load drifts hit both alike
            t_ours.append(timed(ours, env, out)[0])
            found_ours = names(out)
            t_theirs.append(timed(theirs, env, out)[0])
            found_theirs = names(out)
        n_ours, n_theirs = len(found_ours), len(found_theirs)
        same = sorted(found_ours) == sorted(found_theirs)
        rows.append((label, statistics.median(t_ours), statistics.median(t_theirs), n_ours, n_theirs, same))
        print(f"  {label}: mltui {', '.join(f'{t:.2f}' for t in t_ours)} s ({n_ours:,} runs); "
              f"MLflow {', '.join(f'{t:.2f}' for t in t_theirs)} s ({n_theirs:,} runs)", flush=True)
        ins_ours = [last_json(timed([sys.executable, "-c", MLTUI_QUERY, where or ""], env, out)[1])
                    for _ in range(args.repeat)]
        ins_theirs = [last_json(timed([sys.executable, "-c", MLFLOW_QUERY, uri, exp, flt, "1"], env, out)[1])
                      for _ in range(args.repeat)]
        for name, figs in (("mltui", ins_ours), ("MLflow", ins_theirs)):
            med = {k: statistics.median(f[k] for f in figs) for k in ("import", "query", "dump")}
            print(f"    in-process {name}: import+open {med['import']:.2f} s, query {med['query']:.3f} s, "
                  f"to JSON {med['dump']:.3f} s ({figs[0]['n']:,} runs)", flush=True)
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True, check=True).stdout.strip()}")
    print(f"\nwhole commands, {args.runs:,} runs, median of {args.repeat} (seconds):")
    print(f"  {'what':<24}{'mltui':>8}{'MLflow':>9}{'found: mltui':>15}{'MLflow':>9}")
    for label, a, b, na, nb, same in rows:
        flag = "   same runs" if same else "   RUNS DIFFER"
        print(f"  {label:<24}{a:>8.2f}{b:>9.2f}{na:>15,}{nb:>9,}{flag}")
    out.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
