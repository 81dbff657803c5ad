"""Delivering events through real channels: HTTP servers on 127.0.0.1 (one that fails twice then takes
the event, one that never answers), real commands reading the event on stdin, the events filters, and
the background delivery process that `emit` starts. Waits are bounded polls of the store, never sleeps
of a fixed length."""

from __future__ import annotations

import json
import socket
import sys
import textwrap
import threading
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mltui.core.notify import outbox
from mltui.core.notify.deliver import deliver_pending, send_test
from mltui.core.notify.events import emit, record
from mltui.store.opening import open_store
from launching import kill_workspace_processes, wait_for

SECRET = "T000/B000/s3cr3t-t0k3n"


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path):
    yield
    kill_workspace_processes(tmp_path / ".mltui")


@pytest.fixture
def conn(ws):
    with closing(open_store(ws.db_path)) as c:
        yield c


def add_config(ws, text: str) -> None:
    ws.config_path.write_text(ws.config_path.read_text() + "\n" + textwrap.dedent(text))


class Hook:
    """A webhook on 127.0.0.1: answers with `codes` in turn (then 200), keeping every body it was sent."""

    def __init__(self, codes=()) -> None:
        self.codes = list(codes)
        self.bodies: list[dict] = []
        self.answers: list[int] = []
        self.paths: list[str] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                code = hook.codes.pop(0) if hook.codes else 200
                hook.bodies.append(body)
                hook.answers.append(code)
                hook.paths.append(self.path)
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/{SECRET}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Silent:
    """A server on 127.0.0.1 that accepts connections and never answers (until closed)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.held: list[socket.socket] = []
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/{SECRET}"
        self.done = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.held.append(conn)  # read nothing, answer nothing

    def close(self) -> None:
        self.done.set()
        for c in self.held:
            c.close()
        self.sock.close()


@pytest.fixture
def hook():
    servers = []

    def make(codes=()):
        servers.append(Hook(codes))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def catcher(ws, name: str) -> list[str]:
    """A command channel's argv: a script that appends the JSON it reads on stdin to NAME.jsonl."""
    script = ws.project_dir / "catch.py"
    script.write_text("import sys\nname = sys.argv[1]\ndata = sys.stdin.read()\n"
                      "with open(name + '.jsonl', 'a') as fh:\n    fh.write(data.replace('\\n', ' ') + '\\n')\n")
    return [sys.executable, str(script), name]


def caught(ws, name: str) -> list[dict]:
    path = ws.project_dir / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def settled(ws, event_id: int, channel: str) -> dict | None:
    with closing(open_store(ws.db_path)) as c:
        d = outbox.delivery(c, event_id, channel)
    return d if d and d["status"] in ("delivered", "failed") else None


def toml_list(argv: list[str]) -> str:
    return json.dumps(argv)


# -- webhooks -----------------------------------------------------------------------------------------
def test_a_webhook_that_fails_twice_then_answers_gets_the_event_exactly_once(ws, hook):
    server = hook([500, 500])
    add_config(ws, f"""
        [[notify.channels]]
        name = "ops"
        webhook = "{server.url}"
        backoff = 0.05
    """)
    event_id = emit(ws, "alert.opened", "drift_share > 0.3 on classifier for 2 windows", {"model": "classifier"})
    assert event_id > 0
    done = wait_for(lambda: settled(ws, event_id, "ops"), timeout=30, what="the webhook delivery")
    assert done["status"] == "delivered" and done["tries"] == 3 and done["error"] is None
    assert server.answers == [500, 500, 200]
    taken = [b for b, code in zip(server.bodies, server.answers) if code == 200]
    assert len(taken) == 1 and taken[0]["id"] == event_id  # arrived once
    body = taken[0]
    assert body["kind"] == "alert.opened" and body["details"]["model"] == "classifier"
    assert body["subject"] == "drift_share > 0.3 on classifier for 2 windows"
    # what Slack shows, escaped its way: user text never becomes a link or a mention
    assert body["text"].endswith(": drift_share &gt; 0.3 on classifier for 2 windows")
    with closing(open_store(ws.db_path)) as c:
        tries = outbox.attempts(c, event_id)
    assert [(t["attempt"], t["ok"], t["detail"]) for t in tries] == [
        (1, False, "HTTP 500 Internal Server Error"), (2, False, "HTTP 500 Internal Server Error"),
        (3, True, "HTTP 200")]


def test_a_webhook_that_never_answers_is_recorded_as_failed_and_emit_does_not_wait(ws, conn):
    silent = Silent()
    try:
        add_config(ws, f"""
            [[notify.channels]]
            name = "ops"
            webhook = "{silent.url}"
            timeout = 0.5
            tries = 2
            backoff = 0.05
        """)
        event_id = emit(ws, "run.failed", "Run r1 failed", {"run": "r1"})
        # emit came back before any try could have ended: the delivery is still waiting or under way
        assert outbox.delivery(conn, event_id, "ops")["status"] in ("pending", "sending")
        done = wait_for(lambda: settled(ws, event_id, "ops"), timeout=30, what="the failed delivery")
        wait_for(lambda: len(silent.held) >= 2, timeout=5, what="the second connection")
    finally:
        silent.close()
    assert done["status"] == "failed" and done["tries"] == 2
    assert done["error"] == "failed after 2 tries: no answer within 0.5s"
    assert [t["detail"] for t in outbox.attempts(conn, event_id)] == ["no answer within 0.5s"] * 2
    # the event itself stays recorded, whatever its channels did
    assert outbox.get_event(conn, event_id)["subject"] == "Run r1 failed"


def test_a_webhook_client_error_is_not_tried_again_and_a_dead_port_is(ws, conn, hook):
    server = hook([404])
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()  # nothing listens there now
    add_config(ws, f"""
        [[notify.channels]]
        name = "gone"
        webhook = "{server.url}"
        [[notify.channels]]
        name = "down"
        webhook = "http://127.0.0.1:{port}/{SECRET}"
        backoff = 0.01
    """)
    event_id = record(ws, "run.finished", "Run r2 finished", {}, conn, channels=["gone", "down"])
    report = deliver_pending(ws, conn)
    assert sorted(c for _, c, _ in report.failed) == ["down", "gone"]
    gone, down = outbox.delivery(conn, event_id, "gone"), outbox.delivery(conn, event_id, "down")
    assert (gone["tries"], gone["error"]) == (1, "failed after 1 try: HTTP 404 Not Found")
    assert down["tries"] == 3 and down["error"].startswith("failed after 3 tries: cannot connect")


def test_the_secret_url_is_never_recorded_printed_or_logged(ws, conn, hook, cli):
    server = hook([500] * 6)  # three for the event, three for `notify test`
    add_config(ws, f"""
        [[notify.channels]]
        name = "ops"
        webhook = "{server.url}"
        backoff = 0.01
    """)
    event_id = emit(ws, "run.lost", "Run r3 lost", {})
    wait_for(lambda: settled(ws, event_id, "ops"), timeout=30, what="the failed delivery")
    assert server.paths[:3] == [f"/{SECRET}"] * 3  # it was used...
    listing = cli("notify", "list")
    as_json = cli("notify", "list", "--json")
    tested = cli("notify", "test")
    assert listing.returncode == 0 and as_json.returncode == 0 and tested.returncode == 1
    assert "ops: failed after 3 tries: HTTP 500" in listing.stdout
    assert "http://127.0.0.1:" in listing.stdout and "/…" in listing.stdout
    dump = "\n".join(conn.iterdump())
    log = (ws.root / "notify.log").read_text() if (ws.root / "notify.log").exists() else ""
    for text in (listing.stdout, listing.stderr, as_json.stdout, tested.stdout, tested.stderr, dump, log):
        assert "s3cr3t" not in text  # ...and never shown anywhere


# -- commands and filters ------------------------------------------------------------------------------
def test_a_command_channel_gets_the_event_as_json_on_stdin(ws, conn):
    add_config(ws, f"""
        [[notify.channels]]
        name = "pager"
        command = {toml_list(catcher(ws, "pager"))}
    """)
    event_id = emit(ws, "promotion.requested", "alice asks to move clf@2 to production", {"request": 7})
    wait_for(lambda: settled(ws, event_id, "pager"), timeout=30, what="the command delivery")
    (got,) = caught(ws, "pager")
    assert (got["id"], got["kind"], got["details"]["request"]) == (event_id, "promotion.requested", 7)
    assert got["subject"] == "alice asks to move clf@2 to production"
    assert got["workspace"] == str(ws.project_dir) and got["text"].endswith(got["subject"])


def test_a_failing_command_is_retried_then_recorded_with_its_last_words(ws, conn):
    script = ws.project_dir / "broken.py"
    script.write_text("import sys\nsys.stdin.read()\nprint('pager service unreachable', file=sys.stderr)\nsys.exit(4)\n")
    add_config(ws, f"""
        [[notify.channels]]
        name = "pager"
        command = {toml_list([sys.executable, str(script)])}
        backoff = 0.01
        tries = 2
        [[notify.channels]]
        name = "missing"
        command = ["/nonexistent/pager"]
    """)
    event_id = record(ws, "run.failed", "Run r4 failed", {}, conn, channels=["pager", "missing"])
    deliver_pending(ws, conn)
    pager, missing = outbox.delivery(conn, event_id, "pager"), outbox.delivery(conn, event_id, "missing")
    assert pager["error"] == "failed after 2 tries: exit code 4: pager service unreachable"
    assert missing["tries"] == 1 and "cannot start '/nonexistent/pager'" in missing["error"]


def test_each_channel_gets_only_the_events_its_filter_names(ws, conn):
    add_config(ws, f"""
        [[notify.channels]]
        name = "alerts"
        command = {toml_list(catcher(ws, "alerts"))}
        events = ["alert"]
        [[notify.channels]]
        name = "all"
        command = {toml_list(catcher(ws, "all"))}
    """)
    ids = [emit(ws, kind, f"{kind} happened", {}) for kind in ("alert.opened", "run.failed", "alert.closed")]
    for event_id in ids:
        wait_for(lambda: settled(ws, event_id, "all"), timeout=30, what=f"event {event_id} to all")
    for event_id in (ids[0], ids[2]):
        wait_for(lambda: settled(ws, event_id, "alerts"), timeout=30, what=f"event {event_id} to alerts")
    assert sorted(e["kind"] for e in caught(ws, "alerts")) == ["alert.closed", "alert.opened"]
    assert sorted(e["kind"] for e in caught(ws, "all")) == ["alert.closed", "alert.opened", "run.failed"]
    assert outbox.delivery(conn, ids[1], "alerts") is None  # never routed there


def test_events_recorded_under_broken_settings_wait_and_leave_once_they_are_fixed(ws, conn):
    add_config(ws, '[[notify.channels]]\nname = "pager"\n')  # no kind: wrong
    event_id = emit(ws, "run.failed", "Run r5 failed", {})
    assert event_id > 0 and outbox.get_event(conn, event_id)["routed"] is None  # kept, not lost
    report = deliver_pending(ws, conn)
    assert report.problem.endswith("notify channel 'pager' needs exactly one of webhook = \"https://...\", "
                                   "command = [\"program\", \"arg\"] or tui = true.")
    ws.config_path.write_text(ws.config_path.read_text().replace(
        'name = "pager"\n', f'name = "pager"\ncommand = {toml_list(catcher(ws, "pager"))}\n'))
    report = deliver_pending(ws, conn)
    assert report.problem is None and report.delivered == [(event_id, "pager")]
    assert [e["id"] for e in caught(ws, "pager")] == [event_id]


def test_notify_test_sends_to_the_named_channel_whatever_its_filter(ws, hook, cli):
    server = hook()
    add_config(ws, f"""
        [[notify.channels]]
        name = "ops"
        webhook = "{server.url}"
        events = ["alert"]
        [[notify.channels]]
        name = "pager"
        command = {toml_list(catcher(ws, "pager"))}
    """)
    out = cli("notify", "test", "ops", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert [(d["channel"], d["status"]) for d in result["deliveries"]] == [("ops", "delivered")]
    assert len(server.bodies) == 1 and server.bodies[0]["kind"] == "test"
    assert caught(ws, "pager") == []
    missing = cli("notify", "test", "nope")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (f"mltui: There is no notify channel named 'nope' in {ws.config_path} "
                                      "(channels: ops, pager).")


def test_two_deliverers_at_once_send_each_event_once(ws, conn, hook):
    server = hook()
    add_config(ws, f"""
        [[notify.channels]]
        name = "ops"
        webhook = "{server.url}"
    """)
    ids = [record(ws, "run.finished", f"Run {i} finished", {}, conn, channels=["ops"]) for i in range(20)]

    def deliver():
        with closing(open_store(ws.db_path)) as c:
            deliver_pending(ws, c)

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(b["id"] for b in server.bodies) == ids
    assert all(outbox.delivery(conn, i, "ops")["status"] == "delivered" for i in ids)


def test_send_test_with_no_channels_says_how_to_add_one(ws, conn):
    from mltui.base.errors import MltuiError

    with pytest.raises(MltuiError, match=r"declares no notify channels; add a \[\[notify.channels\]\] table"):
        send_test(ws, conn)
