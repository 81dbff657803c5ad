"""Reviewing a promotion request: the candidate beside the version in production (metrics, param
diff, dataset versions, gate results, metric curves), and a to approve, r to reject, c to comment."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from mltui.base.text import safe, size
from mltui.base.values import display
from mltui.core.workspace import Workspace
from mltui.tui.modals.prompt import Field, PromptScreen

SPARK = "▁▂▃▄▅▆▇█"
CURVE_POINTS = 40
MAX_METRICS = 12


@dataclass
class Side:
    version: object  # ModelVersion or None
    metrics: dict[str, float]
    params: dict
    data: dict[str, str]  # what its eval was run on
    curves: dict[str, list[float]]
    commit: str = "-"
    train_data: str = "-"  # the dataset versions its training run used


def _side(conn, mv) -> Side:
    from mltui.core.runs.compare import read_arrays
    from mltui.core.models.promotion import eval_data, eval_runs
    from mltui.store.runs import values_for
    from mltui.tui.widgets.metric_spark import downsample

    if mv is None:
        return Side(None, {}, {}, {}, {})
    runs = [r["id"] for r in eval_runs(conn, mv)] + ([mv.run_id] if mv.run_id else [])
    metrics: dict[str, float] = {}
    for run_id in reversed(runs):  # the newest eval run's value wins over the training run's
        for key, last in conn.execute("SELECT key, last FROM metric_summary WHERE run_id = ?", (run_id,)):
            metrics[key] = last
    params = values_for(conn, "params", [mv.run_id])[mv.run_id] if mv.run_id else {}
    curves = {}
    if mv.run_id:
        for (key,) in conn.execute("SELECT key FROM metric_summary WHERE run_id = ? ORDER BY key LIMIT ?",
                                   (mv.run_id, MAX_METRICS)):
            _, values, _ = read_arrays(conn, mv.run_id, key, with_times=False)
            curves[key] = downsample(values, CURVE_POINTS)
    commit, train = "-", "-"
    if mv.run_id:
        row = conn.execute("SELECT git_commit, git_dirty FROM runs WHERE id = ?", (mv.run_id,)).fetchone()
        if row and row[0]:
            commit = row[0][:12] + (" (dirty)" if row[1] else "")
        used = conn.execute("SELECT dataset, version FROM run_inputs WHERE run_id = ? ORDER BY dataset",
                            (mv.run_id,)).fetchall()
        train = ", ".join(f"{d}@{v[:12]}" for d, v in used) or "-"
    return Side(mv, metrics, params, eval_data(conn, mv), curves, commit, train)


def _spark(values: list[float], lo: float, hi: float) -> str:
    if not values:
        return ""
    span = (hi - lo) or 1.0
    return "".join(SPARK[min(7, max(0, int((v - lo) / span * 7.999)))] for v in values)


class ReviewScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="review.back"),
        Binding("a", "approve", "Approve", id="review.approve"),
        Binding("r", "reject", "Reject", id="review.reject"),
        Binding("c", "comment", "Comment", id="review.comment"),
    ]

    def __init__(self, ws: Workspace, request_id: int) -> None:
        super().__init__()
        self.ws = ws
        self.request_id = request_id
        self.request: dict | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="review-header")
        with VerticalScroll(id="review-body"):
            yield Static(id="review-compare")
            yield Static(id="review-gates")
            yield Static(id="review-comments")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def load(self) -> None:
        from mltui.base.errors import MltuiError
        from mltui.core.models.promotion import get_request
        from mltui.core.models.registry import production, resolve
        from mltui.core.reader import open_readonly

        try:
            conn = open_readonly(self.ws)
        except MltuiError as exc:
            self.query_one("#review-header", Static).update(Text(str(exc)))
            return
        try:
            req = get_request(conn, self.request_id)
            candidate = resolve(conn, req["label"])
            current = production(conn, req["model"])
            if current is not None and current.version == candidate.version:
                current = None
            left, right = _side(conn, candidate), _side(conn, current)
            if req["status"] == "open":  # approval checks the gates again: show (and ask by) what holds now
                from mltui.core.models.policy import load_policy
                from mltui.core.models.promotion import evaluate

                req["gates"] = evaluate(conn, load_policy(self.ws), candidate, req["target"])
                req["failed"] = [g["gate"] for g in req["gates"] if not g["ok"]]
        except MltuiError as exc:
            self.query_one("#review-header", Static).update(Text(str(exc)))
            return
        finally:
            conn.close()
        self.request = req
        self._draw(req, left, right)

    # -- drawing ----------------------------------------------------------------------------------
    def _draw(self, req: dict, cand: Side, prod: Side) -> None:
        theme = self.app.theme_variables
        ok, bad, muted = theme.get("success", "green"), theme.get("error", "red"), "dim"
        header = Text.assemble((f"Request #{req['id']}", "bold"), f"  {safe(req['label'])} → {req['target']}",
                               f"  by {safe(req['requester'])}", (f"  · {req['status']}", "bold"))
        if req["reviewer"]:
            header.append(f" by {safe(req['reviewer'])}")
        if req["message"]:
            header.append(f"\nwhy: {safe(req['message'])}", style=muted)
        if req["decision"]:
            header.append(f"\ndecision: {safe(req['decision'])}", style=muted)
        self.query_one("#review-header", Static).update(header)

        p_label = prod.version.label + " (production)" if prod.version else "nothing in production"
        grid = Table(expand=True, show_edge=False, pad_edge=False, header_style="bold")
        grid.add_column("", style="bold", no_wrap=True)
        grid.add_column(Text(f"{req['label']} (candidate)"))
        grid.add_column(Text(p_label))
        cv, pv = cand.version, prod.version
        grid.add_row("stage", cv.stage, pv.stage if pv else "-")
        grid.add_row("run", cv.run_id or "-", (pv.run_id or "-") if pv else "-")
        grid.add_row("file", Text(f"{safe(cv.path)} · {size(cv.size)} · {cv.sha256[:12]}"),
                     Text(f"{safe(pv.path)} · {size(pv.size)} · {pv.sha256[:12]}") if pv else "-")
        grid.add_row("code", cand.commit, prod.commit if pv else "-")
        grid.add_row("trained on", Text(safe(cand.train_data)), Text(safe(prod.train_data)) if pv else "-")
        grid.add_row("aliases", Text(safe(", ".join(cv.aliases)) or "-"), Text(safe(", ".join(pv.aliases)) or "-")
                     if pv else "-")
        grid.add_row(Text("metrics", style="underline"), "", "")
        for key in sorted(set(cand.metrics) | set(prod.metrics))[:MAX_METRICS]:
            a, b = cand.metrics.get(key), prod.metrics.get(key)
            grid.add_row(Text(safe(key)), Text(display(a) if a is not None else "-"),
                         Text(display(b) if b is not None else "-"))
        changed = sorted(k for k in set(cand.params) | set(prod.params) if cand.params.get(k) != prod.params.get(k))
        grid.add_row(Text("params that differ", style="underline"), "", "")
        for key in changed[:MAX_METRICS]:
            grid.add_row(Text(safe(key)), Text(safe(display(cand.params.get(key)))),
                         Text(safe(display(prod.params.get(key))) if key in prod.params else "-"))
        if not changed:
            grid.add_row(Text("(none)", style=muted), "", "")
        grid.add_row(Text("eval data", style="underline"), "", "")
        for dataset in sorted(set(cand.data) | set(prod.data)) or ["-"]:
            a, b = cand.data.get(dataset), prod.data.get(dataset)
            grid.add_row(Text(safe(dataset)), Text(a[:12] if a else "-", style="" if a == b or not b else bad),
                         Text(b[:12] if b else "-"))
        grid.add_row(Text("curves", style="underline"), "", "")
        for key in sorted(set(cand.curves) & set(prod.curves) or set(cand.curves))[:MAX_METRICS]:
            a, b = cand.curves.get(key, []), prod.curves.get(key, [])
            both = [v for v in a + b]
            lo, hi = (min(both), max(both)) if both else (0.0, 1.0)
            grid.add_row(Text(safe(key)), Text(_spark(a, lo, hi), style=ok), Text(_spark(b, lo, hi), style=muted))
        self.query_one("#review-compare", Static).update(grid)

        gates = Text("gates (as they hold now)" if req["status"] == "open" else "gates (when decided)",
                     style="bold underline")
        gates.append("\n")
        for g in req["gates"] or []:
            gates.append("pass " if g["ok"] else "FAIL ", style=ok if g["ok"] else f"bold {bad}")
            gates.append(f"{safe(g['gate'])}: {safe(g['detail'])}\n")
        if not req["gates"]:
            gates.append("(the workspace policy has no gates)\n", style=muted)
        if req["override"]:
            gates.append(f"overridden: {safe(req['override'])}\n", style="bold")
        hint = "a approve · r reject · c comment · esc back" if req["status"] == "open" else "esc back"
        gates.append(hint, style=muted)
        self.query_one("#review-gates", Static).update(gates)
        comments = Text()
        for c in req["comments"]:
            comments.append(f"{safe(c['actor'])}: ", style="bold")
            comments.append(f"{safe(c['text'])}\n")
        self.query_one("#review-comments", Static).update(Group(Text("comments", style="bold underline"),
                                                                comments or Text("(none)", style=muted)))

    # -- decisions --------------------------------------------------------------------------------
    def _act(self, do, done: str) -> None:
        from mltui.tui.store_write import FAILED, write

        if write(self, self.ws, do) is FAILED:
            return
        self.notify(done, timeout=5, markup=False)
        self.load()

    def _is_open(self) -> bool:
        if self.request is None or self.request["status"] != "open":
            self.notify("This request is already decided.", timeout=3)
            return False
        return True

    def action_approve(self) -> None:
        from mltui.core.models.promotion import approve

        if not self._is_open():
            return
        self.load()  # the gates as they hold at this moment decide whether an override is needed
        failing = self.request["failed"]
        fields = [Field("message", "note", "optional")]
        note = None
        if failing:
            fields.append(Field("override", "override", "why approve despite the failed gates", required=True))
            note = Text(f"{len(failing)} gate(s) fail: " + "; ".join(failing), style="bold")
        number = self.request["id"]

        def decided(values: dict | None) -> None:
            if values is not None:
                self._act(lambda ws, conn: approve(ws, conn, number, values["message"] or None,
                                                   values.get("override") or None),
                          f"Approved request #{number}.")

        self.app.push_screen(PromptScreen(f"Approve request #{number} ({self.request['label']} to "
                                          f"{self.request['target']})", fields, note), decided)

    def action_reject(self) -> None:
        from mltui.core.models.promotion import reject

        if not self._is_open():
            return
        number = self.request["id"]

        def decided(values: dict | None) -> None:
            if values is not None:
                self._act(lambda ws, conn: reject(ws, conn, number, values["why"]), f"Rejected request #{number}.")

        self.app.push_screen(PromptScreen(f"Reject request #{number}", [Field("why", "why", required=True)]), decided)

    def action_comment(self) -> None:
        from mltui.core.models.promotion import comment

        if self.request is None:
            return
        number = self.request["id"]

        def said(values: dict | None) -> None:
            if values is not None:
                self._act(lambda ws, conn: comment(ws, conn, number, values["text"]), "Comment added.")

        self.app.push_screen(PromptScreen(f"Comment on request #{number}", [Field("text", "comment",
                                                                                  required=True)]), said)
