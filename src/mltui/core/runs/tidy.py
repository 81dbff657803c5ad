"""Keeping a big history tidy: removing or archiving the runs a --where matches, and gc of what nothing
refers to any more (folders of runs gone from the store, unreferenced cache objects).

Tens of thousands of runs go in batches, each its own short transaction, so a training script logging at
the same time waits a moment at most; the guard of each batch is taken again inside it (a run that was
finished when chosen but has been started again since is kept).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mltui.base.errors import MltuiError
from mltui.core.runs.listing import select_ids
from mltui.core.workspace import Workspace
from mltui.store import runs as run_store
from mltui.store.connection import write_tx

BATCH = 500  # runs in the first transaction; later ones are sized to last about TX_SECONDS
FOLDER_GRACE = 3600.0  # gc leaves a run folder younger than this (its run may be being created)

Progress = Callable[[int, int], None]


@dataclass
class Tidied:
    matched: int
    done: list[str] = field(default_factory=list)  # ids removed, archived or brought back
    kept: list[str] = field(default_factory=list)  # ids left alone (started again meanwhile)
    dry_run: bool = False


def _active(conn: sqlite3.Connection, ids: list[str]) -> list[tuple[str, str]]:
    import json

    out = []
    for start in range(0, len(ids), 10_000):
        out += conn.execute(
            "SELECT id, status FROM runs WHERE id IN (SELECT value FROM json_each(?)) AND status IN ('queued', 'running')",
            (json.dumps(ids[start:start + 10_000]),)).fetchall()
    return out


def remove_where(ws: Workspace, conn: sqlite3.Connection, where: str, *, archived: bool = False,
                 dry_run: bool = False, force: bool = False, progress: Progress | None = None,
                 stop: Callable[[str], None] | None = None) -> Tidied:
    """Remove every run `where` matches (archived ones only with `archived` or when the filter names
    `archived`), with its folder. A queued or running run among them refuses the whole removal unless
    `force`; then `stop(run_id)` is called first for each running one (the CLI stops launched runs)."""
    ids = select_ids(conn, where, None, archived)
    active = _active(conn, ids)
    if active and not force:
        raise MltuiError(f"{len(active):,} of the {len(ids):,} matching runs are queued or running (such as "
                         f"{active[0][0]}); stop them first, add \"and status not in (queued, running)\" to the "
                         "filter, or pass --force.")
    result = Tidied(len(ids), dry_run=dry_run)
    if dry_run:
        result.done = ids
        return result
    if force and stop is not None:
        for rid, status in active:
            if status == "running":
                stop(rid)
    return _in_batches(ws, conn, ids, result, progress, remove=True, force=force)


TX_SECONDS = 0.2  # what one batch's transaction aims to last: a writer waiting meanwhile waits a moment at most
MIN_BATCH, MAX_BATCH = 50, 20_000
CHECKPOINT_PAGES = 16_384  # 64 MB of 4 KB pages


def _in_batches(ws: Workspace, conn: sqlite3.Connection, ids: list[str], result: Tidied,
                progress: Progress | None, *, remove: bool, force: bool = False, archive: bool = True) -> Tidied:
    """Delete or (un)archive `ids` in short transactions. Each batch is sized from how long the last one
    took (aiming at TX_SECONDS: a run's rows are spread over the tables' value indexes, so bigger batches
    touch each page fewer times and the whole goes faster, but hold the write lock longer), and after
    each commit the lock is left free for a quarter of that time, so a writer waiting on it gets in."""
    # The batches dirty many of the same index pages again and again: checkpointing the WAL every 64 MB
    # instead of every 4 MB copies each page to the database once per checkpoint, not once per batch
    autocheckpoint = conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    conn.execute(f"PRAGMA wal_autocheckpoint = {max(autocheckpoint, CHECKPOINT_PAGES)}")
    try:
        _batches(ws, conn, ids, result, progress, remove=remove, force=force, archive=archive)
    finally:
        conn.execute(f"PRAGMA wal_autocheckpoint = {int(autocheckpoint)}")
    return result


def _batches(ws: Workspace, conn: sqlite3.Connection, ids: list[str], result: Tidied,
             progress: Progress | None, *, remove: bool, force: bool, archive: bool) -> None:
    runs_dir = ws.runs_dir.resolve()
    size, start = BATCH, 0
    while start < len(ids):
        batch = ids[start:start + size]
        began = time.perf_counter()
        with write_tx(conn, ws.db_path):
            if remove:
                done = run_store.delete_runs(conn, batch, keep_active=not force)
            else:
                run_store.set_archived(conn, batch, archive)
                done = batch
        took = time.perf_counter() - began
        start += len(batch)
        if remove:
            gone = set(done)
            result.kept += [rid for rid in batch if rid not in gone]
            for rid in done:
                folder = ws.run_dir(rid)
                if folder.is_dir() and folder.resolve().parent == runs_dir:
                    shutil.rmtree(folder, ignore_errors=True)
        result.done += done
        if progress:
            progress(start, len(ids))
        if start < len(ids):
            size = max(MIN_BATCH, min(MAX_BATCH, 2 * size, int(size * TX_SECONDS / max(took, 1e-3))))
            time.sleep(max(0.005, took / 4))


def archive_where(ws: Workspace, conn: sqlite3.Connection, where: str | None, ids: list[str] | None = None, *,
                  archive: bool = True, dry_run: bool = False, progress: Progress | None = None) -> Tidied:
    """Archive (hide from listings) or bring back the runs `where` matches, or the runs `ids`. Archiving
    looks among runs not archived yet, bringing back among archived ones."""
    if ids is None:
        scope = "archived = 0" if archive else "archived = 1"
        ids = select_ids(conn, f"({where}) and {scope}" if where and where.strip() else scope, None, True)
    result = Tidied(len(ids), dry_run=dry_run)
    if dry_run:
        result.done = list(ids)
        return result
    return _in_batches(ws, conn, list(ids), result, progress, remove=False, archive=archive)


# -- gc --------------------------------------------------------------------------------------------------
@dataclass
class GcReport:
    folders: int  # run folders removed (or that would be)
    folder_bytes: int
    objects: int  # cache objects removed
    object_bytes: int
    objects_kept: int
    temporary_files: int
    young_folders: int  # folders of runs not in the store, left because they are new (a run being created)
    dry_run: bool

    @property
    def freed(self) -> int:
        return self.folder_bytes + self.object_bytes


def _size(path: Path) -> int:
    """Bytes of the files (and links) under `path`, not following links."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def orphan_folders(ws: Workspace, conn: sqlite3.Connection, now: float | None = None) -> tuple[list[Path], int]:
    """(folders under runs/ whose run is gone from the store, how many such were left as too new)."""
    import json

    if not ws.runs_dir.is_dir():
        return [], 0
    entries = [e for e in os.scandir(ws.runs_dir) if e.is_dir(follow_symlinks=False)]
    names = [e.name for e in entries]
    known: set[str] = set()
    for start in range(0, len(names), 10_000):
        known |= {r[0] for r in conn.execute("SELECT id FROM runs WHERE id IN (SELECT value FROM json_each(?))",
                                             (json.dumps(names[start:start + 10_000]),))}
    now = time.time() if now is None else now
    old, young = [], 0
    for entry in entries:
        if entry.name in known:
            continue
        try:
            fresh = now - entry.stat(follow_symlinks=False).st_mtime < FOLDER_GRACE
        except OSError:
            continue
        if fresh:
            young += 1
        else:
            old.append(Path(entry.path))
    return old, young


def gc(ws: Workspace, conn: sqlite3.Connection, dry_run: bool = False) -> GcReport:
    """Remove the folders of runs no longer in the store (older than an hour: a run being created makes
    its folder a moment before its row) and the cache objects no dataset version, model version or
    pipeline stage refers to; with `dry_run` only count them."""
    from mltui.core.data.ops import gc as cache_gc

    folders, young = orphan_folders(ws, conn)
    freed = 0
    for folder in folders:
        freed += _size(folder)
        if not dry_run:
            try:
                shutil.rmtree(folder)
            except OSError as exc:
                raise MltuiError(f"Cannot remove {folder}: {exc.strerror or exc}.") from None
    cache = cache_gc(ws, conn, dry_run=dry_run)
    return GcReport(len(folders), freed, cache.removed, cache.freed, cache.kept, cache.temps, young, dry_run)
