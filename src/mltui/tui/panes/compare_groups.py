"""The Compare pane in groups (key g): the compared runs grouped like the Runs pane groups them ('*,-seed'
unless the Runs pane is grouped by another spec), one line per group (its mean) over a band that b cycles
(± std, min–max, none), and tables of N and the mean ± std of each metric per group.

Reading (group_charts) runs in the pane's poll thread; the tables are drawn on the UI thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from rich.text import Text

from mltui.base.text import safe
from mltui.base.values import display
from mltui.tui.cells import plain
from mltui.tui.panes.run_groups import group_row_id
from mltui.tui.widgets.keyed_table import Column, KeyedTable


@dataclass
class GroupedCharts:
    grouped: object | None  # core.runs.compare_groups.GroupedRuns; None when the spec was bad
    charts: list[str]
    error: str | None = None


def _fit(label: str, room: int) -> str:
    return label if len(label) <= room else label[: max(1, room - 1)] + "…"


def group_charts(conn, run_ids: list[str], metrics: list[str], shown: list[str], state, view,
                 sizes: list[tuple[int, int]], colours_for) -> GroupedCharts:
    """The groups of the compared runs and a chart per shown metric (in the poll's thread)."""
    from mltui.base.errors import MltuiError
    from mltui.chart import POINT_BUDGET, draw_bands
    from mltui.core.runs.compare import clip_limits
    from mltui.core.runs.compare_groups import BAND_NAMES, band_limits, group_bands, group_compared, n_text

    try:
        grouped = group_compared(conn, run_ids, view.group_by, metrics)
    except MltuiError as exc:
        return GroupedCharts(None, [], str(exc))
    groups = grouped.groups
    colours = colours_for(len(groups))
    charts = []
    for key, (width, height) in zip(shown, sizes or [(80, 20)] * len(shown)):
        points = max(20, min(width - 10, POINT_BUDGET // max(1, len(groups))))
        bands = group_bands(conn, groups, key, points, view.smoothing)
        room = max(12, width // 2 - 8)
        labels = [_fit(safe(label), room) + f"  {n_text(band, group)}"
                  for label, band, group in zip(grouped.labels, bands, groups)]
        means = [SimpleNamespace(y=band.mean) for band in bands]
        title = f"{safe(key)} · mean per group" + ("" if view.band == "none" else f", band {BAND_NAMES[view.band]}")
        charts.append(draw_bands(bands, [band_limits(b, view.band) for b in bands], labels, width, height,
                                 title=title, log_y=view.log_y, ylim=clip_limits(means) if view.clip else None,
                                 legend=state.legend, colours=colours))
    return GroupedCharts(grouped, charts)


def _spread(stats) -> Text:
    if stats is None or stats.n == 0:
        return Text("-", style="dim", justify="right")
    if stats.n == 1:
        return Text(display(stats.mean), justify="right")
    return Text(f"{display(stats.mean)} ± {display(stats.std)}", justify="right")


def group_metric_table(table: KeyedTable, grouped, comp, shown: list[str], best_style: str) -> None:
    """Per group: its label, N, and the mean ± std of each metric's last value (the best mean bold)."""
    keys = shown + [k for k in comp.metrics if k not in shown]
    columns = [Column("group", "Group"), Column("n", "N")]
    for key in keys:
        arrow = "↓" if comp.directions[key] == "min" else "↑"
        columns.append(Column(f"g:{key}", f"{key} mean ± std{arrow}"))
    best = {}
    for key in keys:
        means = [s.mean for g in grouped.groups if (s := g.stats.get(key)) is not None and s.mean is not None]
        if means:
            best[key] = (min if comp.directions[key] == "min" else max)(means)
    rows = []
    for group, label in zip(grouped.groups, grouped.labels):
        cells = [plain(label, 40), Text(str(group.n), justify="right")]
        for key in keys:
            stats = group.stats.get(key)
            cell = _spread(stats)
            if stats is not None and stats.mean is not None and stats.mean == best.get(key) and len(grouped.groups) > 1:
                cell.stylize(best_style)
            cells.append(cell)
        rows.append((group_row_id(group), cells))
    table.sync(columns, rows, "group")


def group_param_table(table: KeyedTable, grouped, all_columns: bool, names: dict[str, str]) -> None:
    """Per group: the values it is grouped by (those that differ between groups, or all with `a`) and its runs."""
    columns_shown = grouped.columns if all_columns else grouped.varying
    columns = [Column("group", "Group"), *(Column(f"k:{c}", c.partition(".")[2]) for c in columns_shown),
               Column("runs", "Runs")]
    rows = []
    for group, label in zip(grouped.groups, grouped.labels):
        cells = [plain(label, 40)]
        for col in columns_shown:
            value = group.key.get(col)
            cells.append(Text("-", style="dim") if value is None else plain(display(value), 24))
        cells.append(plain(", ".join(names.get(rid, rid) for rid in group.run_ids), 60))
        rows.append((group_row_id(group), cells))
    table.sync(columns, rows, "group")


def group_status(status: Text, grouped, band: str) -> None:
    """What the status line says of the groups: how many, by what, and which band is drawn."""
    from mltui.core.runs.compare_groups import BAND_NAMES

    if grouped is None:
        status.append("grouping runs…", style="bold")
        return
    runs = sum(g.n for g in grouped.groups)
    count = len(grouped.groups)
    status.append(f"{runs} {'run' if runs == 1 else 'runs'} in {count} {'group' if count == 1 else 'groups'}",
                  style="bold")
    status.append(" · band ", style="dim")
    status.append(BAND_NAMES[band])
    status.append(" · by ", style="dim")  # the columns that tell these groups apart
    status.append(", ".join(c.partition(".")[2] for c in grouped.varying))
