"""Keeping a big history tidy: removing or archiving the runs a --where matches, and gc of what nothing
refers to any more (folders of runs gone from the store, unreferenced cache objects).

Tens of thousands of runs go in batches, each its own short transaction, so a training script logging at
the same time waits a moment at most; the guard of each batch is taken again inside it (a run that was
finished when chosen but has been started again since is kept). Each batch's run folders are then moved
into runs/.trash (a rename each) and deleted there by threads while the next batches go: deleting tens of
thousands of folders waits on the disk about as long as the store's work takes. What a removal that was
killed left in runs/.trash, the next removal or gc deletes.
"""

from __future__ import annotations

import os
import queue
import shutil
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mltui.base.errors import MltuiError
from mltui.core.runs.listing import select_ids
from mltui.core.workspace import Workspace
from mltui.store import runs as run_store
from mltui.store.connection import write_tx

BATCH = 100  # runs in the first transaction (its pages are cold); later ones are sized to last about TX_SECONDS
FOLDER_GRACE = 3600.0  # gc leaves a run folder younger than this (its run may be being created)
SWEEPERS = 2  # threads deleting folders (the disk waits of one overlap the other's)
TRASH = ".trash"  # under runs/: folders of removed runs, waiting to be deleted (never a run id: those are alnum)

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
CACHE_KIB = 65_536  # this connection's page cache while it works: 64 MB (32 to 128 MB measured the same)
MMAP_BYTES = 1 << 32  # and how much of the file it reads through mmap (up to 4 GB)


def _in_batches(ws: Workspace, conn: sqlite3.Connection, ids: list[str], result: Tidied,
                progress: Progress | None, *, remove: bool, force: bool = False, archive: bool = True) -> Tidied:
    """Delete or (un)archive `ids` in short transactions. Each batch is sized from how long the last one
    took (aiming at TX_SECONDS: a run's rows are spread over the tables' value indexes, so bigger batches
    touch each page fewer times and the whole goes faster, but hold the write lock longer), and after
    each commit the lock is left free a while (_pause), so a writer waiting on it gets in. The folders of
    each batch's runs are deleted meanwhile by threads (_Sweeper); this returns once they are gone."""
    # Every batch touches pages all over the (key, value) indexes of params and metric_summary, and the
    # next batch touches many of them again: a page cache that holds them, and mmap over the whole file
    # rather than the connection's usual first 256 MB, read each page once instead of once a batch; and
    # checkpointing the WAL every 64 MB instead of every 4 MB copies each page to the database once per
    # checkpoint, not once per batch. The WAL file is cut back to that size once it has been checkpointed.
    settings = {name: conn.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("wal_autocheckpoint", "cache_size", "mmap_size", "journal_size_limit")}
    conn.execute(f"PRAGMA wal_autocheckpoint = {max(int(settings['wal_autocheckpoint']), CHECKPOINT_PAGES)}")
    conn.execute(f"PRAGMA cache_size = {-CACHE_KIB}")
    conn.execute(f"PRAGMA mmap_size = {max(int(settings['mmap_size']), MMAP_BYTES)}")
    if int(settings["journal_size_limit"]) < 0:
        conn.execute(f"PRAGMA journal_size_limit = {CHECKPOINT_PAGES * 4096}")
    sweeper = _Sweeper(ws) if remove else None
    try:
        _batches(ws, conn, ids, result, progress, sweeper, remove=remove, force=force, archive=archive)
    except BaseException:
        if sweeper is not None:
            sweeper.stop()  # what it has not deleted stays in runs/.trash, for the next removal or gc
        raise
    finally:
        for name, value in settings.items():
            conn.execute(f"PRAGMA {name} = {int(value)}")
    if sweeper is not None:
        sweeper.finish(lambda: progress(sweeper.settled + len(result.kept), len(ids)) if progress else None)
    _shrink_wal(conn)
    return result


def _shrink_wal(conn: sqlite3.Connection) -> None:
    """Leave the WAL file empty rather than as big as the batches made it (hundreds of MB when a script
    logging meanwhile kept it from being reset): copy what it holds into the database without stopping
    anyone, then truncate it, which holds writers off for a moment. A try waits at most 0.1 s for readers
    and for another connection's checkpoint; after a few the file is left as it is."""
    timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        conn.execute("PRAGMA busy_timeout = 100")
        for _ in range(5):
            if conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0:
                break
            time.sleep(0.1)
    except sqlite3.Error:
        pass
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout)}")


def _batches(ws: Workspace, conn: sqlite3.Connection, ids: list[str], result: Tidied,
             progress: Progress | None, sweeper: _Sweeper | None, *, remove: bool, force: bool,
             archive: bool) -> None:
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
        committed = time.perf_counter()
        took = committed - began
        start += len(batch)
        if sweeper is not None:
            gone = set(done)
            result.kept += [rid for rid in batch if rid not in gone]
            sweeper.take(done)
        result.done += done
        if progress:
            progress(min(start, sweeper.settled + len(result.kept)) if sweeper else start, len(ids))
        if start < len(ids):
            size = max(MIN_BATCH, min(MAX_BATCH, 2 * size, int(size * TX_SECONDS / max(took, 1e-3))))
            time.sleep(max(0.0, _pause(took) - (time.perf_counter() - committed)))


def _pause(took: float) -> float:
    """How long to leave the write lock free after a batch that held it `took` seconds (moving its folders
    aside counts): a quarter of that, and at least as long as SQLite's busy handler then sleeps between two
    tries in a writer that began waiting when the batch did (up to 25 ms in its first 0.13 s of waiting,
    50 ms up to 0.23 s, then 100 ms), so that writer gets in before the next batch."""
    return max(took / 4, 0.1 if took > 0.225 else 0.05 if took > 0.1 else 0.025)


class _Sweeper:
    """Deletes the folders of removed runs in threads, after moving each into runs/.trash at once (so a
    removal killed half way leaves them where the next removal or gc finds them, not among live runs).
    `settled` counts the runs taken whose folder is gone (or never was)."""

    def __init__(self, ws: Workspace) -> None:
        self.runs_dir = ws.runs_dir
        self.trash = ws.runs_dir / TRASH
        self.absent = 0  # counted by the caller's thread
        self.deleted = [0] * SWEEPERS  # by each sweeping thread, its own count
        self._todo: queue.SimpleQueue[tuple[str, bool] | None] = queue.SimpleQueue()
        self._stopped = False
        self._threads: list[threading.Thread] = []
        self._mode = ws.config().dir_mode

    def take(self, run_ids: list[str]) -> None:
        for rid in run_ids:
            folder = self.runs_dir / rid
            try:
                if not stat.S_ISDIR(os.lstat(folder).st_mode):  # a link or a file: left alone, as before
                    self.absent += 1
                    continue
            except OSError:
                self.absent += 1  # no folder
                continue
            if not self._threads:
                self._start()
            try:
                os.rename(folder, self.trash / rid)
                self._todo.put((str(self.trash / rid), True))
            except OSError:  # no trash (another filesystem, another account's): delete it where it is
                self._todo.put((str(folder), True))

    def _start(self) -> None:
        try:
            os.mkdir(self.trash, self._mode)
            os.chmod(self.trash, self._mode)  # mkdir's mode is cut by the umask; a shared one must be group-writable
        except OSError:
            pass
        for name in _names(self.trash):  # left by a removal that was killed: not counted as this one's
            self._todo.put((str(self.trash / name), False))
        self._threads = [threading.Thread(target=self._work, args=(i,), name="mltui-rm-folders", daemon=True)
                         for i in range(SWEEPERS)]
        for thread in self._threads:
            thread.start()

    def _work(self, slot: int) -> None:
        while (item := self._todo.get()) is not None and not self._stopped:
            path, counted = item
            delete_tree(path, count=False)
            if counted:
                self.deleted[slot] += 1

    @property
    def settled(self) -> int:
        return self.absent + sum(self.deleted)

    def finish(self, tick: Callable[[], None]) -> None:
        """Wait for the last folders, calling `tick` now and then."""
        for _ in self._threads:
            self._todo.put(None)
        for thread in self._threads:
            while thread.is_alive():
                tick()
                thread.join(0.2)
        if self._threads:
            tick()

    def stop(self) -> None:
        self._stopped = True
        for _ in self._threads:
            self._todo.put(None)


def _names(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


def delete_tree(path: str, count: bool = True) -> int:
    """Delete a folder and what it holds, bottom up, never following a link; what cannot be deleted (gone
    meanwhile, another account's) is left. Returns the bytes of the files deleted (0 unless `count`)."""
    freed = 0
    try:
        entries = list(os.scandir(path))
    except OSError:
        entries = []
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                freed += delete_tree(entry.path, count)
                continue
            size = entry.stat(follow_symlinks=False).st_size if count else 0
            os.unlink(entry.path)
            freed += size
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass
    return freed


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
    entries = [e for e in os.scandir(ws.runs_dir) if e.is_dir(follow_symlinks=False) and e.name != TRASH]
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
    its folder a moment before its row), what a killed removal left in runs/.trash, and the cache objects
    no dataset version, model version or pipeline stage refers to; with `dry_run` only count them."""
    from mltui.core.data.ops import gc as cache_gc

    folders, young = orphan_folders(ws, conn)
    freed = 0
    for folder in folders:
        freed += _size(folder)
        if not dry_run:
            _remove(folder)
    trash = [ws.runs_dir / TRASH / name for name in _names(ws.runs_dir / TRASH)]
    for folder in trash:  # a removal running now may be deleting these too: whoever comes first
        freed += _size(folder) if dry_run else delete_tree(str(folder))
    cache = cache_gc(ws, conn, dry_run=dry_run)
    return GcReport(len(folders) + len(trash), freed, cache.removed, cache.freed, cache.kept, cache.temps, young,
                    dry_run)


def _remove(folder: Path) -> None:
    """Delete a run folder; gone meanwhile is fine (a removal running now moved it to runs/.trash)."""
    def failed(_func, _path, info) -> None:
        if not isinstance(info[1], FileNotFoundError):
            raise MltuiError(f"Cannot remove {folder}: {info[1].strerror or info[1]}.")

    shutil.rmtree(folder, onerror=failed)
