"""`mltui notify list|test` through the real entry point, on a real workspace in tmp_path."""

from __future__ import annotations

import json
import sys

from mltui.core.notify.events import emit, record
from mltui.store.opening import open_store


def test_notify_list_shows_events_newest_first_with_their_deliveries_and_filters_by_kind(ws, cli):
    conn = open_store(ws.db_path)
    try:
        record(ws, "run.failed", "Run a (r1) failed: the command exited with code 3", {"run": "r1"}, conn,
               channels=["pager"])
        record(ws, "alert.opened", "drift_share > 0.3 on classifier", {}, conn, channels=[])
        record(ws, "run.finished", "Run b (r2) finished", {}, conn)
    finally:
        conn.close()
    out = cli("notify", "list", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["problem"] is None and data["channels"] == []
    assert [e["kind"] for e in data["events"]] == ["run.finished", "alert.opened", "run.failed"]
    assert data["events"][2]["deliveries"][0] == {**data["events"][2]["deliveries"][0], "channel": "pager",
                                                  "status": "pending", "tries": 0, "error": None}
    runs_only = json.loads(cli("notify", "list", "--json", "--kind", "run").stdout)["events"]
    assert [e["kind"] for e in runs_only] == ["run.finished", "run.failed"]
    text = cli("notify", "list", "-n", "2")
    lines = text.stdout.splitlines()
    assert lines[0] == "channels: none (see `mltui notify --help`)"
    assert "run.finished" in lines[2] and "waiting for its channels" in lines[2]
    assert "alert.opened" in lines[3] and "no channel wants it" in lines[3]
    assert len(lines) == 4
    bad = cli("notify", "list", "-n", "0")
    assert bad.returncode == 2 and bad.stderr == "mltui: --limit must be 1 or more.\n"


def test_wrong_settings_are_one_sentence_and_listing_still_works(ws, cli):
    ws.config_path.write_text(ws.config_path.read_text() + '\n[[notify.channels]]\nname = "ops"\n'
                              'webhook = "hooks.example/SECRET"\n')
    assert emit(ws, "run.lost", "Run c (r3) lost", {}) > 0  # recorded all the same
    listing = cli("notify", "list")
    assert listing.returncode == 0
    sentence = (f"{ws.config_path}: notify channel 'ops': webhook must be an http:// or https:// URL in quotes.")
    assert listing.stdout.splitlines()[0] == f"notify settings: {sentence}"
    assert "Run c (r3) lost" in listing.stdout
    tested = cli("notify", "test")
    assert tested.returncode == 1 and tested.stderr == f"mltui: {sentence}\n"
    assert "SECRET" not in listing.stdout + tested.stderr


def test_notify_test_reports_each_channel_and_fails_when_one_fails(ws, cli):
    ok = ws.project_dir / "ok.py"
    ok.write_text("import sys\nsys.stdin.read()\n")
    ws.config_path.write_text(ws.config_path.read_text() + f"""
[[notify.channels]]
name = "good"
command = {json.dumps([sys.executable, str(ok)])}

[[notify.channels]]
name = "bad"
command = {json.dumps([sys.executable, "-c", "import sys; sys.exit(2)"])}
tries = 1

[[notify.channels]]
name = "screen"
tui = true
""")
    out = cli("notify", "test")
    assert out.returncode == 1
    assert out.stdout.splitlines() == ["screen: shown in any open TUI", "good: delivered",
                                       "bad: failed after 1 try: exit code 2"]
    assert cli("notify", "test", "good").returncode == 0
