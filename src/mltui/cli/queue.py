"""`mltui queue list|rm|pause|resume`."""

from __future__ import annotations

import argparse
from contextlib import closing

from mltui.cli.output import age, print_json, safe, table


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("queue", parents=[common], help="see and manage the run queue",
                       description="The workspace's run queue. `mltui run --queue` and `mltui sweep` add to it; one "
                       "worker per workspace starts queued runs when GPUs (or queue.max_parallel slots) are free.")
    verbs = p.add_subparsers(title="verbs", metavar="VERB", required=True, parser_class=type(p))
    ls = verbs.add_parser("list", parents=[common], help="list queued runs, oldest first")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(handler=cmd_list)
    rm = verbs.add_parser("rm", parents=[common], help="take queued runs out of the queue (and the store)")
    rm.add_argument("runs", metavar="ID", nargs="+", help="run ids or unique prefixes")
    rm.add_argument("--json", action="store_true", help="print JSON")
    rm.set_defaults(handler=cmd_rm)
    for verb, paused, text in (("pause", True, "start no more queued runs (running ones go on)"),
                               ("resume", False, "start queued runs again")):
        v = verbs.add_parser(verb, parents=[common], help=text)
        v.add_argument("--json", action="store_true", help="print JSON")
        v.set_defaults(handler=cmd_pause, paused=paused)


def cmd_list(args: argparse.Namespace) -> int:
    from mltui.core.queue import is_paused, queued
    from mltui.core.workspace import open_workspace

    _, conn = open_workspace()
    with closing(conn):
        waiting, paused = queued(conn), is_paused(conn)
        running = conn.execute("SELECT count(*) FROM runs WHERE status = 'running' AND spec IS NOT NULL").fetchone()[0]
    if args.json:
        print_json({"paused": paused, "running": running, "queued": waiting})
        return 0
    state = "paused" if paused else "active"
    print(f"queue {state}: {len(waiting)} queued, {running} launched run{'s' if running != 1 else ''} running")
    if waiting:
        rows = [[r["id"], safe(r["name"]), str(r["gpus"] or "-"),
                 f"{r['gpu_mem']:g}" if r["gpu_mem"] else "-", age(r["created"]),
                 " ".join(f"{k}={safe(v)}" for k, v in r["params"].items())] for r in waiting]
        print(table(["ID", "NAME", "GPUS", "GPU GB", "QUEUED", "PARAMS"], rows))
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    from mltui.core.queue import remove
    from mltui.core.workspace import open_workspace
    from mltui.store.runs import resolve_ids

    ws, conn = open_workspace(write=True)
    with closing(conn):
        removed = remove(ws, conn, list(dict.fromkeys(resolve_ids(conn, args.runs))))
    if args.json:
        print_json({"removed": removed})
    else:
        for run_id in removed:
            print(f"Removed {run_id} from the queue")
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    from mltui.core.queue import set_paused
    from mltui.core.workspace import find_workspace

    set_paused(find_workspace(), args.paused)
    word = "paused" if args.paused else "resumed"
    if args.json:
        print_json({"paused": args.paused})
    else:
        print(f"Queue {word}.")
    return 0
