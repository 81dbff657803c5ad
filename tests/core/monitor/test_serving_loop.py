"""The serving sample closes the loop, for real: sample_projects/serving copied into a fresh workspace,
its data registered, its model trained by a launched run (registered by the [[register]] rule), promoted
by one person and approved by another, served by serve.py on 127.0.0.1, and sent six windows of
replayed traffic whose customers change at window 3, with each window's labels arriving one window late.
`mltui monitor check` runs after every window, as a watcher would.

Judged: drift is detected within two windows of the shift; the rule fires once; the retraining run it
starts finishes and its version waits in the promotion queue; nothing is promoted on its own; and the
labels that arrive late change the quality of the windows they belong to (checked before and after).
"""

from __future__ import annotations

import json
import math
import os
import select
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from launching import kill_workspace_processes, wait_for

from mltui.core.monitor.view import history

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "sample_projects" / "serving"
HOUR = 3600.0
WINDOWS, SHIFT, PER_WINDOW = 6, 3, 120

MONITOR = """
[promotion]
# one account plays two people here: $MLTUI_USER names who acts (recorded as asserted)
trust_env_user = true

[[promotion.gates]]
kind = "metric"
metric = "accuracy"
op = ">="
value = 0.6

[monitor]
window = "1h"

[monitor.models.classifier]
target = "churned"
positive = "yes"

[[monitor.rules]]
model = "classifier"
when = "drift_share > 0.3"
for = 2
then = ["notify", "retrain"]
retrain = "retrain"
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLTUI_WORKSPACE", "MLTUI_RUN_ID", "MLTUI_DEBUG",
                                                            "MLTUI_USER", "MLTUI_MONITOR_DIR")}
    return {**env, **extra}


def script(project: Path, *argv: str) -> str:
    done = subprocess.run([sys.executable, *argv], cwd=project, env=_env(), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    return done.stdout


@pytest.fixture
def project(ws):
    for item in SAMPLE.iterdir():
        if item.suffix in (".py", ".toml", ".md") and item.is_file():
            shutil.copy2(item, ws.project_dir / item.name)
    servers: list[subprocess.Popen] = []
    yield ws, servers
    for proc in servers:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    kill_workspace_processes(ws.root)


def start_server(ws, servers) -> str:
    proc = subprocess.Popen([sys.executable, "serve.py", "--flush-seconds", "0.1"], cwd=ws.project_dir, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    servers.append(proc)
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    assert ready, "serve.py printed nothing within 30 s"
    line = proc.stdout.readline()
    assert line.startswith("serving classifier@1 on http://127.0.0.1:"), line + proc.stderr.read()
    return line.split(" on ")[1].strip()


def cli_json(cli, *args, env=None):
    done = cli(*args, "--json", env=env, timeout=60)
    assert done.returncode == 0, f"mltui {' '.join(args)}: {done.stderr}"
    return json.loads(done.stdout)


def logged(ws) -> int:
    """Predictions the server has written so far (its PredictionLog flushes every 0.1 s here)."""
    whole = (f.read_bytes() for f in (ws.root / "monitor").glob("*.jsonl"))
    return sum(data[:data.rfind(b"\n") + 1].count(b'"inputs"') for data in whole)  # whole lines only


def windows(ws) -> dict[float, dict]:
    return {w["start"]: w for w in history(ws, "classifier", last=0)}


def test_the_serving_sample_closes_the_loop(project, cli):
    ws, servers = project
    began = time.monotonic()

    # data, a launched training run that registers classifier@1, promoted by alice and approved by bob
    script(ws.project_dir, "make_data.py")
    assert cli("data", "add", "data", "--name", "churn", "--store").returncode == 0
    with ws.config_path.open("a") as fh:
        fh.write(MONITOR)
    done = cli("run", "train", "--wait", timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    wait_for(lambda: cli_json(cli, "models", "list"), 30, 0.3, what="classifier@1 to be registered")
    request = cli_json(cli, "promote", "classifier", "1", "--to", "production", env={"MLTUI_USER": "alice"})
    assert request["requester"] == "alice" and all(g["ok"] for g in request["gates"])
    assert cli("queue", "approve", str(request["id"]), "-m", "first model",
               env={"MLTUI_USER": "bob"}).returncode == 0
    assert cli_json(cli, "models", "list")[0]["production"] == 1

    url = start_server(ws, servers)
    start = math.floor(time.time() / HOUR) * HOUR - (WINDOWS + 1) * HOUR  # every window has ended
    starts = [start + i * HOUR for i in range(WINDOWS)]

    truth: dict[int, float] = {}  # window -> the served model's accuracy on it, as the traffic knows it
    opened_at: list[int] = []
    actions: list[dict] = []  # every action of every check
    retrain_run = None
    for i in range(WINDOWS):
        out = script(ws.project_dir, "traffic.py", "--url", url, "--from", str(i), "--windows", "1",
                     "--start", str(start), "--per-window", str(PER_WINDOW), "--shift-at", str(SHIFT),
                     "--leave-labels", "--json")
        sent = json.loads(out.splitlines()[0])
        assert sent["window"] == i and sent["models"] == ["classifier@1"]
        truth[i] = sent["accuracy"]
        wait_for(lambda: logged(ws) == (i + 1) * PER_WINDOW, 10, 0.1, what=f"window {i}'s predictions on disk")
        report = cli_json(cli, "monitor", "check")
        assert report["malformed"] == 0 and not report["problems"]
        assert report["records"] == PER_WINDOW
        assert report["labels"] == (PER_WINDOW if i else 0)  # the labels of window i - 1 came with window i
        actions += report["actions"]
        if report["alerts_opened"]:
            opened_at.append(i)
            acted = {a["action"]: a["outcome"] for a in report["actions"]}
            assert acted["notify"].startswith("event "), acted
            assert acted["retrain"].startswith("run "), acted
            retrain_run = acted["retrain"].split()[1]
        got = windows(ws)
        # window i has no labels yet: traffic, drift, no quality
        now = got[starts[i]]["health"]
        assert now["volume"] == PER_WINDOW and now["labelled"] == 0 and "accuracy" not in now
        if i:  # window i - 1's labels arrived late, and landed in window i - 1 (only)
            late = got[starts[i - 1]]["health"]
            assert late["labelled"] == PER_WINDOW
            assert late["accuracy"] == pytest.approx(truth[i - 1])
            assert {"precision", "recall", "f1", "roc_auc"} <= set(late)

    # drift: none before the shift, in every window from it; the rule (for = 2) fired once, at the
    # second drifted window, i.e. within two windows of the shift
    health = {i: windows(ws)[starts[i]]["health"] for i in range(WINDOWS)}
    assert all(health[i]["drift_share"] <= 0.3 for i in range(SHIFT)), {i: health[i]["drift_share"] for i in health}
    assert all(health[i]["drift_share"] > 0.3 for i in range(SHIFT, WINDOWS))
    assert opened_at == [SHIFT + 1]
    # the new customers are served worse, and the monitor says so once their labels are in
    assert max(health[i]["accuracy"] for i in range(SHIFT, WINDOWS - 1)) < min(health[i]["accuracy"]
                                                                              for i in range(SHIFT))

    # the retraining run finishes, learning from the labelled predictions too
    assert retrain_run
    conn = sqlite3.connect(ws.db_path, timeout=10)
    try:
        def ended():
            row = conn.execute("SELECT status FROM runs WHERE id = ?", (retrain_run,)).fetchone()
            return row and row[0] in ("finished", "failed", "killed", "lost") and row[0]
        assert wait_for(ended, 60, 0.2, what="the retraining run to end") == "finished"
        rows = conn.execute("SELECT value FROM params WHERE run_id = ? AND key = 'monitor_rows'",
                            (retrain_run,)).fetchone()
        assert rows and int(float(rows[0])) >= SHIFT * PER_WINDOW + PER_WINDOW  # windows 0..SHIFT were labelled
    finally:
        conn.close()

    # a check after it ended files its version to the promotion queue, once; no other alert opens
    def filed():
        report = cli_json(cli, "monitor", "check")
        assert not report["alerts_opened"]
        actions.extend(report["actions"])
        return any(a["action"] == "promote request" for a in actions)
    wait_for(filed, 30, 0.5, what="the retrained version to be filed")
    again = cli_json(cli, "monitor", "check")
    assert not again["alerts_opened"] and not again["actions"]
    assert [a["action"] for a in actions] == ["notify", "retrain", "promote request"], actions

    alerts = cli_json(cli, "monitor", "alerts")
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["closed"] is None and alert["retrain_run"] == retrain_run and alert["request_id"]
    assert [a["action"] for a in alert["actions"]] == ["notify alert.opened", "retrain", "promote request"]

    queue = cli_json(cli, "queue", "list")
    open_requests = [r for r in queue["requests"] if r["status"] == "open"]
    assert [(r["id"], r["label"], r["target"]) for r in open_requests] == [
        (alert["request_id"], "classifier@2", "production")]
    assert "monitor alert" in open_requests[0]["message"]
    stages = {v["version"]: v["stage"] for v in cli_json(cli, "models", "show", "classifier")["versions"]}
    assert stages == {1: "production", 2: "candidate"}  # nothing promoted on its own
    runs = cli_json(cli, "runs", "list")
    assert [r["id"] for r in runs if "--from-monitor" in r["command"]] == [retrain_run]  # once per incident

    print(f"serving loop: {time.monotonic() - began:.1f}s")
