"""One run in full: header, metric sparklines, params, tags and artifacts, live while it logs."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from mltui.core.runs.listing import duration, get_run
from mltui.core.reader import StoreReader
from mltui.base.text import gigabytes, safe
from mltui.base.values import display
from mltui.core.workspace import Workspace
from mltui.tui.cells import age, plain, span, status_cell
from mltui.tui.polling import Polling
from mltui.tui.widgets.metric_spark import MetricSpark, downsample

SPARK_POINTS = 120
MAX_SPARKS = 40


@dataclass
class Detail:
    run: dict
    series: dict[str, list[float]]


class RunDetailScreen(Screen, Polling):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="detail.back"),
        Binding("backspace", "app.pop_screen", "Back", id="detail.back_alt", show=False),
        Binding("l", "app.open_log", "Log", id="detail.log"),
        Binding("k", "app.kill_run", "Kill", id="detail.kill"),
        Binding("r", "app.rerun", "Rerun", id="detail.rerun"),
    ]
    poll_group = "detail-poll"

    def __init__(self, ws: Workspace, run_id: str, refresh_seconds: float = 1.0) -> None:
        super().__init__()
        self.ws = ws
        self.run_id = run_id
        self.reader = StoreReader(ws)
        self.poll_interval = refresh_seconds
        self.sparks: dict[str, MetricSpark] = {}

    @property
    def current_run_id(self) -> str:
        return self.run_id

    def compose(self) -> ComposeResult:
        yield Static(id="detail-header")
        with Horizontal(id="detail-body"):
            yield VerticalScroll(Static("Loading metrics…", id="metrics-empty"), id="detail-metrics")
            yield VerticalScroll(Static(id="detail-info"), id="detail-side")
        yield Footer()

    def on_mount(self) -> None:
        self.poll_now(force=True)

    def on_unmount(self) -> None:
        self.reader.close()

    def should_poll(self) -> bool:
        return self.is_attached and self.app.screen is self

    def collect(self, force: bool) -> Detail | None:
        if not self.reader.changed() and not force:
            return None
        conn = self.reader.conn
        run = get_run(conn, self.run_id)
        series = {}
        for key in list(run["metrics"])[:MAX_SPARKS]:
            from mltui.core.runs.compare import read_arrays  # polars: loaded when a detail is first opened

            _, values, _ = read_arrays(conn, run["id"], key, with_times=False)
            series[key] = downsample(values, SPARK_POINTS)
        return Detail(run, series)

    def apply(self, detail: Detail | None) -> None:
        if detail is None:
            return
        run = detail.run
        self.sub_title = run["name"]
        header = Text.assemble(
            status_cell(run["status"], self.app.theme_variables), "  ", Text(safe(run["name"]), style="bold"),
            "  ", Text(run["id"], style="dim"),
        )
        header.append(f"\ncreated {age(run['created'])} ago · ran {span(duration(run))}", style="dim")
        if run.get("exit_code") is not None:
            header.append(f" · exit code {run['exit_code']}", style="dim")
        if run.get("reason") and run["status"] not in ("running", "queued", "finished"):
            header.append(f" · {safe(run['reason'])}", style="dim")
        if run.get("bad_lines"):
            header.append(f" · {run['bad_lines']} bad metrics.jsonl lines", style="dim")
        if run.get("note"):
            header.append("\n")
            header.append(safe(run["note"]), style="italic")
        self.query_one("#detail-header", Static).update(header)
        self._show_metrics(detail)
        self.query_one("#detail-info", Static).update(_info_table(run))

    def _show_metrics(self, detail: Detail) -> None:
        box = self.query_one("#detail-metrics", VerticalScroll)
        empty = self.query_one("#metrics-empty", Static)
        empty.display = not detail.series
        empty.update("This run has logged no metrics yet.")
        for key, values in detail.series.items():
            spark = self.sparks.get(key)
            if spark is None:
                spark = self.sparks[key] = MetricSpark(key)
                box.mount(spark)
                spark.call_after_refresh(spark.show, detail.run["metrics"][key], values)
            else:
                spark.show(detail.run["metrics"][key], values)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TB"


def _info_table(run: dict) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    def section(title: str) -> None:
        grid.add_row(Text(""), Text(""))
        grid.add_row(Text(title, style="underline"), Text(""))
    section("params")
    for key, value in run["params"].items() or [("-", "none")]:
        grid.add_row(plain(key, 28), plain(display(value)))
    if run["tags"]:
        section("tags")
        for key, value in run["tags"].items():
            grid.add_row(plain(key, 28), plain(display(value)))
    section("run")
    command = run.get("command")
    fields = [("kind", run["kind"]), ("host", run.get("host")), ("user", run.get("user")),
              ("command", shlex.join(command) if isinstance(command, list) else command),
              ("cwd", run.get("cwd")), ("gpus", ",".join(map(str, run["gpus"])) if run.get("gpus") else None),
              ("rerun of", run.get("rerun_of")),
              ("git", (run.get("git_commit") or "")[:12] + (" dirty" if run.get("git_dirty") else "")),
              ("python", run.get("python"))]
    for key, value in fields:
        if value:
            grid.add_row(key, plain(value))
    if run.get("peak_rss"):  # sampled by the supervisor with its heartbeat
        grid.add_row("peak RSS", plain(gigabytes(run["peak_rss"])))
    if run.get("store_trouble") or run.get("dropped_points"):  # data from the store: Text, never markup
        dropped = run.get("dropped_points") or 0
        grid.add_row("store", Text(f"not writable for a while ({safe(run.get('store_trouble') or 'unknown cause')}); "
                                   f"{dropped:,} metric point{'s' if dropped != 1 else ''} dropped"))
    if run.get("data"):
        section("data")
        for d in run["data"]:
            note = Text(f"v{d['seq']} · {d['how']}" if d["seq"] else d["how"], style="dim")
            if d["changed"]:
                note.append(" · changed on disk during the run", style="bold")
            grid.add_row(plain(d["label"], 36), note)
    if run.get("artifacts"):
        section("artifacts")
        for art in run["artifacts"]:
            digest = (art["sha256"] or "")[:10] or "hashing…"
            grid.add_row(plain(art["path"], 36), Text(f"{_size(art['size'])} {digest}", style="dim"))
    return grid
