"""Content hashing of a file tree: a walk that never follows links, a stat cache, sha256 on every core.

Paths are bytes all the way (a file name need not be UTF-8). Nothing here touches the store: the
stat cache comes in as a dict and goes out as a list of rows.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import stat as stat_mod
import threading
import time
from collections.abc import Callable
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

from mltui.base.errors import MltuiError

BLOCK = 1 << 20  # 1 MiB reads: most files in one system call; fewer calls means fewer trips through the GIL
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


def hash_file(path: bytes, sink: Callable[[memoryview], None] | None = None,
              seen: Found | None = None) -> tuple[str, os.stat_result]:
    """sha256 of a file read in large blocks (hashlib releases the GIL), with the stat it was read at.

    The file is opened without following a link, and its stat is compared before and after: a file
    that changed while it was read is read again, up to RETRIES times, then FileChanged is raised.
    `seen`, the walk's stat of the file, stands in for the first stat before (one system call less
    per file); the stat after must then match it, inode included. `sink` also gets every block
    (to copy the bytes while hashing them).
    """
    for attempt in range(RETRIES):
        # O_NONBLOCK: a path swapped for a FIFO since the walk must not block the open
        fd = os.open(path, _OPEN_FLAGS)
        try:
            if seen is not None and attempt == 0:
                before = (seen.size, seen.mtime_ns, seen.ctime_ns, seen.inode)
            else:
                st = os.fstat(fd)
                _regular(path, st)
                before = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
            h = hashlib.sha256()
            buf, view = _buffer()
            total = 0
            # os.readv straight into the buffer: no file object per file, and each system call and
            # each update lets go of the GIL once, so the per-file cost stays small beside the hashing
            try:
                while n := os.readv(fd, (buf,)):
                    block = view[:n]
                    h.update(block)
                    if sink is not None:
                        sink(block)
                    total += n
                    if total >= before[0]:
                        # all its stat said it held: the stat after tells whether there is more (a read
                        # to the end would only say so one system call later), and more than it held
                        # means it changed (or is no file at all) anyway
                        break
            except OSError:
                _regular(path, os.fstat(fd))  # a folder or a FIFO swapped in since the walk says so
                raise
            after = os.fstat(fd)
        finally:
            os.close(fd)
        _regular(path, after)
        if (total, *before) == (after.st_size, after.st_size, after.st_mtime_ns, after.st_ctime_ns, after.st_ino):
            return h.hexdigest(), after
        if sink is not None:
            raise FileChanged(f"{show(path)} changed while it was being copied.")
    raise FileChanged(f"{show(path)} kept changing while it was being hashed ({RETRIES} tries).")


def _regular(path: bytes, st: os.stat_result) -> None:
    if not stat_mod.S_ISREG(st.st_mode):
        raise MltuiError(f"{show(path)} is no longer a regular file.")


_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


_local = threading.local()


def _buffer() -> tuple[mmap.mmap, memoryview]:
    """One read buffer per thread, reused (a fresh 1 MiB per file costs more than hashing a small file),
    and page-aligned: the kernel copies file pages into it with `rep movsb`, which on some CPUs (AMD Zen)
    runs at about 60% speed when the destination sits a few bytes past a page boundary, as a
    malloc'd bytearray of this size does (16 bytes in)."""
    got = getattr(_local, "buffer", None)
    if got is None:
        buf = mmap.mmap(-1, BLOCK)
        got = _local.buffer = (buf, memoryview(buf))
    return got


Progress = Callable[[int, int], None]  # (size done, size to do)
T = TypeVar("T")
R = TypeVar("R")


def parallel(items: list[T], work: Callable[[T], R], size: Callable[[T], int], workers: int | None = None,
             progress: Progress | None = None, collect: Callable[[list[tuple[T, R]]], None] | None = None,
             every: float = 1.0) -> list[R]:
    """`work` over every item on a thread per core (hashlib and file reads release the GIL); the results
    in the order of `items`.

    The threads take items from one shared queue, biggest first (so one large file does not start
    last and finish alone). This thread reports progress and hands the finished (item, result) pairs
    to `collect` about every `every` seconds and at the end, to save them as the work goes. It does
    little else: Python code here holds the GIL the threads need between one read or hash and the
    next, so overlapping more work (the walk, say) slows the hashing by more than it saves.
    The first error, in a thread or here, stops them all; what finished before it still goes to
    `collect` (so an interrupted add keeps the hashes it made).
    """
    if not items:
        return []
    queue = deque(sorted(range(len(items)), key=lambda i: size(items[i]), reverse=True))
    results: list = [None] * len(items)
    finished: deque[int] = deque()  # indexes of results ready, in the order they finished
    errors: list[BaseException] = []

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
            finished.append(i)

    threads = [threading.Thread(target=worker, daemon=True)
               for _ in range(min(workers or max(2, os.cpu_count() or 2), len(queue)))]
    for t in threads:
        t.start()
    total = sum(size(item) for item in items)
    done = 0
    pending: list[tuple[T, R]] = []
    collected = time.monotonic()
    collecting = False

    def take() -> None:
        nonlocal done
        while finished:
            i = finished.popleft()
            done += size(items[i])
            pending.append((items[i], results[i]))

    try:
        while threads:
            threads[0].join(0.1)
            threads = [t for t in threads if t.is_alive()]
            take()
            if progress is not None:
                progress(done, total)
            if collect is not None and pending and not errors and (
                    not threads or time.monotonic() - collected >= every):
                collecting = True
                collect(pending)
                collecting = False
                pending, collected = [], time.monotonic()
    except BaseException as exc:  # `collect`, `progress`, or ^C
        errors.append(exc)  # the workers stop after the item each is on
        if isinstance(exc, Exception):  # nothing left running behind the error (^C does not wait)
            for t in threads:
                t.join()
        if not collecting:
            _keep(collect, take, pending)
        raise
    if errors:  # a thread failed: what the others finished is still kept
        _keep(collect, take, pending)
        raise errors[0]
    return results


def _keep(collect: Callable[[list], None] | None, take: Callable[[], None], pending: list) -> None:
    """Hand what finished to `collect` on the way out of an error, which stays the error raised."""
    if collect is None:
        return
    take()
    if pending:
        try:
            collect(pending)
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass


def cacheable(changed_ns: int, hashed_at_ns: int) -> bool:
    """A stat-cache row is only trusted when the file last changed (ctime) clearly before its hashing
    (within a clock tick, a second write could leave the same size and times)."""
    return changed_ns < hashed_at_ns - RACY_NS


def row_line(path: bytes, kind: str, size: int, sha256: str | None, target: bytes | None) -> bytes:
    """The manifest line of an entry given as its fields (a dataset_files row), without an Entry for it."""
    if kind == "file":
        return b"F\0" + path + b"\0" + str(size).encode() + b"\0" + (sha256 or "").encode() + b"\n"
    if kind == "link":
        return b"L\0" + path + b"\0" + (target or b"") + b"\n"
    return b"D\0" + path + b"\n"


def manifest_id(entries: list[Entry]) -> str:
    """The version id: sha256 of the sorted manifest. Same paths and bytes, same id, wherever they live."""
    return manifest_of_lines([(e.path, row_line(e.path, e.kind, e.size, e.sha256, e.target)) for e in entries])


def manifest_of_lines(lines: list[tuple[bytes, bytes]]) -> str:
    """sha256 of (path, line) pairs sorted by path, hashed in one call."""
    lines.sort()
    return hashlib.sha256(b"".join(line for _, line in lines)).hexdigest()


def now_ns() -> int:
    return time.time_ns()
