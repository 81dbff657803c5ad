"""`mltui notify list|test`: the notifications mltui sent (or tried to), and a test of the channels."""

from __future__ import annotations

import argparse
from contextlib import closing

from mltui.cli.output import age, emit, safe, table

DESCRIPTION = """\
mltui tells people what happens (runs finished, failed, lost or stalled; promotion requests filed and
decided; monitor alerts opened and closed) through the channels declared in the workspace's
.mltui/config.toml:

  [[notify.channels]]
  name = "ops"
  webhook = "https://hooks.example/T000/B000"   # POST of JSON with a Slack-compatible "text"

  [[notify.channels]]
  name = "pager"
  command = ["python", "page.py"]               # the event as JSON on stdin, run in the project folder
  events = ["alert", "run.failed"]              # prefixes; every event by default

Optional per channel: timeout (seconds per try), tries (1-10), backoff (seconds before the second try,
doubling). The TUI shows every event as a notice (narrow it with a channel `tui = true` and `events`);
`[notify] bell = true` rings the terminal bell. A channel that fails is retried, then recorded as
failed: never fatal. A webhook's URL is a secret: mltui shows it only as https://host/…"""


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("notify", parents=[common], help="see notifications and test the channels",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(title="verbs", metavar="VERB", required=True, parser_class=type(p))
    ls = verbs.add_parser("list", parents=[common], help="recent events and how each channel took them",
                          description="The newest events, newest first, each with its delivery per channel: "
                          "delivered, pending, or failed after its tries and why.")
    ls.add_argument("--limit", "-n", type=int, default=20, help="how many events (default 20)")
    ls.add_argument("--kind", metavar="KIND", help="only events of this kind or under it (run, run.failed, alert)")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(handler=cmd_list)
    test = verbs.add_parser("test", parents=[common], help="send a test event now and say how it went",
                            description="Send a test event to one channel (or every channel, whatever its "
                            "events filter) and wait for the outcome. Exit code 1 when a channel failed.")
    test.add_argument("channel", metavar="CHANNEL", nargs="?", help="a channel's name (default: every channel)")
    test.add_argument("--json", action="store_true", help="print JSON")
    test.set_defaults(handler=cmd_test)


def _channels_line(channels: list[dict]) -> str:
    parts = []
    for c in channels:
        events = "every event" if c["events"] is None else " ".join(c["events"]) or "no event"
        parts.append(f"{c['name']} ({c['kind']} {c['target']}; {events})")
    return "channels: " + (", ".join(parts) if parts else "none (see `mltui notify --help`)")


def _delivery_text(d: dict) -> str:
    tries = d.get("tries") or 0
    if d.get("status") == "delivered":
        return f"{d['channel']}: delivered" + (f" on try {tries}" if tries > 1 else "")
    if d.get("status") == "failed":
        return f"{d['channel']}: {d.get('error') or 'failed'}"
    return f"{d['channel']}: {d.get('status') or 'unknown'}" + (f" ({tries} tries so far)" if tries else "")


def cmd_list(args: argparse.Namespace) -> int:
    from mltui.base.errors import UsageError
    from mltui.core.notify.channels import load
    from mltui.core.notify.outbox import recent
    from mltui.core.reader import open_workspace

    if args.limit < 1:
        raise UsageError("--limit must be 1 or more.")
    ws, conn = open_workspace()
    problem, channels = None, []
    try:
        channels = [c.describe() for c in load(ws).channels]
    except Exception as exc:  # the settings are wrong: still show what was sent
        problem = str(exc)
    with closing(conn):
        events = recent(conn, args.limit, args.kind)

    def text() -> None:
        if problem:
            print(f"notify settings: {safe(problem)}")
        else:
            print(_channels_line(channels))
        if not events:
            print("No events yet.")
            return
        rows = []
        for e in events:
            deliveries = "; ".join(_delivery_text(d) for d in e["deliveries"])
            if not deliveries:
                deliveries = "waiting for its channels" if e["routed"] is None else "no channel wants it"
            rows.append([str(e["id"]), age(e["created"]), e["kind"], e["subject"], deliveries])
        print(table(["ID", "WHEN", "KIND", "SUBJECT", "DELIVERIES"], rows))

    return emit(args, {"channels": channels, "problem": problem, "events": events}, text)


def cmd_test(args: argparse.Namespace) -> int:
    from mltui.core.notify.deliver import send_test
    from mltui.core.reader import open_workspace

    ws, conn = open_workspace(write=True)
    with closing(conn):
        result = send_test(ws, conn, args.channel)
    failed = [d for d in result["deliveries"] if d.get("status") != "delivered"]

    def text() -> None:
        for c in result["channels"]:
            if c["kind"] == "tui":
                print(f"{c['name']}: shown in any open TUI")
        for d in result["deliveries"]:
            print(safe(_delivery_text(d)))

    return emit(args, result, text, code=1 if failed else 0)
