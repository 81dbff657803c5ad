"""The one place that talks to plotext: metric series in, a terminal chart (ANSI text) out.

Used by `mltui compare --plot` and by the TUI's Compare pane, so both draw the same chart.
plotext is pinned (5.3.2): each chart gets its own figure object, never plotext's global one.
"""

from __future__ import annotations

import colorsys
import math
import time
from collections.abc import Sequence

from plotext._figure import _figure_class

UNITS = ((86400, "d"), (3600, "h"), (60, "min"), (1, "s"))


POINT_BUDGET = 1200  # points handed to plotext per chart: its drawing costs ~50 us a point


def buckets_for(width: int, series: int) -> int:
    """Downsampling buckets per series (each gives its min and max point): one per two columns of the
    chart, fewer when many series share it, so a chart of 20 or 50 runs draws as fast as one of 5."""
    per_column = max(10, (width - 10) // 2)
    return max(10, min(per_column, POINT_BUDGET // (2 * max(1, series))))


def palette(n: int, first: Sequence[tuple[int, int, int]] = ()) -> list[tuple[int, int, int]]:
    """`n` distinct colours: the given ones first, then hues spread by the golden ratio."""
    colours = list(first)[:n]
    hue = 0.11
    while len(colours) < n:
        hue = (hue + 0.618033988749895) % 1.0
        r, g, b = colorsys.hsv_to_rgb(hue, 0.65, 0.95)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return colours


def hex_to_rgb(value: str) -> tuple[int, int, int] | None:
    value = value.strip().lstrip("#")
    if len(value) != 6:
        return None
    try:
        return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
    except ValueError:
        return None


def _time_unit(span: float) -> tuple[float, str]:
    for seconds, name in UNITS:
        if span >= 2 * seconds:
            return seconds, name
    return 1, "s"


def draw(
    series: Sequence,  # objects with .x, .y lists and a label
    labels: Sequence[str],
    width: int,
    height: int,
    *,
    title: str = "",
    axis: str = "step",
    log_y: bool = False,
    ylim: tuple[float, float] | None = None,
    legend: bool = True,
    colours: Sequence[tuple[int, int, int]] = (),
    colour: bool = True,
) -> str:
    """The chart as text with ANSI colours (or plain with colour=False). Empty input gives a sentence."""
    width, height = max(20, width), max(5, height)
    drawable = []
    dropped = 0
    t0 = min((s.x[0] for s in series if s.x), default=0.0)
    x_scale, x_unit = 1.0, ""
    if axis in ("time", "relative"):
        span = max((s.x[-1] - (t0 if axis == "time" else 0) for s in series if s.x), default=0.0)
        x_scale, x_unit = _time_unit(span)
    if log_y and ylim is not None:  # a log axis cannot show zero or below: keep only a positive range
        ylim = (ylim[0], ylim[1]) if ylim[0] > 0 else None
    for s, label in zip(series, labels):
        pts = [(x, y) for x, y in zip(s.x, s.y) if math.isfinite(y) and (not log_y or y > 0)]
        dropped += len(s.y) - len(pts) + getattr(s, "nan", 0)
        if ylim is not None:
            lo, hi = ylim
            pts = [(x, min(max(y, lo), hi)) for x, y in pts]
        if axis == "time":
            pts = [((x - t0) / x_scale, y) for x, y in pts]
        elif axis == "relative":
            pts = [(x / x_scale, y) for x, y in pts]
        drawable.append((pts, label))
    if not any(pts for pts, _ in drawable):
        why = "no finite positive values to draw on a log scale" if log_y else "no points to draw"
        return f"{title}: {why}." if title else f"Nothing to draw: {why}."
    fig = _figure_class()
    fig._limit_size(False, False)  # draw at the size asked, not at plotext's guess of the terminal's
    fig.plotsize(width, height)
    fig.theme("clear")
    colours = list(colours) or palette(len(drawable))
    for i, (pts, label) in enumerate(drawable):
        if not pts:
            continue
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        kwargs = {"marker": "hd"}  # quadrant blocks: in every terminal font, and 1.7x faster than braille here
        if colour:
            kwargs["color"] = colours[i % len(colours)]
        if legend:
            kwargs["label"] = label
        if len(xs) == 1:
            fig.scatter(xs, ys, **kwargs)
        else:
            fig.plot(xs, ys, **kwargs)
    if log_y:
        fig.yscale("log")
    if ylim is not None and ylim[0] < ylim[1] and not log_y:
        fig.ylim(*ylim)
    if title:
        room = width - 6  # plotext drops a title wider than the chart
        note = ""
        if dropped:
            note = next((n for n in (f"  ({dropped} non-finite points not drawn)", f"  ({dropped} not drawn)")
                         if len(title) + len(n) <= room), "")
        fig.title((title if len(title) <= room else title[: max(1, room - 1)] + "…") + note)
    if axis == "step":
        fig.xlabel("step")
    elif axis == "time":
        fig.xlabel(f"wall time ({x_unit} since {time.strftime('%Y-%m-%d %H:%M', time.localtime(t0))})")
    else:
        fig.xlabel(f"time since each run started ({x_unit})")
    out = fig.build()
    if not colour:
        from plotext._utility import uncolorize

        out = uncolorize(out)
    return out
