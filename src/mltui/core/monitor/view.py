"""What `monitor show`, `monitor alerts` and the Monitor pane display: windows with their health,
coarser windows merged on demand, per-feature drift over time, and alerts."""

from __future__ import annotations

import copy
import math
from typing import Any

from mltui.base.errors import MltuiError
from mltui.core.monitor import state
from mltui.core.monitor.config import load, seconds
from mltui.core.monitor.health import health
from mltui.core.monitor.reference import Reference, reference_for
from mltui.core.monitor.windows import merge
from mltui.core.reader import open_reader
from mltui.core.workspace import Workspace


def _windows(conn, ws: Workspace, model: str, window: str | None, last: int) -> list[dict[str, Any]]:
    cfg = load(ws)
    rows = state.windows(conn, model, cfg.window)
    if window:
        size = seconds(window, "--window")
        if size < cfg.window or size % cfg.window:
            raise MltuiError(f"--window must be a whole multiple of the checked window ({cfg.window:g}s).")
        merged: dict[tuple[str, float], dict] = {}
        for r in rows:
            key = (r["version"], (r["start"] // size) * size)
            if key in merged:
                merge(merged[key]["data"], copy.deepcopy(r["data"]))
                merged[key]["n"] += r["n"]
            else:
                merged[key] = {"version": key[0], "start": key[1], "n": r["n"], "data": copy.deepcopy(r["data"])}
        rows = sorted(merged.values(), key=lambda r: (r["start"], r["version"]))
    return rows[-last:] if last > 0 else rows


def _reference(ws, conn, cfg, model: str, version: str, cache: dict) -> Reference:
    if (model, version) not in cache:
        try:
            cache[(model, version)] = reference_for(ws, conn, model, None if version == "?" else version, cfg.model(model))
        except MltuiError:
            cache[(model, version)] = Reference("none", {}, None, None)
    return cache[(model, version)]


QUALITY = ("accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse")


def evaluated(conn, model: str, version: str, cache: dict) -> dict[str, float]:
    """The model version's own evaluation (its eval run, else its training run) for each quality
    metric it logged under the same name, e.g. {"accuracy": 0.91}."""
    if (model, version) not in cache:
        from mltui.core.models.promotion import metric_of
        from mltui.core.models.registry import resolve

        found: dict[str, float] = {}
        try:
            mv = resolve(conn, f"{model}@{version}")
        except MltuiError:
            mv = None
        if mv is not None:
            for key in QUALITY:
                value, _ = metric_of(conn, mv, key)
                if value is not None:
                    found[key] = value
        cache[(model, version)] = found
    return cache[(model, version)]


def history(ws: Workspace, model: str, window: str | None = None, last: int = 24) -> list[dict[str, Any]]:
    """Windows newest last, each with its health and, beside live quality, the version's own evaluation."""
    cfg = load(ws)
    conn = open_reader(ws)
    try:
        refs: dict = {}
        evals: dict = {}
        out = []
        for r in _windows(conn, ws, model, window, last):
            ref = _reference(ws, conn, cfg, model, r["version"], refs)
            h = health(r["data"], ref, cfg.model(model).task)
            out.append({"version": r["version"], "start": r["start"], "n": r["n"], "reference": ref.label,
                        "health": h, "evaluated": _judged(conn, model, {"version": r["version"], "health": h},
                                                          cfg.model(model).eval_metric, evals)})
        return out
    finally:
        conn.close()


def alert_list(ws: Workspace, model: str | None = None) -> list[dict[str, Any]]:
    conn = open_reader(ws)
    try:
        items = state.alerts(conn, model)
    finally:
        conn.close()
    return sorted(items, key=lambda a: (a["closed"] is not None, -a["opened"]))


def overview(ws: Workspace, last: int = 24, conn=None) -> dict[str, Any]:
    """For the Monitor pane: each watched model's windows (health), features by drift (worst in the last
    window first), quality over time, the version's own evaluation, and open alerts with how their
    retraining stands. `conn`: a connection to read on (the pane's reader; left open), else one of its own."""
    cfg = load(ws)
    own = conn is None
    if own:
        conn = open_reader(ws)
    try:
        names = sorted(set(state.models(conn)) | set(cfg.models))
        models = []
        refs: dict = {}
        evals: dict = {}
        for name in names:
            rows = _windows(conn, ws, name, None, last)
            points = []
            for r in rows:
                ref = _reference(ws, conn, cfg, name, r["version"], refs)
                points.append({"start": r["start"], "version": r["version"],
                               "health": health(r["data"], ref, cfg.model(name).task), "data": r["data"],
                               "reference": ref})
            features: dict[str, list[float | None]] = {}
            for i, p in enumerate(points):
                for f, d in p["health"]["features"].items():
                    features.setdefault(f, [None] * len(points))[i] = d["psi"]
            order = sorted(features, key=lambda f: (-(features[f][-1] or 0.0), f))
            quality = {key: [p["health"].get(key) for p in points] for key in QUALITY
                       if any(p["health"].get(key) is not None for p in points)}
            judged = _judged(conn, name, points[-1] if points else None, cfg.model(name).eval_metric, evals)
            models.append({"model": name, "windows": points, "features": {f: features[f] for f in order},
                           "quality": quality, "evaluated": judged, "primary": primary_metric(quality),
                           "alerts": [_with_retraining(conn, a) for a in state.open_alerts(conn, name)]})
        return {"models": models, "last_check": state.last_check(conn), "window": cfg.window}
    finally:
        if own:
            conn.close()


def primary_metric(quality: dict[str, list]) -> str | None:
    """The quality metric a model is shown by on one line: accuracy (classification) or RMSE
    (regression), else the first the windows have."""
    for key in ("accuracy", "rmse"):
        if key in quality:
            return key
    return next(iter(quality), None)


def _judged(conn, model: str, point: dict | None, eval_metric: str | None, cache: dict) -> dict[str, float]:
    """The version's own evaluation beside live quality: each quality metric its eval (or training) run
    logged under the same name, and, where `[monitor.models.NAME] eval_metric` names another metric
    ("val/acc"), that one beside live accuracy (classification) or RMSE (regression)."""
    if point is None:
        return {}
    judged = dict(evaluated(conn, model, point["version"], cache))
    if eval_metric and eval_metric not in QUALITY:
        from mltui.core.models.promotion import metric_of
        from mltui.core.models.registry import resolve

        try:
            value, _ = metric_of(conn, resolve(conn, f"{model}@{point['version']}"), eval_metric)
        except MltuiError:
            value = None
        if value is not None:
            judged["rmse" if point["health"].get("task") == "regression" else "accuracy"] = value
    return judged


def _with_retraining(conn, alert: dict[str, Any]) -> dict[str, Any]:
    """The alert with its retraining run's status now ("retrain_status") and its request's ("request_status")."""
    from mltui.store.runs import run_status

    out = dict(alert)
    out["retrain_status"] = run_status(conn, alert["retrain_run"]) if alert.get("retrain_run") else None
    out["request_status"] = None
    if alert.get("request_id"):
        from mltui.core.models.promotion import get_request

        try:
            out["request_status"] = get_request(conn, alert["request_id"])["status"]
        except MltuiError:
            pass  # the request is gone from the store
    return out


# -- shaping for the screen (the pane draws these; kept here, without Textual, and tested) ----------
def spark_levels(values: list[float | None], top: float, bottom: float = 0.0, levels: int = 8) -> list[int | None]:
    """Each value as a height 0..levels-1 on the fixed scale `bottom`..`top` (values outside it are
    clipped), None where a window has no value. A fixed scale (not each series' own maximum) lets two
    features' sparklines, or two refreshes of one, be compared by eye: a flat line of small PSI stays low."""
    out: list[int | None] = []
    span = top - bottom
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        else:
            share = max(0.0, min(1.0, (v - bottom) / span)) if span > 0 else 0.0
            out.append(min(levels - 1, int(share * levels)))
    return out


def quality_scale(values: list[float | None], judged: float | None) -> tuple[float, float]:
    """(bottom, top) for a quality metric's sparkline: the span of its windows and its evaluation, widened
    to at least 0.1 so a metric that wobbles by 0.001 does not look like it swings."""
    seen = [v for v in values if v is not None and not math.isnan(v)] + ([judged] if judged is not None else [])
    if not seen:
        return 0.0, 1.0
    lo, hi = min(seen), max(seen)
    if hi - lo < 0.1:
        mid = (hi + lo) / 2
        lo, hi = mid - 0.05, mid + 0.05
    return lo, hi


def _number(x: float) -> str:
    return f"{x:.3g}"


def compare_bins(spec: dict[str, Any], live: dict[str, Any] | None, rows: int = 12) -> list[dict[str, Any]]:
    """A feature's reference histogram beside the live one, as at most `rows` rows of {"label",
    "reference", "live"} (shares of each side's total, 0..1).

    Numbers: the reference's quantile bins (each holds about the same share of the reference) merged
    into `rows` neighbouring groups, labelled by their edges ("< 25.1", "25.1 - 31.4", ">= 60.2").
    Categories: the reference's most common categories, then "(other)" for the rest and "(unseen)" for
    values the reference never had (the window's last bucket). Missing values are in neither side."""
    ref_counts = list(spec.get("counts") or [])
    live_counts = list((live or {}).get("counts") or [])
    if spec.get("kind") == "number":
        edges = list(spec.get("edges") or [])
        n_bins = len(edges) + 1
        ref_counts = (ref_counts + [0] * n_bins)[:n_bins]
        live_counts = (live_counts + [0] * n_bins)[:n_bins]
        size = max(1, math.ceil(n_bins / max(1, rows)))
        groups = [(i, min(n_bins, i + size)) for i in range(0, n_bins, size)]
        out = []
        for lo, hi in groups:  # bins lo..hi-1; bin i holds [edges[i-1], edges[i])
            if lo == 0 and hi == n_bins:
                label = "all"
            elif lo == 0:
                label = f"< {_number(edges[hi - 1])}"
            elif hi == n_bins:
                label = f">= {_number(edges[lo - 1])}"
            else:
                label = f"{_number(edges[lo - 1])} - {_number(edges[hi - 1])}"
            out.append({"label": label, "ref": sum(ref_counts[lo:hi]), "live": sum(live_counts[lo:hi])})
    else:
        names = list(spec.get("categories") or [])
        k = len(names)
        ref_counts = (ref_counts + [0] * k)[:k]
        live_counts = (live_counts + [0] * (k + 1))[:k + 1]
        keep = k if k <= rows - 1 else rows - 2  # room for "(other)" and "(unseen)"
        order = sorted(range(k), key=lambda i: (-ref_counts[i], i))
        shown, rest = order[:keep], order[keep:]
        out = [{"label": names[i], "ref": ref_counts[i], "live": live_counts[i]} for i in shown]
        if rest:
            out.append({"label": "(other)", "ref": sum(ref_counts[i] for i in rest),
                        "live": sum(live_counts[i] for i in rest)})
        if live_counts[k]:
            out.append({"label": "(unseen)", "ref": 0, "live": live_counts[k]})
    ref_total = sum(r["ref"] for r in out) or 1
    live_total = sum(r["live"] for r in out) or 1
    return [{"label": r["label"], "reference": r["ref"] / ref_total, "live": r["live"] / live_total} for r in out]


def feature_histograms(entry: dict[str, Any], feature: str, rows: int = 12) -> dict[str, Any] | None:
    """What the pane's histogram view shows for `feature` of a model in `overview`: its last window
    that has the feature, compared with that window's reference. None when no window has it."""
    for point in reversed(entry["windows"]):
        ref: Reference = point["reference"]
        spec = ref.features.get(feature)
        if spec is None:
            continue
        live = point["data"]["features"].get(feature) or {}
        drift = point["health"]["features"].get(feature) or {}
        return {"feature": feature, "model": entry["model"], "version": point["version"], "start": point["start"],
                "reference": ref.label, "kind": spec.get("kind"), "reference_n": spec.get("n", 0),
                "live_n": sum(live.get("counts") or []), "missing": live.get("missing", 0),
                "test": drift.get("test"), "score": drift.get("score"), "psi": drift.get("psi"),
                "drifted": bool(drift.get("drifted")), "rows": compare_bins(spec, live, rows)}
    return None
