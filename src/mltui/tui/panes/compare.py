"""The Compare pane: marked runs' curves over each other, a best-of table and the params that differ; with
g, groups of runs instead (each group's mean over a band: panes/compare_groups.py)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.widgets import Static

from mltui.core.runs.listing import list_runs, runs_by_id
from mltui.base.text import safe
from mltui.base.values import display
from mltui.core.runs.views import View
from mltui.core.workspace import Workspace
from mltui.tui.cells import number, plain
from mltui.tui.panes.base import Pane
from mltui.tui.widgets.keyed_table import Column, KeyedTable

if TYPE_CHECKING:
    from mltui.core.runs.compare import Comparison
# plotext (mltui.chart) and polars (core/runs/compare.py) are imported when a comparison is first drawn,
# not when the app starts: the Runs pane's first row does not wait for them

SMOOTHING = (0.0, 0.3, 0.6, 0.8, 0.9, 0.95, 0.99)


def load_chart_modules() -> None:
    import mltui.chart  # noqa: F401
    import mltui.core.runs.compare  # noqa: F401

MAX_RUNS = 50
MULTIPLES = 4
EMPTY = ("Nothing to compare yet. In the Runs pane (key 1) mark runs with space and press c, or press C to "
         "compare every run the filter shows (up to 50). Saved views open from the command palette (ctrl+p).")


class ChartGrid(Grid):
    """Tells its pane when its size changes (first shown, terminal resized), so charts are redrawn to fit."""

    def on_resize(self) -> None:
        pane = self.parent
        if isinstance(pane, ComparePane) and pane.active:
            pane.call_after_refresh(pane.poll_now, True)


@dataclass
class CompareState:
    view: View = field(default_factory=View)
    metric_index: int = 0
    multiples: bool = False
    legend: bool = True
    all_params: bool = False


@dataclass
class CompareSnapshot:
    comparison: Comparison
    charts: list[str]  # ANSI text, one per chart widget
    shown_metrics: list[str]
    groups: object | None = None  # core.runs.compare_groups.GroupedRuns, in group mode (key g)
    group_error: str | None = None


class ComparePane(Pane):
    BINDINGS = [
        Binding("m", "next_metric(1)", "Metric", id="compare.next_metric"),
        Binding("M", "next_metric(-1)", "Prev metric", id="compare.prev_metric", show=False),
        Binding("v", "toggle_multiples", "Multiples", id="compare.multiples"),
        Binding("x", "cycle_axis", "X axis", id="compare.axis"),
        Binding("y", "toggle_log", "Log y", id="compare.log_y"),
        Binding("right_square_bracket", "smooth(1)", "Smooth+", id="compare.smooth_more"),
        Binding("left_square_bracket", "smooth(-1)", "Smooth-", id="compare.smooth_less"),
        Binding("o", "toggle_clip", "Clip", id="compare.clip", show=False),
        Binding("l", "toggle_legend", "Legend", id="compare.legend", show=False),
        Binding("a", "toggle_params", "All params", id="compare.all_params", show=False),
        Binding("g", "toggle_groups", "Groups", id="compare.groups",
                tooltip="one line per group of runs (every param but seed, or as the Runs pane groups): "
                "the mean over a band"),
        Binding("b", "cycle_band", "Band", id="compare.band", show=False,
                tooltip="the band around each group's mean: ± std, min–max or none"),
        Binding("ctrl+s", "save_view", "Save view", id="compare.save"),
    ]
    poll_group = "compare-poll"
    can_focus = True
    empty_id, empty_text, body_ids = "compare-empty", EMPTY, ("charts", "compare-tables")

    def __init__(self, ws: Workspace, refresh_seconds: float = 1.0, directions: dict[str, str] | None = None,
                 **kwargs) -> None:
        super().__init__(ws, refresh_seconds, **kwargs)
        self.directions = directions or {}
        self.state = CompareState()
        self.snapshot: CompareSnapshot | None = None
        self._chart_sizes: list[tuple[int, int]] = []
        self._best_cache: dict = {}  # (run, key, direction, count, last step) -> (best, step of best)

    def compose(self) -> ComposeResult:
        yield Static(id="compare-status")
        yield self.empty_note()
        yield ChartGrid(*(Static(classes="chart") for _ in range(MULTIPLES)), id="charts")
        with Horizontal(id="compare-tables"):
            yield KeyedTable(id="compare-metrics")
            yield KeyedTable(id="compare-params")

    def on_mount(self) -> None:  # then Pane's: the first poll
        self._draw_all()  # the empty state says what to do, before anything is compared
        # plotext and polars load in the background once the first screen is up, so the first
        # comparison does not wait for them (nor does the Runs pane's first row)
        self.set_timer(1.0, lambda: self.run_worker(load_chart_modules, thread=True, exclusive=True,
                                                    group="compare-imports", exit_on_error=False))

    # -- what is compared ----------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return bool(self.state.view.runs or self.state.view.where)

    def set_view(self, view: View) -> None:
        self.state = CompareState(view=view, legend=self.state.legend)
        self.snapshot = None
        self.poll_now(force=True)

    # -- polling -------------------------------------------------------------------------------
    def should_poll(self) -> bool:
        return self.active and self.is_attached and self.screen is self.app.screen and self.display \
            and self.region.width > 0

    def _target_sizes(self) -> list[tuple[int, int]]:
        """The size each chart will have: one chart fills the grid, multiples share it 2 x 2."""
        grid = self.query_one("#charts").content_region
        if self.state.multiples:
            metrics = len(self.snapshot.comparison.metrics) if self.snapshot else MULTIPLES
            rows = 2 if min(MULTIPLES, metrics) > 2 else 1  # two columns; a second row only when needed
            return [(max(20, grid.width // 2), max(5, grid.height // rows))] * MULTIPLES
        return [(max(20, grid.width), max(5, grid.height))]

    def poll_now(self, force: bool = False) -> None:
        self._chart_sizes = self._target_sizes()
        super().poll_now(force)

    def read(self, conn) -> CompareSnapshot:
        from mltui.chart import buckets_for, draw
        from mltui.core.runs.compare import clip_limits, compare, load_series

        view = self.state.view
        if view.runs:
            runs = runs_by_id(conn, list(dict.fromkeys(view.runs)), details=True)  # a run listed twice is shown once
        else:
            runs = list_runs(conn, where=view.where, limit=MAX_RUNS).runs
        if len(self._best_cache) > 10_000:
            self._best_cache.clear()
        comp = compare(conn, runs, view.metrics or None, self.directions, self._best_cache)
        keys = comp.metrics
        if not keys:
            return CompareSnapshot(comp, [], [])
        start = self.state.metric_index % len(keys)
        count = min(MULTIPLES, len(keys)) if self.state.multiples else 1
        shown = [keys[(start + i) % len(keys)] for i in range(count)]
        if view.group_by:
            from mltui.tui.panes.compare_groups import group_charts

            done = group_charts(conn, [r["id"] for r in runs], keys, shown, self.state, view,
                                self._chart_sizes, self._colours)
            return CompareSnapshot(comp, done.charts, shown, done.grouped, done.error)
        names = {r["id"]: r["name"] for r in runs}
        colours = self._colours(len(runs))
        by_run = {r["id"]: colours[i] for i, r in enumerate(runs)}
        charts = []
        for key, (width, height) in zip(shown, self._chart_sizes or [(80, 20)] * count):
            series = load_series(conn, [r["id"] for r in runs], key, view.axis, view.smoothing,
                                 buckets=buckets_for(width, len(runs)))
            charts.append(draw(
                series, [safe(names[s.run_id]) for s in series], width, height, title=safe(key), axis=view.axis,
                log_y=view.log_y, ylim=clip_limits(series) if view.clip else None, legend=self.state.legend,
                colours=[by_run[s.run_id] for s in series],
            ))
        return CompareSnapshot(comp, charts, shown)

    def _colours(self, n: int) -> list[tuple[int, int, int]]:
        from mltui.chart import hex_to_rgb, palette

        theme = self.app.theme_variables
        first = [hex_to_rgb(theme.get(name, "")) for name in ("primary", "accent", "success", "secondary",
                                                               "warning", "error")]
        return palette(n, [c for c in first if c])

    def apply(self, snapshot: CompareSnapshot | None) -> None:
        if snapshot is None:
            return  # the store is as it was: nothing to draw again (idle costs nothing)
        if snapshot.group_error:
            self.notify(snapshot.group_error, severity="warning", timeout=6, markup=False)
            self.state.view = replace(self.state.view, group_by=None)
            self.poll_now(force=True)
            return
        self.snapshot = snapshot
        self._draw_all()
        if self.active:  # drawn before the layout settled (first show, resize): draw again at the real size
            self.call_after_refresh(self._redraw_if_resized)

    def _redraw_if_resized(self) -> None:
        if self._target_sizes() != self._chart_sizes[: len(self._target_sizes())]:
            self.poll_now(force=True)

    # -- drawing -------------------------------------------------------------------------------
    def _draw_all(self) -> None:
        self.show_empty(not self.active)
        self._update_status()
        snap = self.snapshot
        if snap is None or not self.active:
            return
        charts = list(self.query(".chart"))
        grid = self.query_one("#charts")
        grid.set_class(len(snap.charts) > 1, "-multiples")
        for i, widget in enumerate(charts):
            widget.display = i < max(1, len(snap.charts))
            if i < len(snap.charts):
                widget.update(Text.from_ansi(snap.charts[i]))
            elif i == 0:
                widget.update(Text("These runs have logged no metrics yet.", style="dim"))
        self._tables(snap)

    def _tables(self, snap: CompareSnapshot) -> None:
        if snap.groups is None:
            self._metric_table(snap.comparison, snap.shown_metrics)
            self._param_table(snap.comparison)
            return
        from mltui.tui.panes.compare_groups import group_metric_table, group_param_table

        best_style = f"bold {self.app.theme_variables.get('success', '')}"
        group_metric_table(self.query_one("#compare-metrics", KeyedTable), snap.groups, snap.comparison,
                           snap.shown_metrics, best_style)
        group_param_table(self.query_one("#compare-params", KeyedTable), snap.groups, self.state.all_params,
                          {r["id"]: r["name"] for r in snap.comparison.runs})

    def _metric_table(self, comp: Comparison, shown: list[str]) -> None:
        table = self.query_one("#compare-metrics", KeyedTable)
        keys = shown + [k for k in comp.metrics if k not in shown]
        columns = [Column("name", "Run")]
        for key in keys:
            arrow = "↓" if comp.directions[key] == "min" else "↑"
            columns += [Column(f"b:{key}", f"{key} best{arrow}"), Column(f"l:{key}", f"{key} last")]
        columns.append(Column("id", "ID"))
        best_style = f"bold {self.app.theme_variables.get('success', '')}"
        rows = []
        for run in comp.runs:
            cells = [plain(run["name"], 28)]
            for key in keys:
                c = comp.cells[run["id"]][key]
                if c.best is None:
                    cells += [Text("-", style="dim", justify="right"), Text("-", style="dim", justify="right")]
                    continue
                best = Text(f"{display(c.best)} @{c.best_step}", justify="right",
                            style=best_style if c.is_best else "")
                cells += [best, number(c.last)]
            cells.append(Text(run["id"], style="dim"))
            rows.append((run["id"], cells))
        table.sync(columns, rows, "id")

    def _param_table(self, comp: Comparison) -> None:
        table = self.query_one("#compare-params", KeyedTable)
        keys = comp.params_all if self.state.all_params else comp.params_differ
        differ = set(comp.params_differ)
        columns = [Column("name", "Run"), *(Column(f"p:{k}", k) for k in keys), Column("id", "ID")]
        accent = self.app.theme_variables.get("accent", "")
        rows = []
        for run in comp.runs:
            cells = [plain(run["name"], 28)]
            for key in keys:
                cell = number(run["params"][key]) if key in run["params"] else Text("-", style="dim")
                if key in differ:
                    cell.stylize(accent)
                cells.append(cell)
            cells.append(Text(run["id"], style="dim"))
            rows.append((run["id"], cells))
        table.sync(columns, rows, "id")

    def _update_status(self) -> None:
        status = Text()
        if not self.active:
            status.append("Compare", style="bold")
        else:
            view, snap = self.state.view, self.snapshot
            count = len(snap.comparison.runs) if snap else 0
            if view.group_by:
                from mltui.tui.panes.compare_groups import group_status

                group_status(status, snap.groups if snap else None, view.band)
            else:
                status.append(f"{count} run" if count == 1 else f"{count} runs", style="bold")
            if view.where:
                status.append(" · where ", style="dim")
                status.append(view.where)
            if snap and snap.shown_metrics:
                status.append(" · metric ", style="dim")
                status.append(", ".join(snap.shown_metrics))
            axis = "step" if view.group_by else view.axis  # groups are aligned by step
            status.append(f" · x {axis} · smoothing {view.smoothing:g}", style="dim")
            if view.log_y:
                status.append(" · log y", style="dim")
            if view.clip:
                status.append(" · outliers clipped", style="dim")
            if snap and not snap.comparison.params_differ and not view.group_by:
                status.append(" · same params", style="dim")
        self.query_one("#compare-status", Static).update(status)

    def on_resize(self) -> None:
        if self.active:
            self.call_after_refresh(self.poll_now, True)

    # -- keys ----------------------------------------------------------------------------------
    def _change(self, **view_changes) -> None:
        if not self.active:
            self.notify("Nothing to compare yet: mark runs in the Runs pane first.", timeout=3)
            return
        if view_changes:
            self.state.view = replace(self.state.view, **view_changes)
        self.poll_now(force=True)

    def action_next_metric(self, step: int) -> None:
        self.state.metric_index += step
        self._change()

    def action_toggle_multiples(self) -> None:
        self.state.multiples = not self.state.multiples
        self.call_after_refresh(self._change)

    def action_cycle_axis(self) -> None:
        from mltui.core.runs.compare import AXES

        if self.state.view.group_by:
            self.notify("Groups are drawn by step (their runs are aligned step by step); g ungroups.", timeout=3)
            return
        self._change(axis=AXES[(AXES.index(self.state.view.axis) + 1) % len(AXES)])

    def action_toggle_log(self) -> None:
        self._change(log_y=not self.state.view.log_y)

    def action_toggle_clip(self) -> None:
        self._change(clip=not self.state.view.clip)

    def action_smooth(self, step: int) -> None:
        current = self.state.view.smoothing
        index = min(range(len(SMOOTHING)), key=lambda i: abs(SMOOTHING[i] - current))
        self._change(smoothing=SMOOTHING[max(0, min(len(SMOOTHING) - 1, index + step))])

    def action_toggle_legend(self) -> None:
        self.state.legend = not self.state.legend
        self._change()

    def action_toggle_params(self) -> None:
        self.state.all_params = not self.state.all_params
        if self.snapshot:
            self._tables(self.snapshot)

    def action_toggle_groups(self) -> None:
        if self.state.view.group_by:
            self._change(group_by=None)
            return
        from mltui.core.runs.compare_groups import DEFAULT_SPEC

        runs_pane = next(iter(self.screen.query("#runs-pane")), None)  # grouped there: the same groups here
        self._change(group_by=getattr(runs_pane, "group_spec", None) or DEFAULT_SPEC)

    def action_cycle_band(self) -> None:
        from mltui.core.runs.views import BANDS

        if self.active and not self.state.view.group_by:
            self.notify("The band is drawn around each group's mean: press g to group the runs first.", timeout=3)
            return
        band = self.state.view.band
        self._change(band=BANDS[(BANDS.index(band) + 1) % len(BANDS)] if band in BANDS else BANDS[0])

    def action_save_view(self) -> None:
        if not self.active:
            self.notify("Nothing to save yet: mark runs in the Runs pane first.", timeout=3)
            return
        from mltui.tui.modals.save_view import SaveViewScreen

        self.app.push_screen(SaveViewScreen(self.ws, self.state.view))
