"""Helpers shared by the bench scripts: medians of repeated timings, temporary workspaces."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable


def median_of(fn: Callable[[], float], repeat: int) -> tuple[float, list[float]]:
    """Run `fn` (which returns a figure) `repeat` times; the median and every figure."""
    figures = [fn() for _ in range(repeat)]
    return statistics.median(figures), figures


def fresh_workspace(prefix: str = "mltui-bench-"):
    from mltui.core.workspace import init_workspace

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    ws, _ = init_workspace(folder)
    return ws


def timer() -> Callable[[], float]:
    start = time.perf_counter()
    return lambda: time.perf_counter() - start


def fmt(figures: list[float], unit: str = "", scale: float = 1.0, digits: int = 0) -> str:
    return ", ".join(f"{f * scale:,.{digits}f}{unit}" for f in figures)
