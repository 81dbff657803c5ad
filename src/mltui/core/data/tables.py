"""Profiles and drift of the tabular files of recorded versions: find their bytes, cache profiles."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from mltui.core.data.columns import Step, format_of
from mltui.core.data.drift import drift
from mltui.core.data.profile import profile
from mltui.core.data.versions import Version, cache_of, files, load_stat_cache
from mltui.base.errors import MltuiError, NotFound
from mltui.core.data.hashing import Entry, show
from mltui.core.workspace import Workspace
from mltui.store.connection import write_tx


def tables(conn: sqlite3.Connection, version: Version) -> list[Entry]:
    """The files of a version polars can read (by extension)."""
    return [e for e in files(conn, version.id) if e.kind == "file" and format_of(show(e.path))]


def locate(ws: Workspace, conn: sqlite3.Connection, version: Version, entry: Entry) -> Path:
    """Where the bytes of `entry` can be read: the cache, else the source file if the stat cache
    vouches that it still holds them."""
    obj = cache_of(ws).path(entry.sha256 or "")
    if obj.is_file():
        return obj
    if version.source:
        source = Path(version.source)
        path = source if source.is_file() else source / os.fsdecode(entry.path)
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            st = None
        if st is not None:
            hit = load_stat_cache(conn, os.fsencode(path)).get(os.fsencode(path))
            if hit and hit[1:] == (st.st_size, st.st_mtime_ns, st.st_ino, entry.sha256, st.st_ctime_ns):
                return path
    raise MltuiError(f"The bytes of {show(entry.path)} in {version.label} are not in the cache and its source "
                     "file has changed; add the data with --store to keep them.")


def pick(conn: sqlite3.Connection, version: Version, path: str | None) -> Entry:
    found = tables(conn, version)
    if path is not None:
        for e in found:
            if show(e.path) == path:
                return e
        raise NotFound(f"{version.label} has no table {path!r} (CSV, TSV, Parquet or JSON lines).")
    if not found:
        raise NotFound(f"{version.label} holds no CSV, TSV, Parquet or JSON lines file.")
    if len(found) > 1:
        names = ", ".join(show(e.path) for e in found[:5]) + (" …" if len(found) > 5 else "")
        raise MltuiError(f"{version.label} holds {len(found)} tables ({names}); name one with --file.")
    return found[0]


def profile_of(ws: Workspace, conn: sqlite3.Connection, version: Version, entry: Entry,
               step: Step | None = None) -> dict:
    """The profile of one table, computed once per content (the same bytes have the same profile)."""
    fmt = format_of(show(entry.path)) or ""
    row = conn.execute("SELECT profile FROM dataset_profiles WHERE sha256 = ? AND format = ?",
                       (entry.sha256, fmt)).fetchone()
    if row:
        return json.loads(row[0])
    where = locate(ws, conn, version, entry)
    try:
        result = profile(str(where), fmt, step)
    except MltuiError as exc:
        raise MltuiError(f"{show(entry.path)}: {exc}") from None
    result = {"path": show(entry.path), "format": fmt, "size": entry.size, **result}
    try:
        with write_tx(conn, ws.db_path):
            conn.execute("INSERT OR REPLACE INTO dataset_profiles(sha256, format, profile, created) VALUES (?,?,?,?)",
                         (entry.sha256, fmt, json.dumps(result), time.time()))
    except MltuiError:
        pass  # a read-only store: the profile is still shown, just not kept
    return result


def pairs(conn: sqlite3.Connection, a: Version, b: Version, path: str | None) -> list[tuple[Entry, Entry]]:
    """Tables to compare: the named one, else those at the same path in both, else the only table of each."""
    ta, tb = tables(conn, a), tables(conn, b)
    if path is not None:
        return [(pick(conn, a, path), pick(conn, b, path))]
    by_b = {e.path: e for e in tb}
    same = [(e, by_b[e.path]) for e in ta if e.path in by_b]
    if same:
        return same
    if len(ta) == 1 and len(tb) == 1:
        return [(ta[0], tb[0])]
    raise NotFound(f"{a.label} and {b.label} have no table at the same path; name one with --file.")


def drift_of(ws: Workspace, conn: sqlite3.Connection, a: Version, b: Version, path: str | None = None,
             step: Step | None = None) -> list[dict]:
    out = []
    for ea, eb in pairs(conn, a, b, path):
        fa, fb = format_of(show(ea.path)) or "", format_of(show(eb.path)) or ""
        result = drift(str(locate(ws, conn, a, ea)), fa, str(locate(ws, conn, b, eb)), fb, step)
        out.append({"path_a": show(ea.path), "path_b": show(eb.path), "same_bytes": ea.sha256 == eb.sha256, **result})
    return out
