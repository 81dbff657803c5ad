"""Table cells and small text pieces as Rich Text: user data is always literal text, never markup.
Also the one sparkline alphabet (SPARK) the panes and screens draw history with."""

from __future__ import annotations

from rich.text import Text

from mltui.base.text import age, safe, span
from mltui.base.values import display

__all__ = ["status_cell", "plain", "number", "age", "span", "SPARK", "spark_percent", "spark_between"]

SPARK = "▁▂▃▄▅▆▇█"  # eight heights, lowest first

STATUS_ICONS = {
    "running": "▶", "queued": "…", "finished": "✓", "failed": "✗", "killed": "■", "lost": "?",
}


def status_cell(status: str, colours: dict[str, str], label: str | None = None) -> Text:
    """The status with its icon and colour; `label` words it differently (a Slurm job's queue reason)."""
    if status == "running" and label and label.startswith("stalled"):  # alive but silent: a warning, not progress
        return Text(f"⏸ {safe(label)}", style=colours.get("status-killed", ""))
    colour = colours.get(f"status-{status}", "")
    return Text(f"{STATUS_ICONS.get(status, '·')} {safe(label or status)}", style=colour)


def plain(value: object, width: int | None = None) -> Text:
    """A literal cell: control characters made visible, markup left as typed."""
    text = Text(safe(value), no_wrap=True)
    if width is not None:
        text.truncate(width, overflow="ellipsis")
    return text


def number(value: object) -> Text:
    """A param or metric value: numbers right-aligned, anything else as literal left-aligned text."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    text = Text(safe(display(value)), justify="right" if numeric else "left", no_wrap=True)
    text.truncate(24, overflow="ellipsis")
    return text


def spark_percent(values: list[float | None], width: int) -> str:
    """The last `width` percentages (0-100) as a sparkline; a missing value is a blank."""
    values = values[-width:]
    return "".join(SPARK[min(7, int(v / 100 * 8))] if v is not None else " " for v in values)


def spark_between(values: list[float], lo: float, hi: float) -> str:
    """Values as a sparkline on the scale lo..hi (two lines drawn on one scale compare by eye)."""
    if not values:
        return ""
    span_ = (hi - lo) or 1.0
    return "".join(SPARK[min(7, max(0, int((v - lo) / span_ * 7.999)))] for v in values)
