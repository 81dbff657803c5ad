"""Reviewing a promotion request: the candidate beside the version in production (metrics, param
diff, dataset versions, gate results, metric curves), and a to approve, r to reject, c to comment.

A screen pushed over the main screen (screens/, beside the run detail and the log). What it shows is
read by core/models/review.py in a thread worker, never on the UI thread, and drawn when the worker's
ReviewLoaded (tui/messages.py) arrives.
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from mltui.base.text import safe, size
from mltui.base.values import display
from mltui.core.models.review import Side
from mltui.core.workspace import Workspace
from mltui.tui.cells import spark_between
from mltui.tui.messages import ReviewFailed, ReviewLoaded
from mltui.tui.modals.prompt import Field, PromptScreen

CURVE_POINTS = 40
MAX_METRICS = 12


def signing_line(plan: dict, ok: str, bad: str) -> Text:
    """Whether a decision taken here now is signed, and with which key (review.signing_plan)."""
    line = Text("signing: ", style="bold")
    if "refused" in plan:
        line.append("cannot decide here: ", style=f"bold {bad}")
        line.append(plan["refused"])
    elif plan["signed"]:
        line.append("signed", style=f"bold {ok}")
        line.append(f" as {safe(plan['actor'])} with {plan['key']} ({safe(plan['source'])})")
    else:
        line.append("not signed", style="bold")
        line.append(f" ({safe(plan['actor'])}: {safe(plan['why'] or 'no key')})")
    return line


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
        self._approve_when_loaded = False  # `a` asks once the gates are read again

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
        """Read the request and both sides again, in a thread worker; its message draws them."""
        self._load()

    @work(thread=True, exclusive=True, group="review-load", exit_on_error=False)
    def _load(self) -> None:
        from mltui.base.errors import MltuiError
        from mltui.core.models.review import load_review
        from mltui.core.reader import with_readonly
        from mltui.tui.widgets.metric_spark import downsample

        try:
            review = with_readonly(self.ws, lambda conn: load_review(self.ws, conn, self.request_id, MAX_METRICS))
        except MltuiError as exc:
            answer: ReviewLoaded | ReviewFailed = ReviewFailed(str(exc))
        else:
            for side in (review.candidate, review.production):
                side.curves = {key: downsample(values, CURVE_POINTS) for key, values in side.curves.items()}
            answer = ReviewLoaded(review)
        if not get_current_worker().is_cancelled:  # a later load supersedes this one
            self.post_message(answer)

    def on_review_failed(self, message: ReviewFailed) -> None:
        self._approve_when_loaded = False
        self.query_one("#review-header", Static).update(Text(message.error))

    def on_review_loaded(self, message: ReviewLoaded) -> None:
        review = message.review
        self.request = review.request
        self._draw(review.request, review.candidate, review.production, review.signing)
        if self._approve_when_loaded:
            self._approve_when_loaded = False
            self._ask_approval()

    # -- drawing ----------------------------------------------------------------------------------
    def _draw(self, req: dict, cand: Side, prod: Side, signing: dict | None = None) -> None:
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
            grid.add_row(Text(safe(key)), Text(spark_between(a, lo, hi), style=ok),
                         Text(spark_between(b, lo, hi), style=muted))
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
        if signing is not None:
            gates.append_text(signing_line(signing, ok, bad))
            gates.append("\n")
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
        from mltui.tui.writes import FAILED, write

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
        if not self._is_open():
            return
        self._approve_when_loaded = True  # the gates as they hold at this moment decide whether an override
        self.load()  # is needed: the approval is asked for once they are read (on_review_loaded)

    def _ask_approval(self) -> None:
        from mltui.core.models.promotion import approve

        if not self._is_open():
            return
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
