"""Opening the store: a configured connection whose schema is brought up to date (or refused when it
comes from a newer mltui). Read-only opens never migrate."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mltui.store.connection import connect, enable_wal, translate
from mltui.store.schema import check_version, migrate, refuse_foreign


def open_store(path: Path | str, readonly: bool = False, file_mode: int = 0o600) -> sqlite3.Connection:
    """Connect and bring the schema up to date (or refuse a store from a newer mltui)."""
    conn = connect(path, readonly=readonly, file_mode=file_mode)
    try:
        if readonly:
            check_version(conn, path)
        else:
            refuse_foreign(conn, path)
            try:
                enable_wal(conn)
            except sqlite3.Error as exc:
                raise translate(exc, path) from None
            migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn
