"""Opening the SQLite store: WAL, busy timeout, owner-only files, clear errors."""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Iterator

from mltui.base.errors import StoreError

BUSY_TIMEOUT_MS = 60_000


def _check_is_sqlite(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a file that is not SQLite. Asked of SQLite itself: opening and closing the file with a
    second descriptor would drop this process's POSIX locks on it, under its other connections."""
    try:
        conn.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc).lower() and _header(path) != b"SQLite format 3\x00":
            raise StoreError(f"{path} is not an mltui store: the file is not a SQLite database.") from None
        raise


def _header(path: Path) -> bytes:
    """The first 16 bytes; read only once SQLite has refused the file, so no working connection is at stake."""
    try:
        with open(path, "rb") as fh:
            return fh.read(16)
    except OSError:
        return b""


def translate(exc: sqlite3.Error, path: Path | str = "") -> StoreError:
    """Turn a sqlite3 error into one sentence a person can act on."""
    msg = str(exc).lower()
    store = f"The store {path}" if path else "The store"
    if "readonly" in msg or "read-only" in msg:
        return StoreError(f"{store} is read-only here, so nothing can be written to it.", unwritable=True)
    if "not a database" in msg or "malformed" in msg:
        return StoreError(f"{store} is damaged or not a SQLite database ({exc}).")
    if "unable to open" in msg:
        folder = os.path.dirname(os.path.abspath(path)) if path else "."
        if path and os.path.exists(path) and not os.access(folder, os.W_OK):
            return StoreError(f"{store} is read-only here, so nothing can be written to it.", unwritable=True)
        return StoreError(f"Cannot open the store {path} (missing, or its folder is not accessible).", unwritable=True)
    if "locked" in msg or "busy" in msg:
        return StoreError(f"{store} stayed locked by another process for too long.")
    if "foreign key" in msg:
        return StoreError(f"{store} refused the write: the run it belongs to no longer exists.")
    if "disk" in msg and ("full" in msg or "i/o" in msg):
        return StoreError(f"Writing {store.lower()} failed: {exc}.")
    return StoreError(f"{store} failed: {exc}.")


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    # Read pages through mmap: metric chunks are multi-page blobs, and reading them page by page
    # through the small default page cache costs a system call per 4 KB (10x slower for charts).
    conn.execute("PRAGMA mmap_size = 268435456")


def enable_wal(conn: sqlite3.Connection) -> None:
    """WAL lets readers and one writer work at once. Done only once the file is known to be ours."""
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError("The store could not be switched to WAL mode (is the folder on a network filesystem?).")
    conn.execute("PRAGMA synchronous = NORMAL")


def connect(path: Path | str, readonly: bool = False, file_mode: int = 0o600) -> sqlite3.Connection:
    """A configured connection; creates the file (with `file_mode`) when writable and absent."""
    path = Path(path)
    try:
        if readonly:
            return _connect_readonly(path)
        if not path.exists():
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, file_mode)
            os.fchmod(fd, file_mode)  # O_CREAT's mode is cut by the umask; WAL files copy these bits
            os.close(fd)
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        try:
            _check_is_sqlite(conn, path)
            _configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn
    except FileExistsError:
        return connect(path, readonly, file_mode)
    except PermissionError:
        raise StoreError(f"Cannot create the store {path}: permission denied.") from None
    except sqlite3.Error as exc:
        raise translate(exc, path) from None


def _connect_readonly(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise StoreError(f"There is no store at {path}.")
    uri = path.absolute().as_uri()
    last: sqlite3.Error | None = None
    # mode=ro still needs the -shm file; immutable=1 reads a store on a read-only disk.
    for query in ("mode=ro", "immutable=1"):
        try:
            conn = sqlite3.connect(f"{uri}?{query}", uri=True, isolation_level=None, check_same_thread=False)
            try:
                _check_is_sqlite(conn, path)
            except StoreError:
                conn.close()
                raise
            _configure(conn)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.Error as exc:
            last = exc
    assert last is not None
    raise translate(last, path)


@contextmanager
def write_tx(conn: sqlite3.Connection, path: Path | str = "") -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, waiting out other writers instead of failing."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.001
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise translate(exc, path) from None
            if time.monotonic() > deadline:
                raise translate(exc, path) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    try:
        yield conn
    except BaseException as exc:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        if isinstance(exc, sqlite3.Error):
            raise translate(exc, path) from None
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        raise translate(exc, path) from None


def insert_rows(conn: sqlite3.Connection, head: str, rows: list[tuple], tail: str = "", per: int = 200) -> None:
    """`head VALUES (?,...),(?,...) tail` over `rows`, `per` rows a statement: about a third quicker
    than executemany's statement per row. `head` and `tail` are fixed SQL; the values are all bound."""
    if not rows:
        return
    one = "(" + ",".join("?" * len(rows[0])) + ")"
    for i in range(0, len(rows), per):
        part = rows[i:i + per]
        conn.execute(f"{head} VALUES {','.join([one] * len(part))}{tail}", [v for row in part for v in row])
