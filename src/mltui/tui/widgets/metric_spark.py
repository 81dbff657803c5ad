"""One metric in the run detail: its name, last/min/max and a sparkline of the whole series."""

from __future__ import annotations

import math
from array import array

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Sparkline, Static

from mltui.core.values import display
from mltui.tui.cells import plain


def downsample(values: array | list[float], buckets: int) -> list[float]:
    """Bucket means of the finite values (NaN left out, infinities clipped), at most `buckets` long."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < len(values):
        hi = max(finite, default=0.0)
        lo = min(finite, default=0.0)
        finite = [hi if v == math.inf else lo if v == -math.inf else v for v in values if v == v]
    n = len(finite)
    if n <= buckets:
        return finite
    out = []
    for b in range(buckets):
        start, end = b * n // buckets, (b + 1) * n // buckets
        chunk = finite[start:end]
        out.append(sum(chunk) / len(chunk))
    return out


class MetricSpark(Horizontal):
    """Label on the left, sparkline filling the rest."""

    def __init__(self, key: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.key = key

    def compose(self) -> ComposeResult:
        yield Static(classes="metric-label")
        yield Sparkline([], classes="metric-spark")

    def show(self, summary: dict, series: list[float]) -> None:
        label = Text.assemble(plain(self.key, 28), "\n",
                              Text(display(summary["last"]), style="bold"), Text(" last", style="dim"), "\n",
                              Text(f"{display(summary['min'])} … {display(summary['max'])}", style="dim"))
        self.query_one(".metric-label", Static).update(label)
        self.query_one(Sparkline).data = series or [0.0]
