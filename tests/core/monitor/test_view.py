"""What the Monitor pane is given to draw (core/monitor/view.py): sparkline heights on a fixed scale,
the reference histogram beside a window's, the quality metric shown on one line, and the overview
read on a connection the caller owns (the pane's reader), on a real store after a real check."""

from __future__ import annotations

import csv
import math
import random
import sqlite3
import time

import pytest

from mltui.core.monitor.view import (compare_bins, feature_histograms, overview, primary_metric, quality_scale,
                                     spark_levels)
from mltui.monitor import PredictionLog

HOUR = 3600.0


# -- sparklines ------------------------------------------------------------------------------------
def test_spark_levels_use_one_fixed_scale_and_keep_gaps():
    assert spark_levels([0.0, 0.05, 0.25, 0.5, 3.0, None, float("nan")], 0.5) == [0, 0, 4, 7, 7, None, None]
    # the same small PSI is the same height whatever else is in the series (no per-series rescaling)
    assert spark_levels([0.05], 0.5) == spark_levels([0.05, 0.0], 0.5)[:1] == spark_levels([0.05, 2.0], 0.5)[:1]
    assert spark_levels([0.2, 0.9, 1.0], 1.0, bottom=0.8) == [0, 4, 7]  # below the bottom is the lowest height
    assert spark_levels([1.0], 0.0) == [0]  # an empty scale draws flat rather than dividing by zero


def test_quality_scale_spans_the_windows_and_the_evaluation_at_least_a_tenth_wide():
    assert quality_scale([0.7, 0.9], 0.95) == (0.7, 0.95)
    lo, hi = quality_scale([0.901, 0.902], None)
    assert hi - lo == pytest.approx(0.1) and lo < 0.901 and hi > 0.902
    assert quality_scale([None], None) == (0.0, 1.0)


def test_primary_metric_is_accuracy_else_rmse_else_the_first():
    assert primary_metric({"f1": [0.5], "accuracy": [0.9]}) == "accuracy"
    assert primary_metric({"mae": [1.0], "rmse": [2.0]}) == "rmse"
    assert primary_metric({"f1": [0.5]}) == "f1"
    assert primary_metric({}) is None


# -- histograms ------------------------------------------------------------------------------------
def test_number_bins_merge_into_neighbouring_groups_labelled_by_their_edges():
    edges = [float(e) for e in range(10, 100, 10)]  # 9 edges: 10 bins
    spec = {"kind": "number", "edges": edges, "counts": [10] * 10}
    live = {"counts": [0] * 8 + [30, 70]}
    rows = compare_bins(spec, live, rows=5)
    assert [r["label"] for r in rows] == ["< 20", "20 - 40", "40 - 60", "60 - 80", ">= 80"]
    assert [r["reference"] for r in rows] == pytest.approx([0.2] * 5)
    assert [r["live"] for r in rows] == pytest.approx([0, 0, 0, 0, 1.0])
    # no more groups than bins; a window with no values is all zeros, not a division by zero
    rows = compare_bins(spec, None, rows=50)
    assert len(rows) == 10 and rows[0]["label"] == "< 10" and rows[-1]["label"] == ">= 90"
    assert all(r["live"] == 0 for r in rows)


def test_categories_keep_the_most_common_then_other_then_unseen():
    spec = {"kind": "category", "categories": ["a", "b", "c", "d", "e"], "counts": [50, 20, 15, 10, 5]}
    live = {"counts": [10, 10, 10, 10, 10, 50]}  # the last bucket: values the reference never had
    rows = compare_bins(spec, live, rows=4)
    assert [r["label"] for r in rows] == ["a", "b", "(other)", "(unseen)"]
    assert [r["reference"] for r in rows] == pytest.approx([0.5, 0.2, 0.3, 0.0])
    assert [r["live"] for r in rows] == pytest.approx([0.1, 0.1, 0.3, 0.5])
    # all categories fit: no "(other)"; no unseen values: no "(unseen)"
    rows = compare_bins(spec, {"counts": [1, 1, 1, 1, 1, 0]}, rows=12)
    assert [r["label"] for r in rows] == ["a", "b", "c", "d", "e"]


# -- the overview on a real store --------------------------------------------------------------------
@pytest.fixture
def checked(ws):
    """churn (stored) as classifier's reference; three calm hours then three with `age` shifted by +20,
    labels for all; one real check."""
    from mltui.core.data.versions import add
    from mltui.core.monitor.check import check
    from mltui.core.reader import open_writer

    rng = random.Random(0)
    (ws.project_dir / "data").mkdir()
    with open(ws.project_dir / "data" / "train.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["age", "income", "plan", "churned"])
        for _ in range(3000):
            age = rng.gauss(40, 10)
            w.writerow([f"{age:.2f}", f"{rng.gauss(50, 15):.2f}", rng.choice(["basic", "pro"]), int(age < 35)])
    conn = open_writer(ws)
    try:
        add(ws, conn, ws.project_dir / "data", "churn", "reference", store=True)
    finally:
        conn.close()
    with open(ws.config_path, "a") as fh:
        fh.write('\n[monitor]\nwindow = "1h"\n\n[monitor.models.classifier]\nreference = "churn"\ntarget = "churned"\n')
    hour = math.floor(time.time() / HOUR) * HOUR
    with PredictionLog("classifier@1", folder=ws.root / "monitor") as log:
        for ago in range(5, -1, -1):
            for i in range(300):
                age = rng.gauss(40 + (20 if ago < 3 else 0), 10)
                rid = f"{ago}-{i}"
                log.log({"age": age, "income": rng.gauss(50, 15), "plan": rng.choice(["basic", "pro"])},
                        int(age < 35), id=rid, ts=hour - ago * HOUR + i)
                log.label(rid, int(age < 35) if i % 4 else 1 - int(age < 35))  # 75 % right
    check(ws)
    return ws


def test_overview_on_the_callers_connection_orders_features_worst_first(checked):
    from mltui.core.reader import open_reader

    conn = open_reader(checked)
    try:
        data = overview(checked, conn=conn)
        conn.execute("SELECT 1").fetchone()  # still open: the caller owns it
    finally:
        conn.close()
    (m,) = data["models"]
    assert m["model"] == "classifier" and len(m["windows"]) == 6
    assert list(m["features"])[0] == "age"
    assert m["features"]["age"][-1] > 0.25 > m["features"]["age"][0]
    assert m["primary"] == "accuracy" and m["quality"]["accuracy"][-1] == pytest.approx(0.75)
    assert m["evaluated"] == {}  # classifier@1 is in no registry here: nothing to set beside live quality
    assert data["last_check"]["records"] == 1800


def test_feature_histograms_compare_the_last_window_with_its_reference(checked):
    m = overview(checked)["models"][0]
    shown = feature_histograms(m, "age")
    assert shown["start"] == m["windows"][-1]["start"] and shown["live_n"] == 300 and shown["drifted"]
    assert shown["reference"].startswith("churn@")
    rows = shown["rows"]
    assert sum(r["reference"] for r in rows) == pytest.approx(1.0) and sum(r["live"] for r in rows) == pytest.approx(1.0)
    assert rows[-1]["label"].startswith(">= ") and rows[-1]["live"] > 3 * rows[-1]["reference"]  # shifted up
    plan = feature_histograms(m, "plan")
    assert {r["label"] for r in plan["rows"]} == {"basic", "pro"} and not plan["drifted"]
    assert feature_histograms(m, "no such feature") is None


def test_an_open_alert_carries_its_retraining_state(checked):
    from mltui.core.monitor import state
    from mltui.core.reader import open_writer
    from mltui.core.runs.tracking import create_run

    conn = open_writer(checked)
    try:
        alert = state.open_alert(conn, checked.db_path, "classifier", "classifier: drift_share > 0.3", 0.0, {})
        run_id = create_run(checked, name="retrain", kind="train", status="running")
        state.note_action(conn, checked.db_path, alert, "retrain", f"run {run_id}", retrain_run=run_id)
    finally:
        conn.close()
    (a,) = overview(checked)["models"][0]["alerts"]
    assert a["retrain_run"] == run_id and a["retrain_status"] == "running" and a["request_status"] is None
    with sqlite3.connect(checked.db_path) as raw:
        raw.execute("DELETE FROM runs WHERE id = ?", (run_id,))
    assert overview(checked)["models"][0]["alerts"][0]["retrain_status"] is None  # the run is gone
