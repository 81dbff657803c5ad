"""`mltui queue list|rm|pause|resume` (the run queue) and `approve|reject|comment|show` (the promotion queue)."""

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
    show = verbs.add_parser("show", parents=[common], help="a promotion request: its gates, comments and decision")
    show.add_argument("request", metavar="ID", help="the request's number (#3 or 3)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=cmd_show)
    ap = verbs.add_parser("approve", parents=[common], help="approve a promotion request (moves the stages)",
                          description="Approve a promotion request: the version moves to the requested stage, and "
                          "into production the old production version goes to archived in the same step. Gates "
                          "are checked again; failed ones block it unless you --override them with a reason.")
    ap.add_argument("request", metavar="ID")
    ap.add_argument("-m", "--message", help="a note kept with the decision")
    ap.add_argument("--override", metavar="REASON", help="approve despite failed gates, saying why")
    ap.add_argument("--json", action="store_true", help="print JSON")
    ap.set_defaults(handler=cmd_approve)
    rj = verbs.add_parser("reject", parents=[common], help="reject a promotion request, saying why")
    rj.add_argument("request", metavar="ID")
    rj.add_argument("-m", "--message", required=True, help="why")
    rj.add_argument("--json", action="store_true", help="print JSON")
    rj.set_defaults(handler=cmd_reject)
    cm = verbs.add_parser("comment", parents=[common], help="comment on a promotion request")
    cm.add_argument("request", metavar="ID")
    cm.add_argument("-m", "--message", required=True, help="the comment")
    cm.add_argument("--json", action="store_true", help="print JSON")
    cm.set_defaults(handler=cmd_comment)


def cmd_list(args: argparse.Namespace) -> int:
    from mltui.core.launch.queue import is_paused, queued
    from mltui.core.reader import open_workspace

    from mltui.core.models.promotion import list_requests

    _, conn = open_workspace()
    with closing(conn):
        waiting, paused = queued(conn), is_paused(conn)
        running = conn.execute("SELECT count(*) FROM runs WHERE status = 'running' AND spec IS NOT NULL").fetchone()[0]
        requests = list_requests(conn)
    if args.json:
        print_json({"paused": paused, "running": running, "queued": waiting, "requests": requests})
        return 0
    if requests:
        print(f"{len(requests)} promotion request{'s' if len(requests) != 1 else ''} waiting for review:")
        print(table(["ID", "VERSION", "TO", "BY", "FILED", "GATES"],
                    [[f"#{r['id']}", r["label"], r["target"], r["requester"], age(r["created"]),
                      f"{len(r['failed'])} failing" if r["failed"] else "all pass"] for r in requests]))
        print()
    state = "paused" if paused else "active"
    print(f"queue {state}: {len(waiting)} queued, {running} launched run{'s' if running != 1 else ''} running")
    if waiting:
        rows = [[r["id"], safe(r["name"]), str(r["gpus"] or "-"),
                 f"{r['gpu_mem']:g}" if r["gpu_mem"] else "-", age(r["created"]),
                 " ".join(f"{k}={safe(v)}" for k, v in r["params"].items())] for r in waiting]
        print(table(["ID", "NAME", "GPUS", "GPU GB", "QUEUED", "PARAMS"], rows))
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    from mltui.core.launch.queue import remove
    from mltui.core.reader import open_workspace
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
    from mltui.core.launch.queue import set_paused
    from mltui.core.workspace import find_workspace

    set_paused(find_workspace(), args.paused)
    word = "paused" if args.paused else "resumed"
    if args.json:
        print_json({"paused": args.paused})
    else:
        print(f"Queue {word}.")
    return 0


def _review(args: argparse.Namespace, verb: str) -> int:
    from mltui.cli.models import gate_lines
    from mltui.core.models import promotion
    from mltui.core.reader import open_workspace

    ws, conn = open_workspace(write=True)
    with closing(conn):
        if verb == "approve":
            req = promotion.approve(ws, conn, args.request, args.message, args.override)
        elif verb == "reject":
            req = promotion.reject(ws, conn, args.request, args.message)
        elif verb == "comment":
            req = promotion.comment(ws, conn, args.request, args.message)
        else:
            req = promotion.get_request(conn, args.request)
    if args.json:
        print_json(req)
        return 0
    print(f"Request #{req['id']}: {safe(req['label'])} to {req['target']}, by {safe(req['requester'])}: {req['status']}"
          + (f" by {safe(req['reviewer'])}" if req["reviewer"] else "") + ".")
    if req["message"]:
        print(f"  why: {safe(req['message'])}")
    print("\n".join(gate_lines(req["gates"])) or "  (no gates)")
    if req["override"]:
        print(f"  gates overridden: {safe(req['override'])}")
    if req["decision"]:
        print(f"  decision: {safe(req['decision'])}")
    for c in req["comments"]:
        print(f"  {safe(c['actor'])}: {safe(c['text'])}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    return _review(args, "show")


def cmd_approve(args: argparse.Namespace) -> int:
    return _review(args, "approve")


def cmd_reject(args: argparse.Namespace) -> int:
    return _review(args, "reject")


def cmd_comment(args: argparse.Namespace) -> int:
    return _review(args, "comment")
