"""What `monitor show`, `monitor alerts` and the Monitor pane display: windows with their health,
coarser windows merged on demand, per-feature drift over time, and alerts."""

from __future__ import annotations

import copy
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
            out.append({"version": r["version"], "start": r["start"], "n": r["n"], "reference": ref.label,
                        "health": health(r["data"], ref, cfg.model(model).task),
                        "evaluated": evaluated(conn, model, r["version"], evals)})
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


def overview(ws: Workspace, last: int = 24) -> dict[str, Any]:
    """For the Monitor pane: each watched model's windows (health), features by drift, open alerts."""
    from mltui.core.monitor.config import load as load_config

    cfg = load_config(ws)
    conn = open_reader(ws)
    try:
        names = sorted(set(state.models(conn)) | set(cfg.models))
        models = []
        refs: dict = {}
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
            order = sorted(features, key=lambda f: -(features[f][-1] or 0.0))
            models.append({"model": name, "windows": points, "features": {f: features[f] for f in order},
                           "alerts": state.open_alerts(conn, name)})
        return {"models": models, "last_check": state.last_check(conn), "window": cfg.window}
    finally:
        conn.close()
