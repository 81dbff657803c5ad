"""Simulate a training loop with no dependencies at all (standard library only, no mltui import).

Each step appends one JSON line such as {"step": 3, "loss": 0.2, "acc": 0.81} to
$MLTUI_RUN_DIR/metrics.jsonl (./metrics.jsonl when that variable is unset), flushed at once so a
watcher sees it live, and prints a progress line. At the end it writes a short summary into
$MLTUI_RUN_DIR/artifacts/summary.txt (./artifacts/summary.txt when unset).

    python count.py --steps 60 --sleep 0.1 --noise 0.05
    python count.py --steps 20 --fail-at 12      # exits with code 3 at step 12
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

FAIL_EXIT_CODE = 3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="number of steps (1, 2, ... N)")
    parser.add_argument("--sleep", type=float, default=0.1, help="seconds to wait after each step")
    parser.add_argument("--noise", type=float, default=0.05, help="std of the Gaussian noise on loss and acc")
    parser.add_argument("--fail-at", type=int, default=None, metavar="K",
                        help=f"exit with code {FAIL_EXIT_CODE} at step K, before logging it")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 0 or args.sleep < 0 or args.noise < 0:
        parser.error("--steps, --sleep and --noise must not be negative")

    run_dir = Path(os.environ.get("MLTUI_RUN_DIR") or ".")
    metrics_path = run_dir / "metrics.jsonl"
    rng = random.Random(args.seed)
    scale = max(args.steps, 1) / 4.0
    loss = acc = math.nan
    started = time.monotonic()
    print(f"counting {args.steps} steps -> {metrics_path}", flush=True)

    with open(metrics_path, "a", encoding="utf-8") as out:
        for step in range(1, args.steps + 1):
            if args.fail_at is not None and step == args.fail_at:
                print(f"step {step}/{args.steps}: simulated failure (--fail-at {args.fail_at})", file=sys.stderr,
                      flush=True)
                return FAIL_EXIT_CODE
            loss = max(0.0, 2.0 * math.exp(-step / scale) + 0.05 + rng.gauss(0.0, args.noise))
            acc = min(1.0, max(0.0, 0.95 - 0.6 * math.exp(-step / scale) + rng.gauss(0.0, args.noise / 2)))
            out.write(json.dumps({"step": step, "loss": round(loss, 6), "acc": round(acc, 6)}) + "\n")
            out.flush()
            print(f"step {step:4d}/{args.steps}  loss {loss:.4f}  acc {acc:.3f}", flush=True)
            if args.sleep:
                time.sleep(args.sleep)

    artifacts = run_dir / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    summary = (
        f"steps: {args.steps}\n"
        f"final loss: {loss:.6f}\n"
        f"final acc: {acc:.6f}\n"
        f"noise: {args.noise}\n"
        f"seed: {args.seed}\n"
        f"elapsed: {time.monotonic() - started:.2f}s\n"
    )
    (artifacts / "summary.txt").write_text(summary, encoding="utf-8")
    print(f"done: {args.steps} steps, final loss {loss:.4f}, acc {acc:.3f}; wrote {artifacts / 'summary.txt'}",
          flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
