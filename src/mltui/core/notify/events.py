"""`emit`: what every part of mltui calls when something worth telling someone happens.

    from mltui.core.notify.events import emit
    emit(ws, "run.failed", "Run resnet-1 (01j9...) failed: the command exited with code 3", {"run": ...})

The event is recorded in the store's outbox and its id returned; delivery happens in a detached process
(`python -m mltui.core.notify.deliver WORKSPACE`, one per workspace at a time), so the caller never waits
on a webhook or a command. Emitting never raises: an event that cannot even be recorded (a store that
refuses the write) is written to `.mltui/notify.log` and 0 is returned.

An event recorded inside the caller's own open transaction (`conn` in a transaction) is delivered once that
transaction has committed and the next delivery starts (any later emit, or the TUI's look at the outbox):
call emit after committing where the event must leave at once.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time

from mltui.core.workspace import Workspace

KINDS = ("alert.opened", "alert.closed", "run.finished", "run.failed", "run.lost", "run.stalled", "run.resumed",
         "promotion.requested", "promotion.decided", "test")
LOCK_NAME = "notify.lock"
LOG_NAME = "notify.log"


def emit(ws: Workspace, kind: str, subject: str, details: dict, conn: sqlite3.Connection | None = None) -> int:
    """Record an event (`kind` from KINDS, a one-line `subject`, JSON-able `details`) and get it delivered
    in the background; returns its id (0 when it could not be recorded). Never raises, never waits on a
    channel."""
    try:
        channels = routes(ws, kind)
        event_id = record(ws, kind, subject, details, conn, channels=channels)
    except Exception as exc:  # the caller's work (a run's end, a decision) matters more than its telling
        note(ws, f"could not record a {kind} event ({subject!r}): {type(exc).__name__}: {exc}")
        return 0
    if channels and (conn is None or not conn.in_transaction):
        try:
            kick(ws)
        except Exception as exc:
            note(ws, f"could not start the delivery of event {event_id}: {type(exc).__name__}: {exc}")
    return event_id


def routes(ws: Workspace, kind: str) -> list[str] | None:
    """The names of the channels that deliver an event of `kind` (none: nothing to start); None when
    config.toml's [notify] is wrong: the event waits unrouted, and is routed by the first delivery after
    the settings are fixed."""
    from mltui.base.errors import MltuiError
    from mltui.core.notify.channels import load

    try:
        return [c.name for c in load(ws).senders if c.wants(kind)]
    except MltuiError as exc:  # [notify] is wrong, or config.toml as a whole cannot be read
        note(ws, f"a {kind} event waits: {exc}")
        return None


def record(ws: Workspace, kind: str, subject: str, details: dict, conn: sqlite3.Connection | None = None,
           channels: list[str] | None = None) -> int:
    """Only record the event (raising what the store says); `channels` routes it to exactly those."""
    from mltui.core.notify import outbox

    if not isinstance(kind, str) or not kind:
        raise ValueError("an event needs a kind")
    details = dict(details or {})
    details.setdefault("host", _host())
    if conn is not None:
        return outbox.add_event(conn, ws.db_path, kind, str(subject), details, channels=channels)
    from mltui.core.reader import open_writer

    own = open_writer(ws)
    try:
        return outbox.add_event(own, ws.db_path, kind, str(subject), details, channels=channels)
    finally:
        own.close()


def kick(ws: Workspace) -> bool:
    """Start the workspace's delivery process unless one is at work (it will see what was just recorded:
    it looks again after letting go of its lock). Returns whether one was started."""
    import fcntl

    fd = open_lock(ws)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    spawn(ws)
    return True


def open_lock(ws: Workspace) -> int:
    return os.open(ws.root / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _mode(ws))


def _mode(ws: Workspace) -> int:
    """The workspace's file mode (a broken config.toml must not stop a delivery: owner-only then)."""
    try:
        return ws.config().file_mode
    except Exception:
        return 0o600


def spawn(ws: Workspace) -> None:
    """`python -m mltui.core.notify.deliver WORKSPACE`, detached (its own session), output to notify.log."""
    import subprocess
    import threading

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTUI_RUN_")}
    log = os.open(ws.root / LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, _mode(ws))
    try:
        proc = subprocess.Popen([sys.executable, "-m", "mltui.core.notify.deliver", str(ws.root)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                close_fds=True, cwd=ws.root, env=env)
    finally:
        os.close(log)
    # a long-lived caller (the TUI, a supervisor, a test) must not keep it as a zombie once it ends
    threading.Thread(target=proc.wait, name=f"mltui-notify-{proc.pid}", daemon=True).start()


def note(ws: Workspace, line: str) -> None:
    """A line in .mltui/notify.log (what went wrong with notifications, never a secret)."""
    try:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        fd = os.open(ws.root / LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, _mode(ws))
        try:
            os.write(fd, f"{stamp} {line}\n".encode("utf-8", "replace"))
        finally:
            os.close(fd)
    except Exception:
        pass


def payload(ws: Workspace, event: dict) -> dict:
    """What a channel receives: the event's fields, and `text`, a line Slack (and Mattermost, Discord's
    Slack-compatible hooks, ...) shows as the message."""
    project = ws.project_dir.name or str(ws.project_dir)
    return {"text": f"mltui ({slack_escape(project)}): {slack_escape(event['subject'])}",
            "id": event["id"], "kind": event["kind"], "subject": event["subject"], "details": event["details"],
            "time": event["created"], "workspace": str(ws.project_dir)}


def slack_escape(text: str) -> str:
    """Slack reads <...> as links and mentions: user data (a run's name) must not become one."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _host() -> str:
    try:
        return os.uname().nodename
    except Exception:
        return ""
