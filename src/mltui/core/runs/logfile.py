"""Run logs (`output.log`) of any size: a sparse line index over a growing file, and how a line is shown.

Nothing here reads a whole file. `LogIndex` scans only the bytes appended since its last
`refresh()` and keeps the byte offset of every `STEP`-th line start, so any line is one seek
and at most `STEP` lines of reading away. `clean` turns a raw line (progress bars, colour
codes, control bytes) into plain text that is safe to put on a terminal. Stdlib only: the
TUI and the CLI both use this module.
"""

from __future__ import annotations

import os
import re
import threading
from array import array
from itertools import accumulate, islice
from pathlib import Path

from mltui.base.text import safe

STEP = 256
"""A checkpoint (byte offset of a line start) is kept for every STEP-th line."""
SCAN_CHUNK = 1 << 20
"""Bytes read at a time while indexing."""
READ_BLOCK = 1 << 16
"""Bytes read at a time while fetching lines."""
LINE_BYTES_MAX = 1 << 20
"""A longer line is returned as its first and last half of this many bytes (see `LogIndex.lines`)."""
SHOW_CHARS_MAX = 20_000
"""`clean` cuts a line longer than this many characters and says how much it left out."""


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _bound(raw: bytes) -> bytes:
    """A line kept to at most LINE_BYTES_MAX bytes: its head and its newest tail.

    The tail is kept because a progress bar's current state is the text after its last
    carriage return, at the very end of the line.
    """
    if len(raw) <= LINE_BYTES_MAX:
        return raw
    half = LINE_BYTES_MAX // 2
    return raw[:half] + raw[-half:]


class LogIndex:
    """A sparse line index over a file that may grow, be truncated, be replaced, or not exist yet.

    `refresh()` may run in a worker thread while `lines()` runs on the UI thread: the shared
    state is only touched under a lock, and two refreshes never overlap.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()  # guards the index state below
        self._scan_lock = threading.Lock()  # one refresh at a time
        self.generation = 0
        """Goes up each time the index starts over (file truncated or replaced)."""
        self.pending = 0
        """Bytes that the last refresh saw in the file but did not index (it was told to stop early)."""
        self._reset()

    # -- state -----------------------------------------------------------------------------

    def _reset(self) -> None:
        with self._lock:
            self._checkpoints = array("Q", [0])  # offset of line k*STEP; line 0 starts at 0
            self._newlines = 0  # newlines seen in the scanned bytes
            self._scanned = 0  # bytes indexed
            self._last_start = 0  # offset where the last (maybe unfinished) line starts
            self._last_byte = b""  # the byte at _scanned - 1, to notice a rewrite
            self._ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the indexed file
            self.generation += 1

    @property
    def line_count(self) -> int:
        """Lines indexed so far; an unfinished last line (no newline yet) counts."""
        with self._lock:
            return self._line_count()

    def _line_count(self) -> int:
        return self._newlines + (self._scanned > self._last_start)

    @property
    def size(self) -> int:
        """Bytes indexed so far."""
        with self._lock:
            return self._scanned

    def backlog(self) -> int:
        """Bytes in the file now that are not indexed yet (0 when the file is missing)."""
        try:
            size = self.path.stat().st_size
        except OSError:
            return 0
        return max(0, size - self.size)

    # -- indexing ----------------------------------------------------------------------------

    def refresh(self, max_bytes: int | None = None) -> bool:
        """Index the bytes appended since the last call; True when anything changed.

        A file that shrank, was rewritten or replaced (another inode) is indexed again from
        the start. A missing file is an empty log. `max_bytes` bounds the work of one call;
        `pending` then says how much is left.
        """
        with self._scan_lock:
            try:
                f = open(self.path, "rb")  # noqa: SIM115 - closed below
            except OSError:
                return self._forget()
            with f:
                st = os.fstat(f.fileno())
                changed = self._start_over_if_replaced(f, st)
                end = st.st_size if max_bytes is None else min(st.st_size, self._scanned + max_bytes)
                changed = self._scan(f, end) or changed
                self.pending = max(0, st.st_size - self._scanned)
                return changed

    def _forget(self) -> bool:
        self.pending = 0
        if self._scanned == 0 and self._ident is None:
            return False
        self._reset()
        return True

    def _start_over_if_replaced(self, f, st: os.stat_result) -> bool:
        ident = (st.st_dev, st.st_ino)
        replaced = self._ident is not None and ident != self._ident
        if not replaced and self._scanned:
            if st.st_size < self._scanned:
                replaced = True
            else:
                f.seek(self._scanned - 1)
                replaced = f.read(1) != self._last_byte
        if replaced:
            self._reset()
        self._ident = ident
        return replaced

    def _scan(self, f, end: int) -> bool:
        f.seek(self._scanned)
        changed = False
        while self._scanned < end:
            data = f.read(min(SCAN_CHUNK, end - self._scanned))
            if not data:
                break
            self._consume(data)
            changed = True
        return changed

    def _consume(self, data: bytes) -> None:
        """Index one chunk that follows the bytes scanned so far."""
        base = self._scanned
        parts = data.split(b"\n")
        n = len(parts) - 1  # newlines in this chunk
        found = array("Q")
        if n:
            need = STEP - self._newlines % STEP  # newlines until the next checkpointed line starts
            if n >= need:
                # the k-th newline (1-based) ends at sum(len(parts[:k])) + k - 1, its line starts one later
                lengths = islice(accumulate(map(len, parts)), need - 1, n, STEP)
                found.extend(base + total + k for total, k in zip(lengths, range(need, n + 1, STEP)))
        with self._lock:
            self._checkpoints.extend(found)
            self._newlines += n
            self._scanned = base + len(data)
            if n:
                self._last_start = self._scanned - len(parts[-1])
            self._last_byte = data[-1:]

    # -- reading -----------------------------------------------------------------------------

    def lines(self, start: int, count: int) -> list[str]:
        """Up to `count` lines from line `start` (0-based), decoded as UTF-8 with replacement.

        Only indexed lines are returned. A line longer than LINE_BYTES_MAX bytes comes back as
        its head and tail joined (the middle left out) so that memory stays bounded.
        """
        start = max(0, start)
        with self._lock:
            end = min(self._line_count(), start + max(0, count))
            if start >= end:
                return []
            offset = self._checkpoints[start // STEP]
            limit = self._scanned
        try:
            with open(self.path, "rb") as f:
                f.seek(offset)
                raw = _read_lines(f, limit - offset, start % STEP, end - start)
        except OSError:
            return []
        return [_decode(line) for line in raw]


def _read_lines(f, available: int, skip: int, want: int) -> list[bytes]:
    """Read forward from the current position: skip `skip` lines, then collect `want` lines."""
    out: list[bytes] = []
    carry = b""
    while available > 0 and len(out) < want:
        data = f.read(min(READ_BLOCK, available))
        if not data:
            break
        available -= len(data)
        parts = data.split(b"\n")
        parts[0] = carry + parts[0]
        carry = _bound(parts.pop())
        for part in parts:
            if skip:
                skip -= 1
            elif len(out) < want:
                out.append(_bound(part))
    if carry and not skip and len(out) < want and available <= 0:
        out.append(carry)  # the unfinished last line
    return out


# -- showing a line ------------------------------------------------------------------------

_ESCAPE = re.compile(
    r"""
      \x1b\[[0-?]*[\x20-/]*[@-~]           # CSI: colours, cursor moves, erase (ESC [ ... final)
    | \x1b[\]PX^_].*?(?:\x07|\x1b\\|\Z)    # OSC, DCS, SOS, PM, APC: up to BEL or ST (or the line's end)
    | \x1b[\x20-/]*[0-~]                   # two-byte and nF sequences: ESC 7, ESC c, ESC ( B
    """,
    re.VERBOSE | re.DOTALL,
)


def clean(line: str, limit: int = SHOW_CHARS_MAX) -> str:
    """A raw log line the way it should be shown: one plain, terminal-safe line.

    Carriage returns overwrite like a terminal's progress bar (the text after the last one
    that has text after it wins), escape sequences are dropped, tabs expanded, any other
    control character is made visible, and a line longer than `limit` characters is cut,
    with a marker that says how much was left out.
    """
    line = line.rstrip("\r").rpartition("\r")[2]
    line = _ESCAPE.sub("", line).expandtabs(8)
    line = safe(line)
    if len(line) > limit:
        line = f"{line[:limit]} … [{len(line) - limit:,} more characters]"
    return line


# -- the end of a file -------------------------------------------------------------------------


def tail(path: str | os.PathLike[str], n: int, *, max_bytes: int = 64 << 20) -> list[str]:
    """The last `n` lines of a file, read backwards from its end; [] when it does not exist.

    At most `max_bytes` are read: past that the first line returned may be a partial one.
    """
    if n <= 0:
        return []
    try:
        with open(path, "rb") as f:
            raw = _read_tail(f, n, max_bytes)
    except OSError:
        return []
    return [_decode(_bound(line)) for line in raw]


def _read_tail(f, n: int, max_bytes: int) -> list[bytes]:
    end = f.seek(0, os.SEEK_END)
    if end == 0:
        return []
    pos = end
    blocks: list[bytes] = []
    newlines = 0
    while pos > 0 and end - pos < max_bytes:
        size = min(READ_BLOCK, pos, max_bytes - (end - pos))
        pos -= size
        f.seek(pos)
        block = f.read(size)
        blocks.append(block)
        newlines += block.count(b"\n")
        if newlines > n:  # n lines plus the newline before the first of them (or a final one)
            break
    data = b"".join(reversed(blocks))
    if data.endswith(b"\n"):
        data = data[:-1]
    return data.split(b"\n")[-n:]
