"""Monitoring on a real store: prediction logs written with PredictionLog (and by hand, for bad input),
read by `mltui monitor check` as a subprocess, windows compared with a registered dataset version.

Timestamps are synthetic (whole hours in the past) so each test lays out exactly the windows it needs.
The statistics are checked against scipy's.
"""

from __future__ import annotations

import csv
import json
import math
import random
import sqlite3
import time

import pytest

from mltui.core.monitor import stats
from mltui.monitor import PredictionLog

HOUR = 3600.0


@pytest.fixture
def mon(ws, cli):
    """A workspace whose dataset `churn` (stored) is the reference of model `classifier`."""
    rng = random.Random(0)
    data = ws.project_dir / "data"
    data.mkdir()
    with open(data / "train.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["age", "income", "plan", "churned"])
        for _ in range(4000):
            age = rng.gauss(40, 10)
            w.writerow([f"{age:.3f}", f"{rng.gauss(50, 15):.3f}", rng.choice(["basic", "pro", "team"]), int(age < 35)])
    done = cli("data", "add", "data", "--name", "churn", "--store")
    assert done.returncode == 0, done.stderr
    configure(ws, "")
    return ws


def configure(ws, rules: str, window: str = "1h") -> None:
    base = ws.config_path.read_text().split("\n[monitor]")[0]
    ws.config_path.write_text(base + f"""
[monitor]
window = "{window}"

[monitor.models.classifier]
reference = "churn"
target = "churned"
{rules}""")


def rule(when: str, times: int = 2) -> str:
    return f"""
[[monitor.rules]]
model = "classifier"
when = "{when}"
for = {times}
then = ["notify"]
"""


def start_hour(hours_ago: int) -> float:
    return (math.floor(time.time() / HOUR) - hours_ago) * HOUR


def traffic(ws, hours: list[tuple[int, dict]], n: int = 400, seed: int = 1, labels: bool = False,
            name: str = "classifier@1") -> list[dict]:
    """`n` predictions in each listed hour (hours ago -> how the inputs look), through PredictionLog;
    returns the true labels ({id, label}), written too when `labels`."""
    rng = random.Random(seed)
    truths = []
    with PredictionLog(name, folder=ws.root / "monitor") as log:
        for ago, how in hours:
            t0 = start_hour(ago)
            for i in range(n):
                age = rng.gauss(40 + how.get("shift", 0), 10)
                inputs = {"age": None if rng.random() < how.get("missing", 0) else age,
                          "income": rng.gauss(50, 15), "plan": rng.choice(["basic", "pro", "team"])}
                truth = int(age < 35)
                output = truth if rng.random() < how.get("accuracy", 0.95) else 1 - truth
                rid = f"{ago}-{seed}-{i}"
                log.log(inputs, output, id=rid, latency_ms=rng.uniform(5, 50), ts=t0 + i * (HOUR / n),
                        scores={"1": 0.8 if output else 0.2, "0": 0.2 if output else 0.8})
                truths.append({"id": rid, "label": truth})
                if labels:
                    log.label(rid, truth)
    return truths


def check(cli, *args, ok=True):
    done = cli("monitor", "check", "--json", *args)
    assert (done.returncode == 0) == ok, done.stderr
    return json.loads(done.stdout), done


def show(cli, model="classifier"):
    done = cli("monitor", "show", model, "--json", "-n", "0")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def alerts(cli):
    done = cli("monitor", "alerts", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# -- statistics against scipy ----------------------------------------------------------------------
def test_the_tests_agree_with_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    from scipy.spatial.distance import jensenshannon

    rng = random.Random(3)
    a = [rng.gauss(0, 1) for _ in range(3000)]
    b = [rng.gauss(0.2, 1.1) for _ in range(400)]
    d, p = stats.ks_test(b, sorted(a), len(a))
    ref = scipy_stats.ks_2samp(b, a, method="asymp")
    assert d == pytest.approx(ref.statistic, abs=1e-12)
    assert p == pytest.approx(ref.pvalue, rel=0.05, abs=1e-4)
    ref_counts, cur = [500, 300, 200], [40, 35, 25]
    chi, p = stats.chi2_test(ref_counts, cur)
    expected = [s * sum(cur) for s in stats.shares(ref_counts)]
    want = scipy_stats.chisquare(cur, expected)
    assert chi == pytest.approx(want.statistic) and p == pytest.approx(want.pvalue, rel=1e-6)
    assert stats.js_distance([5, 3, 2, 0], [1, 3, 5, 1]) == pytest.approx(
        jensenshannon([0.5, 0.3, 0.2, 0], [0.1, 0.3, 0.5, 0.1], base=2), rel=1e-9)
    import numpy as np

    x = np.array(a)
    edges = sorted(set(np.quantile(x, np.linspace(0, 1, 41)[1:-1]).tolist()))
    rc = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)

    def tails(v):
        low, high = v[v < edges[0]], v[v >= edges[-1]]
        return (low.mean() if len(low) else None, high.mean() if len(high) else None)

    for shift in (0.05, 0.15, 1.0):  # near the 0.1 threshold, and far past it
        y = np.array([rng.gauss(shift, 1) for _ in range(20000)])
        cc = np.bincount(np.searchsorted(edges, y, side="right"), minlength=len(edges) + 1)
        w = stats.wasserstein_normed(edges, rc, cc, tails(x), tails(y), float(x.std()))
        assert w == pytest.approx(scipy_stats.wasserstein_distance(x, y) / x.std(), rel=0.1, abs=0.01), shift


# -- reading the logs ------------------------------------------------------------------------------
def test_windows_fill_from_the_logs_and_a_second_check_reads_only_what_is_new(mon, cli):
    traffic(mon, [(5, {}), (4, {})])
    first, _ = check(cli)
    assert first["records"] == 800 and first["malformed"] == 0
    again, _ = check(cli)
    assert again["records"] == 0
    traffic(mon, [(3, {})], seed=2)
    third, _ = check(cli)
    assert third["records"] == 400
    windows = show(cli)
    assert [w["n"] for w in windows] == [400, 400, 400]
    assert [w["start"] for w in windows] == [start_hour(5), start_hour(4), start_hour(3)]
    h = windows[0]["health"]
    assert h["volume"] == 400 and h["drift_share"] <= 1 / 3
    # latencies are uniform on 5..50 ms; the log bins are 4.4 % wide
    assert h["latency_p50"] == pytest.approx(27.5, rel=0.1)
    assert h["latency_p95"] == pytest.approx(47.75, rel=0.045) and h["latency_p99"] <= 50 * 1.045
    assert h["features"]["age"]["test"] == "ks" and h["features"]["plan"]["test"] == "chi2"


def test_big_windows_use_wasserstein_and_jensen_shannon_and_a_shift_is_caught(mon, cli):
    traffic(mon, [(3, {}), (2, {"shift": 15})], n=1500)
    check(cli)
    calm, shifted = show(cli)
    assert calm["health"]["features"]["age"]["test"] == "wasserstein"
    assert calm["health"]["features"]["plan"]["test"] == "jensen-shannon"
    assert not calm["health"]["features"]["age"]["drifted"]
    assert shifted["health"]["features"]["age"]["drifted"] and shifted["health"]["drifted"][0] == "age"
    assert shifted["health"]["features"]["age"]["psi"] > 0.5
    assert not shifted["health"]["features"]["income"]["drifted"]


def test_malformed_lines_are_counted_and_skipped_and_a_half_written_line_waits(mon, cli):
    traffic(mon, [(2, {})], n=50)
    path = mon.root / "monitor" / "handmade.jsonl"
    good = {"ts": start_hour(2) + 10, "model": "classifier@1", "id": "h1", "inputs": {"age": 30, "income": 40,
                                                                                       "plan": "pro"}, "output": 1}
    path.write_text("not json at all\n" + json.dumps(good) + "\n[1, 2]\n" + '{"model": "classifier@1"}\n'
                    + json.dumps({**good, "id": "h2"})[:30])  # the last line is not finished yet
    report, _ = check(cli)
    assert report["records"] == 51 and report["malformed"] == 3
    with open(path, "a") as fh:
        fh.write(json.dumps({**good, "id": "h2"})[30:] + "\n")
    report, _ = check(cli)
    assert report["records"] == 1 and report["malformed"] == 0


def test_a_chunked_read_gives_the_same_windows_as_one_read(mon, cli, monkeypatch):
    from mltui.core.monitor import check as check_mod
    from mltui.core.monitor import records

    traffic(mon, [(3, {}), (2, {"shift": 5})], n=300)
    original = records.read_new
    monkeypatch.setattr(records, "read_new", lambda path, at, chunk=records.CHUNK: original(path, at, 4096))
    monkeypatch.setattr(check_mod, "read_new", records.read_new)
    from mltui.core.monitor.check import check as run_check

    small = run_check(mon)
    assert small.records == 600
    chunked = {w["start"]: w["health"] for w in show(cli)}
    conn = sqlite3.connect(mon.db_path)
    with conn:
        for table in ("monitor_windows", "monitor_files", "monitor_labels"):
            conn.execute(f"DELETE FROM {table}")
    conn.close()
    monkeypatch.setattr(check_mod, "read_new", original)
    run_check(mon)
    whole = {w["start"]: w["health"] for w in show(cli)}
    assert chunked.keys() == whole.keys()
    for start in whole:
        assert chunked[start]["features"]["age"]["psi"] == pytest.approx(whole[start]["features"]["age"]["psi"])
        assert chunked[start]["volume"] == whole[start]["volume"]


def test_a_feature_the_reference_lacks_is_a_schema_change(mon, cli):
    with PredictionLog("classifier@1", folder=mon.root / "monitor") as log:
        for i in range(20):
            log.log({"age": 40, "income": 50, "plan": "pro", "zipcode": "12345"}, 0, id=f"z{i}", ts=start_hour(1) + i)
    report, done = check(cli)
    assert report["schema_changes"] == {"classifier": ["zipcode"]}
    plain = cli("monitor", "check")
    assert plain.returncode == 0
    assert show(cli)[-1]["health"]["schema"]["extra"] == ["zipcode"]


def test_a_model_with_no_lineage_and_no_reference_gets_one_sentence(mon, cli):
    traffic(mon, [(1, {})], n=20, name="ranker@1")
    done = cli("monitor", "check", "ranker")
    assert done.returncode == 1
    assert done.stderr.strip() == ("mltui: Model ranker has no reference data: its training run recorded no dataset; "
                                   "set one in .mltui/config.toml: [monitor.models.ranker] reference = "
                                   "\"DATASET@VERSION\" (and target = \"COLUMN\").")


def test_parquet_prediction_files_are_read_once(mon, cli):
    import polars as pl

    rows = [{"ts": start_hour(2) + i, "model": "classifier@1", "id": f"p{i}",
             "inputs": {"age": 40.0 + i % 7, "income": 50.0, "plan": "pro"}, "output": 0} for i in range(100)]
    (mon.root / "monitor").mkdir(exist_ok=True)
    pl.DataFrame(rows).write_parquet(mon.root / "monitor" / "batch.parquet")
    report, _ = check(cli)
    assert report["records"] == 100
    assert check(cli)[0]["records"] == 0


# -- labels ----------------------------------------------------------------------------------------
def test_labels_that_arrive_late_change_the_quality_of_their_windows(mon, cli):
    truths = traffic(mon, [(3, {"accuracy": 0.9}), (2, {"accuracy": 0.6})], n=400)
    check(cli)
    assert all("accuracy" not in w["health"] for w in show(cli))
    # the truth arrives hours later, for both windows, in a file of its own
    with open(mon.root / "monitor" / "labels-late.jsonl", "w") as fh:
        fh.writelines(json.dumps(t) + "\n" for t in truths)
    report, _ = check(cli)
    assert report["labels"] == 800 and report["labels_waiting"] == 0
    good, bad = show(cli)
    assert good["health"]["labelled"] == 400 and bad["health"]["labelled"] == 400
    assert good["health"]["accuracy"] == pytest.approx(0.9, abs=0.05)
    assert bad["health"]["accuracy"] == pytest.approx(0.6, abs=0.07)
    assert 0 < bad["health"]["roc_auc"] < good["health"]["roc_auc"]


def test_a_label_before_its_prediction_waits_for_it(mon, cli):
    (mon.root / "monitor").mkdir(exist_ok=True)
    (mon.root / "monitor" / "early.jsonl").write_text(json.dumps({"id": "1-1-0", "label": 1}) + "\n")
    report, _ = check(cli)
    assert report["labels_waiting"] == 1
    traffic(mon, [(1, {})], n=5)
    report, _ = check(cli)
    assert report["labels_waiting"] == 0
    assert show(cli)[-1]["health"]["labelled"] == 1


# -- rules -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("when, bad, good", [
    ("drift_share > 0.3", {"shift": 20}, {}),
    ("drift.age > 0.5", {"shift": 20}, {}),
    ("accuracy < 0.85", {"accuracy": 0.5}, {"accuracy": 0.97}),
    ("missing_share > 0.05", {"missing": 0.5}, {}),
])
def test_each_rule_kind_fires_once_and_resolves(mon, cli, when, bad, good):
    configure(mon, rule(when, times=2))
    labels = "accuracy" in when
    traffic(mon, [(6, good), (5, bad)], n=600, labels=labels)
    first, _ = check(cli)
    assert first["alerts_opened"] == []  # one bad window is not `for = 2`
    traffic(mon, [(4, bad)], n=600, seed=2, labels=labels)
    second, _ = check(cli)
    assert len(second["alerts_opened"]) == 1 and second["alerts_opened"][0]["rule"] == f"classifier: {when}"
    traffic(mon, [(3, bad)], n=600, seed=3, labels=labels)
    assert check(cli)[0]["alerts_opened"] == []  # still the same incident
    traffic(mon, [(2, good)], n=600, seed=4, labels=labels)
    resolved, _ = check(cli)
    assert [a["rule"] for a in resolved["alerts_closed"]] == [f"classifier: {when}"]
    (alert,) = alerts(cli)
    assert alert["closed"] is not None
    assert [a["action"] for a in alert["actions"]] == ["notify alert.opened", "notify alert.closed"]


def test_a_model_that_went_silent_fires_volume_zero_and_resolves_when_traffic_returns(mon, cli):
    configure(mon, rule("volume == 0", times=2))
    traffic(mon, [(6, {}), (5, {})], n=100)
    report, _ = check(cli)  # hours 4, 3, 2 and 1 ago have passed with no prediction
    assert len(report["alerts_opened"]) == 1
    traffic(mon, [(0, {})], n=100, seed=5)
    report, _ = check(cli)
    assert len(report["alerts_closed"]) == 1


def test_bad_rules_are_one_sentence(mon, cli):
    configure(mon, rule("drift_share >> 0.3"))
    done = cli("monitor", "check")
    assert done.returncode == 1
    assert "monitor rule 1: cannot read the condition 'drift_share >> 0.3'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
