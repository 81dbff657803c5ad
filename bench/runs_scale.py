"""Runs at scale (#18): whole commands over workspaces of 10,000 and 100,000 runs (20 params, 10 metrics).

    python bench/runs_scale.py [--sizes 10000,100000] [--repeat 3] [--keep DIR]

For each size it builds a workspace (bench/scale_workspace.py; reused from --keep DIR when built there
before) and prints the median of --repeat runs of each command as a subprocess, with the peak RSS of its
largest process (wait4: the command's own, or a worker process's it forked) and the load average:
  runs list --where ... --limit 50          runs list --json --limit 0
  export runs --format parquet              runs list --group-by '*,-seed'
  runs rm --where (half the runs)           (on a fresh copy each time, with a folder for every run, and a
                                             script logging meanwhile)
Targets at 100,000 runs: --json --limit 0 under 5 s, parquet under 3 s, each under 300 MB; --group-by
under 1 s; removing 50,000 runs in seconds, never keeping a writer waiting more than a moment.

While each removal runs, a training script (mltui.init, run.log, run.flush every 20 ms) logs into the same
workspace; the bench prints how long its flushes took (median and worst: the wait for the write lock, and
the WAL checkpoint SQLite may run in the script's commit), and checks that it met no error and that every
point it logged is in the store. --only rm runs only the removal.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_workspace import build_workspace  # noqa: E402

WHERE = "params.lr > 0.0005 and metrics.val_acc > 0.7 and status = finished"


def run(ws_root: Path, argv: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB, from wait4: this child's own) of `mltui *argv` as a child process."""
    env = {**os.environ, "MLTUI_WORKSPACE": str(ws_root / ".mltui")}
    start = time.perf_counter()
    with open(os.devnull, "w") as sink, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "mltui", *argv], env=env, stdout=sink, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"mltui {' '.join(argv)} failed: {err.read()}")
    return took, usage.ru_maxrss / 1024


WRITER = """
import json, select, sys, time
import mltui
run = mltui.init(name="writer-during-rm", batch_size=1_000_000, flush_interval=3600)
waits, step = [], 0
print("ready", flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:  # until told to stop
    run.log({"loss": 1.0 / (step + 1), "acc": step / 1e6}, step=step)
    step += 1
    began = time.perf_counter()
    run.flush()
    waits.append(time.perf_counter() - began)
    time.sleep(0.02)
run.finish()
print(json.dumps({"run": run.id, "steps": step, "waits": waits}))
"""


def rm_with_writer(ws_root: Path, argv: list[str]) -> tuple[float, float, list[float]]:
    """Seconds and peak RSS of `mltui *argv` while a script logs into the same workspace, and the script's
    flush times. Fails when the script met an error or a point it logged is not in the store."""
    import json
    import sqlite3

    env = {**os.environ, "MLTUI_WORKSPACE": str(ws_root / ".mltui")}
    writer = subprocess.Popen([sys.executable, "-c", WRITER], env=env, cwd=ws_root, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    took, rss = run(ws_root, argv)
    time.sleep(0.5)
    out, err = writer.communicate("stop\n", timeout=120)
    if writer.returncode != 0 or err.strip():
        raise SystemExit(f"the script logging meanwhile failed: {err}")
    data = json.loads(out.splitlines()[-1])
    conn = sqlite3.connect(ws_root / ".mltui" / "mltui.db")
    stored = conn.execute("SELECT count FROM metric_summary WHERE run_id = ? AND key = 'loss'",
                          (data["run"],)).fetchone()
    conn.close()
    if stored is None or stored[0] != data["steps"]:
        raise SystemExit(f"the script logged {data['steps']} steps but the store has {stored}")
    return took, rss, data["waits"]


def run_folders(mltui_dir: Path) -> None:
    """A folder for every run, as mltui makes them (artifacts/ and the output log), which `runs rm` deletes
    with the run: the scale workspace has none."""
    import sqlite3

    conn = sqlite3.connect(mltui_dir / "mltui.db")
    ids = [r[0] for r in conn.execute("SELECT id FROM runs")]
    conn.close()
    log = b"epoch 1  loss 0.693  acc 0.51\n" * 40
    for rid in ids:
        os.makedirs(mltui_dir / "runs" / rid / "artifacts")
        (mltui_dir / "runs" / rid / "output.log").write_bytes(log)
    os.sync()


def measure(ws_root: Path, argv: list[str], repeat: int) -> str:
    figures = [run(ws_root, argv) for _ in range(repeat)]
    times = [t for t, _ in figures]
    return (f"median {statistics.median(times):6.2f} s  ({', '.join(f'{t:.2f}' for t in times)})  "
            f"peak RSS {max(r for _, r in figures):5.0f} MB  load {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the workspaces under this folder")
    parser.add_argument("--only", choices=["rm"], help="measure only this (rm: runs rm --where)")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="mltui-scale-"))
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            root = base / f"ws-{size}"
            clock = time.perf_counter()
            build_workspace(root, size, quiet=True)
            print(f"\n{size:,} runs x 20 params x 10 metrics (built or reused in {time.perf_counter() - clock:.1f} s, "
                  f"{os.path.getsize(root / '.mltui' / 'mltui.db') / 1e6:.0f} MB)")
            out = Path(tempfile.mkdtemp(prefix="mltui-export-")) / "runs.parquet"
            for label, argv in () if args.only else (
                ("runs list --where ... --limit 50", ["runs", "list", "--where", WHERE, "--limit", "50"]),
                ("runs list --json --limit 0", ["runs", "list", "--json", "--limit", "0"]),
                ("runs list --jsonl --limit 0", ["runs", "list", "--jsonl", "--limit", "0"]),
                ("export runs --format parquet", ["export", "runs", "--format", "parquet", "-o", str(out)]),
                ("runs list --group-by '*,-seed'", ["runs", "list", "--group-by", "*,-seed"]),
                ("runs list --group-by '*,-seed' --json -n 0", ["runs", "list", "--group-by", "*,-seed", "--json",
                                                               "--limit", "0"]),
            ):
                print(f"  {label:44} {measure(root, argv, args.repeat)}")
            shutil.rmtree(out.parent, ignore_errors=True)
            # removal of half the runs, on a copy each time (the workspace itself stays whole), while a
            # script logs into it
            times, waits, rss = [], [], []
            for _ in range(args.repeat):
                copy = Path(tempfile.mkdtemp(prefix="mltui-rm-"))
                shutil.copytree(root / ".mltui", copy / ".mltui")
                run_folders(copy / ".mltui")
                took, peak, flushes = rm_with_writer(copy, ["runs", "rm", "--where", "params.seed in (0, 1) or "
                                                      "(params.seed = 2 and params.batch_size = 32)", "--json"])
                times.append(took)
                rss.append(peak)
                waits.append(flushes)
                shutil.rmtree(copy, ignore_errors=True)
            print(f"  {'runs rm --where (about half the runs)':44} median {statistics.median(times):6.2f} s  "
                  f"({', '.join(f'{t:.2f}' for t in times)})  peak RSS {max(rss):5.0f} MB")
            print(f"  {'  a script flushing every 20 ms meanwhile':44} flush median "
                  f"{statistics.median(w for ws_ in waits for w in ws_) * 1000:4.0f} ms, worst "
                  f"({', '.join(f'{max(ws_) * 1000:.0f}' for ws_ in waits)}) ms, "
                  f"{sum(len(ws_) for ws_ in waits):,} flushes, no error, nothing lost")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print("\ntargets at 100k: --json --limit 0 < 5 s, parquet < 3 s, each < 300 MB; --group-by < 1 s; "
          "rm of ~50k runs in seconds")


if __name__ == "__main__":
    main()
