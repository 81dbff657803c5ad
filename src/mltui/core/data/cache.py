"""The content-addressed cache: `.mltui/cache/<aa>/<rest of sha256>`, each object once, read-only.

An object is written under a temporary name in `cache/tmp/` while it is hashed, and renamed to its
final name only when complete, so a crash never leaves a half object where a whole one belongs.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from mltui.base.procs import umask
from mltui.core.data.hashing import RETRIES, FileChanged, Found, hash_file

TMP_MAX_AGE = 3600.0  # gc removes temporary files older than this (a crashed add's leftovers)


class _Mismatch(Exception):
    """The bytes copied in are not the ones asked for."""


class Cache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:]

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def store(self, found: Found) -> tuple[str, os.stat_result]:
        """Copy a file into the cache while hashing it; the object is named by what was read."""
        return self._copy_in(found, None)

    def restore(self, found: Found, sha256: str) -> bool:
        """Put `found` back as object `sha256`, replacing whatever damaged copy is there, if its bytes
        (hashed as they are copied) are those; False, and nothing changed, when they are not."""
        try:
            self._copy_in(found, sha256)
        except _Mismatch:
            return False
        return True

    def _copy_in(self, found: Found, expect: str | None) -> tuple[str, os.stat_result]:
        self.tmp.mkdir(parents=True, exist_ok=True)
        temp = self.tmp / f"{uuid.uuid4().hex}.part"
        try:
            for attempt in range(RETRIES):
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                # buffered: a BufferedWriter writes all it is given or raises (a raw write may write less)
                with os.fdopen(fd, "wb") as out:
                    try:
                        sha, st = hash_file(found.abs, sink=out.write, seen=found if attempt == 0 else None)
                        break
                    except FileChanged:
                        if attempt == RETRIES - 1:
                            raise
            if expect is not None and sha != expect:
                raise _Mismatch(sha)
            final = self.path(sha)
            if final.is_file() and expect is None:
                temp.unlink()  # the same bytes are there already
            else:
                final.parent.mkdir(exist_ok=True)
                # objects are never edited in place (checkouts may hard-link them); read by whom the umask allows
                # (in a shared workspace, 007: the group and nobody else)
                os.chmod(temp, 0o444 & ~umask())
                os.replace(temp, final)
            return sha, st
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def objects(self):
        """(sha256, path) for every object in the cache."""
        if not self.root.is_dir():
            return
        for sub in os.scandir(self.root):
            if len(sub.name) != 2 or not sub.is_dir(follow_symlinks=False):
                continue
            for obj in os.scandir(sub.path):
                if obj.is_file(follow_symlinks=False) and len(obj.name) == 62:
                    yield sub.name + obj.name, Path(obj.path)

    def stale_temps(self, now: float | None = None) -> list[Path]:
        now = now or time.time()
        if not self.tmp.is_dir():
            return []
        out = []
        for entry in os.scandir(self.tmp):
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime > TMP_MAX_AGE:
                    out.append(Path(entry.path))
            except OSError:
                pass
        return out


def check_object(cache: Cache, sha256: str, size: int) -> str | None:
    """None when the object is whole; otherwise 'missing' or a sentence on what is wrong."""
    path = cache.path(sha256)
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    if st.st_size != size:
        return f"corrupt: {st.st_size:,} bytes where {size:,} were stored"
    try:
        got, _ = hash_file(os.fsencode(path))
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    return None if got == sha256 else "corrupt: its sha256 no longer matches"
