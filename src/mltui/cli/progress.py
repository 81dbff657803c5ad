"""A rich progress bar on stderr for long work: shown only on a terminal, and only after a second."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

DELAY = 1.0  # work that ends sooner shows no bar at all


@contextmanager
def progress_bar(what: str, unit: str = "bytes", quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """Yield `update(done, total)`; call it from one thread as the work goes on."""
    if quiet or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    start = time.monotonic()
    state: dict = {}

    def update(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            if time.monotonic() - start < DELAY:
                return
            from rich.console import Console
            from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeRemainingColumn, TransferSpeedColumn)

            counter = (DownloadColumn(), TransferSpeedColumn()) if unit == "bytes" else (MofNCompleteColumn(),)
            bar = Progress(TextColumn("{task.description}"), BarColumn(), *counter, TimeRemainingColumn(),
                           console=Console(stderr=True), transient=True)
            bar.start()
            state["bar"], state["task"] = bar, bar.add_task(what, total=total)
        bar.update(state["task"], completed=done, total=total)

    try:
        yield update
    finally:
        if "bar" in state:
            state["bar"].stop()
