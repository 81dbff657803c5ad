"""Runs at scale (#18): whole commands over workspaces of 10,000 and 100,000 runs (20 params, 10 metrics).

    python bench/runs_scale.py [--sizes 10000,100000] [--repeat 3] [--keep DIR]

For each size it builds a workspace (bench/scale_workspace.py; reused from --keep DIR when built there
before) and prints the median of --repeat runs of each command as a subprocess, with the child's peak RSS:
  runs list --where ... --limit 50          runs list --json --limit 0
  export runs --format parquet              runs list --group-by '*,-seed'
  runs rm --where (half the runs)           (on a fresh copy each time)
Targets at 100,000 runs: --json --limit 0 under 5 s, parquet under 3 s, each under 300 MB; --group-by
under 1 s; removing 50,000 runs in seconds.
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


def measure(ws_root: Path, argv: list[str], repeat: int) -> str:
    figures = [run(ws_root, argv) for _ in range(repeat)]
    times = [t for t, _ in figures]
    return (f"median {statistics.median(times):6.2f} s  ({', '.join(f'{t:.2f}' for t in times)})  "
            f"peak RSS {max(r for _, r in figures):5.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the workspaces under this folder")
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
            for label, argv in (
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
            # removal of half the runs, on a copy each time (the workspace itself stays whole)
            times = []
            for _ in range(args.repeat):
                copy = Path(tempfile.mkdtemp(prefix="mltui-rm-"))
                shutil.copytree(root / ".mltui", copy / ".mltui")
                took, _ = run(copy, ["runs", "rm", "--where", "params.seed in (0, 1) or (params.seed = 2 and "
                                     "params.batch_size = 32)", "--json"])
                times.append(took)
                shutil.rmtree(copy, ignore_errors=True)
            print(f"  {'runs rm --where (about half the runs)':44} median {statistics.median(times):6.2f} s  "
                  f"({', '.join(f'{t:.2f}' for t in times)})")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print("\ntargets at 100k: --json --limit 0 < 5 s, parquet < 3 s, each < 300 MB; --group-by < 1 s")


if __name__ == "__main__":
    main()
