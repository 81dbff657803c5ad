"""One metric in the run detail: its name, last/min/max and a sparkline of the whole series."""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Sparkline, Static

from mltui.base.values import display
from mltui.tui.cells import plain


def downsample(values, buckets: int) -> list[float]:
    """Bucket means of the finite values (NaN left out, infinities clipped), at most `buckets` long.

    Vectorised: the detail screen redraws every sparkline of a live run on each refresh.
    """
    v = np.asarray(values, dtype="f8")
    v = v[~np.isnan(v)]
    finite = np.isfinite(v)
    if not finite.all():
        hi = float(v[finite].max()) if finite.any() else 0.0
        lo = float(v[finite].min()) if finite.any() else 0.0
        v = np.where(v == np.inf, hi, np.where(v == -np.inf, lo, v))
    n = v.size
    if n <= buckets:
        return v.tolist()
    starts = (np.arange(buckets, dtype=np.int64) * n) // buckets
    sums = np.add.reduceat(v, starts)
    counts = np.diff(np.append(starts, n))
    return (sums / counts).tolist()


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
