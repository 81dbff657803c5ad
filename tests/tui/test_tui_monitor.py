"""The Monitor pane (key 7), driven by real keys on a real workspace: a stored dataset as the reference,
a [monitor] config with a rule, predictions and late labels written with PredictionLog (synthetic
timestamps: three calm hours, then three with `age` shifted), and a real `check`. Key 7 shows the
model's last window and the drifted feature first, enter compares a feature's histograms, c checks
again in a thread (records logged meanwhile show up), the empty state says how to start, and the
demo shows its drift, alert and retrained candidate. A feature named like markup is drawn as typed.

Every wait polls with a deadline (`until`), never a fixed sleep."""

from __future__ import annotations

import csv
import math
import random
import sqlite3
import time

import pytest
from launching import until
from textual.widgets import Static

from mltui.monitor import PredictionLog
from mltui.tui.app import create_app
from mltui.tui.modals.histogram import HistogramScreen
from mltui.tui.panes.monitor import MonitorPane
from mltui.tui.widgets.keyed_table import KeyedTable

SMALL, BIG = (80, 24), (200, 60)
HOUR = 3600.0
PLAN = "[b]plan"  # a column named like markup: shown as typed, never as bold


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def _log(ws, hours: list[int], n: int, shift: float, seed: int) -> None:
    """`n` predictions in each hour `ago` (0: the current hour), `age` shifted by `shift` where ago < 3;
    labels for every prediction, 80 % of them matching the output."""
    rng = random.Random(seed)
    hour = math.floor(time.time() / HOUR) * HOUR
    with PredictionLog("classifier@1", folder=ws.root / "monitor") as log:
        for ago in hours:
            start = hour - ago * HOUR
            span = min(HOUR, time.time() - start) if ago == 0 else HOUR
            for i in range(n):
                age = rng.gauss(40 + (shift if ago < 3 else 0), 10)
                rid = f"{seed}-{ago}-{i}"
                log.log({"age": age, "income": rng.gauss(50, 15), PLAN: rng.choice(["basic", "pro", "team"])},
                        int(age < 35), id=rid, latency_ms=rng.uniform(5, 40), ts=start + span * i / n,
                        scores={"1": 0.7 if age < 35 else 0.3, "0": 0.3 if age < 35 else 0.7})
                log.label(rid, int(age < 35) if i % 5 else 1 - int(age < 35))


@pytest.fixture
def watched(ws):
    """`churn` (stored) is classifier's reference; a rule on drift_share; six hours logged; one check."""
    from mltui.core.data.versions import add
    from mltui.core.monitor.check import check
    from mltui.core.reader import open_writer

    rng = random.Random(0)
    (ws.project_dir / "data").mkdir()
    with open(ws.project_dir / "data" / "train.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["age", "income", PLAN, "churned"])
        for _ in range(3000):
            age = rng.gauss(40, 10)
            w.writerow([f"{age:.2f}", f"{rng.gauss(50, 15):.2f}", rng.choice(["basic", "pro", "team"]), int(age < 35)])
    conn = open_writer(ws)
    try:
        add(ws, conn, ws.project_dir / "data", "churn", "reference", store=True)
    finally:
        conn.close()
    with open(ws.config_path, "a") as fh:
        fh.write('\n[monitor]\nwindow = "1h"\n\n[monitor.models.classifier]\nreference = "churn"\ntarget = "churned"\n'
                 '\n[[monitor.rules]]\nmodel = "classifier"\nwhen = "drift_share > 0.3"\nfor = 2\nthen = ["notify"]\n')
    _log(ws, [5, 4, 3, 2, 1, 0], 300, shift=20, seed=1)
    report = check(ws)
    assert report.records == 1800 and len(report.alerts_opened) == 1
    return ws


def _rows(app, table_id: str) -> list[list[str]]:
    table = app.screen.query_one(f"#{table_id}", KeyedTable)
    return [[cell.plain for cell in table.get_row(row.key)] for row in table.ordered_rows]


def _text(app, static_id: str) -> str:
    content = app.screen.query_one(f"#{static_id}", Static).content
    return getattr(content, "plain", str(content))


async def _open(pilot) -> MonitorPane:
    await pilot.press("7")
    await until(pilot, lambda: _rows(pilot.app, "monitor-features"), what="the features to show")
    return pilot.app.screen.query_one(MonitorPane)


@pytest.mark.parametrize("size", [SMALL, BIG], ids=["80x24", "200x60"])
async def test_key_7_shows_the_last_windows_health_and_the_drifted_feature_first(watched, size):
    app = create_app(watched)
    async with app.run_test(size=size) as pilot:
        pane = await _open(pilot)
        (model,) = _rows(app, "monitor-models")
        name, version, volume, p95, drifted, quality, alerts = model
        assert (name, version, volume, alerts) == ("classifier", "v1", "300", "1 open")
        assert p95.endswith(" ms") and 5 <= float(p95.split()[0]) <= 45
        assert drifted == "33%"  # age of age, income, plan
        assert quality == "acc 0.800"
        features = _rows(app, "monitor-features")
        assert [f[0] for f in features] == ["age", "income", PLAN]  # worst first; the markup-like name as typed
        assert features[0][2] == "drifted" and float(features[0][1]) > 0.25
        assert features[0][3].startswith("KS ") and features[0][4] == "0%"  # 300 rows: the small-window test
        spark = features[0][5]
        assert len(spark) == 6 and spark[:3] != spark[3:] and spark[-1] == "█"  # calm, then the shift at full height
        side = _text(app, "monitor-side")
        assert "acc" in side and "0.800" in side
        assert "Open alerts (1)" in side and "drift_share > 0.3" in side
        # the focus is on the features, where enter applies, and it is drawn as focused
        assert app.focused is app.screen.query_one("#monitor-features") and app.focused.has_focus
        assert pane.size.width == size[0] and pane.has_class("-narrow") == (size[0] < 110)
        assert not app.screen.query_one("#monitor-empty").display


@pytest.mark.parametrize("size", [SMALL, BIG], ids=["80x24", "200x60"])
async def test_enter_on_a_feature_shows_its_reference_histogram_beside_the_last_window(watched, size):
    app = create_app(watched)
    async with app.run_test(size=size) as pilot:
        await _open(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, HistogramScreen), what="the histogram")
        shown = app.screen.shown
        assert shown["feature"] == "age" and shown["drifted"] and shown["live_n"] == 300
        assert shown["rows"][-1]["live"] > 3 * shown["rows"][-1]["reference"]  # the shift shows in the top bins
        title, bars = _text(app, "histogram-title"), _text(app, "histogram-bars")
        assert "age of classifier" in title and "churn@" in title and "drifted" in title
        lines = bars.splitlines()
        assert "reference" in lines[0] and "last window" in lines[0]
        assert len(lines) == 1 + len(shown["rows"]) and all(len(line) <= size[0] for line in lines)
        assert lines[-1].strip().startswith(">= ") and "█" in lines[-1]
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HistogramScreen), what="the histogram to close")
        # the markup-like category feature: its categories, drawn as typed
        await pilot.press("down", "down", "enter")
        await until(pilot, lambda: isinstance(app.screen, HistogramScreen), what="the second histogram")
        assert app.screen.shown["feature"] == PLAN and PLAN in _text(app, "histogram-title")
        assert {r["label"] for r in app.screen.shown["rows"]} == {"basic", "pro", "team"}


async def test_c_checks_now_and_the_pane_shows_what_was_logged_since(watched):
    app = create_app(watched)
    async with app.run_test(size=SMALL, notifications=True) as pilot:
        await _open(pilot)
        assert _rows(app, "monitor-models")[0][2] == "300"
        _log(watched, [0], 200, shift=20, seed=2)  # 200 more in the current hour
        await pilot.press("c")
        await until(pilot, lambda: any("Checked:" in n.message for n in app._notifications), what="the check's notice")
        notice = next(n.message for n in app._notifications if "Checked:" in n.message)
        assert "200 records read" in notice and "0 alerts opened" in notice  # the alert is already open
        await until(pilot, lambda: _rows(app, "monitor-models")[0][2] == "500", what="the new volume")
    with sqlite3.connect(watched.db_path) as conn:
        assert conn.execute("SELECT count(*) FROM monitor_checks").fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM monitor_alerts WHERE closed IS NULL").fetchone()[0] == 1


async def test_a_workspace_with_nothing_monitored_says_how_to_start(ws):
    app = create_app(ws)
    async with app.run_test(size=SMALL, notifications=True) as pilot:
        await pilot.press("7")
        empty = app.screen.query_one("#monitor-empty", Static)
        await until(pilot, lambda: empty.display, what="the empty note")
        assert "PredictionLog" in _text(app, "monitor-empty") and "mltui monitor check" in _text(app, "monitor-empty")
        assert not app.screen.query_one("#monitor-body").display
        await pilot.press("c")  # as the note says: a check from here, with nothing logged yet
        await until(pilot, lambda: any("Checked:" in n.message for n in app._notifications), what="the check's notice")
        assert any("Checked: 0 records read" in n.message for n in app._notifications)
        assert empty.display


async def test_c_in_the_same_burst_as_7_checks_once_the_pane_is_built(ws):
    """`7c` typed ahead (a burst over a slow link): the `c` waits for the pane it was meant for."""
    from textual import events

    app = create_app(ws)
    async with app.run_test(size=SMALL, notifications=True) as pilot:
        app.post_message(events.Key("7", "7"))
        app.post_message(events.Key("c", "c"))
        await until(pilot, lambda: any("Checked:" in n.message for n in app._notifications), what="the check's notice")
        assert app.screen.query_one("#panes").active == "monitor"


async def test_the_demo_shows_the_drift_the_alert_and_the_retrained_candidate(tmp_path, monkeypatch):
    """The demo's story through the real calls: drift against the production version's training data,
    the rule's alert, the retraining run it launched (finished), and its version in the promotion queue."""
    from mltui.demo.build import build_demo

    monkeypatch.chdir(tmp_path)
    notes: list[str] = []
    ws, _ = build_demo(tmp_path / "demo", n_runs=12, notes=notes)
    assert notes == []
    app = create_app(ws)
    async with app.run_test(size=BIG) as pilot:
        await _open(pilot)
        features = _rows(app, "monitor-features")
        assert [f[0] for f in features][:2] == ["tenure_months", "plan"]
        assert features[0][2] == features[1][2] == "drifted" and features[2][2] == "ok"
        side = _text(app, "monitor-side")
        assert "Open alerts (1)" in side and "drift_share > 0.5" in side
        assert "finished" in side and "promotion request #" in side
    with sqlite3.connect(ws.db_path) as conn:
        run_id, request_id = conn.execute("SELECT retrain_run, request_id FROM monitor_alerts").fetchone()
        assert conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0] == "finished"
        status, message, version = conn.execute("SELECT status, message, version FROM promotion_requests WHERE id = ?",
                                                (request_id,)).fetchone()
        assert status == "open" and "monitor alert" in message
        assert conn.execute("SELECT run_id FROM model_versions WHERE model = 'classifier' AND version = ?",
                            (version,)).fetchone()[0] == run_id
