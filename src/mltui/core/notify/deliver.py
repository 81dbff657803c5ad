"""Delivering the outbox: `deliver_pending(ws, conn)`, and the process that runs it in the background.

    python -m mltui.core.notify.deliver WORKSPACE_ROOT

`emit` starts that process (detached, its own session); a lock file (.mltui/notify.lock) keeps it to one
per workspace. It delivers until nothing is pending, lets go of the lock, and looks once more, so an event
recorded while it was finishing is never left behind (the emitter that found the lock held started
nothing: it counts on that last look).

Each channel is tried `tries` times with its `timeout`, waiting `backoff` seconds before the second try and
doubling after; a webhook answering 4xx (but 408 and 429) or a command that cannot be started is not tried
again. Every try is recorded (notify_attempts), then the delivery's outcome: delivered, or failed with why.
A channel that fails is never fatal: the other channels and events go on; while one channel keeps
failing, its other events in the same pass get one try each. Channels are tried side by side, so a webhook
that never answers delays no pager. A webhook's URL is a secret: it is never printed, logged or recorded
(a channel is named by its name; its URL shows as scheme://host/…).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
from pathlib import Path

from mltui.base.errors import MltuiError
from mltui.core.notify import outbox
from mltui.core.notify.channels import Channel, Settings, load
from mltui.core.workspace import Workspace

DETAIL_MAX = 300  # characters of a failure's detail kept (a command's last stderr line, a server's reason)


class Report:
    """What one pass of deliver_pending did."""

    def __init__(self) -> None:
        self.routed = 0
        self.delivered: list[tuple[int, str]] = []  # (event id, channel)
        self.failed: list[tuple[int, str, str]] = []  # (event id, channel, why)
        self.problem: str | None = None  # config.toml's [notify] is wrong: nothing was routed or sent
        self._lock = threading.Lock()

    @property
    def worked(self) -> bool:
        return bool(self.routed or self.delivered or self.failed)

    def as_dict(self) -> dict:
        return {"routed": self.routed, "delivered": [{"event": e, "channel": c} for e, c in self.delivered],
                "failed": [{"event": e, "channel": c, "error": w} for e, c, w in self.failed],
                "problem": self.problem}


def deliver_pending(ws: Workspace, conn: sqlite3.Connection, settings: Settings | None = None,
                    event_ids: list[int] | None = None) -> Report:
    """Route the events not routed yet to the channels that want them, then deliver every pending
    delivery (only those of `event_ids`, if given). Returns what was done; raises nothing a channel does."""
    report = Report()
    try:
        settings = settings or load(ws)
    except MltuiError as exc:  # [notify] is wrong (NotifyConfigError), or config.toml cannot be read at all
        report.problem = str(exc)
        return report
    outbox.revive_stale(conn, ws.db_path)
    while batch := outbox.unrouted(conn):
        outbox.route(conn, ws.db_path, [(event_id, [c.name for c in settings.senders if c.wants(kind)])
                                        for event_id, kind in batch])
        report.routed += len(batch)
    while True:
        waiting = [(e, c) for e, c in outbox.pending(conn, limit=1000) if event_ids is None or e in event_ids]
        if not waiting:
            return report
        by_channel: dict[str, list[int]] = {}
        for event_id, name in waiting:
            by_channel.setdefault(name, []).append(event_id)
        before = len(report.delivered) + len(report.failed)
        names = list(by_channel)
        if len(names) == 1:
            _deliver_channel(ws, conn, settings, names[0], by_channel[names[0]], report)
        else:  # side by side, each on its own connection (a connection belongs to its thread)
            threads = [threading.Thread(target=_in_thread, args=(ws, settings, n, by_channel[n], report),
                                        name=f"mltui-notify-{n}", daemon=True) for n in names]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if len(report.delivered) + len(report.failed) == before:
            return report  # every one was claimed by another deliverer


def _in_thread(ws: Workspace, settings: Settings, name: str, event_ids: list[int], report: Report) -> None:
    from mltui.core.reader import open_writer

    try:
        conn = open_writer(ws)
    except Exception as exc:
        _say(f"cannot open the store to deliver to {name}: {exc}")
        return
    try:
        _deliver_channel(ws, conn, settings, name, event_ids, report)
    finally:
        conn.close()


def _deliver_channel(ws: Workspace, conn: sqlite3.Connection, settings: Settings, name: str,
                     event_ids: list[int], report: Report) -> None:
    channel = settings.channel(name)
    failing = False  # this channel just failed every try: one try each for its other events in this pass
    for event_id in event_ids:
        try:
            if not outbox.claim(conn, ws.db_path, event_id, name):
                continue
            if channel is None or channel.kind == "tui":
                why = f"the channel {name!r} is no longer in config.toml"
                outbox.settle(conn, ws.db_path, event_id, name, "failed", why)
                with report._lock:
                    report.failed.append((event_id, name, why))
                continue
            ok, why = _deliver_one(ws, conn, channel, event_id, 1 if failing else channel.tries)
            failing = not ok
            with report._lock:
                if ok:
                    report.delivered.append((event_id, name))
                else:
                    report.failed.append((event_id, name, why))
        except Exception as exc:  # the store refused a record: say it, go on with the next
            _say(f"could not record the delivery of event {event_id} to {name}: {type(exc).__name__}: {exc}")


def _deliver_one(ws: Workspace, conn: sqlite3.Connection, channel: Channel, event_id: int,
                 tries: int) -> tuple[bool, str | None]:
    from mltui.core.notify.events import payload

    event = outbox.get_event(conn, event_id)
    if event is None:
        return False, "the event is gone from the store"
    body = json.dumps(payload(ws, event), ensure_ascii=False, default=str).encode("utf-8")
    detail = None
    attempt = 0
    for attempt in range(1, tries + 1):
        started, clock = time.time(), time.monotonic()
        try:
            ok, detail, again = (post if channel.kind == "webhook" else run_command)(ws, channel, body, event)
        except Exception as exc:  # whatever a channel does, it is a failed try, never a crash
            ok, detail, again = False, f"{type(exc).__name__}: {exc}", True
        detail = _scrub(detail, channel)
        outbox.record_try(conn, ws.db_path, event_id, channel.name, attempt, started, time.monotonic() - clock,
                          ok, detail)
        if ok:
            outbox.settle(conn, ws.db_path, event_id, channel.name, "delivered")
            return True, None
        if not again:
            break
        if attempt < tries:
            time.sleep(channel.backoff * 2 ** (attempt - 1))
    why = f"failed after {attempt} {'try' if attempt == 1 else 'tries'}: {detail}"
    outbox.settle(conn, ws.db_path, event_id, channel.name, "failed", why)
    _say(f"event {event_id} ({event['kind']}) to {channel.name} ({channel.shown}) {why}")
    return False, why


# -- the channels ------------------------------------------------------------------------------------
def post(ws: Workspace, channel: Channel, body: bytes, event: dict) -> tuple[bool, str, bool]:
    """POST the event as JSON; (ok, what happened, worth trying again)."""
    import socket
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        """A webhook that redirects is refused: a POST turned into a GET elsewhere would pass for delivered."""

        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(channel.target, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "mltui"})
    try:
        with opener.open(request, timeout=channel.timeout) as response:
            response.read(65536)
            return True, f"HTTP {response.status}", False
    except urllib.error.HTTPError as exc:
        code = exc.code
        again = code in (408, 429) or code >= 500
        reason = f" {exc.reason}" if isinstance(exc.reason, str) and exc.reason else ""
        extra = " (redirects are not followed)" if 300 <= code < 400 else ""
        return False, f"HTTP {code}{reason}{extra}", again
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return False, f"no answer within {channel.timeout:g}s", True
        text = getattr(reason, "strerror", None) or str(reason)
        return False, f"cannot connect: {text}", True
    except (TimeoutError, socket.timeout):
        return False, f"no answer within {channel.timeout:g}s", True
    except OSError as exc:
        return False, f"the connection failed: {exc.strerror or exc}", True
    except Exception as exc:  # http.client's errors (a server that closes mid-answer, a bad status line)
        return False, f"the answer was broken: {type(exc).__name__}", True


def run_command(ws: Workspace, channel: Channel, body: bytes, event: dict) -> tuple[bool, str, bool]:
    """Run the channel's argv in the project folder with the event as JSON on stdin; (ok, what, again)."""
    import signal
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTUI_RUN_")}
    env.update(MLTUI_WORKSPACE=str(ws.root), MLTUI_EVENT_KIND=str(event["kind"]), MLTUI_EVENT_ID=str(event["id"]))
    try:
        proc = subprocess.Popen(list(channel.target), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, cwd=ws.project_dir, env=env, start_new_session=True,
                                close_fds=True)
    except OSError as exc:
        return False, f"cannot start {channel.target[0]!r}: {exc.strerror or exc}", False
    try:
        _, err = proc.communicate(body, timeout=channel.timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.communicate()
        return False, f"it did not end within {channel.timeout:g}s (killed)", True
    if proc.returncode == 0:
        return True, "exit code 0", False
    last = next((line for line in reversed(err.decode("utf-8", "replace").splitlines()) if line.strip()), "")
    what = f"exit code {proc.returncode}" if proc.returncode > 0 else f"killed by signal {-proc.returncode}"
    return False, what + (f": {last.strip()}" if last else ""), True


def _scrub(detail: str | None, channel: Channel) -> str | None:
    """Never keep a webhook's secret path in what is recorded or printed."""
    if detail is None:
        return None
    if channel.kind == "webhook":
        from urllib.parse import urlsplit

        detail = detail.replace(channel.target, channel.shown)
        secret = urlsplit(channel.target).path.strip("/")
        if len(secret) > 3:
            detail = detail.replace(secret, "…")
    return detail[:DETAIL_MAX]


def _say(line: str) -> None:
    try:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}", file=sys.stderr, flush=True)
    except Exception:
        pass


# -- `mltui notify test` ----------------------------------------------------------------------------
def send_test(ws: Workspace, conn: sqlite3.Connection, name: str | None = None, wait: float = 120.0) -> dict:
    """Send a test event to one channel (or every channel), now, in this process; returns the event and
    its deliveries. MltuiError when there is no such channel or the settings are wrong."""
    from mltui.base.errors import NotFound
    from mltui.base.procs import user
    from mltui.core.notify.events import record

    settings = load(ws)
    if not settings.channels:
        raise MltuiError(f"{ws.config_path} declares no notify channels; add a [[notify.channels]] table "
                         "(see `mltui notify --help`).")
    if name is not None and settings.channel(name) is None:
        raise NotFound(f"There is no notify channel named {name!r} in {ws.config_path} "
                       f"(channels: {', '.join(c.name for c in settings.channels)}).")
    chosen = [settings.channel(name)] if name is not None else settings.channels
    senders = [c.name for c in chosen if c.kind != "tui"]
    event_id = record(ws, "test", f"Test notification from mltui, sent by {user()} with `mltui notify test`",
                      {"channels": [c.name for c in chosen]}, conn, channels=senders)
    deliver_pending(ws, conn, settings, event_ids=[event_id])
    end = time.monotonic() + wait  # a delivery another deliverer claimed first: wait for its outcome
    while time.monotonic() < end and any((outbox.delivery(conn, event_id, n) or {}).get("status")
                                         in ("pending", "sending") for n in senders):
        time.sleep(0.2)
    return {"event": event_id, "channels": [c.describe() for c in chosen],
            "deliveries": [{"channel": n, **(outbox.delivery(conn, event_id, n) or {})} for n in senders],
            "attempts": outbox.attempts(conn, event_id)}


# -- the background process ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m mltui.core.notify.deliver WORKSPACE", file=sys.stderr)
        return 2
    import fcntl

    from mltui.core.notify.events import open_lock
    from mltui.core.reader import open_writer

    ws = Workspace(Path(args[0]))
    fd = open_lock(ws)
    conn = None
    idle = 0  # rounds that found work and could do none of it (a store that refuses every write)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # another deliverer is at work: it looks again before it leaves
            did = False
            try:
                if conn is None:
                    conn = open_writer(ws)
                while True:
                    report = deliver_pending(ws, conn)
                    if report.problem:
                        _say(f"nothing delivered: {report.problem}")
                        return 1
                    if not report.worked:
                        break
                    did = True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            if not outbox.has_work(conn):  # the last look, after letting go (see the module's docstring)
                return 0
            idle = 0 if did else idle + 1
            if idle >= 3:
                _say("deliveries are waiting but none could be made; the next event tries again")
                return 1
            time.sleep(0.2 * idle)
    except Exception as exc:
        _say(f"delivery stopped: {type(exc).__name__}: {exc}")
        return 1
    finally:
        os.close(fd)
        if conn is not None:
            conn.close()


if __name__ == "__main__":
    raise SystemExit(main())
