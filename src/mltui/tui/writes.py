"""How a screen changes the store: a core function on a fresh writable connection (core.reader's
`with_writer`), and any failure shown as a notice instead of a crash."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mltui.base.errors import MltuiError
from mltui.core.reader import with_writer
from mltui.core.workspace import Workspace

FAILED = object()  # what `write` returns when the change did not happen


def write(widget, ws: Workspace, do: Callable[[Workspace, Any], Any]) -> Any:
    """`do(ws, conn)` on a new writable connection; returns its result, or FAILED after a notice."""
    try:
        return with_writer(ws, lambda conn: do(ws, conn))
    except (MltuiError, OSError) as exc:
        widget.notify(str(exc), severity="error", timeout=10, markup=False)
        return FAILED
