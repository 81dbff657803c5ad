"""The data a model is watched against: by default the dataset version its training run used
(lineage), else the one `[monitor.models.NAME] reference` names; summarised once per content into
what windows are compared with (quantile bins, category counts, a sorted sample for KS)."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from mltui.base.errors import MltuiError
from mltui.core.monitor.config import ModelSettings
from mltui.core.workspace import Workspace
from mltui.store.connection import write_tx

BINS = 40  # quantile bins of a numeric feature
MAX_CATEGORIES = 1000
SAMPLE = 5000  # reference values kept for KS on small windows
SUMMARY_VERSION = 2


@dataclass
class Reference:
    label: str  # "churn@v2 (train.csv)"
    features: dict[str, dict[str, Any]]
    target: dict[str, Any] | None
    target_name: str | None


def _how_to_set(model: str) -> str:
    return (f"set one in .mltui/config.toml: [monitor.models.{model}] reference = \"DATASET@VERSION\" "
            "(and target = \"COLUMN\")")


def _from_lineage(conn: sqlite3.Connection, model: str, version: str | None) -> tuple[str, str] | None:
    """(dataset, version id) that the model version's training run learned from."""
    from mltui.core.models.registry import production, resolve

    try:
        mv = resolve(conn, f"{model}@{version}") if version else production(conn, model)
    except MltuiError:
        mv = None
    if mv is None:
        try:
            mv = resolve(conn, model)
        except MltuiError:
            return None
    if not mv.run_id:
        return None
    row = conn.execute("SELECT i.dataset, i.version FROM run_inputs i JOIN dataset_versions v ON v.dataset = i.dataset "
                       "AND v.id = i.version WHERE i.run_id = ? ORDER BY i.recorded LIMIT 1", (mv.run_id,)).fetchone()
    return (row[0], row[1]) if row else None


def locate_table(ws: Workspace, conn: sqlite3.Connection, model: str, version: str | None, settings: ModelSettings):
    """(label, path, format) of the reference table, or one sentence saying how to set one."""
    from mltui.core.data.columns import format_of
    from mltui.core.data.hashing import show
    from mltui.core.data.tables import locate, pick, tables
    from mltui.core.data.versions import resolve

    if settings.reference:
        spec = settings.reference
    else:
        found = _from_lineage(conn, model, version)
        if found is None:
            raise MltuiError(f"Model {model} has no reference data: its training run recorded no dataset; "
                             + _how_to_set(model) + ".")
        spec = f"{found[0]}@{found[1]}"
    try:
        dv = resolve(conn, spec)
    except MltuiError as exc:
        raise MltuiError(f"The reference of model {model} ({spec}) cannot be found: {exc}") from None
    if settings.file:
        entry = pick(conn, dv, settings.file)
    else:
        candidates = tables(conn, dv)
        if not candidates:
            raise MltuiError(f"The reference {dv.label} of model {model} holds no table (CSV, Parquet, JSON lines).")
        named = [e for e in candidates if "train" in show(e.path).lower()]
        entry = max(named or candidates, key=lambda e: e.size)
    path = locate(ws, conn, dv, entry)
    return f"{dv.label} ({show(entry.path)})", str(path), format_of(show(entry.path)) or "", entry.sha256


def summarise(path: str, fmt: str, target: str | None) -> tuple[dict[str, dict], dict | None, str | None]:
    import numpy as np

    from mltui.core.data.columns import kind_of, scan

    frame = scan(path, fmt).collect()
    if target is None:
        target = next((c for c in ("target", "label", "y", "class") if c in frame.columns), None)
    features: dict[str, dict] = {}
    target_summary = None
    for name in frame.columns:
        column = frame.get_column(name)
        summary = summarise_column(column, kind_of(column.dtype), np)
        if summary is None:
            continue
        if name == target:
            target_summary = summary
        else:
            features[name] = summary
    return features, target_summary, target


def summarise_column(column, kind: str, np) -> dict | None:
    if kind == "number":
        values = column.cast(float, strict=False).drop_nulls().to_numpy()
        values = values[np.isfinite(values)]
        if len(values) == 0:
            return None
        qs = np.quantile(values, np.linspace(0, 1, BINS + 1)[1:-1])
        edges = sorted({float(q) for q in qs})
        counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
        rng = np.random.default_rng(0)
        sample = values if len(values) <= SAMPLE else rng.choice(values, SAMPLE, replace=False)
        low, high = values[values < edges[0]], values[values >= edges[-1]]
        tails = [float(low.mean()) if len(low) else None, float(high.mean()) if len(high) else None]
        return {"kind": "number", "n": int(len(values)), "edges": edges, "counts": counts.tolist(), "tails": tails,
                "min": float(values.min()), "max": float(values.max()), "mean": float(values.mean()),
                "std": float(values.std()), "sample": np.sort(sample).tolist()}
    counts = column.drop_nulls().cast(str).value_counts(sort=True)
    if counts.height == 0:
        return None
    names = counts.get_column(counts.columns[0]).to_list()[:MAX_CATEGORIES]
    n = counts.get_column(counts.columns[1]).to_list()[:MAX_CATEGORIES]
    return {"kind": "category", "n": int(sum(n)), "categories": names, "counts": n}


def reference_for(ws: Workspace, conn: sqlite3.Connection, model: str, version: str | None,
                  settings: ModelSettings) -> Reference:
    """The reference summary, computed once per table content and target and kept in the store."""
    label, path, fmt, sha = locate_table(ws, conn, model, version, settings)
    key = f"{sha}:{fmt}:{settings.target or ''}:{SUMMARY_VERSION}"
    row = conn.execute("SELECT summary FROM monitor_refs WHERE key = ?", (key,)).fetchone()
    if row:
        data = json.loads(row[0])
    else:
        try:
            features, target, target_name = summarise(path, fmt, settings.target)
        except Exception as exc:  # polars' own errors on a damaged file: one sentence
            raise MltuiError(f"The reference {label} of model {model} cannot be read: {exc}") from None
        data = {"features": features, "target": target, "target_name": target_name}
        with write_tx(conn, ws.db_path):
            conn.execute("INSERT OR REPLACE INTO monitor_refs(key, label, summary, created) VALUES (?,?,?,?)",
                         (key, label, json.dumps(data), time.time()))
    return Reference(label, data["features"], data["target"], data["target_name"])
