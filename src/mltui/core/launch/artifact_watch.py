"""Watching a run's artifact folders with watchdog and recording what appears in them.

Events only mark paths as dirty; `poll()` (called from the supervisor's loop) looks at each dirty
path, records its size and time at once, and its sha256 once the file has stopped changing. A file
whose new bytes hash differently from the ones hashed before at that name was replaced: its row says
what it replaced (the old size and sha256, and when the change was seen), so nothing is replaced
without a record, as with `run.log_artifact(..., overwrite=True)`.
A path whose real location is outside its watched root (a symlink out, `..`) is refused.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path

from mltui.core.runs.artifacts import sha256_of

STABLE_SECONDS = 1.0


class Root:
    """A watched folder and the name its files get in the artifacts table (`artifacts/`, `checkpoints/`)."""

    def __init__(self, folder: Path, label: str, since: float | None = None, exclude: str | None = None) -> None:
        self.exclude = os.path.realpath(exclude) if exclude else None
        self.folder = Path(folder)
        self.label = label.strip("/")
        self.since = since  # files older than this were there before the run: not its artifacts
        self.real = os.path.realpath(self.folder)

    def name_of(self, path: str) -> str | None:
        """The recorded name for `path`, or None when it escapes the root."""
        real = os.path.realpath(path)
        if os.path.commonpath([real, self.real]) != self.real or real == self.real:
            return None
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(self.folder))
        if rel == ".." or rel.startswith("../") or os.path.isabs(rel):
            return None
        if self.exclude and os.path.commonpath([real, self.exclude]) == self.exclude:
            return None  # the workspace itself (its store, run logs) is never an artifact
        return f"{self.label}/{Path(rel).as_posix()}"


sha256_file = sha256_of  # what the watcher hashes with (tests slow it down here)


class ArtifactWatcher:
    """Collects changes under some roots; `poll()` returns rows to upsert and names to delete."""

    def __init__(self, roots: list[Root]) -> None:
        self.roots = roots
        self._dirty: set[tuple[int, str]] = set()
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[int, float, float]] = {}  # name -> (size, mtime, since)
        self._hashed: dict[str, tuple[int, float]] = {}
        self._digests: dict[str, tuple[int, str]] = {}  # name -> (size, sha256) of the bytes last hashed there
        self.refused: list[str] = []
        self.problems: list[str] = []
        self._observer = None
        self._jobs: queue.Queue = queue.Queue()
        self._results: list[tuple] = []
        self._queued: dict[str, tuple] = {}  # name -> (size, mtime) waiting in the hashing thread
        self._hasher: threading.Thread | None = None

    def start(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self

        class Handler(FileSystemEventHandler):
            def __init__(self, index: int) -> None:
                self.index = index

            def on_any_event(self, event) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return
                for path in (event.src_path, getattr(event, "dest_path", "")):
                    if path:
                        watcher.mark(self.index, os.fsdecode(path))

        observer = Observer()
        for index, root in enumerate(self.roots):
            try:  # one folder that cannot be watched (a file of that name, no permission) spares the others
                root.folder.mkdir(parents=True, exist_ok=True)
                observer.schedule(Handler(index), str(root.folder), recursive=True)
            except OSError as exc:
                self.problems.append(f"cannot watch {root.folder}: {exc.strerror or exc}")
        observer.daemon = True
        observer.start()
        self._observer = observer
        self.scan()  # whatever was written before the observer started

    def stop(self) -> None:
        if self._hasher is not None:
            self._jobs.put(None)
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def mark(self, index: int, path: str) -> None:
        with self._lock:
            self._dirty.add((index, path))

    def scan(self) -> None:
        """Mark every file under every root (at start, and at the end of the run)."""
        for index, root in enumerate(self.roots):
            for folder, dirs, files in os.walk(root.folder):
                for name in files:
                    self.mark(index, os.path.join(folder, name))
                for name in dirs:  # os.walk does not follow links: check them as paths
                    path = os.path.join(folder, name)
                    if os.path.islink(path):
                        self.mark(index, path)

    def poll(self, final: bool = False) -> tuple[list[tuple], list[str]]:
        """(rows, removed): rows are (name, size, sha256 or None, mtime, location, replaced), `replaced` being
        (old size, old sha256, when the change was seen) for hashed bytes that replaced other hashed bytes at
        that name, else None."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        now = time.time()
        rows: list[tuple] = []
        removed: list[str] = []
        for index, path in sorted(dirty):
            root = self.roots[index]
            name = root.name_of(path)
            if name is None:
                if os.path.lexists(path) and path not in self.refused:
                    self.refused.append(path)
                continue
            try:
                st = os.stat(path)
            except OSError:
                if name in self._seen:
                    del self._seen[name]
                    self._hashed.pop(name, None)
                    self._digests.pop(name, None)  # gone: a file there later is a new one, not a replacement
                    removed.append(name)
                continue
            if not os.path.isfile(path) or (root.since is not None and st.st_mtime < root.since):
                continue
            key = (st.st_size, st.st_mtime)
            previous = self._seen.get(name)
            if previous is None or previous[:2] != key:
                self._seen[name] = (*key, now)
                rows.append((name, st.st_size, None, st.st_mtime, os.path.abspath(path), None))
            with self._lock:
                self._dirty.add((index, path))  # look again until it is hashed
        # hash what has been still for a while (or everything at the end), in the hashing thread: a
        # 10 GB checkpoint takes a minute, and the supervisor's loop must keep its heartbeat meanwhile
        for index, path in sorted(self._pending_hash(final, now)):
            name = self.roots[index].name_of(path)
            seen = self._seen.get(name) if name else None
            if seen is not None and self._queued.get(name) != seen[:2]:
                self._queued[name] = seen[:2]
                self._submit((name, index, path, seen[:2]))
        if final and self._hasher is not None:
            self._jobs.join()
        with self._lock:
            done, self._results = self._results, []
        for name, index, path, key, digest, st in done:
            seen = self._seen.get(name)
            if seen is None or seen[:2] != key:
                continue  # changed (or went) while it was hashed: it is hashed again once still
            self._hashed[name] = key
            old = self._digests.get(name)
            self._digests[name] = (st.st_size, digest)
            replaced = (old[0], old[1], seen[2]) if old is not None and old[1] != digest else None
            rows.append((name, st.st_size, digest, st.st_mtime, os.path.abspath(path), replaced))
            with self._lock:
                self._dirty.discard((index, path))
        return rows, removed

    def _submit(self, job: tuple) -> None:
        if self._hasher is None:
            self._hasher = threading.Thread(target=self._hash_loop, name="mltui-hash", daemon=True)
            self._hasher.start()
        self._jobs.put(job)

    def _hash_loop(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                name, index, path, key = job
                try:
                    digest = sha256_file(path)
                    st = os.stat(path)
                except OSError:
                    digest = None
                with self._lock:
                    if digest is not None and (st.st_size, st.st_mtime) == key:
                        self._results.append((name, index, path, key, digest, st))
                    if self._queued.get(name) == key:
                        del self._queued[name]  # a later change may queue it again
            finally:
                self._jobs.task_done()

    def _pending_hash(self, final: bool, now: float) -> list[tuple[int, str]]:
        with self._lock:
            candidates = list(self._dirty)
        out = []
        for index, path in candidates:
            name = self.roots[index].name_of(path)
            seen = self._seen.get(name) if name else None
            if seen is None or self._hashed.get(name) == seen[:2]:
                with self._lock:
                    if seen is not None:
                        self._dirty.discard((index, path))
                continue
            if final or now - seen[2] >= STABLE_SECONDS:
                out.append((index, path))
        return out
