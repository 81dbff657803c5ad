"""Which dataset versions a run learned from, and which runs used a version.

A run records a version explicitly (`run.use_dataset("NAME")`), or on its own when a launched
command's params or arguments name a registered dataset's folder. What is on disk is hashed
(through the stat cache, so only changed files) and matched to a recorded version; data that
matches none is recorded against the latest version and flagged. When the run ends the folder
is checked again, and a run whose data changed under it is flagged.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mltui.core.data.versions import path_from_db, path_to_db, printable
from mltui.core.workspace import Workspace
from mltui.store.connection import write_tx

MAX_ARGS = 64  # arguments of a command looked at for dataset paths


def record(ws: Workspace, conn: sqlite3.Connection, run_id: str, dataset: str, version: str, how: str,
           path: str | None = None, changed: bool | None = None) -> None:
    with write_tx(conn, ws.db_path):
        conn.execute(
            "INSERT INTO run_inputs(run_id, dataset, version, how, path, recorded, changed) VALUES (?,?,?,?,?,?,?) "
            "ON CONFLICT(run_id, dataset, version) DO UPDATE SET how = excluded.how, path = excluded.path, "
            "changed = excluded.changed",
            (run_id, dataset, version, how, path_to_db(path), time.time(), None if changed is None else int(changed)))


def _sources(conn: sqlite3.Connection) -> dict[str, list[tuple[str, str]]]:
    """source folder -> [(dataset, version id)], newest version first."""
    out: dict[str, list[tuple[str, str]]] = {}
    for dataset, vid, source in conn.execute(
            "SELECT dataset, id, source FROM dataset_versions WHERE source IS NOT NULL ORDER BY seq DESC"):
        out.setdefault(path_from_db(source), []).append((dataset, vid))
    return out


def match_on_disk(ws: Workspace, conn: sqlite3.Connection, dataset: str, source: str) -> tuple[str, bool] | None:
    """(version id, changed) for what `source` holds now: a recorded version of `dataset` with exactly
    these bytes, wherever it was added from (changed False), else the latest version added from that
    folder (changed True)."""
    from mltui.core.data.versions import current_id

    here = [vid for vid, in conn.execute(
        "SELECT id FROM dataset_versions WHERE dataset = ? AND source = ? ORDER BY seq DESC",
        (dataset, path_to_db(source)))]
    if not here:
        return None
    try:
        now = current_id(ws, conn, Path(source))
    except Exception:  # the folder is gone or unreadable: it is not what was recorded
        return here[0], True
    known = conn.execute("SELECT 1 FROM dataset_versions WHERE dataset = ? AND id = ?", (dataset, now)).fetchone()
    return (now, False) if known else (here[0], True)


def _dataset_of_path(conn: sqlite3.Connection, value: str, cwd: str,
                     sources: dict[str, list[tuple[str, str]]] | None = None) -> tuple[str, str] | None:
    """(dataset, source) when `value` names a registered dataset's folder or something inside it
    (`sources` from `_sources`, when the caller looks up several values)."""
    if not value or len(value) > 4096 or "\0" in value:
        return None
    path = Path(cwd, value).expanduser()
    try:
        if not path.exists():
            return None
        path = path.resolve()
    except (OSError, RuntimeError):
        return None
    sources = _sources(conn) if sources is None else sources
    for source, found in sorted(sources.items(), key=lambda s: -len(s[0])):
        if path == Path(source) or path.is_relative_to(source):
            return found[0][0], source
    return None


def from_params(ws: Workspace, conn: sqlite3.Connection, run_id: str, params: Mapping[str, Any],
                argv: Iterable[str], cwd: str) -> list[dict]:
    """Record the datasets a launched command names (params like `data=mnist@v2` or `data=data/`, and
    arguments that are a dataset's folder). Returns what was recorded."""
    from mltui.core.data.versions import resolve

    if conn.execute("SELECT 1 FROM dataset_versions LIMIT 1").fetchone() is None:
        return []  # no datasets: nothing to look for
    sources = _sources(conn)
    seen: dict[tuple[str, str], dict] = {}
    candidates = [(f"param {k}", v) for k, v in params.items() if isinstance(v, str)]
    candidates += [("argument", a) for a in list(argv)[1:MAX_ARGS]]
    for how, value in candidates:
        value = str(value)
        name, at, _ = value.partition("@")
        if at and conn.execute("SELECT 1 FROM datasets WHERE name = ?", (name,)).fetchone():
            try:
                v = resolve(conn, value)
            except Exception:
                continue
            seen.setdefault((v.dataset, v.id), {"dataset": v.dataset, "version": v.id, "how": how,
                                                 "path": None, "changed": None})
            continue
        found = _dataset_of_path(conn, value, cwd, sources)
        if found is None or any(d == found[0] and s.get("path") == found[1] for (d, _), s in seen.items()):
            continue
        dataset, source = found
        matched = match_on_disk(ws, conn, dataset, source)
        if matched:
            vid, changed = matched
            seen.setdefault((dataset, vid), {"dataset": dataset, "version": vid, "how": how, "path": source,
                                             "changed": changed})
    for item in seen.values():
        record(ws, conn, run_id, item["dataset"], item["version"], item["how"], item["path"], item["changed"])
    return list(seen.values())


def use(ws: Workspace, conn: sqlite3.Connection, run_id: str, spec: str) -> dict:
    """`run.use_dataset(spec)`: a dataset name (its folder is checked now), NAME@version (pinned), or a
    path inside a registered dataset's folder."""
    from mltui.core.data.versions import resolve, versions
    from mltui.base.errors import NotFound

    name, at, _ = spec.partition("@")
    is_name = conn.execute("SELECT 1 FROM datasets WHERE name = ?", (name,)).fetchone() is not None
    if is_name and at and spec.partition("@")[2] != "latest":
        v = resolve(conn, spec)
        item = {"dataset": v.dataset, "version": v.id, "how": "explicit", "path": None, "changed": None}
    elif is_name:
        latest = versions(conn, name)[0]
        matched = match_on_disk(ws, conn, name, latest.source) if latest.source else None
        vid, changed = matched or (latest.id, None)
        item = {"dataset": name, "version": vid, "how": "explicit", "path": latest.source, "changed": changed}
    else:
        found = _dataset_of_path(conn, spec, os.getcwd())
        if found is None:
            raise NotFound(f"{spec!r} is neither a dataset name nor inside a dataset's folder; "
                           "`mltui data add` records one.")
        matched = match_on_disk(ws, conn, *found)
        assert matched is not None
        item = {"dataset": found[0], "version": matched[0], "how": "explicit", "path": found[1],
                "changed": matched[1]}
    record(ws, conn, run_id, item["dataset"], item["version"], item["how"], item["path"], item["changed"])
    return item


def recheck(ws: Workspace, conn: sqlite3.Connection, run_id: str) -> None:
    """At the end of a run: flag each input whose folder no longer holds the version recorded."""
    from mltui.core.data.versions import current_id

    rows = conn.execute("SELECT dataset, version, path, changed FROM run_inputs WHERE run_id = ? AND path IS NOT NULL",
                        (run_id,)).fetchall()
    for dataset, version, path, changed in rows:
        path = path_from_db(path)
        if changed:
            continue  # already flagged
        try:
            now = current_id(ws, conn, Path(path))
        except Exception:
            now = None
        with write_tx(conn, ws.db_path):
            conn.execute("UPDATE run_inputs SET changed = ? WHERE run_id = ? AND dataset = ? AND version = ?",
                         (int(now != version), run_id, dataset, version))


def inputs_of(conn: sqlite3.Connection, run_id: str) -> list[dict]:
    rows = conn.execute(
        "SELECT i.dataset, i.version, v.seq, i.how, i.path, i.changed, i.recorded FROM run_inputs i "
        "LEFT JOIN dataset_versions v ON v.dataset = i.dataset AND v.id = i.version WHERE i.run_id = ? "
        "ORDER BY i.dataset", (run_id,)).fetchall()
    return [{"dataset": d, "version": v, "seq": s, "label": f"{d}@{v[:12]}", "how": h, "path": printable(path_from_db(p)),
             "changed": None if c is None else bool(c), "recorded": r} for d, v, s, h, p, c, r in rows]


def runs_using(conn: sqlite3.Connection, dataset: str, version: str) -> list[dict]:
    rows = conn.execute(
        "SELECT r.id, r.name, r.status, r.kind, r.created, i.how, i.changed FROM run_inputs i "
        "JOIN runs r ON r.id = i.run_id WHERE i.dataset = ? AND i.version = ? ORDER BY r.created DESC",
        (dataset, version)).fetchall()
    return [{"id": i, "name": n, "status": s, "kind": k, "created": c, "how": h,
             "changed": None if ch is None else bool(ch)} for i, n, s, k, c, h, ch in rows]
