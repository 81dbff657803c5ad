"""Is each stage up to date, and if not, why: the answer `pipeline status` prints and `repro` acts on.

A stage is up to date when its fingerprint is the one of its last successful execution and its outs
are still what that execution left. Otherwise it is "never run" or "changed", with every reason:
dep files added, removed or modified, params changed from what to what, the command changed, outs
missing or modified, or a stage upstream changed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mltui.base.errors import MltuiError
from mltui.core.pipeline import state
from mltui.core.pipeline.fingerprint import (StageInputs, contents, describe_dep_change, param_changes,
                                             stage_inputs, unpack_files)
from mltui.core.pipeline.stages import Pipeline, Stage
from mltui.core.workspace import Workspace

UP_TO_DATE, NEVER_RUN, CHANGED = "up to date", "never run", "changed"


@dataclass
class StageStatus:
    stage: str
    state: str  # up to date | never run | changed
    reasons: list[dict[str, Any]] = field(default_factory=list)
    fingerprint: str | None = None
    last_run: str | None = None
    last_time: float | None = None
    running: str | None = None  # the run of a repro now executing this stage

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["why"] = [say(r) for r in self.reasons]
        return out


def say(reason: Mapping[str, Any]) -> str:
    """One reason in words."""
    kind = reason["kind"]
    if kind == "new":
        return "it has never run"
    if kind == "param":
        return f"param {reason['param']} changed from {reason['from']!r} to {reason['to']!r}"
    if kind == "command":
        return "its command changed"
    if kind == "upstream":
        return f"upstream changed ({', '.join(reason['stages'])})"
    if kind == "outs":
        return f"its out {reason['out']} is {reason['change']}"
    if kind == "dep":
        if reason["change"] in ("missing", "added"):
            return f"dep {reason['dep']} is {'missing' if reason['change'] == 'missing' else 'new'}"
        parts = [f"{len(reason[k])} {k}" for k in ("added", "removed", "modified") if reason.get(k)]
        sample = next((f" (e.g. {reason[k][0]})" for k in ("modified", "added", "removed") if reason.get(k)), "")
        return f"dep {reason['dep']} changed" + (f": {', '.join(parts)} file(s){sample}" if parts else "")
    if kind == "forced":
        return "--force"
    return str(reason)


def outs_changed(ws: Workspace, conn: sqlite3.Connection, pipe: Pipeline, stage: Stage,
                 last: state.LastRun) -> list[dict[str, Any]]:
    """Outs missing or not what the last execution left."""
    now = contents(ws, conn, pipe.project, stage.products).ids
    reasons = []
    for out, was in last.outs.items():
        if now.get(out) is None:
            reasons.append({"kind": "outs", "out": out, "change": "missing"})
        elif now.get(out) != was:
            reasons.append({"kind": "outs", "out": out, "change": "modified"})
    return reasons


def compare(ws: Workspace, conn: sqlite3.Connection, pipe: Pipeline, stage: Stage, inputs: StageInputs,
            last: state.LastRun | None) -> list[dict[str, Any]]:
    """Why `stage` with these inputs is not its last execution (empty: it is)."""
    if last is None:
        return [{"kind": "new"}]
    if inputs.fingerprint == last.fingerprint:
        return outs_changed(ws, conn, pipe, stage, last)
    reasons: list[dict[str, Any]] = []
    if inputs.argv != last.command and not param_changes(last.params, inputs.params):
        reasons.append({"kind": "command", "from": last.command, "to": inputs.argv})
    reasons += [{"kind": "param", **c} for c in param_changes(last.params, inputs.params)]
    old_files = None
    for dep in sorted(set(inputs.deps) | set(last.deps)):
        if inputs.deps.get(dep) != last.deps.get(dep):
            if old_files is None:
                old_files = unpack_files(state.dep_files(conn, str(pipe.project), stage.name))
            reasons.append(describe_dep_change(ws, conn, pipe.project, dep, last.deps.get(dep), inputs.deps.get(dep),
                                               old_files.get(dep)))
    if not reasons:
        if inputs.argv != last.command:
            reasons.append({"kind": "command", "from": last.command, "to": inputs.argv})
        else:
            reasons.append({"kind": "outs", "out": ", ".join(stage.products) or "(none)", "change": "declared differently"})
    return reasons


def pipeline_status(ws: Workspace, conn: sqlite3.Connection, pipe: Pipeline,
                    overrides: Mapping[str, Mapping[str, Any]] | None = None,
                    names: list[str] | None = None) -> list[StageStatus]:
    """Every selected stage's state and reasons, in order (no stage is run, nothing is hashed twice)."""
    overrides = overrides or {}
    lasts = state.last_runs(conn, str(pipe.project))
    running = state.in_flight(conn, pipe.order)
    out: list[StageStatus] = []
    stale: set[str] = set()
    for name in pipe.select(names or []):
        stage = pipe.stages[name]
        last = lasts.get(name)
        try:
            inputs = stage_inputs(ws, conn, pipe.project, stage, overrides.get(name, {}))
        except MltuiError as exc:
            out.append(StageStatus(name, CHANGED, [{"kind": "error", "error": str(exc)}]))
            stale.add(name)
            continue
        reasons = compare(ws, conn, pipe, stage, inputs, last)
        upstream = [p for p in pipe.parents[name] if p in stale]
        if upstream:
            reasons.append({"kind": "upstream", "stages": upstream})
        st = UP_TO_DATE if not reasons else (NEVER_RUN if last is None else CHANGED)
        if reasons:
            stale.add(name)
        fly = running.get(name)
        out.append(StageStatus(name, st, reasons, inputs.fingerprint, last.run_id if last else None,
                               last.time if last else None,
                               fly["run_id"] if fly and fly.get("status") in ("running", "queued") else None))
    return out
