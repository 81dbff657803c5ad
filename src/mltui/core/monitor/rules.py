"""Rules over windows, and the alerts they open and close.

A rule's `when` is a small language, never Python: comparisons of a metric with a number, joined by
`and` / `or` (`and` binds tighter), e.g. `drift_share > 0.3`, `accuracy < 0.85 or volume == 0`,
`drift.age > 0.25` (a feature's PSI), `drifted.plan == 1`. A rule fires when it holds in `for`
consecutive windows; an alert opens once per incident and closes when the rule stops holding. Opening,
closing and every action (notify, retrain) are recorded on the alert. Retraining runs once per
incident; what it registers is filed to the promotion queue, where the gates and a reviewer decide.
Nothing is ever promoted here.
"""

from __future__ import annotations

import math
import time
from typing import Any

from mltui.base.errors import MltuiError
from mltui.core.monitor import state
from mltui.core.monitor.health import health, metric_values
from mltui.core.monitor.when import holds, parse_when

Checker = Any  # core/monitor/check.py's Checker (not imported: it imports this module)
MIN_ROWS = 30  # the current, unfinished window counts once it has this many rows

def series(checker: Checker, model: str, uses_volume: bool) -> list[tuple[float, dict[str, float]]]:
    """(window start, metric values) in time order, for the model's most recent version. With a volume
    term, the windows with no traffic up to now count too (volume 0)."""
    cfg = checker.cfg
    rows = state.windows(checker.conn, model, cfg.window)
    if not rows:
        return []
    latest = max(rows, key=lambda r: (r["start"], r["n"]))["version"]
    rows = [r for r in rows if r["version"] == latest]
    ref = checker.reference(model, latest)
    task = cfg.model(model).task
    now = time.time()
    out: list[tuple[float, dict[str, float]]] = []
    for r in rows:
        current = r["start"] + cfg.window > now
        if current and r["n"] < MIN_ROWS and not uses_volume:
            continue
        out.append((r["start"], metric_values(health(r["data"], ref, task))))
    if uses_volume:
        have = {start for start, _ in out}
        first = rows[0]["start"]
        last_done = math.floor(now / cfg.window) * cfg.window - cfg.window  # the last window that has ended
        start = first
        while start <= last_done:
            if start not in have:
                out.append((start, {"volume": 0.0}))
            start += cfg.window
        out.sort(key=lambda item: item[0])
        out = [item for item in out if item[0] <= last_done or item[0] in have]
    return out


def apply_rules(checker: Checker) -> None:
    for rule in checker.cfg.rules:
        if checker.only and rule.model != checker.only:
            continue
        parsed = parse_when(rule.when)
        uses_volume = any(name == "volume" for terms in parsed for name, _, _ in terms)
        points = series(checker, rule.model, uses_volume)
        if not points:
            continue
        recent = points[-rule.times:]
        firing = len(recent) == rule.times and all(holds(parsed, values) for _, values in recent)
        still = holds(parsed, points[-1][1])
        opened = [a for a in state.open_alerts(checker.conn, rule.model) if a["rule"] == rule.key]
        if firing and not opened:
            shown = {name: points[-1][1].get(name) for terms in parsed for name, _, _ in terms}
            alert_id = state.open_alert(checker.conn, checker.ws.db_path, rule.model, rule.key, points[-1][0], shown)
            alert = {"id": alert_id, "model": rule.model, "rule": rule.key, "window": points[-1][0], "value": shown}
            checker.report.alerts_opened.append(alert)
            if "notify" in rule.then:
                _notify(checker, "alert.opened", alert)
            if "retrain" in rule.then and rule.retrain:
                _retrain(checker, alert, rule.retrain)
        elif opened and not still:
            for alert in opened:
                state.close_alert(checker.conn, checker.ws.db_path, alert["id"])
                checker.report.alerts_closed.append({"id": alert["id"], "model": rule.model, "rule": rule.key})
                if "notify" in rule.then:
                    _notify(checker, "alert.closed", alert)
    _file_candidates(checker)


def _notify(checker: Checker, kind: str, alert: dict[str, Any]) -> None:
    subject = f"{alert['model']}: {alert['rule'].split(': ', 1)[-1]} ({'opened' if kind.endswith('opened') else 'resolved'})"
    try:
        from mltui.core.notify.events import emit

        event_id = emit(checker.ws, kind, subject, {"alert": alert["id"], "model": alert["model"],
                                                     "rule": alert["rule"], "value": alert.get("value")},
                        conn=checker.conn)
        outcome = f"event {event_id}"
    except Exception as exc:  # a notification never stops a check; what failed is kept on the alert
        outcome = f"failed: {exc}"
    state.note_action(checker.conn, checker.ws.db_path, alert["id"], "notify " + kind, outcome)
    checker.report.actions.append({"alert": alert["id"], "action": "notify", "outcome": outcome})


def _retrain(checker: Checker, alert: dict[str, Any], name: str) -> None:
    """Start the named command (a launched run) or pipeline stage (`mltui repro --force NAME`, itself a
    launched run), once for this incident."""
    import sys

    from mltui.core.launch.commands import find_project_file, load_commands
    from mltui.core.launch.launcher import Launch, launch

    note = f"retraining after monitor alert {alert['id']} ({alert['rule']})"
    try:
        path = find_project_file(checker.ws.project_dir, stop=checker.ws.project_dir)
        if path is None:
            raise MltuiError(f"there is no mltui.toml in {checker.ws.project_dir} to name {name!r}")
        commands = load_commands(path)
        if name in commands:
            run_id = launch(checker.ws, Launch(command=commands[name], note=note))
        else:
            from mltui.core.pipeline.stages import read_table

            if name not in read_table(path):
                raise MltuiError(f"{path} has no command or stage named {name!r}")
            run_id = launch(checker.ws, Launch([sys.executable, "-m", "mltui", "repro", "--force", name],
                                               cwd=str(path.parent), name=f"retrain-{name}", note=note))
        outcome = f"run {run_id}"
        state.note_action(checker.conn, checker.ws.db_path, alert["id"], "retrain", outcome, retrain_run=run_id)
    except MltuiError as exc:
        outcome = f"failed: {exc}"
        state.note_action(checker.conn, checker.ws.db_path, alert["id"], "retrain", outcome)
    checker.report.actions.append({"alert": alert["id"], "action": "retrain", "outcome": outcome})


def _file_candidates(checker: Checker) -> None:
    """A retraining that has ended: what it registered since the alert opened goes to the promotion queue
    (once); a retraining that failed is said on the alert."""
    from mltui.core.models import promotion

    conn = checker.conn
    for alert in state.alerts(conn, limit=1000):
        run_id = alert.get("retrain_run")
        if not run_id or alert.get("request_id") or any(a["action"] == "promote request" for a in alert["actions"]):
            continue
        row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None or row[0] in ("running", "queued"):
            continue
        if row[0] != "finished":
            state.note_action(conn, checker.ws.db_path, alert["id"], "promote request",
                              f"none: the retraining run {run_id} {row[0]}")
            continue
        found = conn.execute("SELECT version FROM model_versions WHERE model = ? AND created >= ? ORDER BY version DESC "
                             "LIMIT 1", (alert["model"], alert["opened"])).fetchone()
        if found is None:
            from mltui.base.procs import host, pid_alive

            sup = conn.execute("SELECT sup_pid, host, ended FROM runs WHERE id = ?", (run_id,)).fetchone()
            if sup and sup[1] == host and pid_alive(sup[0]) and time.time() - (sup[2] or 0) < 600:
                continue  # its supervisor registers the run's models after marking it finished: look next check
            state.note_action(conn, checker.ws.db_path, alert["id"], "promote request",
                              f"none: run {run_id} registered no new version of {alert['model']} "
                              "(add a [[register]] rule to mltui.toml)")
            continue
        try:
            req = promotion.request(checker.ws, conn, f"{alert['model']}@{found[0]}", "production",
                                    f"retrained after monitor alert {alert['id']}: {alert['rule']}")
            state.note_action(conn, checker.ws.db_path, alert["id"], "promote request", f"request {req['id']}",
                              request_id=req["id"])
            checker.report.actions.append({"alert": alert["id"], "action": "promote request",
                                           "outcome": f"request {req['id']}"})
        except MltuiError as exc:
            state.note_action(conn, checker.ws.db_path, alert["id"], "promote request", f"failed: {exc}")
