"""`mltui queue show|approve|reject|comment`: reviewing promotion requests (the promotion queue).

These verbs sit under `mltui queue`, beside the run queue's (cli/queue.py registers them); requests
are filed with `mltui promote` (cli/models.py). `mltui queue list` shows the open requests through
`print_requests` here, above the run queue.
"""

from __future__ import annotations

import argparse
from contextlib import closing

from mltui.cli.output import age, emit, safe, table


def register_verbs(verbs, common: argparse.ArgumentParser) -> None:
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


def print_requests(requests: list[dict]) -> None:
    """The open promotion requests as `mltui queue list` shows them above the run queue (nothing when none)."""
    if not requests:
        return
    print(f"{len(requests)} promotion request{'s' if len(requests) != 1 else ''} waiting for review:")
    print(table(["ID", "VERSION", "TO", "BY", "FILED", "GATES"],
                [[f"#{r['id']}", r["label"], r["target"], r["requester"], age(r["created"]),
                  f"{len(r['failed'])} failing" if r["failed"] else "all pass"] for r in requests]))
    print()


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

    def text() -> None:
        print(f"Request #{req['id']}: {safe(req['label'])} to {req['target']}, by {safe(req['requester'])}: "
              f"{req['status']}" + (f" by {safe(req['reviewer'])}" if req["reviewer"] else "") + ".")
        if req["message"]:
            print(f"  why: {safe(req['message'])}")
        print("\n".join(gate_lines(req["gates"])) or "  (no gates)")
        if req["override"]:
            print(f"  gates overridden: {safe(req['override'])}")
        if req["decision"]:
            print(f"  decision: {safe(req['decision'])}")
        for c in req["comments"]:
            print(f"  {safe(c['actor'])}: {safe(c['text'])}")
        signed = req.get("signature")
        if signed:
            print(f"  signed by {safe(signed['actor'])} with {signed['key']} ({safe(signed['source'])})"
                  if signed["signed"] else f"  not signed: {safe(signed['why'])}")

    return emit(args, req, text)


def cmd_show(args: argparse.Namespace) -> int:
    return _review(args, "show")


def cmd_approve(args: argparse.Namespace) -> int:
    return _review(args, "approve")


def cmd_reject(args: argparse.Namespace) -> int:
    return _review(args, "reject")


def cmd_comment(args: argparse.Namespace) -> int:
    return _review(args, "comment")
