"""A window's health from its aggregate and the reference: traffic, data quality, drift per feature
(the test that suits the window's size, PSI beside it), the share of drifted features, drift of the
predictions, and quality once labels are in. The numbers rules are written against come from here."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mltui.core.monitor import stats
from mltui.core.monitor.reference import Reference
from mltui.core.monitor.windows import LATENCY, LATENCY_LAYOUT

TASKS = ("classification", "regression")


def feature_drift(spec: Mapping[str, Any], agg: Mapping[str, Any], n: int) -> dict[str, Any] | None:
    counts = agg.get("counts")
    seen = sum(counts) if counts else 0
    if not seen:
        return None
    if spec["kind"] == "number":
        psi = stats.psi_of(spec["counts"], counts)
        if seen <= stats.SMALL and "values" in agg:
            d, p = stats.ks_test(agg["values"], spec["sample"], spec["n"])
            out = {"test": "ks", "score": d, "p_value": p, "drifted": bool(p < stats.P_VALUE)}
        else:
            sums = agg.get("tails", [0.0, 0.0])
            cur_tails = (sums[0] / counts[0] if counts[0] else None, sums[1] / counts[-1] if counts[-1] else None)
            w = stats.wasserstein_normed(spec["edges"], spec["counts"], counts, tuple(spec["tails"]), cur_tails,
                                         spec["std"])
            out = {"test": "wasserstein", "score": w, "p_value": None,
                   "drifted": bool(not math.isnan(w) and w > stats.DISTANCE)}
    else:
        ref = list(spec["counts"]) + [0]  # the window's last bucket: categories the reference never had
        psi = stats.psi_of(ref, counts)
        if seen <= stats.SMALL:
            chi, p = stats.chi2_test(ref, counts)
            out = {"test": "chi2", "score": chi, "p_value": p, "drifted": bool(p < stats.P_VALUE)}
        else:
            js = stats.js_distance(ref, counts)
            out = {"test": "jensen-shannon", "score": js, "p_value": None,
                   "drifted": bool(not math.isnan(js) and js > stats.DISTANCE)}
    out["psi"] = psi
    out["n"] = seen
    return out


def task_of(window: Mapping[str, Any], configured: str | None) -> str:
    if configured in TASKS:
        return configured
    return "regression" if window["output_sum"][0] and not window["outputs"] else "classification"


def quality(window: Mapping[str, Any], task: str) -> dict[str, float]:
    q = window.get("quality") or {}
    out: dict[str, float] = {}
    if task == "regression":
        n, abs_sum, sq_sum = q.get("errors", [0, 0.0, 0.0])
        if n:
            out = {"mae": abs_sum / n, "rmse": math.sqrt(sq_sum / n)}
        return out
    confusion = q.get("confusion") or {}
    total = sum(confusion.values())
    if not total:
        return out
    pairs = {tuple(k.split("\t", 1)): v for k, v in confusion.items()}
    classes = sorted({c for pair in pairs for c in pair})
    right = sum(v for (label, pred), v in pairs.items() if label == pred)
    precision, recall, f1 = [], [], []
    for c in classes:
        tp = pairs.get((c, c), 0)
        predicted = sum(v for (_, p), v in pairs.items() if p == c)
        actual = sum(v for (lab, _), v in pairs.items() if lab == c)
        pr = tp / predicted if predicted else 0.0
        rc = tp / actual if actual else 0.0
        precision.append(pr)
        recall.append(rc)
        f1.append(2 * pr * rc / (pr + rc) if pr + rc else 0.0)
    out = {"accuracy": right / total, "precision": sum(precision) / len(classes),
           "recall": sum(recall) / len(classes), "f1": sum(f1) / len(classes)}
    auc = roc_auc(q.get("pos"), q.get("neg"))
    if auc is not None:
        out["roc_auc"] = auc
    return out


def roc_auc(pos: list[int] | None, neg: list[int] | None) -> float | None:
    """ROC AUC from score histograms of positives and negatives (ties within a bin count half)."""
    if not pos or not neg or not sum(pos) or not sum(neg):
        return None
    below = 0.0
    total = 0.0
    for p, n in zip(pos, neg):
        total += p * (below + n / 2)
        below += n
    return total / (sum(pos) * sum(neg))


def health(window: Mapping[str, Any], ref: Reference, task: str | None = None) -> dict[str, Any]:
    """Everything a window says, as flat numbers for rules and nested detail for people."""
    n = window["n"]
    same_bins = window.get("latency_layout") == LATENCY_LAYOUT
    latency = [window["latency"].get(str(i), 0) if same_bins else 0 for i in range(len(LATENCY) - 1)]
    out: dict[str, Any] = {"volume": n, "features": {}}
    for q, name in ((0.5, "latency_p50"), (0.95, "latency_p95"), (0.99, "latency_p99")):
        out[name] = stats.percentile(LATENCY, latency, q)
    cells = missing = unseen = out_of_range = 0
    drifted = []
    absent_everywhere = []
    for name, spec in ref.features.items():
        agg = window["features"].get(name) or {"absent": n}
        if n and agg.get("absent", 0) >= n:
            absent_everywhere.append(name)  # the logs never carry it: a schema difference, not missing values
            continue
        cells += n
        missing += agg.get("missing", 0) + agg.get("absent", 0)
        unseen += agg.get("unseen", 0)
        out_of_range += agg.get("out_of_range", 0)
        d = feature_drift(spec, agg, n)
        if d is None:
            continue
        d["missing"] = agg.get("missing", 0) + agg.get("absent", 0)
        out["features"][name] = d
        if d["drifted"]:
            drifted.append(name)
    out["missing_share"] = missing / cells if cells else 0.0
    out["unseen_share"] = unseen / cells if cells else 0.0
    out["out_of_range_share"] = out_of_range / cells if cells else 0.0
    tested = len(out["features"])
    out["drift_share"] = len(drifted) / tested if tested else 0.0
    out["drifted"] = sorted(drifted, key=lambda f: -out["features"][f]["psi"])
    out["schema"] = {"extra": sorted(window["extra"]), "absent": sorted(absent_everywhere)}
    out["prediction_drift"] = _prediction_drift(window, ref)
    kind = task_of(window, task)
    out["task"] = kind
    out["labelled"] = window.get("labelled", 0)
    out.update(quality(window, kind))
    return out


def _prediction_drift(window: Mapping[str, Any], ref: Reference) -> dict[str, Any] | None:
    target = ref.target
    if target is None or not window["outputs"]:
        return None
    if target["kind"] == "category":
        index = {c: i for i, c in enumerate(target["categories"])}
        counts = [0] * (len(index) + 1)
        for value, c in window["outputs"].items():
            counts[index.get(value, len(index))] += c
        return feature_drift(target, {"counts": counts}, window["n"])
    counts = [window["outputs"].get(str(i), 0) for i in range(len(target["edges"]) + 1)]
    return feature_drift(target, {"counts": counts}, window["n"])


def metric_values(h: Mapping[str, Any]) -> dict[str, float]:
    """The names a rule's `when` can use, with their values in this window."""
    values: dict[str, float] = {}
    for key in ("volume", "drift_share", "missing_share", "unseen_share", "out_of_range_share", "latency_p50",
                "latency_p95", "latency_p99", "accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse",
                "labelled"):
        if h.get(key) is not None:
            values[key] = float(h[key])
    for name, d in h.get("features", {}).items():
        values[f"drift.{name}"] = d["psi"]
        values[f"psi.{name}"] = d["psi"]
        values[f"drifted.{name}"] = 1.0 if d["drifted"] else 0.0
    if h.get("prediction_drift"):
        values["prediction_drift"] = h["prediction_drift"]["psi"]
    values["schema_changes"] = float(len(h.get("schema", {}).get("extra", [])))
    return values
