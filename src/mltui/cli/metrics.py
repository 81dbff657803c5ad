"""`mltui metrics ID`: a run's metric summary, or every point of chosen keys (as text, JSON or CSV)."""

from __future__ import annotations

import argparse
import sys
from contextlib import closing

from mltui.cli.output import emit, metric_table
from mltui.base.values import display


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("metrics", parents=[common], help="a run's metrics: summary, or every point of a key",
                       description="Without --key: one line per metric (last, min, max, step, points). "
                       "With --key: every point of that metric (step, value, wall time). NaN and infinities are "
                       "printed as nan, inf, -inf (in JSON as the strings \"nan\", \"inf\", \"-inf\").")
    p.add_argument("run", metavar="ID", help="run id or a unique prefix of it")
    p.add_argument("--key", "-k", action="append", metavar="K", help="metric key (repeat for several)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON")
    fmt.add_argument("--csv", action="store_true", help="print CSV (points: key,step,value,time)")
    p.set_defaults(handler=cmd_metrics)


def cmd_metrics(args: argparse.Namespace) -> int:
    from mltui.base.errors import NotFound
    from mltui.core.reader import open_workspace
    from mltui.core.runs.listing import metric_points, metric_summary, resolve_id

    _, conn = open_workspace()
    with closing(conn):
        run_id = resolve_id(conn, args.run)
        summary = metric_summary(conn, run_id)
        keys = args.key or []
        missing = [k for k in keys if k not in summary]
        if missing:
            known = ", ".join(sorted(summary)) or "none"
            raise NotFound(f"Run {run_id} has no metric {missing[0]!r} (it has: {known}).")
        if not keys and (args.csv):
            keys = sorted(summary)
        series = {k: metric_points(conn, run_id, k) for k in keys}

    if not keys:
        return emit(args, {"run": run_id, "metrics": summary},
                    lambda: print(metric_table(summary) if summary else f"Run {run_id} has no metrics."))

    def points() -> dict:
        return {"run": run_id, "series": {
            k: [{"step": s, "value": v, "time": t} for s, v, t in zip(*series[k])] for k in keys}}

    def text() -> None:
        if args.csv:
            import csv

            out = csv.writer(sys.stdout, lineterminator="\n")
            out.writerow(["key", "step", "value", "time"])
            for k in keys:
                for s, v, t in zip(*series[k]):
                    out.writerow([k, s, repr(v) if v == v else "nan", f"{t:.6f}"])
            return
        for k in keys:
            steps, values, times = series[k]
            print(f"{k} ({len(steps)} points)")
            write = sys.stdout.write
            for s, v in zip(steps, values):
                write(f"{s:>10}  {display(v)}\n")

    return emit(args, points, text)
