"""Content hashing of a file tree: a walk that never follows links, a stat cache, sha256 on every core.

Paths are bytes all the way (a file name need not be UTF-8). Nothing here touches the store: the
stat cache comes in as a dict and goes out as a list of rows.
"""

from __future__ import annotations

import hashlib
import os
import stat as stat_mod
import threading
import time
from collections.abc import Callable
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

from mltui.core.errors import MltuiError

BLOCK = 1 << 18  # 256 KiB reads (as hashlib.file_digest): few calls, and each block is still in the CPU cache when hashed
RETRIES = 3  # a file that keeps changing while it is hashed is reported after this many tries
RACY_NS = 200_000_000  # a file modified this close to its hashing is not trusted from the cache


class FileChanged(MltuiError):
    """A file kept changing while it was hashed."""


@dataclass(frozen=True)
class Entry:
    """One manifest line: a file (size, sha256), a symbolic link (its target, never followed) or an empty folder."""

    path: bytes
    kind: str  # "file" | "link" | "dir"
    size: int = 0
    sha256: str | None = None
    target: bytes | None = None


class Found(NamedTuple):
    """A regular file the walk saw, with the stat it saw (a tuple: a walk makes one per file)."""

    rel: bytes
    abs: bytes
    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int  # changes with any write, even when the mtime is set back


@dataclass
class Walk:
    files: list[Found]
    others: list[Entry]  # links and empty folders
    skipped: list[str]  # sentences: sockets, devices, unreadable folders


def show(path: bytes) -> str:
    """A path for people: undecodable bytes shown as \\xNN."""
    return path.decode("utf-8", "backslashreplace")


def walk(root: Path, exclude: Path | None = None) -> Walk:
    """Every file, link and empty folder under `root` (or `root` itself when it is a file).

    Symbolic links are recorded as links and never followed, so a link out of the tree or a
    loop of links is just an entry. `exclude` (the workspace folder) is left out.
    """
    out = Walk([], [], [])
    top = os.fsencode(root)
    skip = os.fsencode(exclude) if exclude is not None else None
    try:
        st = os.lstat(top)
    except OSError as exc:
        raise MltuiError(f"Cannot read {root}: {exc.strerror or exc}.") from None
    if stat_mod.S_ISLNK(st.st_mode):
        st = os.stat(top)  # the path the user named may be a link; what is under it is never followed
    if stat_mod.S_ISREG(st.st_mode):
        out.files.append(Found(os.path.basename(top), top, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns))
        return out
    if not stat_mod.S_ISDIR(st.st_mode):
        raise MltuiError(f"{root} is neither a file nor a folder.")
    stack = [(top, b"")]
    while stack:
        folder, rel = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            out.skipped.append(f"cannot read the folder {show(folder)}: {exc.strerror or exc}")
            continue
        if not entries and rel:
            out.others.append(Entry(rel, "dir"))
        files, others = out.files, out.others
        for entry in entries:
            name = rel + b"/" + entry.name if rel else entry.name
            try:
                # d_type answers these without a system call; regular files, the common case, first
                if entry.is_file(follow_symlinks=False):
                    s = entry.stat(follow_symlinks=False)
                    files.append(Found(name, entry.path, s.st_size, s.st_mtime_ns, s.st_ino, s.st_ctime_ns))
                elif entry.is_symlink():
                    others.append(Entry(name, "link", target=os.readlink(entry.path)))
                elif entry.is_dir(follow_symlinks=False):
                    if skip is not None and entry.path == skip:
                        continue
                    stack.append((entry.path, name))
                else:
                    out.skipped.append(f"{show(name)} is not a regular file, folder or link")
            except OSError as exc:
                out.skipped.append(f"cannot read {show(name)}: {exc.strerror or exc}")
    return out


def hash_file(path: bytes, sink: Callable[[memoryview], None] | None = None) -> tuple[str, os.stat_result]:
    """sha256 of a file read in large blocks (hashlib releases the GIL), with the stat it was read at.

    The file is opened without following a link, and its stat is compared before and after: a file
    that changed while it was read is read again, up to RETRIES times, then FileChanged is raised.
    `sink` also gets every block (to copy the bytes while hashing them).
    """
    for _ in range(RETRIES):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        try:
            before = os.fstat(fd)
            if not stat_mod.S_ISREG(before.st_mode):
                raise MltuiError(f"{show(path)} is no longer a regular file.")
            h = hashlib.sha256()
            buf, view = _buffer()
            total = 0
            with os.fdopen(fd, "rb", buffering=0, closefd=False) as fh:
                while n := fh.readinto(buf):
                    h.update(view[:n])
                    if sink is not None:
                        sink(view[:n])
                    total += n
            after = os.fstat(fd)
        finally:
            os.close(fd)
        if (total, before.st_size, before.st_mtime_ns, before.st_ctime_ns) == (
                after.st_size, after.st_size, after.st_mtime_ns, after.st_ctime_ns):
            return h.hexdigest(), after
        if sink is not None:
            raise FileChanged(f"{show(path)} changed while it was being copied.")
    raise FileChanged(f"{show(path)} kept changing while it was being hashed ({RETRIES} tries).")


_local = threading.local()


def _buffer() -> tuple[bytearray, memoryview]:
    """One read buffer per thread, reused: a fresh 1 MiB per file costs more than hashing a small file."""
    got = getattr(_local, "buffer", None)
    if got is None:
        buf = bytearray(BLOCK)
        got = _local.buffer = (buf, memoryview(buf))
    return got


Progress = Callable[[int, int], None]  # (size done, size to do)
T = TypeVar("T")
R = TypeVar("R")


def parallel(items: list[T], work: Callable[[T], R], size: Callable[[T], int], workers: int | None = None,
             progress: Progress | None = None) -> list[R]:
    """`work` over every item on a thread per core (hashlib and file reads release the GIL); the results
    in the order of `items`.

    The threads take items from one shared queue, biggest first (so one large file does not start
    last and finish alone); this thread only reports progress. The first error stops the others.
    """
    if not items:
        return []
    queue = deque(sorted(range(len(items)), key=lambda i: size(items[i]), reverse=True))
    results: list = [None] * len(items)
    total = sum(size(item) for item in items)
    done = [0]
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        while not errors:
            try:
                i = queue.popleft()
            except IndexError:
                return
            try:
                results[i] = work(items[i])
            except BaseException as exc:
                errors.append(exc)
                return
            with lock:
                done[0] += size(items[i])

    threads = [threading.Thread(target=worker, daemon=True)
               for _ in range(min(workers or max(2, os.cpu_count() or 2), len(queue)))]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.1)
                if progress is not None:
                    progress(done[0], total)
    except BaseException:
        errors.append(KeyboardInterrupt())  # stop the workers after the item each is on
        raise
    if errors:
        raise errors[0]
    if progress is not None:
        progress(done[0], total)
    return results


def cacheable(changed_ns: int, hashed_at_ns: int) -> bool:
    """A stat-cache row is only trusted when the file last changed (ctime) clearly before its hashing
    (within a clock tick, a second write could leave the same size and times)."""
    return changed_ns < hashed_at_ns - RACY_NS


def manifest_line(e: Entry) -> bytes:
    if e.kind == "file":
        return b"F\0" + e.path + b"\0" + str(e.size).encode() + b"\0" + (e.sha256 or "").encode() + b"\n"
    if e.kind == "link":
        return b"L\0" + e.path + b"\0" + (e.target or b"") + b"\n"
    return b"D\0" + e.path + b"\n"


def manifest_id(entries: list[Entry]) -> str:
    """The version id: sha256 of the sorted manifest. Same paths and bytes, same id, wherever they live."""
    return manifest_of_lines([(e.path, manifest_line(e)) for e in entries])


def manifest_of_lines(lines: list[tuple[bytes, bytes]]) -> str:
    """sha256 of (path, line) pairs sorted by path, hashed in one call."""
    lines.sort()
    return hashlib.sha256(b"".join(line for _, line in lines)).hexdigest()


def now_ns() -> int:
    return time.time_ns()
