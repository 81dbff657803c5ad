"""Copying files into a run's artifacts/ folder, each at its own place, none lost without a word.

A file goes to `artifacts/<name>`, or, without a name, to `artifacts/<its path relative to the working
folder>` (a file outside the working folder keeps its base name); a folder goes whole, file by file.
A file that would land on one holding other bytes is kept beside it (`model.pt`, `model.1.pt`, ...)
with a warning, unless `overwrite=True` asks to replace it: then the row keeps the bytes replaced.
Each copy is written beside the run folder first and linked into place, so no name is ever half-written
or taken from under another writer. Standard library only: the tracking API uses it.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path, PurePath

from mltui.core.runs.store_trouble import say
from mltui.store import runs as run_store

_BLOCK = 1 << 20


class Placed:
    """One file copied (or found already there): its row in the artifacts table, recorded by `record()`."""

    def __init__(self, run_id: str, rel: PurePath, dest: Path, size: int, sha256: str, modified: float,
                 replaced: tuple[int | None, str | None] | None = None) -> None:
        self.run_id, self.dest, self.size, self.sha256, self.modified = run_id, dest, size, sha256, modified
        self.path = f"artifacts/{rel.as_posix()}"
        self.replaced = replaced  # (old size, old sha256) when these bytes replaced others at the same path
        self.when = time.time()

    def record(self, conn) -> None:
        """Write the row (the caller holds the transaction)."""
        if self.replaced is None:
            run_store.record_artifact(conn, self.run_id, self.path, self.size, self.sha256, self.modified)
        else:
            run_store.replace_artifact(conn, self.run_id, self.path, self.size, self.sha256, self.modified,
                                       self.replaced[0], self.replaced[1], self.when)


def target_name(src: Path, name: str | None, artifacts: Path, cwd: str) -> PurePath:
    """Where `src` goes inside artifacts/ (a relative path); ValueError for a name that escapes it."""
    if name is not None:
        rel = PurePath(name)
        if not str(name).strip() or rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"artifact name {str(name)!r} must stay inside the run's artifacts/ folder.")
        return rel
    here = os.path.abspath(src)
    inside = _under(os.path.realpath(here), os.path.realpath(artifacts))
    if inside is not None and inside != ".":
        return PurePath(inside)  # already in the run's artifacts/: it keeps its place
    rel = _under(here, os.path.abspath(cwd))
    if rel is None or rel == ".":
        return PurePath(os.path.basename(here) or "artifact")
    return PurePath(rel)


def _under(path: str, folder: str) -> str | None:
    """`path` relative to `folder` when it is inside it, else None."""
    try:
        if os.path.commonpath([path, folder]) != folder:
            return None
    except ValueError:
        return None
    return os.path.relpath(path, folder)


def files_of(src: Path, skip: list[str]) -> list[tuple[Path, PurePath]]:
    """(file, path inside the folder) for every file under a folder, in name order; folders named in `skip`
    (the workspace itself) and folder links are left out."""
    found = []
    skip = [os.path.realpath(s) for s in skip]
    for top, dirs, names in os.walk(src):
        real = os.path.realpath(top)
        dirs[:] = sorted(d for d in dirs if not any(_under(os.path.realpath(os.path.join(top, d)), s) is not None
                                                    for s in skip))
        if any(_under(real, s) is not None for s in skip):
            continue
        for fname in sorted(names):
            path = Path(top) / fname
            if path.is_file():
                found.append((path, PurePath(os.path.relpath(path, src))))
    return found


def numbered(rel: PurePath, n: int) -> PurePath:
    """`model.pt` -> `model.1.pt`; `notes` -> `notes.1`."""
    suffix = rel.suffix if rel.stem else ""
    stem = rel.name[: len(rel.name) - len(suffix)] if suffix else rel.name
    return rel.with_name(f"{stem}.{n}{suffix}")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy(src: Path, tmp: Path, mode: int) -> tuple[int, str]:
    """Copy and hash in one pass; (size, sha256)."""
    digest = hashlib.sha256()
    size = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with open(src, "rb") as fh, os.fdopen(fd, "wb", closefd=False) as out:
            for block in iter(lambda: fh.read(_BLOCK), b""):
                digest.update(block)
                out.write(block)
                size += len(block)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return size, digest.hexdigest()


def _existing_sha(conn, run_id: str, rel: PurePath, dest: Path) -> tuple[int | None, str | None]:
    """(size, sha256) of what is at `rel` now: the recorded row when it still matches the file, else hashed."""
    recorded = run_store.artifact_at(conn, run_id, f"artifacts/{rel.as_posix()}")
    try:
        st = dest.stat()
    except OSError:
        return recorded if recorded else (None, None)
    if recorded and recorded[0] == st.st_size and recorded[1]:
        row = conn.execute("SELECT modified FROM artifacts WHERE run_id = ? AND path = ?",
                           (run_id, f"artifacts/{rel.as_posix()}")).fetchone()
        if row and row[0] == st.st_mtime:
            return recorded
    return st.st_size, sha256_of(dest)


def place(conn, run_id: str, run_dir: Path, src: Path, rel: PurePath, mode: int, overwrite: bool) -> Placed:
    """Copy one file to artifacts/<rel> (or beside it); nothing is recorded yet."""
    artifacts = run_dir / "artifacts"
    dest = artifacts / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and os.path.realpath(src) == os.path.realpath(dest):  # already in place: record it
        st = dest.stat()
        old = run_store.artifact_at(conn, run_id, f"artifacts/{rel.as_posix()}")
        digest = sha256_of(dest)
        replaced = old if old and old[1] not in (None, digest) else None
        return _placed(run_id, rel, dest, st.st_size, digest, st.st_mtime, replaced)
    tmp = run_dir / f".artifact-{os.getpid()}-{time.monotonic_ns()}.tmp"
    try:
        size, digest = _copy(src, tmp, mode)
        n = 0
        while True:
            cand = rel if n == 0 else numbered(rel, n)
            dest = artifacts / cand
            if dest.is_dir() and not dest.is_symlink():  # a folder holds the name: never replaced by a file
                n += 1
                continue
            old = _existing_sha(conn, run_id, cand, dest) if (dest.exists() or dest.is_symlink()) else None
            if old is not None and old[1] == digest:  # the same bytes are there already
                st = dest.stat()
                return _placed(run_id, cand, dest, size, digest, st.st_mtime, None)
            if old is None:
                recorded = run_store.artifact_at(conn, run_id, f"artifacts/{cand.as_posix()}")
                if _link(tmp, dest):
                    replaced = recorded if recorded and recorded[1] != digest else None
                    if n:
                        say(f"mltui: artifacts/{rel.as_posix()} already holds other bytes; "
                            f"this one is kept as artifacts/{cand.as_posix()}")
                    return _placed(run_id, cand, dest, size, digest, dest.stat().st_mtime, replaced)
                continue  # another writer took the name meanwhile: look at it again
            if overwrite:
                os.replace(tmp, dest)
                return _placed(run_id, cand, dest, size, digest, dest.stat().st_mtime, old)
            n += 1
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass


def _link(tmp: Path, dest: Path) -> bool:
    """Put `tmp` at `dest` unless something is there (False then)."""
    try:
        os.link(tmp, dest)
        return True
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links: rename, checking first
        if dest.exists():
            return False
        os.replace(tmp, dest)
        return True


def _placed(run_id: str, rel: PurePath, dest: Path, size: int, digest: str, modified: float,
            replaced: tuple[int | None, str | None] | None) -> Placed:
    return Placed(run_id, rel, dest, size, digest, modified, replaced)
