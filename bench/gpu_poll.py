"""CPU cost of polling GPUs: snapshots of simulated GPUs at 1 Hz and 10 Hz, in a process of its own.

    python bench/gpu_poll.py [--gpus 8] [--seconds 10] [--repeat 3]

The poller is the same code the TUI and `mltui gpu --watch` use (`open_gpus(...).snapshot()`), so the
figure is what a GPU pane costs per refresh rate, minus drawing. With a real GPU, pass --backend nvml.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

POLLER = """
import sys, time
from mltui.core.gpu.sources import open_gpus
backend, hz, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
source = open_gpus(backend)
source.snapshot()  # NVML init or the first simulated frame: not part of the steady cost
t0 = time.process_time()
w0 = time.perf_counter()
n = 0
while time.perf_counter() - w0 < seconds:
    state = source.snapshot()
    n += 1
    time.sleep(max(0.0, w0 + n / hz - time.perf_counter()))
cpu = time.process_time() - t0
wall = time.perf_counter() - w0
print(f"{cpu} {wall} {n} {len(state.gpus)}")
"""


def one(backend: str, hz: float, seconds: float) -> tuple[float, int, int]:
    out = subprocess.run([sys.executable, "-c", POLLER, backend, str(hz), str(seconds)], check=True,
                         capture_output=True, text=True).stdout.split()
    cpu, wall, n, gpus = float(out[0]), float(out[1]), int(out[2]), int(out[3])
    return 100.0 * cpu / wall, n, gpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=8, help="simulated GPUs (default 8)")
    parser.add_argument("--backend", default=None, help="nvml for the real GPUs (default: sim:GPUS)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    backend = args.backend or f"sim:{args.gpus}"
    os.environ.pop("MLTUI_GPU", None)
    print(f"machine: {os.cpu_count()} cores; backend {backend}; {args.seconds:g} s per run, {args.repeat} runs")
    for hz in (1.0, 10.0):
        figures = [one(backend, hz, args.seconds) for _ in range(args.repeat)]
        cpus = [f[0] for f in figures]
        target = "  target < 1% at 1 Hz " + ("OK" if statistics.median(cpus) < 1.0 else "MISSED") if hz == 1 else ""
        print(f"  {hz:>4g} Hz: median {statistics.median(cpus):.3f}% of one core "
              f"(each: {', '.join(f'{c:.3f}' for c in cpus)}; {figures[0][1]} snapshots of {figures[0][2]} GPUs)"
              + target)


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"(whole bench {time.perf_counter() - t:.0f} s)")
