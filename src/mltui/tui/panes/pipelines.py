"""The Pipelines pane: the stages of mltui.toml's [stages] as their DAG, each coloured by its state
(up to date, changed or never run, waiting, running, failed, skipped, restored), with its last run and
how long it took; live while a `mltui repro` runs.

Two reads (core/pipeline/view.py): the repro's steps and the stages' last runs, polled whenever the
store changed (PRAGMA data_version, as every pane); and the status check, which hashes deps, in a
thread worker of its own, only when the pane is shown, when a repro's step settles, when mltui.toml
changes, on ctrl+r, or every CHECK_EVERY seconds while shown. `r` and `R` start `mltui repro` as a
detached process (it outlives the screen); its steps then show here as it goes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from mltui.base.errors import MltuiError
from mltui.base.text import age, safe
from mltui.core.pipeline.view import (Check, PipelineFile, Progress, Source, StageRow, Started, check,
                                      last_line, needs, read_progress, stage_rows, start_repro, took)
from mltui.core.workspace import Workspace
from mltui.tui.messages import PipelineChecked, PipelineCheckFailed
from mltui.tui.panes.base import Pane
from mltui.tui.widgets.keyed_table import Column, KeyedTable

CHECK_EVERY = 30.0  # seconds between two status checks while the pane is shown and nothing happens
# state -> (icon, theme variable of its colour)
LOOK = {
    "up to date": ("✓", "status-finished"), "restored": ("↺", "accent"), "changed": ("●", "warning"),
    "never run": ("○", "warning"), "waiting": ("…", "status-queued"), "running": ("▶", "status-running"),
    "failed": ("✗", "status-failed"), "skipped": ("-", "status-lost"), "checking": ("·", ""),
}
COLUMNS = [Column("stage", "Stage"), Column("state", "State"), Column("run", "Last run"), Column("took", "Took"),
           Column("why", "Why")]


@dataclass
class PipelineSnapshot:
    source: Source
    progress: Progress | None
    recheck: bool  # the pane was shown or refreshed, or mltui.toml changed: check the stages again


def look(state: str, colours: dict[str, str]) -> tuple[str, str]:
    """The icon and the Rich style of a state (dim where the theme gives no colour)."""
    icon, variable = LOOK.get(state, ("·", ""))
    return icon, colours.get(variable, "") or "dim"


class PipelinesPane(Pane):
    BINDINGS = [
        Binding("r", "repro", "Repro stage", id="pipelines.repro"),
        Binding("R", "repro_all", "Repro stale", id="pipelines.repro_all"),
        Binding("s", "why", "Why", id="pipelines.why"),
        Binding("ctrl+r", "refresh", "Refresh", id="pipelines.refresh", show=False),
    ]
    poll_group = "pipelines-poll"
    can_focus = True
    empty_id, body_ids = "pipelines-empty", ("pipelines-body",)
    focus_id = "pipelines-table"

    def __init__(self, ws: Workspace, refresh_seconds: float = 1.0, **kwargs) -> None:
        super().__init__(ws, refresh_seconds, **kwargs)
        self.file = PipelineFile(ws)  # touched only by the poll's thread
        self.source: Source | None = None
        self.progress: Progress | None = None
        self.checked: Check | None = None
        self.rows: list[StageRow] = []
        self._checking = False
        self._check_again = False
        self._last_check = 0.0  # monotonic time the last check started
        self._settled: tuple | None = None  # the repro's settled steps at the last check
        self._started: Started | None = None  # the repro this pane started, until it exits
        self._check_error: str | None = None  # why the last check failed (a store that cannot be written)

    def compose(self) -> ComposeResult:
        yield self.empty_note()
        with Vertical(id="pipelines-body"):
            yield Static(id="pipelines-head")
            yield KeyedTable(id="pipelines-table")
            yield Static(id="pipelines-detail")

    # -- polling (Pane: reader, refresh, empty state) -------------------------------------------
    def collect(self, force: bool) -> PipelineSnapshot | None:
        reloaded = self.file.refresh()
        source = self.file.source
        changed = self.reader.changed() if source.pipe is not None and self.reader is not None else False
        if not (force or reloaded or changed):
            return None
        progress = None
        if source.pipe is not None and self.reader is not None:
            try:
                progress = self.reader.read(lambda conn: read_progress(conn, source.pipe))
            except MltuiError:  # a store from before pipelines (read-only): the stages, unchecked
                progress = None
        return PipelineSnapshot(source, progress, force or reloaded)

    def apply(self, snap: PipelineSnapshot | None) -> None:
        self._watch_started()
        if snap is not None:
            if snap.source is not self.source:
                self.checked = None  # a check of another pipeline says nothing of this one
            self.source, self.progress = snap.source, snap.progress
            self.show_empty(snap.source.pipe is None)
            if snap.source.pipe is None:
                self.query_one(f"#{self.empty_id}", Static).update(Text(snap.source.problem or ""))
                return
            settled = self._settled_steps()
            if snap.recheck or settled != self._settled:
                self._settled = settled
                self.request_check()
        if self.source is None or self.source.pipe is None:
            return
        if not self._checking and time.monotonic() - self._last_check > CHECK_EVERY:
            self.request_check()
        self._draw()

    def _settled_steps(self) -> tuple:
        p = self.progress
        if p is None or p.repro is None:
            return ()
        return (p.repro["id"], tuple(sorted((s, st["state"]) for s, st in p.steps.items()
                                            if st["state"] not in ("waiting", "running"))))

    # -- the status check (hashes deps: a thread of its own) -------------------------------------
    def request_check(self) -> None:
        if self.source is None or self.source.pipe is None:
            return
        if self._checking:
            self._check_again = True
            return
        self._checking = True
        self._last_check = time.monotonic()
        self._check(self.source.pipe)
        self._draw_head()

    @work(thread=True, exclusive=True, group="pipelines-check", exit_on_error=False)
    def _check(self, pipe) -> None:
        from mltui.core.reader import with_writer

        try:
            result = with_writer(self.ws, lambda conn: check(self.ws, conn, pipe))
        except Exception as exc:  # never left "checking" for good: every failure answers
            said = str(exc) if isinstance(exc, MltuiError) else f"{type(exc).__name__}: {exc}"
            self.post_message(PipelineCheckFailed(pipe, said))
            return
        self.post_message(PipelineChecked(pipe, result))

    def on_pipeline_checked(self, message: PipelineChecked) -> None:
        self._check_error = None
        self._check_done()
        if self.source is not None and message.pipe is self.source.pipe:
            self.checked = message.checked
            self._draw()

    def on_pipeline_check_failed(self, message: PipelineCheckFailed) -> None:
        if message.error != self._check_error:  # said once, not on every check
            self.notify(f"Cannot check the pipeline's stages: {message.error}", severity="error", timeout=8,
                        markup=False)
        self._check_error = message.error
        self._check_done()

    def _check_done(self) -> None:
        self._checking = False
        if self._check_again:
            self._check_again = False
            self.request_check()
        else:
            self._draw_head()

    # -- drawing --------------------------------------------------------------------------------
    def _draw(self) -> None:
        if self.source is None or self.source.pipe is None:
            return
        self.rows = stage_rows(self.source.pipe, self.progress, self.checked)
        colours = self.app.theme_variables
        table_rows = []
        for row in self.rows:
            icon, style = look(row.state, colours)
            stage = Text("  " * row.depth + ("└─ " if row.depth else ""))
            stage.append(safe(row.name), style="bold")
            if row.parents:
                stage.append(f" ← {safe(', '.join(row.parents))}", style="dim")
            why = Text(safe(row.reasons[0]) if row.reasons else "", no_wrap=True)
            why.truncate(max(40, self.size.width - 84), overflow="ellipsis")  # the rest of a wide terminal
            table_rows.append((row.name, [stage, Text(f"{icon} {row.state}", style=style),
                                          Text(row.run_id or "-", style="dim"), Text(took(row.seconds)), why]))
        self.query_one("#pipelines-table", KeyedTable).sync(COLUMNS, table_rows, "stage")
        self._draw_head()
        self._draw_detail()

    def _draw_head(self) -> None:
        if self.source is None or self.source.pipe is None:
            return
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.state] = counts.get(row.state, 0) + 1
        path = self.source.path
        shown = path.relative_to(self.ws.project_dir) if path and path.is_relative_to(self.ws.project_dir) else path
        head = Text(safe(shown), style="bold")
        head.append(f" · {len(self.rows)} stages: " + ", ".join(f"{n} {state}" for state, n in counts.items()))
        p = self.progress
        if p is not None and p.repro is not None:
            done = sum(1 for s in p.steps.values() if s["state"] not in ("waiting", "running"))
            if p.live:
                head.append(f" · repro {p.repro['id']} running ({done}/{len(p.steps)})",
                            style=self.app.theme_variables.get("status-running", ""))
            elif p.repro["status"] == "running":  # its mltui repro was killed; the next one adopts its runs
                head.append(f" · repro {p.repro['id']} stopped half-way", style="dim")
            else:
                head.append(f" · last repro {p.repro['status']} {age(p.repro['ended'])} ago", style="dim")
        elif self._started is not None:
            head.append(" · starting mltui repro…", style="dim")
        if self._checking:
            head.append(" · checking deps…", style="dim")
        elif self._check_error:
            head.append(" · cannot check the stages (see the notice)", style="dim")
        self.query_one("#pipelines-head", Static).update(head)

    def _draw_detail(self) -> None:
        """The highlighted stage under the DAG: its deps and outs, every reason, its last run."""
        row = self.highlighted()
        if row is None:
            self.query_one("#pipelines-detail", Static).update("")
            return
        icon, style = look(row.state, self.app.theme_variables)
        text = Text(safe(row.name), style="bold")
        text.append(f"  {icon} {row.state}", style=style)
        text.append(f"\ndeps: {safe(', '.join(row.deps) or '-')}  outs: {safe(', '.join(row.outs) or '-')}",
                    style="dim")
        for reason in row.reasons:
            text.append(f"\n• {safe(reason)}")
        if row.run_id:
            text.append(f"\nlast run {row.run_id} ({took(row.seconds)}): enter opens it", style="dim")
        self.query_one("#pipelines-detail", Static).update(text)

    def on_resize(self) -> None:
        self._draw()  # the Why column takes what a wider terminal gives

    @on(DataTable.RowHighlighted, "#pipelines-table")
    def _highlighted(self) -> None:
        self._draw_detail()

    def highlighted(self) -> StageRow | None:
        key = self.query_one("#pipelines-table", KeyedTable).highlighted_key
        return next((r for r in self.rows if r.name == key), None)

    # -- actions --------------------------------------------------------------------------------
    @on(DataTable.RowSelected, "#pipelines-table")
    def _selected(self) -> None:
        row = self.highlighted()
        if row is None:
            return
        if row.run_id is None:
            self.notify(f"Stage {safe(row.name)} has no run yet (r runs it).", timeout=4, markup=False)
            return
        self.app.open_run(row.run_id)  # type: ignore[attr-defined]

    def action_why(self) -> None:
        from mltui.tui.modals.why import WhyScreen

        row = self.highlighted()
        if row is None:
            return
        icon, style = look(row.state, self.app.theme_variables)
        title = Text(f"{safe(row.name)}: ", style="bold")
        title.append(f"{icon} {row.state}", style=style)
        if row.state == "checking":
            lines = [Text("Its deps are still being checked; ask again in a moment.")]
        elif row.reasons:
            lines = [Text(f"• {safe(reason)}") for reason in row.reasons]
        elif row.state in ("up to date", "restored"):
            lines = [Text("Its command, params and deps are those of its last successful run, and its outs "
                          "are what that run left.")]
        else:
            lines = [Text(f"It is {row.state}.")]
        lines.append(Text(f"deps: {safe(', '.join(row.deps) or '-')}", style="dim"))
        lines.append(Text(f"outs: {safe(', '.join(row.outs) or '-')}", style="dim"))
        if row.run_id:
            lines.append(Text(f"last run: {row.run_id} ({took(row.seconds)}); enter opens it", style="dim"))
        self.app.push_screen(WhyScreen(title, lines))

    def action_repro(self) -> None:
        row = self.highlighted()
        if row is None or self.source is None or self.source.pipe is None:
            return
        todo = needs(self.source.pipe, self.rows, row.name)
        if not todo:
            self.notify(f"{safe(row.name)} and the stages it needs are up to date; nothing to run.", timeout=4,
                        markup=False)
            return
        self._start([row.name], f"Reproducing {', '.join(todo)}")

    def action_repro_all(self) -> None:
        if self.source is None or self.source.pipe is None:
            return
        todo = [r.name for r in self.rows if r.stale or r.state == "checking"]
        if not todo:
            self.notify("Every stage is up to date; nothing to run.", timeout=4)
            return
        self._start([], f"Reproducing {', '.join(todo)}")

    def _start(self, stages: list[str], what: str) -> None:
        p = self.progress
        if (p is not None and p.live) or self._started is not None:
            who = f" (pipeline run {p.repro['id']})" if p is not None and p.live and p.repro else ""
            self.notify(f"A repro is already running{who}; wait for it to end.", severity="warning", timeout=5,
                        markup=False)
            return
        try:
            self._started = start_repro(self.ws, self.source.pipe.project, stages)
        except MltuiError as exc:
            self.notify(str(exc), severity="error", timeout=8, markup=False)
            return
        self.notify(f"{safe(what)} in the background (mltui repro, output in {self._started.log}).", timeout=6,
                    markup=False)
        self._draw_head()
        self.poll_now(force=True)

    def _watch_started(self) -> None:
        """Reap the repro this pane started once it exits, and say so when it failed."""
        started = self._started
        if started is None or started.process.poll() is None:
            return
        self._started = None
        code = started.process.returncode
        if code != 0:
            said = last_line(started.log)
            self.notify(f"mltui repro ended with exit code {code}" + (f": {said}" if said else "."),
                        severity="error", timeout=10, markup=False)
        self.request_check()
