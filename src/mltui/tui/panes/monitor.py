"""The Monitor pane: the watched models with their last window's health (volume, p95 latency, share
of drifted features, live quality beside the version's own evaluation); for the highlighted model,
each feature's drift (PSI) over the windows as a sparkline, worst first, quality over time once labels
are in, and the open alerts with how their retraining stands. `enter` on a feature compares its
reference histogram with the last window's; `c` runs `mltui monitor check` now, in a thread.

What is shown is shaped in core/monitor/view.py (overview, spark_levels, feature_histograms): this
module only draws it. It is read on the pane's StoreReader, only when the store changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from mltui.base.errors import MltuiError
from mltui.base.text import age, safe
from mltui.core.monitor.view import feature_histograms, overview, quality_scale, spark_levels
from mltui.core.workspace import Workspace
from mltui.tui.cells import SPARK
from mltui.tui.panes.base import Pane
from mltui.tui.widgets.keyed_table import Column, KeyedTable

EMPTY = ("Nothing is monitored yet. In your serving code, log each prediction with "
         "`from mltui.monitor import PredictionLog; PredictionLog(\"NAME@production\").log(inputs, output)`, "
         "then run `mltui monitor check` (or press c here): each model's windows, drift and alerts appear here.")
PSI_TOP = 0.5  # the sparklines' scale: PSI 0.5 and above is the full height (0.25 is already a big shift)
PSI_WARN, PSI_BAD = 0.1, 0.25
WINDOWS = 24  # windows read per model
SHORT = {"accuracy": "acc", "precision": "prec", "recall": "rec", "roc_auc": "auc"}
TEST = {"ks": "KS", "chi2": "chi²", "wasserstein": "W", "jensen-shannon": "JS"}
QUALITY_SHOWN = ("accuracy", "f1", "roc_auc", "mae", "rmse")  # precision and recall live in `monitor show`


@dataclass
class MonitorSnapshot:
    data: dict[str, Any]
    error: str | None = None  # a [monitor] config that does not load: said instead of the body


class CheckDone(Message):
    def __init__(self, report: dict | None, error: str | None) -> None:
        super().__init__()
        self.report = report
        self.error = error


def _psi_style(psi: float | None, colours: dict[str, str]) -> str:
    if psi is None:
        return "dim"
    if psi >= PSI_BAD:
        return colours.get("error", "red")
    if psi >= PSI_WARN:
        return colours.get("warning", "yellow")
    return colours.get("success", "green")


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _clock(ts: float) -> str:
    return time.strftime("%H:%M", time.localtime(ts))


class MonitorPane(Pane):
    DEFAULT_CSS = """
    MonitorPane { height: 1fr; }
    #monitor-empty { padding: 1 2; color: $text-muted; }
    #monitor-body { height: 1fr; }
    #monitor-head { height: auto; max-height: 2; padding: 0 1; }
    #monitor-models { height: auto; max-height: 7; }
    #monitor-lower { height: 1fr; border-top: hkey $panel; }
    #monitor-features { width: 3fr; height: 1fr; }
    #monitor-side { width: 2fr; height: 1fr; padding: 0 1; border-left: vkey $panel; overflow-y: auto; }
    MonitorPane.-narrow #monitor-lower { layout: vertical; }
    MonitorPane.-narrow #monitor-features { width: 1fr; height: 1fr; }
    MonitorPane.-narrow #monitor-side { width: 1fr; height: auto; max-height: 8; border-left: none;
                                        border-top: hkey $panel; }
    """
    BINDINGS = [
        Binding("c", "check", "Check now", id="monitor.check", tooltip="read the new prediction logs and apply the rules"),
        Binding("enter", "histogram", "Histogram", id="monitor.histogram",
                tooltip="the highlighted feature's reference histogram beside the last window's"),
        Binding("ctrl+r", "refresh", "Refresh", id="monitor.refresh", show=False),
    ]
    poll_group = "monitor-poll"
    can_focus = True
    empty_id, empty_text, body_ids = "monitor-empty", EMPTY, ("monitor-body",)
    focus_id = "monitor-features"

    def __init__(self, ws: Workspace, refresh_seconds: float = 1.0, **kwargs) -> None:
        super().__init__(ws, refresh_seconds, **kwargs)
        self.model: str | None = None
        self.snapshot: MonitorSnapshot | None = None
        self.checking = False

    def compose(self) -> ComposeResult:
        yield self.empty_note()
        with Vertical(id="monitor-body"):
            yield Static(id="monitor-head")
            yield KeyedTable(id="monitor-models")
            with Horizontal(id="monitor-lower"):
                yield KeyedTable(id="monitor-features")
                yield Static(id="monitor-side")

    def on_resize(self) -> None:
        self.set_class(self.size.width < 110, "-narrow")  # 80 columns: the side panel goes under the features

    # -- polling (Pane: reader, refresh, empty state) -----------------------------------------------
    def read(self, conn) -> MonitorSnapshot:
        try:
            return MonitorSnapshot(overview(self.ws, WINDOWS, conn=conn))
        except MltuiError as exc:  # a [monitor] setting that does not load: one sentence, not a read error
            return MonitorSnapshot({"models": []}, str(exc))

    def before_tables(self, exc) -> MonitorSnapshot:
        return MonitorSnapshot({"models": []})  # a store from before monitoring, opened read-only

    def apply(self, snap: MonitorSnapshot | None) -> None:
        if snap is None:
            return
        self.snapshot = snap
        models = snap.data["models"]
        empty = not models
        self.show_empty(empty)
        if empty:
            self.query_one("#monitor-empty", Static).update(Text(snap.error or EMPTY))
            return
        names = [m["model"] for m in models]
        if self.model not in names:
            self.model = names[0]
        self._head()
        self._models()
        self._lower()

    def entry(self) -> dict | None:
        """The highlighted model's part of the overview."""
        if self.snapshot is None:
            return None
        return next((m for m in self.snapshot.data["models"] if m["model"] == self.model), None)

    # -- drawing ------------------------------------------------------------------------------------
    def _head(self) -> None:
        data = self.snapshot.data if self.snapshot else {}
        last = data.get("last_check")
        window = data.get("window") or 3600
        size = f"{window / 3600:g}h" if window >= 3600 else f"{window / 60:g}m"
        head = Text()
        if last:
            head.append(f"Last check {age(last['time'])} ago: {last['records']:,} new records", style="bold")
            if last.get("malformed"):
                head.append(f", {last['malformed']:,} malformed lines skipped",
                            style=self.app.theme_variables.get("warning", "yellow"))
        else:
            head.append("Not checked yet", style="bold")
        head.append(f" · {size} windows · c checks now, enter compares a feature", style="dim")
        if self.checking:
            head.append(" · checking…", style=self.app.theme_variables.get("accent", ""))
        self.query_one("#monitor-head", Static).update(head)

    def _models(self) -> None:
        colours = self.app.theme_variables
        rows = []
        for m in self.snapshot.data["models"] if self.snapshot else []:
            last = m["windows"][-1] if m["windows"] else None
            h = last["health"] if last else {}
            share = h.get("drift_share")
            drift = Text("-" if share is None else f"{share:.0%}",
                         style=colours.get("error", "red") if share and h.get("drifted") else "")
            p95 = h.get("latency_p95")
            alerts = len(m["alerts"])
            rows.append((m["model"], [
                Text(safe(m["model"]), style="bold"),
                Text(f"v{safe(last['version'])}" if last else "-"),
                Text(f"{h.get('volume', 0):,}" if last else "-", justify="right"),
                Text("-" if p95 is None else f"{p95:.0f} ms", justify="right"),
                drift,
                self._quality_cell(m),
                Text(f"{alerts} open" if alerts else "none", style=colours.get("error", "red") if alerts else "dim"),
            ]))
        self.query_one("#monitor-models", KeyedTable).sync(
            [Column("model", "Model"), Column("v", "Ver"), Column("volume", "Volume"), Column("p95", "p95"),
             Column("drift", "Drifted"), Column("quality", "Quality (live · eval)"), Column("alerts", "Alerts")],
            rows, "model")

    def _quality_cell(self, m: dict) -> Text:
        key = m.get("primary")
        if not key:
            return Text("no labels yet", style="dim")
        live = next((v for v in reversed(m["quality"][key]) if v is not None), None)
        judged = m["evaluated"].get(key)
        cell = Text(f"{SHORT.get(key, key)} {_number(live)}")
        if judged is not None:
            worse = live is not None and ((live < judged) if key not in ("mae", "rmse") else (live > judged))
            cell.append(f" · {_number(judged)}", style=self.app.theme_variables.get("warning", "yellow")
                        if worse and abs(live - judged) > 0.02 else "dim")
        return cell

    def _spark(self, values: list, levels: list[int | None], styler) -> Text:
        out = Text()
        for value, level in zip(values, levels):
            out.append(" " if level is None else SPARK[level], style=styler(value))
        return out

    def _lower(self) -> None:
        m = self.entry()
        colours = self.app.theme_variables
        table = self.query_one("#monitor-features", KeyedTable)
        rows = []
        if m is not None:
            last = m["windows"][-1]["health"]["features"] if m["windows"] else {}
            volume = m["windows"][-1]["health"].get("volume") if m["windows"] else 0
            for name, values in m["features"].items():
                d = last.get(name) or {}
                psi = values[-1] if values else None
                spark = self._spark(values, spark_levels(values, PSI_TOP), lambda v: _psi_style(v, colours))
                score = d.get("score")
                missing = (d.get("missing") or 0) / volume if volume else None
                rows.append((name, [
                    Text(safe(name), style="bold" if d.get("drifted") else ""),
                    Text(_number(psi, 2), style=_psi_style(psi, colours), justify="right"),
                    Text(("drifted" if d.get("drifted") else "ok") if d else "-",
                         style=colours.get("error", "red") if d.get("drifted") else "dim"),
                    Text(f"{TEST.get(d.get('test'), d.get('test') or '')} {score:.3g}" if score is not None else "-",
                         style="dim"),
                    Text("-" if missing is None else f"{missing:.0%}", justify="right",
                         style=colours.get("warning", "yellow") if missing and missing > 0.05 else "dim"),
                    spark,
                ]))
        table.sync([Column("feature", "Feature"), Column("psi", "PSI"), Column("state", "Drift"),
                    Column("score", "Test"), Column("missing", "Missing"), Column("spark", "PSI by window")],
                   rows, "feature")
        self.query_one("#monitor-side", Static).update(self._side(m))

    def _side(self, m: dict | None) -> Text:
        colours = self.app.theme_variables
        out = Text()
        if m is None:
            return out
        labelled = sum(w["health"].get("labelled", 0) or 0 for w in m["windows"])
        shown = [k for k in QUALITY_SHOWN if k in m["quality"]]
        if shown:
            out.append(f"Quality over time ({labelled:,} labelled)\n", style="bold")
            for key in shown:
                values = m["quality"][key]
                judged = m["evaluated"].get(key)
                lo, hi = quality_scale(values, judged)
                live = next((v for v in reversed(values) if v is not None), None)
                out.append(f"{SHORT.get(key, key):<5}")
                out.append_text(self._spark(values, spark_levels(values, hi, lo), lambda v: colours.get("accent", "")))
                out.append(f" {_number(live)}")
                if judged is not None:
                    out.append(f" eval {_number(judged)}", style="dim")
                out.append("\n")
        else:
            out.append("No labels yet: quality shows once labels arrive ({\"id\", \"label\"} lines).\n", style="dim")
        alerts = m["alerts"]
        out.append(f"\nOpen alerts ({len(alerts)})\n" if alerts else "\nNo open alerts\n",
                   style=f"bold {colours.get('error', 'red')}" if alerts else "bold")
        for a in alerts:
            out.append(f"#{a['id']} ", style="bold")
            out.append(safe(str(a["rule"]).split(": ", 1)[-1]))
            out.append(f" · {age(a['opened'])} ago", style="dim")
            value = a.get("value")
            if isinstance(value, dict) and value:
                out.append(" · " + ", ".join(f"{safe(k)} {v:.3g}" if isinstance(v, (int, float)) else f"{safe(k)} -"
                                             for k, v in value.items()), style="dim")
            out.append("\n")
            if a.get("retrain_run"):
                out.append(f"  retraining run {safe(a['retrain_run'])[:8]} {safe(a.get('retrain_status') or 'gone')}")
                if a.get("request_id"):
                    out.append(f" · promotion request #{a['request_id']} {safe(a.get('request_status') or '')}",
                               style=colours.get("accent", ""))
                out.append("\n")
            else:
                note = next((x for x in reversed(a.get("actions") or []) if x.get("action") == "retrain"), None)
                if note:
                    out.append(f"  retrain: {safe(note.get('outcome', ''))}\n", style="dim")
        return out

    # -- what is highlighted ------------------------------------------------------------------------
    @on(DataTable.RowHighlighted, "#monitor-models")
    def _model_highlighted(self, event: DataTable.RowHighlighted) -> None:
        name = event.row_key.value if event.row_key else None
        if name and name != self.model:
            self.model = name
            self._lower()

    @on(DataTable.RowSelected, "#monitor-models")
    def _model_selected(self) -> None:
        self.query_one("#monitor-features").focus()

    @on(DataTable.RowSelected, "#monitor-features")
    def _feature_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_histogram()

    def highlighted_feature(self) -> str | None:
        return self.query_one("#monitor-features", KeyedTable).highlighted_key

    # -- actions ------------------------------------------------------------------------------------
    def action_histogram(self) -> None:
        from mltui.tui.modals.histogram import HistogramScreen

        m, feature = self.entry(), self.highlighted_feature()
        if m is None or feature is None:
            self.notify("Highlight a feature first.", timeout=3)
            return
        shown = feature_histograms(m, feature)
        if shown is None:
            self.notify("No window has this feature yet.", timeout=3, markup=False)
            return
        self.app.push_screen(HistogramScreen(shown))

    def action_check(self) -> None:
        if self.checking:
            self.notify("A check is already running.", timeout=3)
            return
        self.checking = True
        self._head_if_shown()
        self._check()

    def _head_if_shown(self) -> None:
        if self.snapshot is not None and self.snapshot.data["models"]:
            self._head()

    @work(thread=True, exclusive=True, group="monitor-check", exit_on_error=False)
    def _check(self) -> None:
        from mltui.core.monitor.check import check

        try:
            report = check(self.ws).as_dict()
        except MltuiError as exc:
            self.post_message(CheckDone(None, str(exc)))
        except Exception as exc:  # a store that cannot be written, a damaged log: a notice, never a crash
            self.post_message(CheckDone(None, f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(CheckDone(report, None))

    def on_check_done(self, message: CheckDone) -> None:
        self.checking = False
        if message.error is not None:
            self.notify(f"The check failed: {message.error}", severity="error", timeout=8, markup=False)
        else:
            r = message.report or {}
            opened, closed = len(r.get("alerts_opened", [])), len(r.get("alerts_closed", []))
            text = (f"Checked: {r.get('records', 0):,} records read, {r.get('labels', 0):,} labels, "
                    f"{opened} alert{'s' if opened != 1 else ''} opened")
            if closed:
                text += f", {closed} closed"
            if r.get("malformed"):
                text += f", {r['malformed']:,} malformed lines skipped"
            problems = r.get("problems") or {}
            text += "." + "".join(f" {model}: {why}" for model, why in problems.items())
            self.notify(text, severity="warning" if opened or problems else "information", timeout=8, markup=False)
        self._head_if_shown()
        self.poll_now(force=True)
