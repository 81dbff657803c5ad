"""A feature's reference histogram beside the live one (the last window that has it): one row per bin
group or category, two bars on one scale, the shares as numbers. Read-only; enter or esc closes it.
The rows come shaped from core/monitor/view.py (feature_histograms); this only draws them."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from mltui.base.text import safe

LABEL = 16  # characters of a bin's label
SHARE = 6  # " 12.3%"


def bars(rows: list[dict[str, Any]], width: int, colours: dict[str, str], drifted: bool) -> Text:
    """The rows as text: label, reference bar and share, live bar and share; both bars on one scale."""
    bar = max(4, (width - LABEL - 2 * SHARE - 4) // 2)
    top = max([r["reference"] for r in rows] + [r["live"] for r in rows] + [1e-9])
    ref_style = colours.get("secondary", "") or "dim"
    live_style = colours.get("warning" if drifted else "accent", "") or "bold"
    out = Text()
    out.append(" " * (LABEL + 1) + "reference".ljust(bar + SHARE + 1) + "last window\n", style="bold")
    for r in rows:
        label = safe(r["label"])
        label = label if len(label) <= LABEL else label[:LABEL - 1] + "…"
        out.append(label.rjust(LABEL) + " ")
        for share, style in ((r["reference"], ref_style), (r["live"], live_style)):
            full = round(share / top * bar)
            out.append("█" * full, style=style)
            out.append(" " * (bar - full))
            out.append(f"{share:{SHARE}.1%} ", style="dim" if share == 0 else "")
        out.append("\n")
    return out


class HistogramScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HistogramScreen { align: center middle; }
    #histogram { width: 96%; max-width: 110; height: auto; max-height: 90%; padding: 0 1;
                 background: $panel; border: round $accent; }
    #histogram-title { padding-bottom: 1; }
    #histogram .hint { color: $text-muted; }
    """
    BINDINGS = [Binding("escape,enter,q", "close", "Close", id="histogram.close")]

    def __init__(self, shown: dict[str, Any]) -> None:
        super().__init__()
        self.shown = shown

    def compose(self) -> ComposeResult:
        s = self.shown
        title = Text()
        title.append(safe(s["feature"]), style="bold")
        title.append(f" of {safe(s['model'])}: ")
        title.append(f"reference {safe(s['reference'])}", style="dim")
        title.append(" vs the window of " + time.strftime("%Y-%m-%d %H:%M", time.localtime(s["start"])) +
                     f" (v{safe(s['version'])}, {s['live_n']:,} values")
        title.append(f", {s['missing']:,} missing)" if s["missing"] else ")")
        if s.get("test"):
            verdict = "drifted" if s["drifted"] else "no drift"
            score = f"{s['score']:.3g}" if s.get("score") is not None else "-"
            psi = f"{s['psi']:.3f}" if s.get("psi") is not None else "-"
            title.append(f"\n{s['test']} {score}, PSI {psi}: ")
            title.append(verdict, style=self.app.theme_variables.get("error" if s["drifted"] else "success", ""))
        width = min(110, int(self.app.size.width * 0.96)) - 4
        with VerticalScroll(id="histogram"):
            yield Static(title, id="histogram-title")
            yield Static(bars(s["rows"], width, self.app.theme_variables, s["drifted"]), id="histogram-bars")
            yield Label("shares of each side's values · enter or esc: close", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
