"""The tracking API used by training scripts: `init()` gives a `Run` that logs in batches.

Imported by every training script, so it keeps to the standard library.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from mltui.base.errors import MltuiError, NotFound, StoreError
from mltui.base.values import check_key, metric_value, step_value
from mltui.core.workspace import Workspace, find_workspace
from mltui.store import metrics as metric_store
from mltui.store import runs as run_store
from mltui.core.reader import open_writer
from mltui.store.connection import write_tx
from mltui.core.runs.records import create_run  # noqa: F401  (re-exported: mltui.core.runs.tracking.create_run)
from mltui.core.runs import store_trouble
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (import mltui stays lean)

if TYPE_CHECKING:
    from typing import Any

_time = time.time
_STEP_MIN, _STEP_MAX = -(2**63), 2**63
_live_runs: "set[Run]" = set()  # strong: a run the script dropped is still finished at exit
MAX_BUFFERED = 1_000_000  # points kept in memory while the store cannot be written


class Run:
    """One run being logged to. Use `mltui.init()` to get one."""

    def __init__(
        self,
        workspace: Workspace,
        run_id: str,
        *,
        attached: bool,
        batch_size: int = 20_000,
        flush_interval: float = 1.0,
        strict: bool = False,
        max_buffered: int = MAX_BUFFERED,
    ) -> None:
        self.workspace = workspace
        self.id = run_id
        self.attached = attached
        self.dir = workspace.run_dir(run_id)
        self._file_mode = workspace.config().file_mode
        self._conn = open_writer(workspace)
        self._batch = max(1, int(batch_size))
        self._interval = flush_interval
        self._lock = threading.Lock()  # guards the buffers
        self._db_lock = threading.RLock()  # one flush at a time on the connection
        self._buf: dict[str, list[tuple[int, float, float]]] = {}  # key -> [(step, value, time)]
        self._pending = 0
        self._step = 0
        self._last_flush = _time()
        self._finished = False
        self._closing = False  # set first thing in finish(): from then on log() refuses
        self._failed = False
        # when the store cannot be written (strict=False): keep points up to a bound, say it once, retry
        self._strict = bool(strict)
        self._max_buffered = max(1, int(max_buffered))
        self._user_batch = self._batch
        self._retry_every = max(flush_interval, 0.5)
        self._retry_at = 0.0
        self._trouble: str | None = None  # why the store refuses writes now; None while it takes them
        self._had_trouble: str | None = None  # the first such cause in this run's life
        self._last_error: StoreError | None = None
        self._later: list = []  # params, tags and artifact rows waiting for the store: fn(conn)
        self._dropped = 0  # points dropped past the bound, in all
        self._said_dropped = 0  # of which already counted on the run
        self._unsaid = False  # trouble or drops not yet recorded on the run
        self._warned = False
        self._noted: str | None = None  # the status a note in the run folder gives, while one stands for this run
        self._flusher: threading.Thread | None = None
        self._wake = threading.Event()
        row = self._conn.execute("SELECT name FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            self._conn.close()
            raise NotFound(f"Run {run_id} is not in the store at {workspace.db_path}.")
        self.name: str = row[0]
        last = self._conn.execute("SELECT max(last_step) FROM metric_summary WHERE run_id = ?", (run_id,)).fetchone()
        if last and last[0] is not None:
            self._step = last[0] + 1
        _live_runs.add(self)

    # -- logging -----------------------------------------------------------------------
    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Buffer one step of metrics; NaN and +-inf are fine, non-numbers raise ValueError.

        A call is all or nothing: if one value is refused, none of that call is kept.
        """
        if step is None:
            step = self._step
        elif type(step) is not int or not _STEP_MIN <= step < _STEP_MAX:
            step = step_value(step)
        now = _time()
        with self._lock:
            if self._closing:
                raise MltuiError(f"Run {self.id} is finished; start a new one with mltui.init().")
            buf = self._buf
            try:
                items = metrics.items()
            except AttributeError:
                raise ValueError(f"log() takes a dict of metric names to numbers, not {type(metrics).__name__}.") from None
            for key, value in items:
                if type(value) is not float or key not in buf:
                    self._log_checked(items, step, now)
                    break
            else:
                for key, value in items:
                    buf[key].append((step, value, now))  # one append per point: a signal never splits it
                self._pending += len(items)
                self._step = step + 1
            if self._pending < self._batch and now - self._last_flush < self._interval:
                return
        self._flush(retry=self._flusher is None)

    def _log_checked(self, items, step: int, now: float) -> None:
        """The careful path: new keys and non-float values. Validates the whole call before keeping any of it."""
        clean = [(check_key(key), metric_value(key, value)) for key, value in items]
        buf = self._buf
        for key, value in clean:
            series = buf.get(key)
            if series is None:
                series = buf[key] = []
            series.append((step, value, now))
        self._pending += len(clean)
        self._step = step + 1
        self._start_flusher()

    def _log_at(self, metrics: Mapping[str, Any], step: int, when: float) -> None:
        """Log with a given wall time (for importers and the demo); same checks as log()."""
        with self._lock:
            self._log_checked(metrics.items(), step, when)
        if self._pending >= self._batch:
            self._flush()

    def flush(self) -> None:
        """Write every buffered point now. If the store cannot be written, the points stay buffered
        (see log()); with strict=True this raises instead."""
        self._flush(force=True)

    def _flush(self, force: bool = False, retry: bool = True) -> None:
        """Write the buffer. While the store refuses writes, a flush trims the buffer to its bound and
        writes only when a retry is due (`force`: now); `retry=False` only trims (a flusher thread retries)."""
        if self._trouble is not None and not force:
            with self._lock:
                now = _time()
                self._last_flush = now
                if self._pending > self._max_buffered:
                    self._drop(self._pending - self._max_buffered)
                if not retry or now < self._retry_at:
                    return
        with self._db_lock:
            with self._lock:
                if self._finished or not (self._pending or self._later or self._unsaid):
                    self._last_flush = _time()
                    return
                if self._pending > self._max_buffered:
                    self._drop(self._pending - self._max_buffered)
                taken = self._buf
                self._buf = {key: [] for key in taken}
                self._pending = 0
                self._last_flush = _time()
            try:
                self._write(taken)
            except StoreError as exc:
                if self._strict:
                    raise
                self._troubled(exc)
                return
            if self._unsaid:
                self._say_trouble()
            if self._noted is not None and not (self._pending or self._later or self._unsaid):
                self._leave_note(self._noted)  # written since finish() left its note: the note says so now

    def _write(self, taken: dict[str, list[tuple[int, float, float]]]) -> None:
        """Waiting rows first, then the points: in one transaction, or in batch-sized ones when the buffer
        grew while the store refused writes. What is not written goes back in front of the buffer."""
        pieces = self._pieces(taken)
        done = 0
        try:
            if self._later:
                with write_tx(self._conn, self.workspace.db_path):
                    for write in self._later:
                        write(self._conn)
                self._later = []
            for piece in pieces:
                columns = {key: tuple(zip(*points)) for key, points in piece.items() if points}
                if columns:
                    with write_tx(self._conn, self.workspace.db_path):
                        metric_store.write_batch(self._conn, self.id, columns)
                done += 1
        except BaseException:
            rest: dict[str, list[tuple[int, float, float]]] = {}
            for piece in pieces[done:]:
                for key, points in piece.items():
                    rest.setdefault(key, []).extend(points)
            self._restore(rest)
            raise

    def _pieces(self, taken: dict[str, list[tuple[int, float, float]]]) -> list[dict]:
        size = self._user_batch
        if sum(len(points) for points in taken.values()) <= size:
            return [taken]
        return [{key: points[i:i + size]} for key, points in taken.items() for i in range(0, len(points), size)]

    def _drop(self, count: int) -> None:
        """Drop the `count` oldest buffered points, counting them (the caller holds the buffer lock)."""
        dropped = store_trouble.drop_oldest(self._buf, count)
        self._pending -= dropped
        self._dropped += dropped
        self._unsaid = self._unsaid or dropped > 0

    def _troubled(self, exc: StoreError) -> None:
        """The store refused a write: keep going, say so once, retry later."""
        cause = store_trouble.cause_of(exc)
        self._last_error = exc
        if self._trouble is None:
            self._trouble = cause
            self._batch = self._max_buffered + max(1, self._max_buffered // 10)  # trims come in steps
        self._had_trouble = self._had_trouble or cause
        self._unsaid = True
        self._retry_at = _time() + self._retry_every
        with self._lock:
            if self._pending > self._max_buffered:
                self._drop(self._pending - self._max_buffered)
        if not self._warned:
            self._warned = True
            store_trouble.say(f"mltui: cannot write run {self.id} to the store ({cause}); logging goes on, keeping "
                              f"up to {self._max_buffered:,} points in memory and retrying")

    def _say_trouble(self) -> None:
        """The store takes writes again: record on the run why it did not, and the points dropped meanwhile."""
        dropped = self._dropped - self._said_dropped
        try:
            with write_tx(self._conn, self.workspace.db_path):
                run_store.note_store_trouble(self._conn, self.id, self._had_trouble, dropped)
        except StoreError as exc:
            if self._strict:
                raise
            self._troubled(exc)
            return
        self._said_dropped += dropped
        self._unsaid = False
        self._trouble = None
        self._batch = self._user_batch

    def _restore(self, taken: dict[str, list[tuple[int, float, float]]]) -> None:
        """Put points back in front of the buffer after a failed write, so nothing is lost."""
        with self._lock:
            for key, points in taken.items():
                self._buf.setdefault(key, [])[:0] = points
                self._pending += len(points)

    def _start_flusher(self) -> None:
        if self._flusher is None and self._interval > 0:
            self._flusher = threading.Thread(target=self._flush_loop, name=f"mltui-flush-{self.id}", daemon=True)
            self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._wake.wait(self._interval):
            now = _time()
            if self._trouble is not None:
                due = now >= self._retry_at
            else:
                due = (self._pending or self._later) and now - self._last_flush >= self._interval
            if due:
                try:
                    self._flush(force=True)
                except Exception:
                    pass  # kept in the buffer; the next flush or finish() reports it

    # -- params, tags, artifacts -------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        self._set("params", params)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._set("tags", tags)

    def _check_open(self) -> None:
        if self._closing:
            raise MltuiError(f"Run {self.id} is finished; start a new one with mltui.init().")

    def _set(self, table: str, values: Mapping[str, Any]) -> None:
        self._check_open()
        if not isinstance(values, Mapping):
            raise ValueError(f"{table} must be a dict, not {type(values).__name__}.")
        what = "param" if table == "params" else "tag"
        for key in values:
            check_key(key, what)
        values = dict(values)
        self._write_or_keep(lambda conn: run_store.set_values(conn, table, self.id, values))

    def _write_or_keep(self, write) -> None:
        """`write(conn)` in a transaction now; if the store refuses it (strict=False), with the next flush."""
        with self._db_lock:
            try:
                with write_tx(self._conn, self.workspace.db_path):
                    write(self._conn)
            except StoreError as exc:
                if self._strict:
                    raise
                self._later.append(write)
                self._troubled(exc)

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None, *,
                     overwrite: bool = False) -> Path:
        """Copy a file, or a folder's files, into the run's artifacts/ folder and record each with its sha256.

        The file goes to artifacts/<name>, or to artifacts/<its path relative to the working folder> (a
        file outside the working folder keeps its base name). A file landing on one with other bytes is
        kept beside it (model.1.pt) with a warning, unless `overwrite=True` replaces it (the replaced
        bytes' sha256 stays on the record). Returns where the file (or the folder) now is."""
        from mltui.core.runs import artifacts as art

        self._check_open()
        src = Path(path)
        folder = self.dir / "artifacts"
        if src.is_dir():
            root = art.target_name(src, name, folder, os.getcwd())
            in_ws = os.path.realpath(src).startswith(os.path.realpath(self.workspace.root) + os.sep)
            skip = [] if in_ws else [str(self.workspace.root)]  # never the workspace (store, run folders) itself
            jobs = [(file, root / inner) for file, inner in art.files_of(src, skip)]
            where = folder / root
        elif src.is_file():
            jobs = [(src, art.target_name(src, name, folder, os.getcwd()))]
            where = None
        else:
            raise ValueError(f"artifact {str(src)!r} is not a file or a folder.")
        placed = []
        with self._db_lock:
            for file, rel in jobs:
                try:
                    placed.append(art.place(self._conn, self.id, self.dir, file, rel, self._file_mode, overwrite))
                except OSError as exc:
                    message = f"cannot copy {str(file)!r} into run {self.id}'s artifacts ({exc.strerror or exc})"
                    if self._strict:
                        raise MltuiError(message[0].upper() + message[1:] + ".") from None
                    store_trouble.say(f"mltui: {message}; the run goes on without it")
            if placed:
                self._write_or_keep(lambda conn: [p.record(conn) for p in placed])
        if where is None:
            return placed[0].dest if placed else folder / jobs[0][1]
        return where

    # -- data ----------------------------------------------------------------------------
    def use_dataset(self, spec: str) -> str:
        """Record that this run learns from a dataset version and return its id.

        `spec` is a dataset name (its folder is checked now: the version it holds is recorded, and
        data that matches no recorded version is flagged), NAME@version (that version), or a path
        inside a registered dataset's folder. Run `mltui data add` first to register the data.
        """
        from mltui.core.data.lineage import use

        self._check_open()
        with self._db_lock:
            return use(self.workspace, self._conn, self.id, spec)["version"]

    # -- ending --------------------------------------------------------------------------
    def finish(self, status: str | None = None, exit_code: int | None = None) -> None:
        """Flush and close. A run we created gets its final status; an attached one is left to its supervisor.
        If the store could not be written for a while, the reason says so ("failed: the disk is full").

        If the store still cannot be written, this does not raise: it says so in one line on stderr,
        leaves the run's end in a note in its folder (as at exit: the supervisor, or the next mltui to find
        the run dead, reads it), keeps the points in memory and returns with `finished` still False. The
        run takes no more logging; calling finish() again once the store takes writes records everything
        (at exit this is tried once more). With strict=True this raises instead and the run stays open.
        """
        if self._strict:
            self._end(status, exit_code)
            return
        said, self._warned = self._warned, True  # a store that refuses this call is said in one line
        try:
            self._end(status, exit_code)
        except StoreError as exc:
            with self._db_lock:
                self._troubled(exc)  # retried by the next flush or finish (silent: the line below says it)
                where = self._leave_note(status)
            with self._lock:
                unsaved = self._pending
            kept = f"{unsaved:,} metric point{'s' if unsaved != 1 else ''} wait in memory; " if unsaved else ""
            noted = f"its end is noted in {where}" if where else "its end could not be noted anywhere either"
            store_trouble.say(f"mltui: could not finish run {self.id} ({store_trouble.cause_of(exc)}); {kept}"
                              f"{noted}; call finish() again once the store can be written")
        except BaseException:
            self._warned = said
            raise

    def _end(self, status: str | None, exit_code: int | None = None) -> None:
        """finish(), raising the store's error when it cannot be written; the run stays unfinished then
        (and open to logging again with strict=True)."""
        with self._db_lock:
            if self._finished:
                return
            with self._lock:
                self._closing = True  # no more log() calls slip in behind the last flush
            try:
                self._flush(force=True)
                if self._pending or self._later or self._unsaid:
                    raise self._last_error or StoreError(f"The store {self.workspace.db_path} cannot be written.")
                if not self.attached:
                    self._recheck_inputs()
                    final = status or ("failed" if self._failed else "finished")
                    extra = {}
                    if self._had_trouble:
                        extra["reason"] = store_trouble.with_trouble(final, None, self._had_trouble, self._dropped)
                    with write_tx(self._conn, self.workspace.db_path):
                        run_store.mark_ended(self._conn, self.id, final, ended=_time(), exit_code=exit_code, **extra)
                    from mltui.core.notify.runs import run_ended

                    run_ended(self.workspace, self._conn, self.id)  # never raises; no channel, no process
            except BaseException as exc:
                if self._strict or not isinstance(exc, StoreError):
                    with self._lock:
                        self._closing = False
                raise
            with self._lock:
                self._finished = True
            self._wake.set()
            self._conn.close()
            _live_runs.discard(self)
            if self._noted is not None:  # an earlier finish() left a note: the store has the end now
                self._noted = None
                store_trouble.forget_note(self.dir)

    def _recheck_inputs(self) -> None:
        """Flag datasets that changed on disk while this run used them (a launched run's supervisor
        does this for it)."""
        if self._conn.execute("SELECT 1 FROM run_inputs WHERE run_id = ? AND path IS NOT NULL LIMIT 1",
                              (self.id,)).fetchone() is None:
            return
        from mltui.core.data.lineage import recheck

        try:
            recheck(self.workspace, self._conn, self.id)
        except Exception:
            pass  # a flag that could not be set is not worth losing the run's end over

    @property
    def finished(self) -> bool:
        return self._finished

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            status = None
        elif issubclass(exc_type, (KeyboardInterrupt, _Terminated)):
            status = "killed"
        elif issubclass(exc_type, SystemExit) and exc.code in (0, None):
            status = None  # sys.exit(0) is a normal end
        else:
            self._failed = True
            status = "failed"
        try:
            self._end(status)
        except StoreError as error:
            if self._strict:
                raise
            if self._noted is None:  # a finish() that already said so is not said twice
                store_trouble.say(f"mltui: could not finish run {self.id}: {error}")
            self._give_up(status)

    def _give_up(self, status: str | None) -> None:
        """The store cannot take the run's end: note it in the run folder (the supervisor, or whoever next
        finds the run dead, reads it) and let go of what could not be written."""
        with self._lock:
            if self._finished:
                return
            unsaved, self._buf, self._pending = self._pending, {}, 0
            self._finished = self._closing = True
        self._leave_note(status, unsaved)
        self._wake.set()
        try:
            self._conn.close()
        except Exception:
            pass
        _live_runs.discard(self)

    def _leave_note(self, status: str | None, unsaved: int | None = None) -> Path | None:
        """Note the run's end and what the store has not got (`unsaved`: the points buffered now) in the run
        folder, or the spare folder when the disk refuses that; where it went, or None."""
        final = status or ("failed" if self._failed else "finished")
        if unsaved is None:
            with self._lock:
                unsaved = self._pending
        cause = self._had_trouble or "the store could not be written"
        where = store_trouble.write_note(self.dir, {
            "status": final, "cause": cause, "dropped": self._dropped - self._said_dropped, "unsaved": unsaved,
            "reason": store_trouble.with_trouble(final, None, cause, self._dropped, unsaved),
            "ended": _time(), "pid": os.getpid(),
        })
        self._noted = final if where else self._noted
        return where

    def __repr__(self) -> str:
        return f"<mltui.Run {self.id} {self.name!r}>"


def init(
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    *,
    kind: str = "train",
    note: str | None = None,
    workspace: str | os.PathLike[str] | None = None,
    batch_size: int = 20_000,
    flush_interval: float = 1.0,
    strict: bool = False,
    max_buffered: int = MAX_BUFFERED,
) -> Run:
    """Start a run, or attach to the one mltui launched this process for (MLTUI_RUN_ID).

    When the store cannot be written (a full disk, a read-only store, a lock held too long), logging
    goes on: up to `max_buffered` points wait in memory (the oldest are dropped past that, counted) and
    are written when the store takes writes again. `strict=True` raises the store's error instead."""
    if params is not None and not isinstance(params, Mapping):
        raise ValueError("params must be a dict.")
    if tags is not None and not isinstance(tags, Mapping):
        raise ValueError("tags must be a dict.")
    for key in params or {}:
        check_key(key, "param")
    for key in tags or {}:
        check_key(key, "tag")
    ws = find_workspace(workspace) if workspace is not None else find_workspace()
    attached_id = os.environ.get("MLTUI_RUN_ID")
    if attached_id:
        run = Run(ws, attached_id, attached=True, batch_size=batch_size, flush_interval=flush_interval,
                  strict=strict, max_buffered=max_buffered)
    else:
        run_id = create_run(ws, name=name, kind=kind, note=note)
        run = Run(ws, run_id, attached=False, batch_size=batch_size, flush_interval=flush_interval,
                  strict=strict, max_buffered=max_buffered)
    if params:
        run.log_params(params)
    if tags:
        run.set_tags(tags)
    _install_hooks()
    return run


# -- process exit: atexit, SIGTERM, uncaught exceptions ------------------------------------
_hooks_installed = False
_ending: str | None = None  # "failed" or "killed" once we know how the process is ending
_terminated_by: int | None = None


class _Terminated(SystemExit):
    """Raised by the SIGTERM handler so the stack unwinds (locks released) before runs are finished."""


def _finish_all(status: str | None = None) -> None:
    for run in list(_live_runs):
        try:
            run._end(status or _ending)
        except Exception as exc:  # at exit, say it, leave a note in the run folder, and go on
            if run._noted is None:  # a finish() that already said so is not said twice
                store_trouble.say(f"mltui: could not finish run {run.id}: {exc}")
            run._give_up(status or _ending)
    if _terminated_by is not None:  # die by the signal, as the sender expects
        import signal

        signal.signal(_terminated_by, signal.SIG_DFL)
        os.kill(os.getpid(), _terminated_by)


def _on_sigterm(signum, frame) -> None:
    # Flushing here could deadlock on a lock the interrupted code holds; unwind first and let
    # the atexit hook finish the runs with everything they buffered.
    global _ending, _terminated_by
    _ending, _terminated_by = "killed", signum
    raise _Terminated(128 + signum)


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_finish_all)
    previous = sys.excepthook

    def excepthook(exc_type, exc, tb):
        global _ending
        _ending = "killed" if issubclass(exc_type, KeyboardInterrupt) else "failed"
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook
    import signal

    if threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):
            pass
