"""`mltui monitor check`: read the prediction logs since the last check, fold them into windows per
model version, join labels that arrived (late ones included), then apply the rules."""

from __future__ import annotations

import math
import os
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mltui.base.errors import MltuiError
from mltui.core.monitor import state
from mltui.core.monitor.config import MonitorConfig, load
from mltui.core.monitor.records import Chunk, _text, log_files, read_new
from mltui.core.monitor.reference import Reference, reference_for
from mltui.core.monitor.windows import aggregate, empty
from mltui.core.workspace import Workspace

SCORE_BINS = 100


@dataclass
class Report:
    records: int = 0
    malformed: int = 0
    labels: int = 0
    labels_waiting: int = 0
    windows: int = 0
    problems: dict[str, str] = field(default_factory=dict)  # model -> one sentence
    schema_changes: dict[str, list[str]] = field(default_factory=dict)  # model -> features the reference lacks
    alerts_opened: list[dict] = field(default_factory=list)
    alerts_closed: list[dict] = field(default_factory=list)
    actions: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Checker:
    def __init__(self, ws: Workspace, conn: sqlite3.Connection, only: str | None = None,
                 progress: Callable[[int, int], None] | None = None) -> None:
        self.ws = ws
        self.conn = conn
        self.cfg: MonitorConfig = load(ws)
        self.only = only
        self.progress = progress
        self.refs: dict[tuple[str, str], Reference | None] = {}
        self.versions: dict[str, str] = {}
        self.report = Report()
        self.ids_dir = ws.root / "monitor-ids"

    # -- models and references --------------------------------------------------------------------
    def version_of(self, spec: str) -> tuple[str, str]:
        """("classifier", "3") from "classifier@3", "classifier@production" or "classifier"."""
        if spec not in self.versions:
            name, _, version = spec.partition("@")
            if not version.isdigit():
                from mltui.core.models.registry import production, resolve

                try:
                    mv = resolve(self.conn, spec) if version else production(self.conn, name)
                except MltuiError:
                    mv = None
                version = str(mv.version) if mv is not None else (version or "?")
            self.versions[spec] = version
        return spec.partition("@")[0], self.versions[spec]

    def reference(self, model: str, version: str) -> Reference:
        key = (model, version)
        if key not in self.refs:
            try:
                self.refs[key] = reference_for(self.ws, self.conn, model, None if version == "?" else version,
                                               self.cfg.model(model))
            except MltuiError as exc:
                self.report.problems[model] = str(exc)
                self.refs[key] = None
        return self.refs[key] or Reference("none", {}, None, None)

    # -- the check --------------------------------------------------------------------------------
    def run(self) -> Report:
        started = time.monotonic()
        files = log_files(self.cfg.logs)
        offsets = state.offsets(self.conn)
        total = sum(max(0, _size(f) - offsets.get(str(f), (None, 0))[1]) for f in files)
        done = 0
        labels: list[tuple[str, str, str]] = []
        for path in files:
            for chunk in read_new(path, offsets.get(str(path))):
                self._fold(chunk)
                labels += chunk.labels
                done = min(total, done + (chunk.end - offsets.get(str(path), (None, 0))[1]))
                if self.progress:
                    self.progress(done, total)
        self._join_labels(labels)
        from mltui.core.monitor.rules import apply_rules

        apply_rules(self)
        self.report.seconds = time.monotonic() - started
        state.record_check(self.conn, self.ws.db_path, self.report.records, self.report.malformed,
                           self.report.labels, {"problems": self.report.problems,
                                                "schema_changes": self.report.schema_changes})
        return self.report

    def _fold(self, chunk: Chunk) -> None:
        import numpy as np
        import polars as pl

        self.report.malformed += chunk.malformed
        frame = chunk.predictions
        windows: dict[tuple[str, str, float], dict] = {}
        id_rows = []
        if frame.height:
            w = self.cfg.window
            frame = frame.with_columns((pl.col("ts") / w).floor().mul(w).alias("__start"))
            for (spec, start), group in frame.group_by(["model", "__start"], maintain_order=True):
                model, version = self.version_of(spec)
                if self.only and model != self.only:
                    continue
                ref = self.reference(model, version)
                agg = aggregate(group, ref, np)
                if agg["extra"]:
                    changed = self.report.schema_changes.setdefault(model, [])
                    changed += [f for f in agg["extra"] if f not in changed]
                windows[(model, version, float(start))] = agg
                self.report.records += group.height
                id_rows.append((model, version, float(start), group))
        self._keep_ids(id_rows)
        state.save_chunk(self.conn, self.ws.db_path, self.cfg.window, windows, (chunk.path, chunk.inode, chunk.end))
        self.report.windows += len(windows)

    # -- labels -----------------------------------------------------------------------------------
    def _keep_ids(self, groups) -> None:
        """Each prediction's id, window, output and score, in a Parquet file per chunk and model, so a
        label that comes later finds the window it belongs to."""
        import polars as pl

        by_model: dict[str, list] = {}
        for model, version, start, group in groups:
            if "id" not in group.columns:
                continue
            part = group.filter(pl.col("id").is_not_null()).select(
                pl.col("id").cast(pl.Utf8),
                pl.lit(version).alias("version"),
                pl.lit(start).alias("start"),
                _output_text(group).alias("output"),
                _output_value(group).alias("value"),
                _score(group, self.cfg.model(model).positive).alias("score"),
            )
            if part.height:
                by_model.setdefault(model, []).append(part)
        for model, parts in by_model.items():
            folder = self.ids_dir / _safe(model)
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{time.time():.6f}-{uuid.uuid4().hex[:8]}.parquet"
            temp = target.with_suffix(".part")
            pl.concat(parts, how="vertical_relaxed").write_parquet(temp)
            os.replace(temp, target)

    def _join_labels(self, new: list[tuple[str, str, str]]) -> None:
        import polars as pl

        pending = state.waiting(self.conn) + new
        self.report.labels += len(new)
        if not pending:
            return
        models = {m for m, _, _ in pending if m} | {p.name for p in self.ids_dir.glob("*") if p.is_dir()}
        matched: set[tuple[str, str]] = set()
        updates: dict[tuple[str, str, float], dict] = {}
        for model in sorted(models):
            if self.only and model != self.only:
                continue
            files = sorted((self.ids_dir / _safe(model)).glob("*.parquet"))
            if not files:
                continue
            wanted = {i: lab for m, i, lab in pending if m in ("", model)}
            if not wanted:
                continue
            ids = pl.scan_parquet(files).filter(pl.col("id").is_in(list(wanted))).collect()
            if not ids.height:
                continue
            settings = self.cfg.model(model)
            for pid, version, start, output, value, score in ids.unique("id", keep="last").iter_rows():
                label = wanted[pid]
                key = (model, version, start)
                win = updates.setdefault(key, {**empty(), "n": 0})
                _label_into(win, label, output, value, score, settings)
                matched.add((model, pid))
        if updates:
            state.save_chunk(self.conn, self.ws.db_path, self.cfg.window, updates, None)
        matched_ids = {i for _, i in matched}

        def resolved(m: str, i: str) -> bool:  # a label that names no model matches any model's prediction
            return (m, i) in matched or (m == "" and i in matched_ids)

        horizon = time.time() - self.cfg.label_horizon
        state.drop_waiting(self.conn, self.ws.db_path, [(m, i) for m, i, _ in pending if resolved(m, i)],
                           older_than=horizon)
        still = [(m, i, lab) for m, i, lab in new if not resolved(m, i)]
        if still:
            state.add_waiting(self.conn, self.ws.db_path, still)
        self.report.labels_waiting = len(state.waiting(self.conn))


def _label_into(win: dict, label: str, output: str | None, value: float | None, score: float | None,
                settings) -> None:
    """One labelled prediction into its window's quality counts: errors for regression (a float output),
    else the confusion matrix, and the positive class's score by truth for ROC AUC."""
    win["labelled"] += 1
    q = win["quality"]
    try:
        truth = float(label)
    except ValueError:
        truth = None
    regression = settings.task == "regression" or (settings.task is None and value is not None)
    if regression:
        if value is not None and truth is not None:
            n, abs_sum, sq_sum = q.get("errors", [0, 0.0, 0.0])
            q["errors"] = [n + 1, abs_sum + abs(value - truth), sq_sum + (value - truth) ** 2]
        return
    key = f"{label}\t{output}"
    q.setdefault("confusion", {})[key] = q.get("confusion", {}).get(key, 0) + 1
    if score is not None and not math.isnan(score):
        positive = (label == settings.positive) if settings.positive else label.lower() in ("1", "true", "yes")
        q.setdefault("pos", [0] * SCORE_BINS)
        q.setdefault("neg", [0] * SCORE_BINS)
        q["pos" if positive else "neg"][min(SCORE_BINS - 1, max(0, int(score * SCORE_BINS)))] += 1


def _output_text(group):
    import polars as pl

    col = group.get_column("output")
    if col.dtype.is_float():
        return pl.col("output").map_elements(_text, return_dtype=pl.Utf8)
    if col.dtype == pl.Boolean:
        return pl.when(pl.col("output")).then(pl.lit("true")).otherwise(pl.lit("false"))
    return pl.col("output").cast(pl.Utf8, strict=False)


def _output_value(group):
    import polars as pl

    col = group.get_column("output")  # a float output is a regression's number; ints are classes
    return pl.col("output").cast(pl.Float64) if col.dtype.is_float() else pl.lit(None, pl.Float64)


def _score(group, positive: str | None):
    """One number per record: the positive class's probability."""
    import polars as pl

    col = group.get_column("scores") if "scores" in group.columns else None
    if col is None or col.dtype == pl.Null:
        return pl.lit(None, pl.Float64)
    if col.dtype.is_numeric():
        return pl.col("scores").cast(pl.Float64)
    if isinstance(col.dtype, pl.Struct):
        names = [f.name for f in col.dtype.fields]
        pick = positive if positive in names else next((n for n in ("1", "true", "yes", "positive") if n in names),
                                                       sorted(names)[-1] if names else None)
        return pl.col("scores").struct.field(pick).cast(pl.Float64, strict=False) if pick else pl.lit(None, pl.Float64)
    if col.dtype == pl.Utf8:  # scores kept as JSON text by the line-by-line reader
        def positive_score(text):
            import json

            try:
                d = json.loads(text)
            except (TypeError, ValueError):
                return None
            if isinstance(d, (int, float)):
                return float(d)
            if not isinstance(d, dict) or not d:
                return None
            key = positive if positive in d else next((n for n in ("1", "true", "yes", "positive") if n in d),
                                                      sorted(d)[-1])
            v = d.get(key)
            return float(v) if isinstance(v, (int, float)) else None
        return pl.col("scores").map_elements(positive_score, return_dtype=pl.Float64)
    return pl.lit(None, pl.Float64)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "model"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def check(ws: Workspace, only: str | None = None, progress: Callable[[int, int], None] | None = None) -> Report:
    from mltui.core.reader import open_writer

    conn = open_writer(ws)
    try:
        return Checker(ws, conn, only, progress).run()
    finally:
        conn.close()
