"""Promotion requests: file one, evaluate its gates, review it (approve, reject, comment).

Nothing moves when a request is filed. Approval re-evaluates the gates inside the transaction that
moves the stages, so what was checked is what held when the version moved; failed gates block it
unless the reviewer overrides them with a written reason. The reviewer must not be the requester
unless the policy allows it. Who acts is the OS account (identity.py); decisions are signed with the
reviewer's SSH key where there is one (and must be, under `require_signed`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from mltui.core.models import audit
from mltui.base.errors import MltuiError, NotFound, UsageError
from mltui.core.models.policy import TARGETS, Gate, Policy, load_policy
from mltui.core.models.identity import decider, plain, settle_policy
from mltui.core.models.registry import ModelVersion, move, production, resolve
from mltui.core.workspace import Workspace
from mltui.store.connection import write_tx

REQUEST_COLUMNS = ("id", "model", "version", "target", "requester", "message", "gates", "status", "reviewer",
                   "decision", "override", "created", "decided")


# -- what a version was judged on -----------------------------------------------------------------
def eval_runs(conn: sqlite3.Connection, mv: ModelVersion) -> list[dict]:
    """Finished runs of kind eval that name this version in a `model` param or tag (NAME@N), newest first."""
    names = [f"{mv.model}@{mv.version}", f"{mv.model}@v{mv.version}"]
    rows = conn.execute(
        "SELECT DISTINCT r.id, r.name, r.created FROM runs r WHERE r.kind = 'eval' AND r.status = 'finished' AND "
        "(r.id IN (SELECT run_id FROM params WHERE key = 'model' AND value IN (?, ?)) OR "
        " r.id IN (SELECT run_id FROM tags WHERE key = 'model' AND value IN (?, ?))) ORDER BY r.created DESC",
        (*names, *names)).fetchall()
    return [{"id": i, "name": n, "created": c} for i, n, c in rows]


def eval_data(conn: sqlite3.Connection, mv: ModelVersion) -> dict[str, str]:
    """dataset -> version id the version's newest eval run with data used."""
    for run in eval_runs(conn, mv):
        rows = conn.execute("SELECT dataset, version FROM run_inputs WHERE run_id = ?", (run["id"],)).fetchall()
        if rows:
            return dict(rows)
    return {}


def metric_of(conn: sqlite3.Connection, mv: ModelVersion, key: str) -> tuple[float | None, str | None]:
    """(value, run id) of a metric: from the newest eval run that logged it, else the training run."""
    for run_id in [r["id"] for r in eval_runs(conn, mv)] + ([mv.run_id] if mv.run_id else []):
        row = conn.execute("SELECT last FROM metric_summary WHERE run_id = ? AND key = ?", (run_id, key)).fetchone()
        if row is not None and row[0] is not None:
            return float(row[0]), run_id
    return None, None


def _compare(value: float, op: str, limit: float) -> bool:
    return {">=": value >= limit, ">": value > limit, "<=": value <= limit, "<": value < limit,
            "==": value == limit}[op]


def check_gate(conn: sqlite3.Connection, gate: Gate, mv: ModelVersion, current: ModelVersion | None) -> dict:
    """{gate, ok, detail} for one gate of one version, against the version in production now."""
    o = gate.options
    result: dict[str, Any] = {"gate": gate.describe(), "kind": gate.kind}
    if gate.kind == "metric":
        value, where = metric_of(conn, mv, o["metric"])
        if value is None:
            return {**result, "ok": False, "detail": f"{mv.label} has no {o['metric']} (from an eval or its run)"}
        ok = _compare(value, o["op"], float(o["value"]))
        return {**result, "ok": ok, "detail": f"{o['metric']} = {value:.6g} (run {where})", "value": value}
    if gate.kind == "beats_production":
        if current is None or current.version == mv.version:
            return {**result, "ok": True, "detail": "no other version is in production"}
        mine, _ = metric_of(conn, mv, o["metric"])
        theirs, _ = metric_of(conn, current, o["metric"])
        if mine is None or theirs is None:
            who = mv.label if mine is None else current.label
            return {**result, "ok": False, "detail": f"{who} has no {o['metric']} to compare"}
        margin = float(o.get("margin", 0.0))
        lower = o.get("direction", "max") == "min"
        ok = mine <= theirs - margin if lower else mine >= theirs + margin
        return {**result, "ok": ok, "detail": f"{mine:.6g} against {theirs:.6g} ({current.label})"}
    if gate.kind == "eval_run":
        runs = eval_runs(conn, mv)
        with_data = [r for r in runs if conn.execute("SELECT 1 FROM run_inputs WHERE run_id = ?",
                                                     (r["id"],)).fetchone()]
        if with_data:
            return {**result, "ok": True, "detail": f"eval run {with_data[0]['id']}"}
        detail = ("its eval runs recorded no dataset version" if runs else
                  f"no finished eval run names {mv.label} (a kind=eval run with -p model={mv.label})")
        return {**result, "ok": False, "detail": detail}
    # same_eval_data
    if current is None or current.version == mv.version:
        return {**result, "ok": True, "detail": "no other version is in production"}
    theirs, mine = eval_data(conn, current), eval_data(conn, mv)
    if not theirs:
        return {**result, "ok": True, "detail": f"{current.label} was judged on no recorded data"}
    differ = [f"{d}@{v[:12]}" for d, v in theirs.items() if mine.get(d) != v]
    if differ:
        return {**result, "ok": False, "detail": f"production was judged on {', '.join(differ)}; "
                                                 f"{mv.label} was not"}
    return {**result, "ok": True, "detail": ", ".join(f"{d}@{v[:12]}" for d, v in theirs.items())}


def evaluate(conn: sqlite3.Connection, policy: Policy, mv: ModelVersion, target: str) -> list[dict]:
    current = production(conn, mv.model)
    return [check_gate(conn, g, mv, current) for g in policy.gates_for(target)]


# -- requests -------------------------------------------------------------------------------------
def _request(row) -> dict:
    d = dict(zip(REQUEST_COLUMNS, row))
    d["gates"] = json.loads(d["gates"])
    d["label"] = f"{d['model']}@{d['version']}"
    d["failed"] = [g["gate"] for g in d["gates"] if not g["ok"]]
    return d


def get_request(conn: sqlite3.Connection, request_id: int | str) -> dict:
    try:
        number = int(str(request_id).lstrip("#"))
    except ValueError:
        raise UsageError(f"{request_id!r} is not a request number (see `mltui queue list`).") from None
    row = conn.execute(f"SELECT {', '.join(REQUEST_COLUMNS)} FROM promotion_requests WHERE id = ?",
                       (number,)).fetchone()
    if row is None:
        raise NotFound(f"There is no promotion request #{number}.")
    req = _request(row)
    req["comments"] = [{"actor": a, "text": t, "time": tm} for a, t, tm in conn.execute(
        "SELECT actor, text, time FROM request_comments WHERE request_id = ? ORDER BY id", (number,))]
    return req


def list_requests(conn: sqlite3.Connection, status: str | None = "open") -> list[dict]:
    where, args = ("WHERE status = ?", (status,)) if status else ("", ())
    return [_request(r) for r in conn.execute(
        f"SELECT {', '.join(REQUEST_COLUMNS)} FROM promotion_requests {where} ORDER BY id", args)]


def request(ws: Workspace, conn: sqlite3.Connection, spec: str, target: str, message: str | None = None,
            who: str | None = None) -> dict:
    """File a request to move a version to staging or production; its gates are evaluated and kept."""
    if target not in TARGETS:
        raise UsageError(f"--to takes staging or production, not {target!r}.")
    policy = load_policy(ws)
    who = plain(ws, who)
    with write_tx(conn, ws.db_path):
        mv = resolve(conn, spec)
        if mv.stage == target:
            raise MltuiError(f"{mv.label} is already in {target}.")
        if conn.execute("SELECT 1 FROM promotion_requests WHERE model = ? AND version = ? AND target = ? "
                        "AND status = 'open'", (mv.model, mv.version, target)).fetchone():
            raise MltuiError(f"{mv.label} already has an open request for {target}; see `mltui queue list`.")
        gates = evaluate(conn, policy, mv, target)
        cur = conn.execute(
            "INSERT INTO promotion_requests(model, version, target, requester, message, gates, created) "
            "VALUES (?,?,?,?,?,?,?)", (mv.model, mv.version, target, who.name, message, json.dumps(gates),
                                       time.time()))
        number = cur.lastrowid
        audit.append(conn, who, "request", mv.model, {"request": number, "version": mv.version, "target": target,
                                                      "message": message, "gates": gates})
    filed = get_request(conn, number)
    _tell(ws, conn, "promotion.requested", filed)
    return filed


def _open(conn: sqlite3.Connection, request_id) -> dict:
    req = get_request(conn, request_id)
    if req["status"] != "open":
        by = f" by {req['reviewer']}" if req["reviewer"] else ""
        raise MltuiError(f"Request #{req['id']} is already {req['status']}{by}.")
    return req


def approve(ws: Workspace, conn: sqlite3.Connection, request_id, message: str | None = None,
            override: str | None = None, who: str | None = None) -> dict:
    """Move the version to the requested stage (the old production version is archived in the same step)."""
    policy = load_policy(ws)
    if override is not None and not override.strip():
        raise UsageError("An override needs a written reason.")
    who = decider(ws, who)
    with write_tx(conn, ws.db_path):
        req = _open(conn, request_id)
        if who.name == req["requester"] and not policy.allow_self_approval:
            raise MltuiError(f"You ({who.name}) filed request #{req['id']}; another reviewer must approve it "
                             "(or set promotion.allow_self_approval in config.toml).")
        settle_policy(ws, conn, who)
        mv = resolve(conn, req["label"])
        gates = evaluate(conn, policy, mv, req["target"])
        failed = [g for g in gates if not g["ok"]]
        if failed and override is None:
            raise MltuiError(f"Request #{req['id']} fails {len(failed)} gate(s): "
                             + "; ".join(f"{g['gate']} ({g['detail']})" for g in failed)
                             + ". Fix them, or approve with --override REASON.")
        move(conn, mv, req["target"], who, f"request #{req['id']}" + (f": {message}" if message else ""))
        conn.execute("UPDATE promotion_requests SET status = 'approved', reviewer = ?, decision = ?, override = ?, "
                     "gates = ?, decided = ? WHERE id = ?",
                     (who.name, message, override if failed else None, json.dumps(gates), time.time(), req["id"]))
        audit.append(conn, who, "approve", mv.model, {
            "request": req["id"], "version": mv.version, "target": req["target"], "message": message,
            "override": override if failed else None, "failed_gates": [g["gate"] for g in failed]})
    decided = {**get_request(conn, req["id"]), "signature": who.describe()}
    _tell(ws, conn, "promotion.decided", decided)
    return decided


def reject(ws: Workspace, conn: sqlite3.Connection, request_id, message: str, who: str | None = None) -> dict:
    if not message or not message.strip():
        raise UsageError("A rejection needs a reason (-m WHY).")
    who = decider(ws, who)
    with write_tx(conn, ws.db_path):
        req = _open(conn, request_id)
        settle_policy(ws, conn, who)
        conn.execute("UPDATE promotion_requests SET status = 'rejected', reviewer = ?, decision = ?, decided = ? "
                     "WHERE id = ?", (who.name, message, time.time(), req["id"]))
        audit.append(conn, who, "reject", req["model"], {"request": req["id"], "version": req["version"],
                                                         "target": req["target"], "message": message})
    decided = {**get_request(conn, req["id"]), "signature": who.describe()}
    _tell(ws, conn, "promotion.decided", decided)
    return decided


def comment(ws: Workspace, conn: sqlite3.Connection, request_id, text: str, who: str | None = None) -> dict:
    if not text or not text.strip():
        raise UsageError("A comment needs some text.")
    who = plain(ws, who)
    with write_tx(conn, ws.db_path):
        req = get_request(conn, request_id)
        conn.execute("INSERT INTO request_comments(request_id, actor, text, time) VALUES (?,?,?,?)",
                     (req["id"], who.name, text, time.time()))
        audit.append(conn, who, "comment", req["model"], {"request": req["id"], "text": text})
    return get_request(conn, req["id"])


def _tell(ws: Workspace, conn: sqlite3.Connection, kind: str, req: dict) -> None:
    """promotion.requested / promotion.decided through the notification channels (never raises, never waits)."""
    from mltui.core.notify.events import emit

    try:
        label, target = req["label"], req["target"]
        if kind == "promotion.requested":
            subject = f"{req['requester']} asks to move {label} to {target} (request #{req['id']}" + (
                f"; failing gates: {', '.join(req['failed'])})" if req["failed"] else ")")
        else:
            subject = f"{req['reviewer']} {req['status']} moving {label} to {target} (request #{req['id']})"
        emit(ws, kind, subject, {"request": req["id"], "model": req["model"], "version": req["version"],
                                 "target": target, "status": req["status"], "requester": req["requester"],
                                 "reviewer": req["reviewer"], "message": req["message"], "decision": req["decision"],
                                 "override": req["override"], "failed_gates": req["failed"]}, conn)
    except Exception:
        pass
