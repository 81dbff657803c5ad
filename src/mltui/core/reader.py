"""Opening the workspace's store, the one way every part of mltui does it, and a reader for screens
that poll: one connection, and a cheap "did anything change?" check.

- `open_writer(ws)`: a connection that may write (the schema is brought up to date first).
- `open_reader(ws)`: the same, falling back to a read-only connection on a read-only disk or store.
- `open_readonly(ws)`: a read-only connection that never migrates (a look that must not write).
- `open_workspace(write)`: find the workspace from the current folder, then one of the above.
- `with_writer(ws, fn)` / `with_readonly(ws, fn)`: `fn(conn)` on a fresh connection, closed after;
  a sqlite3 error comes out as a StoreError sentence (`store_error`)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from mltui.base.errors import MltuiError, StoreError
from mltui.core.workspace import Workspace, find_workspace
from mltui.store.connection import translate
from mltui.store.opening import open_store

T = TypeVar("T")


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


def store_error(exc: sqlite3.Error, path: str | os.PathLike[str] = "") -> StoreError:
    """One sentence a person can act on, for a sqlite3 error (damaged pages, full disk, a long lock)."""
    return translate(exc, path)


def _with(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], ws: Workspace) -> T:
    try:
        return fn(conn)
    except sqlite3.Error as exc:
        raise store_error(exc, ws.db_path) from exc
    finally:
        conn.close()


def with_writer(ws: Workspace, fn: Callable[[sqlite3.Connection], T]) -> T:
    """`fn(conn)` on a new writable connection, closed after; sqlite3 errors become StoreError."""
    return _with(open_writer(ws), fn, ws)


def with_readonly(ws: Workspace, fn: Callable[[sqlite3.Connection], T]) -> T:
    """`fn(conn)` on a new read-only connection, closed after; sqlite3 errors become StoreError."""
    return _with(open_readonly(ws), fn, ws)


class TablesMissing(StoreError):
    """The store lacks a table a read needs: one from an older mltui, opened read-only so never migrated."""


class ReaderClosed(MltuiError):
    """The reader was closed (its screen went away) while a poll still wanted it."""


class StoreReader:
    """Owns a connection for one poller.

    SQLite's Python binding crashes the process if a connection is closed while another thread is
    inside a query on it, and a pane's poll runs in a worker thread while its unmount runs on the UI
    thread. So a thread that uses the connection holds `in_use()`, and `close()` may be called at
    any moment from any thread:

    - it sets a closed flag first: `in_use()` and `conn` refuse from then on (ReaderClosed);
    - a progress handler aborts any statement that runs on after the flag is set, even one that
      started after `close()`'s interrupt (SQLite's `interrupt()` alone does nothing to a query
      that has not started yet, so a poll that had just entered `in_use()` ran to its end);
    - it interrupts the statement under way;
    - it waits, at most `close_wait` seconds, for the user to let go, then closes. Should the user
      hold on longer (stuck outside SQLite's reach), the user closes the connection as it lets go.

    A statement aborted because the reader closed reaches the user as ReaderClosed.
    """

    close_wait = 2.0  # seconds close() waits for a user to let go before leaving the closing to it
    # SQLite virtual-machine steps between two looks at the closed flag (a few ms of a query). Each look
    # takes the GIL from the UI thread: at 1,000 steps a count over 100,000 runs looked ~5,000 times, and
    # while the UI drew the two threads handed the GIL to and fro until both ran several times slower
    progress_every = 100_000

    def __init__(self, ws: Workspace, cache_kib: int = 65536, mmap: bool = True) -> None:
        self.ws = ws
        self.cache_kib = cache_kib  # SQLite's page cache for this connection
        self.mmap = mmap  # False: no memory-mapped reads (a poller that counts big results keeps its RSS small)
        self._conn: sqlite3.Connection | None = None
        self._version: int | None = None
        self._lock = threading.RLock()  # held by the thread using the connection (see in_use)
        self._guard = threading.Lock()  # never held across a query: orders interrupt against close
        self._depth = 0  # nesting of in_use() in the thread that holds _lock
        self._closed = False

    def _closing(self) -> int:
        """SQLite's progress handler: non-zero aborts the statement under way."""
        return 1 if self._closed else 0

    @property
    def conn(self) -> sqlite3.Connection:
        if self._closed:
            raise ReaderClosed("This store reader is closed.")
        if self._conn is None:
            conn = open_reader(self.ws)
            conn.set_progress_handler(self._closing, self.progress_every)
            # A poller reads the same series again and again: keep up to 64 MB of pages (charts of
            # 20 runs x 100k points read 8x faster warm than through the default 2 MB cache).
            conn.execute(f"PRAGMA cache_size = -{int(self.cache_kib)}")
            if not self.mmap:
                conn.execute("PRAGMA mmap_size = 0")
            with self._guard:
                if self._closed:  # close() ran while this opened: it found nothing to close
                    conn.close()
                    raise ReaderClosed("This store reader is closed.")
                self._conn = conn
        return self._conn

    @contextmanager
    def in_use(self) -> Iterator[StoreReader]:
        """Hold while using `conn` from a thread, so `close()` cannot pull it away mid-query."""
        with self._lock:
            if self._closed:
                raise ReaderClosed("This store reader is closed.")
            self._depth += 1
            try:
                yield self
            except (sqlite3.Error, MltuiError) as exc:
                if self._closed and not isinstance(exc, ReaderClosed):  # interrupted or aborted by close()
                    raise ReaderClosed("This store reader was closed during a query.") from exc
                raise
            finally:
                self._depth -= 1
                if self._depth == 0 and self._closed:
                    self._close_connection()  # close() gave up waiting, or was called from inside

    def read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """`fn(conn)` while holding the reader; a table the store lacks raises TablesMissing."""
        with self.in_use():
            try:
                return fn(self.conn)
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc) and not self._closed:
                    raise TablesMissing(f"The store {self.ws.db_path} is from an older mltui and lacks a "
                                        f"table this needs ({exc}); open it once with write access to "
                                        "bring it up to date.") from exc
                raise

    def data_version(self) -> int:
        """SQLite's change counter for this connection: it moves whenever another connection commits
        (a poller compares it with the version its screen shows; the cheapest look there is)."""
        with self.in_use():
            return self.conn.execute("PRAGMA data_version").fetchone()[0]

    def peek_version(self) -> int | None:
        """data_version at once, or None if another thread is using the connection (or it is not open):
        the UI thread's look before it starts a poll's thread for nothing."""
        if self._closed or self._conn is None or not self._lock.acquire(blocking=False):
            return None
        try:
            if self._closed or self._conn is None:
                return None
            return self._conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            return None
        finally:
            self._lock.release()

    def changed(self) -> bool:
        """True the first time, then whenever another connection has committed since the last call."""
        version = self.data_version()
        changed = version != self._version
        self._version = version
        return changed

    def close(self) -> None:
        """Close for good, from any thread at any moment: a query under way in another thread is
        stopped and waited for (at most `close_wait` seconds; past that its thread closes)."""
        with self._guard:
            self._closed = True  # no new use starts, and the progress handler aborts what runs
            if self._conn is not None:
                try:
                    self._conn.interrupt()  # stops a statement under way at once
                except sqlite3.Error:
                    pass
        if not self._lock.acquire(timeout=self.close_wait):
            return  # the user is stuck outside SQLite: it closes the connection as it lets go
        try:
            if self._depth == 0:  # else this very thread is inside in_use(): its way out closes
                self._close_connection()
        finally:
            self._lock.release()

    def _close_connection(self) -> None:
        with self._guard:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()
