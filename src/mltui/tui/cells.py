"""Table cells as Rich Text: user data is always literal text, never markup."""

from __future__ import annotations

from rich.text import Text

from mltui.base.text import age, safe, span
from mltui.base.values import display

__all__ = ["status_cell", "plain", "number", "age", "span"]

STATUS_ICONS = {
    "running": "▶", "queued": "…", "finished": "✓", "failed": "✗", "killed": "■", "lost": "?",
}


def status_cell(status: str, colours: dict[str, str], label: str | None = None) -> Text:
    """The status with its icon and colour; `label` words it differently (a Slurm job's queue reason)."""
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
