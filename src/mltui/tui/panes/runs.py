"""The Runs pane: filter box, status line, keyed runs table and (when wide) a preview of the highlighted run."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Static

from mltui.base.errors import MltuiError
from mltui.core.runs.listing import RunList, check_where, list_runs, pick_columns
from mltui.core.workspace import Workspace
from mltui.tui.panes.base import Pane
from mltui.tui.widgets.run_preview import RunPreview
from mltui.tui.widgets.runs_table import RunsTable, columns_for

SORTS = [
    ("-created", "newest first"), ("created", "oldest first"), ("name", "name"), ("status", "status"),
    ("-duration", "longest first"),
]
MAX_ROWS = 2000
WIDE = 150  # columns from which the preview panel is shown


@dataclass
class RunsSnapshot:
    result: RunList
    taken: float


class RunsPane(Pane):
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", id="runs.filter"),
        Binding("s", "cycle_sort", "Sort", id="runs.sort"),
        Binding("space", "toggle_mark", "Mark", id="runs.mark"),
        Binding("c", "compare", "Compare", id="runs.compare"),
        Binding("C", "compare_all", "Compare all", id="runs.compare_all", show=False),
        Binding("n", "app.launch", "Launch", id="runs.launch"),
        Binding("l", "app.open_log", "Log", id="runs.log"),
        Binding("k", "app.kill_run", "Kill", id="runs.kill", show=False),
        Binding("r", "app.rerun", "Rerun", id="runs.rerun", show=False),
        Binding("ctrl+r", "refresh", "Refresh", id="runs.refresh", show=False),
    ]
    reap_every = 5.0  # seconds between looks for runs whose supervisor died
    poll_group = "runs-poll"

    def __init__(self, ws: Workspace, refresh_seconds: float = 1.0, **kwargs) -> None:
        super().__init__(ws, refresh_seconds, **kwargs)
        self.where: str | None = None
        self.sort: tuple[str, str] = SORTS[0]  # (--sort spec, label); kept even when a filter hides its metric
        self.snapshot: RunsSnapshot | None = None
        self._reaped = 0.0
        self._highlight: str | None = None  # a run to move the cursor to once it is drawn (one just launched)

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter: params.lr > 0.01 and status = running   (/ to focus · enter applies · esc clears)",
                    id="filter")
        yield Static(id="filter-error")
        yield Static(id="runs-status")
        with Horizontal(id="runs-body"):
            yield RunsTable(id="runs-table")
            yield RunPreview(id="run-preview")

    def on_mount(self) -> None:  # then Pane's: the first poll
        self.query_one("#filter-error").display = False
        self.query_one(RunsTable).focus()

    # -- polling (Pane: reader, refresh) ---------------------------------------------------
    def should_poll(self) -> bool:
        return self.is_attached and self.screen is self.app.screen and self.display

    def collect(self, force: bool) -> RunsSnapshot | None:
        if time.time() - self._reaped >= self.reap_every:
            from mltui.core.launch.liveness import reap_lost

            self._reaped = time.time()
            reap_lost(self.ws, self.reader.conn)  # marks dead runs lost; the change shows below
        return super().collect(force)

    def read(self, conn) -> RunsSnapshot:
        return RunsSnapshot(list_runs(conn, where=self.where, sort=self.sort[0], limit=MAX_ROWS), time.time())

    def apply(self, snapshot: RunsSnapshot | None) -> None:
        if snapshot is not None:
            self.snapshot = snapshot
        self.render_snapshot()

    # -- drawing -------------------------------------------------------------------------
    def render_snapshot(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        runs = snap.result.runs
        width = self.app.size.width
        n_params, n_metrics = (0, 2) if width < 100 else (2, 3) if width < 140 else (4, 4) if width < 180 else (6, 5)
        params = pick_columns(runs, "params", n_params, varying=True)
        metrics = pick_columns(runs, "metrics", n_metrics, varying=False)
        table = self.query_one(RunsTable)
        table.name_width = 24 if width < 100 else 36
        table.show(runs, columns_for(params, metrics), time.time())
        if self._highlight is not None and self._highlight in table.rows:
            table.move_cursor(row=table.get_row_index(self._highlight))
            self._highlight = None
        preview = self.query_one(RunPreview)
        preview.display = width >= WIDE
        if preview.display:
            preview.show_run(self.highlighted_run())
        self._update_status()

    def _update_status(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        result = snap.result
        running = sum(1 for r in result.runs if r["status"] == "running")
        status = Text()
        if result.total == 0:
            status.append("No runs match this filter." if self.where else
                          "No runs yet. Log one from a training script with mltui.init(), then watch it here.")
        else:
            shown = len(result.runs)
            noun = "run" if result.total == 1 else "runs"
            status.append(f"{result.total:,} {noun}" if shown == result.total else f"{shown:,} of {result.total:,} {noun}")
            if running:
                status.append(f" · {running} running", style=self.app.theme_variables.get("status-running", ""))
        marked = len(self.query_one(RunsTable).marked)
        if marked:
            status.append(f" · {marked} marked", style=self.app.theme_variables.get("accent", ""))
        status.append(f" · sort: {self.sort_label()}", style="dim")
        if self.where:
            status.append(" · filter: ", style="dim")
            status.append(self.where)  # literal text, never markup
        self.query_one("#runs-status", Static).update(status)

    def highlighted_run(self) -> dict | None:
        run_id = self.query_one(RunsTable).highlighted_id
        if self.snapshot is None or run_id is None:
            return None
        return next((r for r in self.snapshot.result.runs if r["id"] == run_id), None)

    def on_resize(self) -> None:
        self.render_snapshot()

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        preview = self.query_one(RunPreview)
        if preview.display:
            preview.show_run(self.highlighted_run())

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.app.open_run(event.row_key.value)  # type: ignore[attr-defined]

    # -- filter and sort -----------------------------------------------------------------
    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.apply_filter(event.value)

    def apply_filter(self, text: str) -> bool:
        """Validate and apply a --where filter; a bad one is explained and the old one kept."""
        error = self.query_one("#filter-error", Static)
        text = text.strip()
        if text:
            try:
                check_where(text)
            except MltuiError as exc:
                error.update(Text(str(exc), style=self.app.theme_variables.get("error", "red")))
                error.display = True
                return False
        error.display = False
        self.where = text or None
        self.query_one(RunsTable).focus()
        self.poll_now(force=True)
        return True

    def clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.apply_filter("")

    def on_key(self, event) -> None:
        if event.key == "escape" and self.query_one("#filter", Input).has_focus:
            event.stop()
            self.clear_filter()

    def _metric_sorts(self) -> list[tuple[str, str]]:
        if self.snapshot is None:
            return []
        keys = pick_columns(self.snapshot.result.runs, "metrics", 4, varying=False)
        return [(f"-metrics.{k}", f"{k} (high first)") for k in keys]

    def sort_label(self) -> str:
        return self.sort[1]

    def action_cycle_sort(self) -> None:
        options = SORTS + [o for o in self._metric_sorts() if o not in SORTS]
        position = options.index(self.sort) if self.sort in options else -1
        self.sort = options[(position + 1) % len(options)]
        self.poll_now(force=True)
        self.notify(f"Sorted by {self.sort_label()}", timeout=2)

    # -- picking runs to compare ---------------------------------------------------------------
    def action_toggle_mark(self) -> None:
        table = self.query_one(RunsTable)
        run_id = table.highlighted_id
        if run_id is None:
            return
        if run_id not in table.marked and len(table.marked) >= 50:
            self.notify("At most 50 runs can be compared at once.", severity="warning", timeout=3)
            return
        table.toggle_mark(run_id)
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)
        self._update_status()

    def action_compare(self) -> None:
        from mltui.core.runs.views import View

        table = self.query_one(RunsTable)
        order = [row.key.value for row in table.ordered_rows]
        ids = [rid for rid in order if rid in table.marked] or ([table.highlighted_id] if table.highlighted_id else [])
        if not ids:
            self.notify("No runs to compare: mark some with space.", timeout=3)
            return
        self.app.compare_view(View(runs=ids))  # type: ignore[attr-defined]

    def action_compare_all(self) -> None:
        from mltui.core.runs.views import View

        if self.snapshot is None or not self.snapshot.result.runs:
            self.notify("No runs to compare.", timeout=3)
            return
        if self.snapshot.result.total > 50:
            self.notify(f"The filter shows {self.snapshot.result.total} runs; narrow it to 50 or fewer to compare "
                        "them all.", severity="warning", timeout=5)
            return
        view = View(where=self.where) if self.where else View(runs=[r["id"] for r in self.snapshot.result.runs])
        self.app.compare_view(view)  # type: ignore[attr-defined]

    def highlight(self, run_id: str) -> None:
        """Put the cursor on `run_id` as soon as the table shows it."""
        self._highlight = run_id
        self.poll_now(force=True)
