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


FILL_BUDGET = 16000  # shaded cells per chart (~5 us each to draw); past it each band is drawn as its two edges
FILL_MARKER = "░"


def _dim(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """A band's shade: the group's colour halfway to grey, so the mean drawn over it stands out on dark
    and light backgrounds alike."""
    return tuple(int(c * 0.5 + 64) for c in rgb)  # type: ignore[return-value]


def draw_bands(
    bands: Sequence,  # objects with .steps and .mean lists (core.runs.groups.SeriesBand)
    limits: Sequence,  # per band: (lower, upper) lists beside its steps, or None for no band
    labels: Sequence[str],
    width: int,
    height: int,
    *,
    title: str = "",
    log_y: bool = False,
    ylim: tuple[float, float] | None = None,
    legend: bool = True,
    colours: Sequence[tuple[int, int, int]] = (),
    colour: bool = True,
) -> str:
    """Groups of runs over steps: each group's mean as a line, over a band (its lower to upper edge)
    shaded in a dimmer shade of the same colour; with many groups or wide bands, when shading would
    cost too much, the band is its two edges drawn thin. Empty input gives a sentence, as draw."""
    import numpy as np

    width, height = max(20, width), max(5, height)
    if log_y and ylim is not None:
        ylim = ylim if ylim[0] > 0 else None
    scale = np.log10 if log_y else (lambda a: a)
    drawn = []  # (x, mean, lower, upper) as numpy arrays of finite, drawable points
    for band, limit in zip(bands, limits):
        x, mean = np.asarray(band.steps, dtype="f8"), np.asarray(band.mean, dtype="f8")
        ok = np.isfinite(mean) & ((mean > 0) if log_y else True)
        lower = upper = None
        if limit is not None:
            lower, upper = np.asarray(limit[0], dtype="f8")[ok], np.asarray(limit[1], dtype="f8")[ok]
        drawn.append((x[ok], mean[ok], lower, upper))
    if not any(d[0].size for d in drawn):
        why = "no finite positive values to draw on a log scale" if log_y else "no points to draw"
        return f"{title}: {why}." if title else f"Nothing to draw: {why}."
    # the y range, in the axis's own scale (log10 on a log axis): every mean and band edge, or the clip
    if ylim is not None and ylim[0] < ylim[1]:
        lo_s, hi_s = float(scale(ylim[0])), float(scale(ylim[1]))
    else:
        values = [a for d in drawn for a in (d[1], d[2], d[3]) if a is not None and a.size]
        every = np.concatenate(values)
        every = every[np.isfinite(every) & ((every > 0) if log_y else True)]
        lo_s, hi_s = float(scale(every.min())), float(scale(every.max()))
    if hi_s <= lo_s:  # a flat line: a little room above and below, as plotext would give
        pad = abs(hi_s) * 0.5 or 1.0
        lo_s, hi_s = lo_s - pad, hi_s + pad
    unscale = (lambda a: np.power(10.0, a)) if log_y else (lambda a: a)
    x_lo = min(float(d[0][0]) for d in drawn if d[0].size)
    x_hi = max(float(d[0][-1]) for d in drawn if d[0].size)

    fig = _figure_class()
    fig._limit_size(False, False)
    fig.plotsize(width, height)
    fig.theme("clear")
    colours = list(colours) or palette(len(drawn))
    fill = _band_cells(drawn, scale, lo_s, hi_s, x_lo, x_hi, width, height)
    for i, (x, mean, lower, upper) in enumerate(drawn):
        if lower is None or not x.size:
            continue
        kwargs = {"color": _dim(colours[i % len(colours)])} if colour else {}
        if fill is not None:
            xs, ys = fill[i]
            if xs:
                fig.scatter(xs, unscale(np.asarray(ys)).tolist(), marker=FILL_MARKER, **kwargs)
        else:  # the two edges, thin
            for edge in (lower, upper):
                keep = np.isfinite(edge) & ((edge > 0) if log_y else True)
                ys = np.clip(edge[keep], unscale(lo_s), unscale(hi_s))
                if ys.size > 1:
                    fig.plot(x[keep].tolist(), ys.tolist(), marker="braille", **kwargs)
    for i, (x, mean, _, _) in enumerate(drawn):
        if not x.size:
            continue
        kwargs = {"marker": "hd"}
        if colour:
            kwargs["color"] = colours[i % len(colours)]
        if legend:
            kwargs["label"] = labels[i]
        ys = np.clip(mean, unscale(lo_s), unscale(hi_s)).tolist()
        if x.size == 1:
            fig.scatter(x.tolist(), ys, **kwargs)
        else:
            fig.plot(x.tolist(), ys, **kwargs)
    if log_y:
        fig.yscale("log")
    # plotext 5.3.2 takes the limits of a log axis in log10 units (it scales the data, not the limits)
    fig.ylim(lo_s, hi_s) if log_y else fig.ylim(unscale(lo_s), unscale(hi_s))
    if x_hi > x_lo:
        fig.xlim(x_lo, x_hi)
    if title:
        room = width - 6
        fig.title(title if len(title) <= room else title[: max(1, room - 1)] + "…")
    fig.xlabel("step")
    out = fig.build()
    if not colour:
        from plotext._utility import uncolorize

        out = uncolorize(out)
    return out


def _band_cells(drawn, scale, lo_s: float, hi_s: float, x_lo: float, x_hi: float, width: int,
                height: int) -> list[tuple[list[float], list[float]]] | None:
    """The points that shade each band: one per character cell between its edges. plotext puts a value v
    in row floor(0.5 + (rows - 1)(v - lo) / (hi - lo)), so the values lo + k (hi - lo) / (rows - 1)
    land one per row; sampling at the chart's full width and height (a little more than plotext's canvas,
    which leaves room for the axes) leaves no row or column out. None when it would take more than
    FILL_BUDGET points (the caller draws the edges instead)."""
    import numpy as np

    if x_hi <= x_lo:
        return None
    columns = np.linspace(x_lo, x_hi, width)
    rows = height - 1
    step = (hi_s - lo_s) / rows
    out, total = [], 0
    for x, _, lower, upper in drawn:
        if lower is None or x.size < 2:
            out.append(([], []))
            continue
        inside = columns[(columns >= x[0]) & (columns <= x[-1])]
        with np.errstate(all="ignore"):
            lo = scale(np.interp(inside, x, lower))
            hi = scale(np.interp(inside, x, upper))
        lo = np.where(np.isfinite(lo), lo, lo_s)  # a lower edge at or below zero on a log axis: the bottom
        k0 = np.clip(np.ceil((lo - lo_s) / step - 1e-9), 0, rows).astype(np.int64)
        k1 = np.clip(np.floor((hi - lo_s) / step + 1e-9), -1, rows).astype(np.int64)
        k1 = np.where(np.isfinite(hi), k1, -1)
        count = np.maximum(k1 - k0 + 1, 0)
        total += int(count.sum())
        if total > FILL_BUDGET:
            return None
        xs = np.repeat(inside, count)
        first = np.repeat(k0 - np.cumsum(np.r_[0, count[:-1]]), count)  # each run of k's starts at its k0
        ks = first + np.arange(int(count.sum()))
        out.append((xs.tolist(), (lo_s + ks * step).tolist()))
    return out
