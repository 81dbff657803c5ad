"""One way for the screen to change the store: a fresh connection, the change, and any failure shown
as a notice instead of a crash."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from mltui.base.errors import MltuiError
from mltui.core.workspace import Workspace

FAILED = object()  # what `write` returns when the change did not happen


def write(widget, ws: Workspace, do: Callable[[Workspace, sqlite3.Connection], Any]) -> Any:
    """`do(ws, conn)` on a new writable connection; returns its result, or FAILED after a notice."""
    from mltui.core.reader import open_writer

    try:
        conn = open_writer(ws)
        try:
            return do(ws, conn)
        finally:
            conn.close()
    except (MltuiError, sqlite3.Error, OSError) as exc:
        widget.notify(str(exc), severity="error", timeout=10, markup=False)
        return FAILED
