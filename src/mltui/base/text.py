"""Showing text that came from users or files without letting it steer the terminal."""

from __future__ import annotations

_CONTROL = {i: f"\\x{i:02x}" for i in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_CONTROL.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"})


def safe(text: object) -> str:
    """The text with control characters (escape sequences, newlines) made visible instead of obeyed."""
    return str(text).translate(_CONTROL)


def span(seconds: float | None) -> str:
    """A duration the way people say it: 42s, 3m05s, 2h10m, 4d03h."""
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def age(ts: float | None, now: float | None = None) -> str:
    """How long ago `ts` was, as a span ("-" when unknown)."""
    import time

    return "-" if ts is None else span((time.time() if now is None else now) - ts)


def gigabytes(n: int) -> str:
    """Memory in GB (powers of 1024, as the kernel counts RSS), with the digits that matter: 0.42 GB,
    12.3 GB, 512 GB. One spelling for the CLI, the TUI and the reasons runs end with."""
    gb = n / 2**30
    return f"{gb:.2f} GB" if gb < 10 else f"{gb:.1f} GB" if gb < 100 else f"{gb:.0f} GB"


def size(n: int | None) -> str:
    """A byte count for people: 812 B, 4.2 KB, 1.3 GB (powers of 1000, like du --si)."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} PB"
