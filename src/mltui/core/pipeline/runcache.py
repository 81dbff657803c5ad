"""The run cache: a successful stage's outs kept in the content-addressed cache (`.mltui/cache/`) under
its fingerprint, and put back when a later repro meets that fingerprint again (a param reverted, a
branch switched back), instead of running the command.

An out is kept as a manifest of rows (path, kind, size, sha256, link target), as dataset versions are.
It is restored by reflink where the filesystem has them, else by a copy, into a folder beside the out
that is renamed into place: an interrupted restore leaves nothing half-written.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from mltui.base.errors import MltuiError
from mltui.core.data.hashing import parallel
from mltui.core.data.ops import reflink
from mltui.core.data.versions import cache_of, snapshot
from mltui.core.workspace import Workspace


def keep_outs(ws: Workspace, conn: sqlite3.Connection, project: Path, outs: list[str]) -> dict[str, Any]:
    """Store each out's bytes in the cache; returns {out: {id, single, rows}} for the run cache."""
    kept: dict[str, Any] = {}
    for rel in outs:
        where = project / rel
        snap = snapshot(ws, conn, where, store=True)
        rows = [[os.fsdecode(path), kind, size, sha, os.fsdecode(target) if target is not None else None]
                for path, kind, size, sha, target in snap.rows]
        kept[rel] = {"id": snap.id, "single": where.is_file(), "rows": rows}
    return kept


def restorable(ws: Workspace, outs: dict[str, Any]) -> bool:
    """Whether every file of these outs is still in the cache (gc may have removed some)."""
    cache = cache_of(ws)
    return all(cache.has(row[3]) for out in outs.values() for row in out["rows"] if row[1] == "file")


def restore_outs(ws: Workspace, project: Path, outs: dict[str, Any]) -> dict[str, int]:
    """Put each out back from the cache; returns how many files were placed each way."""
    how: dict[str, int] = {}
    for rel, out in outs.items():
        for kind, n in _restore_one(ws, project / rel, out).items():
            how[kind] = how.get(kind, 0) + n
    return how


def _place(src: Path, dst: Path, sha256: str) -> str:
    """A reflink where the filesystem has them (instant, and the out is its own file), else a kernel copy.
    Never a hard link: an out edited in place would then edit the cache's object too (root ignores the
    object's read-only mode), and every later restore would hand out the edited bytes. The objects were
    verified when they were stored; `mltui data verify` checks them again."""
    if reflink(src, dst):
        return "reflink"
    shutil.copyfile(src, dst)  # contents only: the out gets the usual mode, not the object's read-only one
    return "copy"


def _restore_one(ws: Workspace, target: Path, out: dict[str, Any]) -> dict[str, int]:
    cache = cache_of(ws)
    rows = out["rows"]
    target.parent.mkdir(parents=True, exist_ok=True)
    build = target.parent / f".{target.name}.mltui-{uuid.uuid4().hex[:8]}"
    how: dict[str, int] = {}
    try:
        if out.get("single"):
            (row,) = rows
            how[_place(cache.path(row[3]), build, row[3])] = 1
        else:
            build.mkdir()
            files = []
            for path, kind, _size, sha, link_target in rows:
                dst = build / path
                dst.parent.mkdir(parents=True, exist_ok=True)
                if kind == "dir":
                    dst.mkdir(exist_ok=True)
                elif kind == "link":
                    os.symlink(link_target or "", dst)
                else:
                    files.append((dst, sha))

            def place(item: tuple[Path, str]) -> str:
                return _place(cache.path(item[1]), item[0], item[1])

            done: list[str] = []
            parallel(files, place, lambda item: 1, collect=lambda batch: done.extend(r for _, r in batch))
            for kind in done:
                how[kind] = how.get(kind, 0) + 1
        _remove(target)
        os.replace(build, target)
    except OSError as exc:
        _remove(build)
        raise MltuiError(f"Cannot restore {target} from the run cache: {exc.strerror or exc}.") from None
    except BaseException:
        _remove(build)
        raise
    return how


def _remove(path: Path) -> None:
    """An out goes before its stage runs again or is restored: a stale out never passes for a new one."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        def writable(func, p, _exc):  # a folder left read-only by a command: make it writable, try again
            os.chmod(os.path.dirname(p), 0o755)
            func(p)

        shutil.rmtree(path, onerror=writable)


def remove_outs(project: Path, outs: list[str]) -> None:
    for rel in outs:
        try:
            _remove(project / rel)
        except OSError as exc:
            raise MltuiError(f"Cannot remove the old out {rel}: {exc.strerror or exc}.") from None
