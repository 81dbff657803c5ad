"""What is done with recorded versions: checkout, verify, diff and gc of the cache."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import sqlite3
import stat as stat_mod
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from mltui.core.data.cache import Cache, check_object
from mltui.core.data.versions import Progress, Version, cache_of, files
from mltui.base.errors import MltuiError, UsageError
from mltui.core.data.hashing import Entry, Found, hash_file, parallel, show
from mltui.core.workspace import Workspace

FICLONE = 0x40049409  # linux/fs.h: share the extents of another file (btrfs, xfs, bcachefs)
LINK_MODES = ("auto", "reflink", "hardlink", "copy")


# -- checkout -------------------------------------------------------------------------------------
@dataclass
class CheckoutResult:
    dest: Path
    files: int
    bytes: int
    how: dict[str, int] = field(default_factory=dict)  # reflink / hardlink / copy / source -> files


def reflink(src: Path, dst: Path) -> bool:
    try:
        with open(src, "rb") as s, open(dst, "wb") as d:
            fcntl.ioctl(d.fileno(), FICLONE, s.fileno())
        return True
    except OSError:
        dst.unlink(missing_ok=True)
        return False


def _copy_checked(src: Path, dst: Path, sha256: str) -> None:
    with open(dst, "wb") as out:
        got, _ = hash_file(os.fsencode(src), sink=out.write)
    if got != sha256:
        raise MltuiError(f"{src} does not hold the bytes recorded for it (sha256 differs); "
                         "`mltui data verify` lists what is damaged.")


def checkout(ws: Workspace, conn: sqlite3.Connection, version: Version, dest: str | os.PathLike[str],
             link: str = "auto", progress: Progress | None = None) -> CheckoutResult:
    """Restore `version` into the folder `dest` (new or empty), byte for byte, verifying every file.

    Bytes come from the cache; a file missing there is taken from the version's source folder if it
    still holds the same bytes. link: auto (reflink, else copy), reflink, hardlink (read-only files
    that share the cache's copy) or copy. The tree is built beside `dest` and renamed into place, so
    an interrupted checkout leaves nothing half-written at `dest`.
    """
    if link not in LINK_MODES:
        raise UsageError(f"--link takes one of {', '.join(LINK_MODES)}.")
    target = Path(dest).expanduser().absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{target} already exists and is not an empty folder; check out into a new folder.")
    cache = cache_of(ws)
    entries = files(conn, version.id)
    plan = _plan_sources(cache, version, entries)
    target.parent.mkdir(parents=True, exist_ok=True)
    build = target.parent / f".{target.name}.mltui-{uuid.uuid4().hex[:8]}"
    build.mkdir()
    how: dict[str, int] = {}
    counting = threading.Lock()
    try:
        for e in entries:
            path = build / os.fsdecode(e.path)
            if e.kind == "dir":
                path.mkdir(parents=True, exist_ok=True)
            elif e.kind == "link":
                path.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(e.target or b"", os.fsencode(path))
            else:
                path.parent.mkdir(parents=True, exist_ok=True)

        def restore(e: Entry) -> None:
            src, origin = plan[e.path]
            dst = build / os.fsdecode(e.path)
            if origin == "cache" and link in ("auto", "reflink") and reflink(src, dst):
                _verify_file(dst, e)
                kind = "reflink"
            elif origin == "cache" and link == "hardlink":
                try:
                    os.link(src, dst)
                except OSError as exc:
                    if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                        raise MltuiError(f"Cannot hard-link from the cache into {target.parent} ({exc.strerror}); "
                                         "use --link copy.") from None
                    raise
                _verify_file(dst, e)
                kind = "hardlink"
            elif link == "reflink":
                raise MltuiError(f"This filesystem cannot reflink ({target.parent}); use --link copy.")
            else:
                _copy_checked(src, dst, e.sha256 or "")
                kind = "copy" if origin == "cache" else "source"
            with counting:
                how[kind] = how.get(kind, 0) + 1

        file_entries = [e for e in entries if e.kind == "file"]
        parallel(file_entries, restore, lambda e: e.size, progress=progress)
        if target.exists():
            target.rmdir()  # empty, checked above
        os.replace(build, target)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return CheckoutResult(target, len(file_entries), sum(e.size for e in file_entries), how)


def _verify_file(path: Path, e: Entry) -> None:
    got, _ = hash_file(os.fsencode(path))
    if got != e.sha256:
        raise MltuiError(f"The cache's copy of {show(e.path)} is damaged (sha256 differs); "
                         "`mltui data verify` lists what is damaged.")


def _plan_sources(cache: Cache, version: Version, entries: list[Entry]) -> dict[bytes, tuple[Path, str]]:
    """For each file: where its bytes come from (the cache, else the source folder if they are there)."""
    plan: dict[bytes, tuple[Path, str]] = {}
    missing = []
    at_source = _source_of(version)
    for e in entries:
        if e.kind != "file":
            continue
        obj = cache.path(e.sha256 or "")
        if obj.is_file():
            plan[e.path] = (obj, "cache")
            continue
        candidate = at_source(e)
        if candidate is not None:
            plan[e.path] = (Path(os.fsdecode(candidate.abs)), "source")  # verified by hash while copying
        else:
            missing.append(e)
    if missing:
        hint = "" if version.stored else " (it was added without --store, and its source folder has changed)"
        raise MltuiError(f"{len(missing)} file(s) of {version.label} are neither in the cache nor at the source, "
                         f"e.g. {show(missing[0].path)}{hint}.")
    return plan


def _source_of(version: Version):
    """A function: the file in the version's source folder that may still hold an entry's bytes (a
    regular file of the recorded size), with the stat that says so, else None. Whether it does hold
    them, only its hash can say."""
    source = Path(version.source) if version.source else None
    single = source is not None and source.is_file()

    def at_source(e: Entry) -> Found | None:
        if source is None:
            return None
        candidate = source if single else source / os.fsdecode(e.path)
        try:
            st = candidate.lstat()
        except OSError:
            return None
        if not stat_mod.S_ISREG(st.st_mode) or st.st_size != e.size:
            return None
        return Found(e.path, os.fsencode(candidate), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)

    return at_source


# -- verify ---------------------------------------------------------------------------------------
def verify(ws: Workspace, conn: sqlite3.Connection, version: Version,
           progress: Progress | None = None) -> list[dict]:
    """Every file of a version whose cache object is missing or damaged: [{path, sha256, problem}]."""
    cache = cache_of(ws)
    problems: list[dict] = []
    file_entries = [e for e in files(conn, version.id) if e.kind == "file"]

    def check(e: Entry) -> None:
        problem = check_object(cache, e.sha256 or "", e.size)
        if problem:
            problems.append({"path": show(e.path), "sha256": e.sha256, "problem": problem})

    parallel(file_entries, check, lambda e: e.size, progress=progress)
    return sorted(problems, key=lambda p: p["path"])


def repair(ws: Workspace, conn: sqlite3.Connection, version: Version, problems: list[dict],
           progress: Progress | None = None) -> tuple[list[dict], list[dict]]:
    """Put back each damaged or missing object of `problems` (from `verify`) from the version's source
    folder, where the file there still holds the recorded bytes (hashed as they are copied in, so
    nothing else goes in). Returns (repaired, still damaged or missing, with why)."""
    cache = cache_of(ws)
    at_source = _source_of(version)
    entries = {show(e.path): e for e in files(conn, version.id) if e.kind == "file"}
    todo = [(p, entries[p["path"]]) for p in problems]

    def fix(item: tuple[dict, Entry]) -> str | None:
        """What is still wrong with the file, or None once it is put back."""
        p, e = item
        found = at_source(e)
        if found is None:
            return p["problem"] + "; not at the source either"
        try:
            same = cache.restore(found, e.sha256 or "")
        except (OSError, MltuiError) as exc:
            why = getattr(exc, "strerror", None) or exc
            return f"{p['problem']}; the source could not be read ({why})"
        return None if same else p["problem"] + "; the source holds other bytes now"

    outcomes = list(zip((p for p, _ in todo), parallel(todo, fix, lambda item: item[1].size, progress=progress)))
    repaired = [p for p, still in outcomes if still is None]
    left = [{**p, "problem": still} for p, still in outcomes if still is not None]
    return repaired, left


# -- diff -----------------------------------------------------------------------------------------
@dataclass
class Diff:
    added: list[Entry]
    removed: list[Entry]
    modified: list[tuple[Entry, Entry]]  # (in a, in b)
    renamed: list[tuple[Entry, Entry]]  # (in a, in b): same bytes, new path

    def as_dict(self) -> dict:
        def one(e: Entry) -> dict:
            d = {"path": show(e.path), "kind": e.kind, "size": e.size, "sha256": e.sha256}
            if e.kind == "link":
                d["target"] = show(e.target or b"")
            return d
        return {
            "added": [one(e) for e in self.added], "removed": [one(e) for e in self.removed],
            "modified": [{"path": show(a.path), "size_a": a.size, "size_b": b.size, "kind_a": a.kind,
                          "kind_b": b.kind} for a, b in self.modified],
            "renamed": [{"from": show(a.path), "to": show(b.path), "size": b.size} for a, b in self.renamed],
        }


def diff(conn: sqlite3.Connection, a: Version, b: Version) -> Diff:
    """Files added, removed and modified from a to b; a removed and an added file with the same bytes
    are a rename."""
    old = {e.path: e for e in files(conn, a.id)}
    new = {e.path: e for e in files(conn, b.id)}
    added = [new[p] for p in sorted(new.keys() - old.keys())]
    removed = [old[p] for p in sorted(old.keys() - new.keys())]
    modified = [(old[p], new[p]) for p in sorted(old.keys() & new.keys())
                if (old[p].kind, old[p].sha256, old[p].target) != (new[p].kind, new[p].sha256, new[p].target)]
    by_hash: dict[str, list[Entry]] = {}
    for e in added:
        if e.kind == "file":
            by_hash.setdefault(e.sha256 or "", []).append(e)
    renamed = []
    for e in removed:
        candidates = by_hash.get(e.sha256 or "") if e.kind == "file" else None
        if candidates:
            renamed.append((e, candidates.pop(0)))
    moved_from = {a.path for a, _ in renamed}
    moved_to = {b.path for _, b in renamed}
    return Diff([e for e in added if e.path not in moved_to], [e for e in removed if e.path not in moved_from],
                modified, renamed)


# -- gc -------------------------------------------------------------------------------------------
@dataclass
class GcResult:
    removed: int
    freed: int
    kept: int
    temps: int


def gc(ws: Workspace, conn: sqlite3.Connection, dry_run: bool = False) -> GcResult:
    """Remove cache objects no recorded version refers to, and leftovers of interrupted adds."""
    cache = cache_of(ws)
    needed = {sha for (sha,) in conn.execute("SELECT DISTINCT sha256 FROM dataset_files WHERE sha256 IS NOT NULL")}
    needed |= _other_references(conn)
    removed = freed = kept = 0
    for sha, path in list(cache.objects()):
        if sha in needed:
            kept += 1
            continue
        try:
            size = path.stat().st_size
            if not dry_run:
                path.unlink()
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise MltuiError(f"Cannot remove {path}: {exc.strerror or exc}.") from None
            continue
        removed += 1
        freed += size
    temps = cache.stale_temps()
    if not dry_run:
        for t in temps:
            t.unlink(missing_ok=True)
    return GcResult(removed, freed, kept, len(temps))


def _other_references(conn: sqlite3.Connection) -> set[str]:
    """Objects something other than a dataset keeps in the cache: registered models, and the outs of
    pipeline stages in the run cache (each entry a manifest of rows [path, kind, size, sha256, target])."""
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    shas: set[str] = set()
    if "model_versions" in tables:
        shas |= {sha for (sha,) in conn.execute("SELECT DISTINCT sha256 FROM model_versions WHERE sha256 IS NOT NULL")}
    if "pipeline_cache" in tables:
        shas |= {sha for (sha,) in conn.execute(
            "SELECT DISTINCT json_extract(f.value, '$[3]') FROM pipeline_cache, json_each(pipeline_cache.outs) o, "
            "json_each(o.value, '$.rows') f WHERE json_extract(f.value, '$[1]') = 'file'") if sha}
    return shas
