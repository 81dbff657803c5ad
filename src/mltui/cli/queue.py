"""`mltui queue list|rm|pause|resume`: the run queue (runs waiting for a worker to start them).

The same noun holds the promotion queue's review verbs (show, approve, reject, comment), which live
in cli/review.py and are registered from here; `queue list` shows both queues.
"""

from __future__ import annotations

import argparse
from contextlib import closing

from mltui.cli import review
from mltui.cli.output import age, emit, safe, table


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
    review.register_verbs(verbs, common)  # show, approve, reject, comment: the promotion queue


def cmd_list(args: argparse.Namespace) -> int:
    from mltui.core.launch.queue import is_paused, queued, running_count
    from mltui.core.models.promotion import list_requests
    from mltui.core.reader import open_workspace

    _, conn = open_workspace()
    with closing(conn):
        waiting, paused = queued(conn), is_paused(conn)
        running = running_count(conn)
        requests = list_requests(conn)

    def text() -> None:
        review.print_requests(requests)
        state = "paused" if paused else "active"
        print(f"queue {state}: {len(waiting)} queued, {running} launched run{'s' if running != 1 else ''} running")
        if waiting:
            rows = [[r["id"], safe(r["name"]), str(r["gpus"] or "-"),
                     f"{r['gpu_mem']:g}" if r["gpu_mem"] else "-", age(r["created"]),
                     " ".join(f"{k}={safe(v)}" for k, v in r["params"].items())] for r in waiting]
            print(table(["ID", "NAME", "GPUS", "GPU GB", "QUEUED", "PARAMS"], rows))

    return emit(args, {"paused": paused, "running": running, "queued": waiting, "requests": requests}, text)


def cmd_rm(args: argparse.Namespace) -> int:
    from mltui.core.launch.queue import remove
    from mltui.core.reader import open_workspace
    from mltui.core.runs.listing import unique_ids

    ws, conn = open_workspace(write=True)
    with closing(conn):
        removed = remove(ws, conn, unique_ids(conn, args.runs))

    def text() -> None:
        for run_id in removed:
            print(f"Removed {run_id} from the queue")

    return emit(args, {"removed": removed}, text)


def cmd_pause(args: argparse.Namespace) -> int:
    from mltui.core.launch.queue import set_paused
    from mltui.core.workspace import find_workspace

    set_paused(find_workspace(), args.paused)
    word = "paused" if args.paused else "resumed"
    return emit(args, {"paused": args.paused}, lambda: print(f"Queue {word}."))

