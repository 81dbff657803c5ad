"""One way for the screen to change the store: a fresh connection, the change, and any failure shown
as a notice instead of a crash."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from mltui.core.errors import MltuiError
from mltui.core.workspace import Workspace

FAILED = object()  # what `write` returns when the change did not happen


def write(widget, ws: Workspace, do: Callable[[Workspace, sqlite3.Connection], Any]) -> Any:
    """`do(ws, conn)` on a new writable connection; returns its result, or FAILED after a notice."""
    from mltui.store.connection import open_store

    try:
        conn = open_store(ws.db_path, file_mode=ws.config().file_mode)
        try:
            return do(ws, conn)
        finally:
            conn.close()
    except (MltuiError, sqlite3.Error, OSError) as exc:
        widget.notify(str(exc), severity="error", timeout=10, markup=False)
        return FAILED
