"""The audit trail, checked: every row with who did what, and its signature state (signed and verified
against allowed_signers, unsigned, only asserted, or bad and why), above the verdict of `mltui audit
verify`. Opened from the Models pane (A).

Checking runs ssh-keygen once per signed row, so the rows and the verdict are read in a thread worker
(core/models/trail.py) and drawn when its AuditLoaded arrives.
"""

from __future__ import annotations

import json

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from mltui.base.text import safe
from mltui.core.workspace import Workspace
from mltui.tui.messages import AuditFailed, AuditLoaded
from mltui.tui.widgets.keyed_table import Column, KeyedTable

STATE_LABEL = {"signed": "✓ signed", "unsigned": "unsigned", "asserted": "asserted", "bad": "✗ BAD",
               "legacy": "-"}


def when(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


class AuditScreen(Screen):
    DEFAULT_CSS = """
    #audit-verdict { height: auto; max-height: 50%; padding: 0 1; background: $panel; }
    #audit-rows { height: 1fr; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="audit.back"),
        Binding("ctrl+r", "reload", "Check again", id="audit.reload"),
    ]

    def __init__(self, ws: Workspace) -> None:
        super().__init__()
        self.ws = ws

    def compose(self) -> ComposeResult:
        yield Static(Text("Checking the audit trail…", style="dim"), id="audit-verdict")
        yield KeyedTable(id="audit-rows")
        yield Footer()

    def on_mount(self) -> None:
        self._load()
        self.query_one("#audit-rows").focus()

    def action_reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="audit-load", exit_on_error=False)
    def _load(self) -> None:
        from mltui.base.errors import MltuiError
        from mltui.core.models.audit import entries
        from mltui.core.models.trail import check
        from mltui.core.reader import with_readonly

        try:
            rows, verdict = with_readonly(self.ws, lambda conn: (entries(conn), check(self.ws, conn)))
        except MltuiError as exc:
            answer: AuditLoaded | AuditFailed = AuditFailed(str(exc))
        else:
            answer = AuditLoaded(rows, verdict)
        if not get_current_worker().is_cancelled:
            self.post_message(answer)

    def on_audit_failed(self, message: AuditFailed) -> None:
        self.query_one("#audit-verdict", Static).update(Text(message.error))

    def on_audit_loaded(self, message: AuditLoaded) -> None:
        theme = self.app.theme_variables
        ok, bad, warn = theme.get("success", "green"), theme.get("error", "red"), theme.get("warning", "yellow")
        verdict = message.verdict
        head = Text()
        if verdict.problems:
            head.append(f"The audit trail was tampered with ({len(verdict.problems)} problem(s))", style=f"bold {bad}")
            for _, sentence in verdict.problems:
                head.append(f"\n  {safe(sentence)}")
        else:
            head.append(f"The audit trail is intact: {verdict.rows} rows", style=f"bold {ok}")
            head.append(f" · {verdict.count('signed')} signed and verified · {verdict.count('asserted')} asserted")
        for note in verdict.notes:
            head.append(f"\n  note: {safe(note)}", style="dim")
        self.query_one("#audit-verdict", Static).update(head)
        styles = {"signed": ok, "bad": f"bold {bad}", "asserted": warn, "unsigned": "dim", "legacy": "dim"}
        table_rows = []
        for r in reversed(message.rows):  # the newest first
            state = verdict.states.get(r["seq"])
            label = STATE_LABEL.get(state.state, state.state) if state else "?"
            detail = f" {state.detail}" if state and state.detail and state.state in ("signed", "bad") else ""
            table_rows.append((str(r["seq"]), [
                Text(str(r["seq"])), Text(when(r["time"])), Text(safe(r["actor"]), style="bold"), Text(r["action"]),
                Text(safe(r["model"] or "-")),
                Text(label + detail, style=styles.get(state.state, "") if state else ""),
                Text(safe(_details(r["details"])), style="dim")]))
        self.query_one("#audit-rows", KeyedTable).sync(
            [Column("seq", "#"), Column("when", "When"), Column("who", "Who"), Column("action", "Action"),
             Column("model", "Model"), Column("sig", "Signature"), Column("details", "Details")], table_rows, "seq")


def _details(d: dict) -> str:
    keep = {k: v for k, v in d.items() if k not in ("gates", "sha256", "settings", "key") and v not in (None, [], "")}
    return " ".join(f"{k}={v if isinstance(v, (str, int, float)) else json.dumps(v)}" for k, v in keep.items())[:200]
