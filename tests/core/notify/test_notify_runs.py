"""Events where they happen: real launched runs that fail, stall and speak again, a run whose supervisor
died, promotion requests filed and decided. Command channels catch what is delivered; waits are
bounded polls, and a stalled run is driven by files the test creates, not by the clock."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
from contextlib import closing

import pytest

from mltui.base.procs import pid_alive
from mltui.core.launch.launcher import Launch, launch
from mltui.core.launch.liveness import reap_lost
from mltui.core.notify import outbox
from mltui.core.runs.listing import status_label
from mltui.store.opening import open_store
from launching import configure, kill_workspace_processes, row, wait_ended, wait_for, wait_output


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path):
    yield
    kill_workspace_processes(tmp_path / ".mltui")


def pager(ws, events: list[str] | None = None) -> None:
    """A command channel "pager" that appends each event it reads on stdin to pager.jsonl."""
    script = ws.project_dir / "page.py"
    script.write_text("import sys\ndata = sys.stdin.read()\n"
                      "with open('pager.jsonl', 'a') as fh:\n    fh.write(data.replace('\\n', ' ') + '\\n')\n")
    text = f'\n[[notify.channels]]\nname = "pager"\ncommand = {json.dumps([sys.executable, "page.py"])}\n'
    if events is not None:
        text += f"events = {json.dumps(events)}\n"
    ws.config_path.write_text(ws.config_path.read_text() + text)


def paged(ws, kind: str | None = None, run: str | None = None) -> list[dict]:
    path = ws.project_dir / "pager.jsonl"
    got = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [e for e in got if (kind is None or e["kind"] == kind) and (run is None or e["details"].get("run") == run)]


def events(ws, kind: str) -> list[dict]:
    with closing(open_store(ws.db_path)) as c:
        return [e for e in outbox.recent(c, 100) if e["kind"] == kind]


def test_a_run_that_fails_is_told_to_a_command_channel(ws):
    pager(ws, events=["run.failed"])
    run_id = launch(ws, Launch([sys.executable, "-c", "import sys; print('bye', flush=True); sys.exit(3)"],
                               name="doomed"))
    assert wait_ended(ws, run_id)["status"] == "failed"
    (event,) = wait_for(lambda: paged(ws, "run.failed", run_id), timeout=30, what="run.failed at the pager")
    assert event["subject"] == f"Run doomed ({run_id}) failed: the command exited with code 3"
    assert (event["details"]["exit_code"], event["details"]["status"], event["details"]["name"]) == (3, "failed", "doomed")
    ok = launch(ws, Launch([sys.executable, "-c", "print('fine')"], name="fine"))
    assert wait_ended(ws, ok)["status"] == "finished"
    wait_for(lambda: events(ws, "run.finished"), timeout=10, what="run.finished in the outbox")
    (finished,) = events(ws, "run.finished")
    assert finished["details"]["run"] == ok and finished["deliveries"] == []  # the pager's filter left it out


STALLER = """
import os, time
print("first", flush=True)
while not os.path.exists("go"):
    time.sleep(0.05)
while not os.path.exists("stop"):  # talkative from now on
    print("again", flush=True)
    time.sleep(0.1)
"""


def test_a_run_that_goes_silent_is_flagged_once_told_and_cleared_when_it_speaks_again(ws, cli):
    configure(ws, heartbeat_seconds=0.2, stall_seconds=1.0)
    pager(ws, events=["run.stalled", "run.resumed"])
    (ws.project_dir / "stall.py").write_text(textwrap.dedent(STALLER))
    run_id = launch(ws, Launch([sys.executable, "stall.py"], name="sleepy"))
    try:
        wait_output(ws, run_id, "first")
        flagged = wait_for(lambda: (r := row(ws, run_id))["stalled_since"] and r, timeout=30, what="the stall flag")
        assert flagged["status"] == "running" and status_label(flagged) == "stalled"
        listed = json.loads(cli("runs", "list", "--json", "--where", "stalled = true").stdout)
        assert [r["id"] for r in listed] == [run_id] and listed[0]["stalled_since"] == flagged["stalled_since"]
        assert run_id in cli("runs", "show", run_id).stdout and "stalled  no output and no metric since" in \
            cli("runs", "show", run_id).stdout
        (told,) = wait_for(lambda: paged(ws, "run.stalled", run_id), timeout=30, what="run.stalled at the pager")
        assert told["details"]["stalled_since"] == flagged["stalled_since"]
        assert told["subject"].startswith(f"Run sleepy ({run_id}) stalled: no output and no metric for ")
        (ws.project_dir / "go").touch()
        wait_for(lambda: row(ws, run_id)["stalled_since"] is None, timeout=30, what="the flag to clear")
        assert len(events(ws, "run.stalled")) == 1  # once per stall, however many heartbeats it lasted
        wait_for(lambda: paged(ws, "run.resumed", run_id), timeout=30, what="run.resumed at the pager")
        assert json.loads(cli("runs", "list", "--json", "--where", "stalled = true").stdout) == []
        assert status_label(row(ws, run_id)) == "running"
    finally:
        (ws.project_dir / "stop").touch()
    done = wait_ended(ws, run_id)
    assert done["status"] == "finished" and done["stalled_since"] is None


def test_stall_seconds_0_never_flags(ws):
    configure(ws, heartbeat_seconds=0.1, stall_seconds=0)
    (ws.project_dir / "stall.py").write_text(textwrap.dedent(STALLER))
    run_id = launch(ws, Launch([sys.executable, "stall.py"]))
    try:
        wait_output(ws, run_id, "first")
        # many heartbeats pass while it is silent (each one raises the heartbeat time)
        first = row(ws, run_id)["heartbeat"]
        wait_for(lambda: row(ws, run_id)["heartbeat"] > first + 1.0, timeout=30, what="ten heartbeats")
        assert row(ws, run_id)["stalled_since"] is None and events(ws, "run.stalled") == []
    finally:
        (ws.project_dir / "go").touch()
        (ws.project_dir / "stop").touch()
    wait_ended(ws, run_id)


def test_a_run_whose_supervisor_died_is_told_lost(ws):
    run_id = launch(ws, Launch([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
                               name="orphan"))
    wait_output(ws, run_id, "ready")
    running = row(ws, run_id)
    os.kill(running["sup_pid"], signal.SIGKILL)
    wait_for(lambda: not pid_alive(running["sup_pid"]), 5, what="the supervisor to die")
    with closing(open_store(ws.db_path)) as conn:
        assert reap_lost(ws, conn) == [run_id]
    (lost,) = events(ws, "run.lost")
    assert lost["details"]["run"] == run_id and lost["details"]["status"] == "lost"
    assert lost["subject"].startswith(f"Run orphan ({run_id}) lost: lost: its supervisor (pid ")


def test_promotion_requests_filed_and_decided_are_told(ws):
    pytest.importorskip("torch")
    import mltui
    from mltui.core.models import promotion, registry

    run = mltui.init(name="train", workspace=ws.project_dir)
    weights = ws.project_dir / "w.bin"
    weights.write_bytes(os.urandom(64))
    run.log_artifact(weights, "model.pt")
    run.finish()
    with closing(open_store(ws.db_path)) as conn:
        mv, _ = registry.register(ws, conn, "clf", run.id, "artifacts/model.pt", who="alice")
        req = promotion.request(ws, conn, mv.label, "staging", message="looks good", who="alice")
        promotion.reject(ws, conn, req["id"], "no eval run yet", who="bob")
    (filed,) = events(ws, "promotion.requested")
    assert filed["subject"] == f"alice asks to move clf@1 to staging (request #{req['id']})"
    assert (filed["details"]["model"], filed["details"]["version"], filed["details"]["message"]) == ("clf", 1, "looks good")
    (decided,) = events(ws, "promotion.decided")
    assert decided["subject"] == f"bob rejected moving clf@1 to staging (request #{req['id']})"
    assert (decided["details"]["status"], decided["details"]["decision"]) == ("rejected", "no eval run yet")
    (finished,) = events(ws, "run.finished")  # the tracked run's own end, told by the tracking API
    assert finished["details"]["run"] == run.id
