"""Sets of TensorBoard event files read as one run: finding them, reading each from where it was left,
and merging several files' points without duplicates.

Used live by the supervisor (core/launch/tb_tail.py) and by `mltui import tensorboard`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from mltui.core.runs.tfevents import MAX_READ, Batch, EventFile, is_event_file

SKIP_DIRS = frozenset({"__pycache__", "node_modules", "site-packages", "venv", "env", ".git", ".mltui"})
MAX_DEPTH = 8
MAX_ENTRIES = 50_000  # entries looked at per scan: a working folder holding a dataset is not walked whole

Existing = Callable[[str], "dict[int, float]"]


def find_event_files(roots: Iterable[Path], *, since: float | None = None, skip: Iterable[str] = (),
                     max_entries: int = MAX_ENTRIES) -> list[Path]:
    """Event files under `roots` (each root walked to MAX_DEPTH, hidden and tool folders left out, at most
    `max_entries` entries in all), modified at or after `since`. `skip`: folders not to enter below a root
    (a root itself is always walked: a run folder inside the skipped workspace)."""
    skipped = {os.path.realpath(s) for s in skip}
    found: dict[str, Path] = {}
    budget = [max_entries]
    for root in roots:
        _walk(Path(root), 0, since, skipped, found, budget)
    return sorted(found.values())


def _walk(folder: Path, depth: int, since: float | None, skipped: set[str], found: dict, budget: list) -> None:
    if budget[0] <= 0:
        return
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    budget[0] -= len(entries)
    subfolders = []
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                if depth < MAX_DEPTH and entry.name not in SKIP_DIRS and not entry.name.startswith("."):
                    subfolders.append(entry.path)
            elif is_event_file(entry.name) and entry.is_file():
                if since is None or entry.stat().st_mtime >= since:
                    found.setdefault(os.path.realpath(entry.path), Path(entry.path))
        except OSError:
            continue
    for sub in sorted(subfolders):
        if os.path.realpath(sub) not in skipped:
            _walk(Path(sub), depth + 1, since, skipped, found, budget)


class EventSet:
    """Event files read together as one run. `read()` gives one Batch for everything appended to any of
    them since the last call; points another file of the set already gave (same key, step and value)
    are left out. `existing(key)` may name the points the run already has ({step: value}), so files
    added later do not repeat what was read before them (the store, for a supervisor or a re-import)."""

    def __init__(self, existing: Existing | None = None, offsets: dict[str, int] | None = None) -> None:
        self.files: dict[str, EventFile] = {}
        self._existing = existing
        self._offsets = dict(offsets or {})
        self._seen: dict[str, dict[int, float]] = {}  # key -> step -> value, once the set has two files
        self.more = False

    def add(self, path: Path) -> bool:
        key = str(path)
        if key in self.files:
            return False
        self.files[key] = EventFile(path, self._offsets.get(key, 0))
        return True

    def offsets(self) -> dict[str, int]:
        return {**self._offsets, **{name: f.offset for name, f in self.files.items()}}

    def pending(self) -> int:
        """Bytes not read yet, by the sizes last seen (for progress)."""
        total = 0
        for f in self.files.values():
            try:
                total += max(0, os.path.getsize(f.path) - f.offset)
            except OSError:
                pass
        return total

    def waiting(self) -> list[tuple[Path, int]]:
        """Files whose last record is cut short, with the bytes that wait for the rest."""
        return [(f.path, f.waiting) for f in self.files.values() if f.waiting]

    def read(self, final: bool = False, max_bytes: int = MAX_READ) -> Batch:
        total = Batch()
        self.more = False
        budget = max_bytes
        for name in sorted(self.files):
            f = self.files[name]
            if budget <= 0:
                self.more = True
                break
            batch = f.read(final=final, max_bytes=budget)
            budget -= batch.bytes
            self.more = self.more or f.more
            if len(self.files) > 1:
                self._dedupe(batch)
            total.merge(batch)
        return total

    def _dedupe(self, batch: Batch) -> None:
        for key in list(batch.columns):
            seen = self._seen.get(key)
            if seen is None:
                seen = self._seen[key] = dict(self._existing(key)) if self._existing else {}
            steps, values, times = batch.columns[key]
            keep_s, keep_v, keep_t = [], [], []
            for step, value, when in zip(steps, values, times):
                old = seen.get(step)
                if old is not None and (old == value or (old != old and value != value)):
                    continue
                seen[step] = value
                keep_s.append(step)
                keep_v.append(value)
                keep_t.append(when)
            if keep_s:
                batch.columns[key] = (keep_s, keep_v, keep_t)
            else:
                del batch.columns[key]
