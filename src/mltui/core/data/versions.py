"""Dataset versions: snapshot a file or folder, name versions, list and resolve them.

A version's id is the sha256 of its manifest (sorted paths, sizes, hashes), so the same bytes under
the same paths always give the same id and adding unchanged data adds nothing. Checkout, verify,
diff and gc live in `ops`; profiles and drift in `profile`; lineage in `lineage` (all in core/data/).
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mltui.core.data.cache import Cache
from mltui.base.errors import MltuiError, NotFound, UsageError
from mltui.core.data.hashing import (Entry, Found, Progress, cacheable, hash_file, manifest_of_lines, now_ns, parallel,
                                row_line, show, walk)
from mltui.core.workspace import Workspace
from mltui.store.connection import insert_rows, write_tx

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

COLLECT_EVERY = 0.2  # seconds between saves of the stat cache while hashing

VERSION_COLUMNS = ("dataset", "id", "seq", "parent", "source", "message", "user", "created", "files", "bytes",
                   "stored")


@dataclass(frozen=True)
class Version:
    dataset: str
    id: str
    seq: int
    parent: str | None
    source: str | None
    message: str | None
    user: str | None
    created: float
    files: int
    bytes: int
    stored: bool

    @property
    def label(self) -> str:
        return f"{self.dataset}@{self.id[:12]}"

    def as_dict(self) -> dict:
        return {**asdict(self), "source": printable(self.source), "label": self.label}


@dataclass
class AddResult:
    version: Version
    created: bool  # False: the data matched a version already recorded
    hashed_files: int
    hashed_bytes: int
    cached_files: int  # skipped through the stat cache
    seconds: float


def cache_of(ws: Workspace) -> Cache:
    return Cache(ws.root / "cache")


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise UsageError(f"{name!r} is not a usable dataset name: use letters, digits, '.', '_' and '-' "
                         "(at most 100, starting with a letter or digit).")
    return name


def path_to_db(path: str | None) -> str | bytes | None:
    """A path for a TEXT column: as text when it is UTF-8, else its raw bytes (SQLite keeps either)."""
    if path is None:
        return None
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


def printable(path: str | None) -> str | None:
    """A path for people and JSON: bytes that are not UTF-8 shown as \\xNN."""
    return None if path is None else os.fsencode(path).decode("utf-8", "backslashreplace")


def path_from_db(value: str | bytes | None) -> str | None:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def _version(row) -> Version:
    """A Version from a row of VERSION_COLUMNS (positional: a dataset's thousands of versions are read
    on each change of the store the Datasets pane sees)."""
    dataset, id_, seq, parent, source, message, user, created, files_, bytes_, stored = row
    return Version(dataset, id_, seq, parent, path_from_db(source), message, user, created, files_, bytes_,
                   bool(stored))


def _select(where: str) -> str:
    return f"SELECT {', '.join(VERSION_COLUMNS)} FROM dataset_versions WHERE {where}"


# -- the stat cache ------------------------------------------------------------------------------
def load_stat_cache(conn: sqlite3.Connection, root: bytes) -> dict[bytes, tuple]:
    """abs path -> (abs path, size, mtime_ns, inode, sha256, ctime_ns) for every cached file at or under `root`."""
    rows = conn.execute(
        "SELECT path, size, mtime_ns, inode, sha256, ctime_ns FROM hash_cache WHERE path = ? OR (path >= ? AND path < ?)",
        (root, root + b"/", root + b"0"),  # b"0" is the byte after b"/": the range is everything under root
    )
    return {row[0]: row for row in rows}


def save_stat_cache(conn: sqlite3.Connection, rows: list[tuple]) -> None:
    """Upsert (abs path, size, mtime_ns, inode, sha256, ctime_ns) rows."""
    insert_rows(conn, "INSERT INTO hash_cache(path, size, mtime_ns, inode, sha256, ctime_ns)", rows,
                " ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, "
                "inode = excluded.inode, sha256 = excluded.sha256, ctime_ns = excluded.ctime_ns")


# -- snapshot ------------------------------------------------------------------------------------
@dataclass
class Snapshot:
    rows: list[tuple]  # (path, kind, size, sha256, target) for every entry, as dataset_files holds them
    id: str
    hashed_files: int
    hashed_bytes: int
    cached: int  # files the stat cache vouched for

    @property
    def entries(self) -> list[Entry]:
        return [Entry(*row) for row in self.rows]


def snapshot(ws: Workspace, conn: sqlite3.Connection, root: Path, store: bool = False,
             progress: Progress | None = None, workers: int | None = None) -> Snapshot:
    """Walk and hash `root` (only files the stat cache cannot vouch for), storing bytes if asked.

    The stat cache rows of the files hashed are saved as the hashing goes, in short transactions,
    so an interrupted add keeps what it hashed.
    """
    tree = walk(root, exclude=ws.root)
    if tree.skipped:
        more = f" (and {len(tree.skipped) - 1} more)" if len(tree.skipped) > 1 else ""
        raise MltuiError(f"Cannot snapshot {root}: {tree.skipped[0]}{more}; nothing was recorded.")
    cache = cache_of(ws)
    known = load_stat_cache(conn, os.fsencode(root))
    need: list[Found] = []
    rows: list[tuple] = []
    for f in tree.files:
        hit = known.get(f.abs)  # (path, size, mtime_ns, inode, sha256, ctime_ns)
        if (hit is not None and hit[1] == f.size and hit[2] == f.mtime_ns and hit[3] == f.inode
                and hit[5] == f.ctime_ns and (not store or cache.has(hit[4]))):
            rows.append((f.rel, "file", f.size, hit[4], None))
        else:
            need.append(f)
    started = now_ns()  # rows for files modified after this are not cached
    hashed_bytes = 0

    def work(f: Found) -> tuple[tuple, tuple | None]:
        """Hash one file (on a worker thread) and make its rows there, beside the other thread's hashing."""
        try:
            sha, st = cache.store(f) if store else hash_file(f.abs, seen=f)
        except OSError as exc:  # removed since the walk, unreadable, or the cache's disk is full
            raise MltuiError(f"Could not add {show(f.rel)} from {root}: {exc.strerror or exc}; "
                             "nothing was recorded.") from None
        keep = cacheable(max(st.st_mtime_ns, st.st_ctime_ns), started)
        return ((f.rel, "file", st.st_size, sha, None),
                (f.abs, st.st_size, st.st_mtime_ns, st.st_ino, sha, st.st_ctime_ns) if keep else None)

    def collect(done: list[tuple[Found, tuple[tuple, tuple | None]]]) -> None:
        nonlocal hashed_bytes
        cached = []
        for _, (row, cache_row) in done:
            rows.append(row)
            hashed_bytes += row[2]
            if cache_row is not None:
                cached.append(cache_row)
        if cached:
            cached.sort()  # in key order: each insert lands beside the last, in pages already in memory
            with write_tx(conn, ws.db_path):
                save_stat_cache(conn, cached)

    parallel(need, work, lambda f: f.size, workers, progress, collect, every=COLLECT_EVERY)
    rows += [(e.path, e.kind, e.size, e.sha256, e.target) for e in tree.others]
    lines = [(row[0], row_line(*row)) for row in rows]
    return Snapshot(rows, manifest_of_lines(lines), len(need), hashed_bytes, len(tree.files) - len(need))


def current_id(ws: Workspace, conn: sqlite3.Connection, root: Path) -> str:
    """The id the data at `root` would have now (hashing only what changed); the stat cache is kept."""
    return snapshot(ws, conn, root).id


def add(ws: Workspace, conn: sqlite3.Connection, path: str | os.PathLike[str], name: str,
        message: str | None = None, store: bool = False, progress: Progress | None = None,
        workers: int | None = None, user: str | None = None) -> AddResult:
    """Record a version of dataset `name` from `path` (nothing new when its content is already a version)."""
    from mltui.base.procs import user as os_user

    check_name(name)
    root = Path(path).expanduser().absolute()
    if not os.path.lexists(root):
        raise NotFound(f"There is no file or folder {root}.")
    try:
        root = root.resolve()
    except (OSError, RuntimeError) as exc:  # a loop of links
        raise MltuiError(f"Cannot follow {root}: {exc}.") from None
    if root.is_relative_to(ws.root.resolve()):
        raise UsageError(f"{root} is inside the workspace folder {ws.root}, which cannot be a dataset.")
    begin = time.perf_counter()
    snap = snapshot(ws, conn, root, store=store, progress=progress, workers=workers)
    with write_tx(conn, ws.db_path):
        existing = conn.execute(_select("dataset = ? AND id = ?"), (name, snap.id)).fetchone()
        if existing is not None:
            # the bytes may have moved: the folder they were last added from is where lineage looks for them
            conn.execute("UPDATE dataset_versions SET stored = max(stored, ?), source = ? WHERE dataset = ? AND id = ?",
                         (int(store), path_to_db(str(root)), name, snap.id))
            version = _version(conn.execute(_select("dataset = ? AND id = ?"), (name, snap.id)).fetchone())
            created = False
        else:
            conn.execute("INSERT OR IGNORE INTO datasets(name, created) VALUES (?, ?)", (name, time.time()))
            last = conn.execute("SELECT id, seq FROM dataset_versions WHERE dataset = ? ORDER BY seq DESC LIMIT 1",
                                (name,)).fetchone()
            files = [r for r in snap.rows if r[1] == "file"]
            insert_rows(conn, "INSERT OR IGNORE INTO dataset_files(version, path, kind, size, sha256, target)",
                        [(snap.id, *r) for r in sorted(snap.rows)])  # key order, as the stat cache
            row = (name, snap.id, (last[1] + 1) if last else 1, last[0] if last else None, path_to_db(str(root)), message,
                   user or os_user(), time.time(), len(files), sum(r[2] for r in files), int(store))
            conn.execute(f"INSERT INTO dataset_versions({', '.join(VERSION_COLUMNS)}) VALUES "
                         f"({', '.join('?' * len(VERSION_COLUMNS))})", row)
            version = _version(row)  # the source decoded back, as read from the store
            created = True
    return AddResult(version, created, snap.hashed_files, snap.hashed_bytes, snap.cached, time.perf_counter() - begin)


# -- reading -------------------------------------------------------------------------------------
def list_datasets(conn: sqlite3.Connection) -> list[dict]:
    """Each dataset with its number of versions and its latest version."""
    out = []
    for name, count in conn.execute(
            "SELECT d.name, count(v.id) FROM datasets d LEFT JOIN dataset_versions v ON v.dataset = d.name "
            "GROUP BY d.name ORDER BY d.name"):
        latest = conn.execute(_select("dataset = ? ORDER BY seq DESC LIMIT 1"), (name,)).fetchone()
        out.append({"name": name, "versions": count, "latest": _version(latest) if latest else None})
    return out


def versions(conn: sqlite3.Connection, name: str) -> list[Version]:
    """Newest first."""
    rows = conn.execute(_select("dataset = ? ORDER BY seq DESC"), (name,)).fetchall()
    if not rows and conn.execute("SELECT 1 FROM datasets WHERE name = ?", (name,)).fetchone() is None:
        raise NotFound(f"There is no dataset named {name!r}; `mltui data list` shows them.")
    return [_version(r) for r in rows]


def resolve(conn: sqlite3.Connection, spec: str) -> Version:
    """NAME, NAME@latest, NAME@~N (N versions before the latest), NAME@vN (the Nth), NAME@<id prefix>."""
    name, _, ref = spec.partition("@")
    ref = ref or "latest"
    if not (ref == "latest" or re.fullmatch(r"~\d*|v\d+|[0-9a-f]{4,64}", ref)):
        raise UsageError(f"{spec!r}: after @ give latest, ~N, vN or at least 4 hex digits of a version id.")
    history = versions(conn, name)
    if not history:
        raise NotFound(f"The dataset {name!r} has no versions yet.")
    if ref == "latest":
        return history[0]
    if re.fullmatch(r"~\d*", ref):
        back = int(ref[1:] or 1)
        if back >= len(history):
            raise NotFound(f"{spec} goes back {back} versions, but {name!r} has only {len(history)}.")
        return history[back]
    if re.fullmatch(r"v\d+", ref):
        seq = int(ref[1:])
        for v in history:
            if v.seq == seq:
                return v
        raise NotFound(f"{name!r} has no version {seq} (it has 1 to {history[0].seq}).")
    if not re.fullmatch(r"[0-9a-f]{4,64}", ref):
        raise UsageError(f"{spec!r}: after @ give latest, ~N, vN or at least 4 hex digits of a version id.")
    matches = [v for v in history if v.id.startswith(ref)]
    if not matches:
        raise NotFound(f"{name!r} has no version whose id starts with {ref}.")
    if len(matches) > 1:
        raise UsageError(f"{spec!r} is ambiguous: {', '.join(v.id[:12] for v in matches)}.")
    return matches[0]


def files(conn: sqlite3.Connection, version_id: str) -> list[Entry]:
    return [Entry(bytes(p), k, s, h, bytes(t) if t is not None else None) for p, k, s, h, t in conn.execute(
        "SELECT path, kind, size, sha256, target FROM dataset_files WHERE version = ? ORDER BY path", (version_id,))]
