"""What a review of a promotion request shows: the request (its gates as they hold now while it is
open), and the candidate beside the version in production: metrics, params, the data each was
evaluated and trained on, its code, and its metric curves. One read, for a screen's worker."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field

from mltui.core.models.registry import ModelVersion
from mltui.core.workspace import Workspace

MAX_CURVES = 12  # metric curves read per side (the first keys in order)


@dataclass
class Side:
    """One version of the review (None: nothing in production), and what it was judged on."""

    version: ModelVersion | None
    metrics: dict[str, float | None] = field(default_factory=dict)  # the newest eval run's value wins
    params: dict = field(default_factory=dict)  # of its training run
    data: dict[str, str] = field(default_factory=dict)  # dataset -> version its eval was run on
    curves: dict[str, list[float]] = field(default_factory=dict)  # key -> every value of its training run
    commit: str = "-"
    train_data: str = "-"  # the dataset versions its training run used


@dataclass
class Review:
    request: dict  # as promotion.get_request, the gates re-evaluated while it is open
    candidate: Side
    production: Side  # version None when nothing is in production (or the candidate is)
    signing: dict | None = None  # while open: who would decide and with which key (signing_plan)


def signing_plan(ws: Workspace) -> dict:
    """Whether a decision taken now by this account would be signed, and with which key: Actor.describe(),
    or {"refused": sentence} when it could not be taken (require_signed and no key, say)."""
    from mltui.base.errors import MltuiError
    from mltui.core.models.identity import decider

    try:
        return decider(ws).describe()
    except MltuiError as exc:
        return {"refused": str(exc)}


def side(conn: sqlite3.Connection, mv: ModelVersion | None, max_curves: int = MAX_CURVES) -> Side:
    """A version with its metrics, params, eval and training data, commit and curves."""
    from mltui.core.data.lineage import inputs_of
    from mltui.core.models.promotion import eval_data, eval_runs
    from mltui.store.metrics import read_series, summaries
    from mltui.store.runs import get_runs, values_for

    if mv is None:
        return Side(None)
    runs = [r["id"] for r in eval_runs(conn, mv)] + ([mv.run_id] if mv.run_id else [])
    found = summaries(conn, runs)
    metrics: dict[str, float | None] = {}
    for run_id in reversed(runs):  # the newest eval run's value wins over the training run's
        for key, summary in found[run_id].items():
            last = summary["last"]
            metrics[key] = None if isinstance(last, float) and math.isnan(last) else last  # NaN is kept as NULL
    out = Side(mv, metrics, data=eval_data(conn, mv))
    if mv.run_id:
        out.params = values_for(conn, "params", [mv.run_id])[mv.run_id]
        for key in sorted(found[mv.run_id])[:max_curves]:
            out.curves[key] = list(read_series(conn, mv.run_id, key)[1])
        run = next(iter(get_runs(conn, [mv.run_id])), None)
        if run and run.get("git_commit"):
            out.commit = run["git_commit"][:12] + (" (dirty)" if run.get("git_dirty") else "")
        out.train_data = ", ".join(f"{i['dataset']}@{i['version'][:12]}" for i in inputs_of(conn, mv.run_id)) or "-"
    return out


def load_review(ws: Workspace, conn: sqlite3.Connection, request_id: int | str,
                max_curves: int = MAX_CURVES) -> Review:
    """Request `request_id` and both sides of it. While it is open its gates are evaluated again, as
    approval will: the review shows (and asks for an override by) what holds now."""
    from mltui.core.models.policy import load_policy
    from mltui.core.models.promotion import evaluate, get_request
    from mltui.core.models.registry import production, resolve

    req = get_request(conn, request_id)
    candidate = resolve(conn, req["label"])
    current = production(conn, req["model"])
    if current is not None and current.version == candidate.version:
        current = None
    review = Review(req, side(conn, candidate, max_curves), side(conn, current, max_curves))
    if req["status"] == "open":
        req["gates"] = evaluate(conn, load_policy(ws), candidate, req["target"])
        req["failed"] = [g["gate"] for g in req["gates"] if not g["ok"]]
        review.signing = signing_plan(ws)
    return review
