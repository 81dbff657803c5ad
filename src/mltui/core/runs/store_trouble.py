"""When the store cannot be written (a full disk, a read-only store, a lock held too long), a run goes on.

The tracking API keeps the points in memory (up to a bound, dropping the oldest past it and counting
them) and retries; what happened is said on the run once the store takes writes again (`store_trouble`,
`dropped_points`), or, if it never does, in a note in the run folder (`store_unwritable.json`) that the
supervisor and the next mltui to find the run dead read. A full disk may refuse even that small file:
then the note goes to this user's folder in the system's temporary folder (another filesystem, most
often), where a reader on the same host looks too. Standard library only: the tracking API uses it.
"""

from __future__ import annotations

import heapq
import json
import os
from pathlib import Path

NOTE_FILE = "store_unwritable.json"


def say(line: str) -> None:
    """One line to stderr. A full disk under stderr (a launched run's output.log) must not stop training,
    so a line that cannot be written is let go."""
    import sys

    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


class _Forgiving:
    """A text stream whose writes never raise for a full or failing disk (they are let go instead)."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError:
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            pass

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def forgiving_output() -> None:
    """Make this process's stdout and stderr forgiving: for a supervisor, whose log lives in the run folder,
    a line that a full disk refuses must never stop it supervising."""
    import sys

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _Forgiving):
            setattr(sys, name, _Forgiving(stream))


def cause_of(exc: BaseException) -> str:
    """Why a store write failed, in a few words that finish "failed: ..." (e.g. "the disk is full")."""
    msg = str(exc).lower()
    if "full" in msg or "no space" in msg or "quota" in msg:
        return "the disk is full"
    if "read-only" in msg or "readonly" in msg:
        return "the store is read-only"
    if "locked" in msg or "busy" in msg:
        return "the store stayed locked by another process for too long"
    if "i/o" in msg:
        return "the disk failed to write (I/O error)"
    return "the store could not be written"


def detail(dropped: int = 0, unsaved: int = 0) -> str:
    """What the metrics lost, for the end of a reason."""
    parts = []
    if dropped:
        parts.append(f"{dropped:,} metric point{'s were' if dropped != 1 else ' was'} dropped")
    if unsaved:
        parts.append(f"{unsaved:,} metric point{'s' if unsaved != 1 else ''} could not be saved")
    return "; ".join(parts) if parts else "no metric point was lost"


def with_trouble(status: str, reason: str | None, cause: str, dropped: int = 0, unsaved: int = 0,
                 blame: bool = True) -> str:
    """A run's final reason when the store could not be written for a while: a failed run says the cause
    first ("failed: the disk is full"), unless `blame` is off (it failed of something else: an
    out-of-memory kill, a crash signal); any other names it after its own reason."""
    lost = detail(dropped, unsaved)
    if status == "failed" and blame:
        return f"failed: {cause}" + (f" ({reason})" if reason else "") + f"; {lost}"
    head = f"{reason}; " if reason else ""
    return f"{head}the store could not be written for a while ({cause}); {lost}"


def write_note(run_dir: str | os.PathLike[str], fields: dict) -> Path | None:
    """Leave what could not be written in the run folder (a small JSON file, replaced whole), or, when the
    disk refuses it, in the spare folder; where it was left, or None when nowhere."""
    folder = Path(run_dir)
    text = json.dumps(fields)
    if _put(folder, NOTE_FILE, text):
        return folder / NOTE_FILE
    spare = _spare_folder(create=True)
    if spare is not None and _put(spare, f"{folder.name}.json", text):
        return spare / f"{folder.name}.json"
    return None


def read_note(run_dir: str | os.PathLike[str]) -> dict | None:
    """The note a run left in its folder (or in the spare folder on this host), or None."""
    folder = Path(run_dir)
    places = [folder / NOTE_FILE]
    spare = _spare_folder(create=False)
    if spare is not None:
        places.append(spare / f"{folder.name}.json")
    for path in places:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return None


def forget_note(run_dir: str | os.PathLike[str]) -> None:
    """Remove a run's note, in its folder and in the spare folder: its writer got its end into the store after all."""
    try:
        (Path(run_dir) / NOTE_FILE).unlink()
    except OSError:
        pass
    forget_spare_note(run_dir)


def forget_spare_note(run_dir: str | os.PathLike[str]) -> None:
    """Remove the spare copy of a run's note once its end is in the store (the run folder's copy stays)."""
    spare = _spare_folder(create=False)
    if spare is not None:
        try:
            (spare / f"{Path(run_dir).name}.json").unlink()
        except OSError:
            pass


def _put(folder: Path, name: str, text: str) -> bool:
    tmp = folder / f".{name}.{os.getpid()}"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, folder / name)
        return True
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
        return False


def _spare_folder(create: bool) -> Path | None:
    """This user's own folder for notes in the temporary folder; None when it is not safely ours."""
    import stat

    base = os.environ.get("TMPDIR") or "/tmp"
    folder = Path(base) / f"mltui-notes-{os.getuid()}"
    try:
        if create:
            try:
                os.mkdir(folder, 0o700)
            except FileExistsError:
                pass
        st = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        return None  # someone else's, a link, or writable by others: not a place to trust
    return folder


def drop_oldest(buf: dict[str, list[tuple[int, float, float]]], count: int) -> int:
    """Remove the `count` oldest points (by wall time, over every series) from the buffer; returns how many."""
    if count <= 0:
        return 0
    series = [(key, points) for key, points in buf.items() if points]
    streams = [_times(points, i) for i, (_, points) in enumerate(series)]
    cut = [0] * len(series)
    taken = 0
    for _, i in heapq.merge(*streams):
        if taken >= count:
            break
        cut[i] += 1
        taken += 1
    for (key, points), n in zip(series, cut):
        if n:
            del points[:n]
    return taken


def _times(points: list[tuple[int, float, float]], index: int):
    """(wall time, series index) of each point, in buffer order."""
    for point in points:
        yield point[2], index
