"""Opening the workspace's store, the one way every part of mltui does it, and a reader for screens
that poll: one connection, and a cheap "did anything change?" check.

- `open_writer(ws)`: a connection that may write (the schema is brought up to date first).
- `open_reader(ws)`: the same, falling back to a read-only connection on a read-only disk or store.
- `open_readonly(ws)`: a read-only connection that never migrates (a look that must not write).
- `open_workspace(write)`: find the workspace from the current folder, then one of the above."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import os

from mltui.base.errors import MltuiError, StoreError
from mltui.core.workspace import Workspace, find_workspace
from mltui.store.opening import open_store


def open_writer(ws: Workspace) -> sqlite3.Connection:
    """A connection that may write; new files get the workspace's file mode."""
    return open_store(ws.db_path, file_mode=ws.config().file_mode)


def open_readonly(ws: Workspace) -> sqlite3.Connection:
    """A read-only connection: never migrates, never writes, works on a read-only disk."""
    return open_store(ws.db_path, readonly=True)


def open_reader(ws: Workspace) -> sqlite3.Connection:
    """A connection for reading: a writable one where possible (so an old store is migrated once),
    else read-only, when the store or its folder cannot be written here."""
    if not ws.db_path.exists():
        raise StoreError(f"The workspace {ws.root} has no store yet; run `mltui init` there.")
    try:
        return open_writer(ws)
    except StoreError as exc:
        if not exc.unwritable:
            raise
        return open_readonly(ws)


def open_workspace(write: bool = False, start: str | os.PathLike[str] | None = None):
    """(workspace, connection) for the workspace found from `start` (default: the current folder)."""
    ws = find_workspace(start)
    return ws, (open_writer(ws) if write else open_reader(ws))


class ReaderClosed(MltuiError):
    """The reader was closed (its screen went away) while a poll still wanted it."""


class StoreReader:
    """Owns a connection for one poller.

    SQLite's Python binding crashes the process if a connection is closed while another thread is
    inside a query on it, and a pane's poll runs in a worker thread while its unmount runs on the UI
    thread. So a thread that uses the connection holds `in_use()`, and `close()` interrupts any
    query under way, waits for that thread to let go, and only then closes.
    """

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._conn: sqlite3.Connection | None = None
        self._version: int | None = None
        self._lock = threading.RLock()
        self._closed = False

    @property
    def conn(self) -> sqlite3.Connection:
        if self._closed:
            raise ReaderClosed("This store reader is closed.")
        if self._conn is None:
            self._conn = open_reader(self.ws)
            # A poller reads the same series again and again: keep up to 64 MB of pages (charts of
            # 20 runs x 100k points read 8x faster warm than through the default 2 MB cache).
            self._conn.execute("PRAGMA cache_size = -65536")
        return self._conn

    @contextmanager
    def in_use(self) -> Iterator[StoreReader]:
        """Hold while using `conn` from a thread, so `close()` cannot pull it away mid-query."""
        with self._lock:
            if self._closed:
                raise ReaderClosed("This store reader is closed.")
            yield self

    def changed(self) -> bool:
        """True the first time, then whenever another connection has committed since the last call."""
        with self.in_use():
            version = self.conn.execute("PRAGMA data_version").fetchone()[0]
            changed = version != self._version
            self._version = version
            return changed

    def close(self) -> None:
        """Close for good: a query under way in another thread is interrupted and waited for."""
        self._closed = True  # no new use starts from here on
        conn = self._conn
        if conn is not None:
            try:
                conn.interrupt()  # safe from any thread; the query under way stops with an error
            except sqlite3.Error:
                pass
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
