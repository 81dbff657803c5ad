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

from mltui.base.errors import MltuiError, NotFound
from mltui.base.values import check_key, metric_value, step_value
from mltui.core.workspace import Workspace, find_workspace
from mltui.store import metrics as metric_store
from mltui.store import runs as run_store
from mltui.core.reader import open_writer
from mltui.store.connection import write_tx
from mltui.core.runs.records import create_run  # noqa: F401  (re-exported: mltui.core.runs.tracking.create_run)
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (import mltui stays lean)

if TYPE_CHECKING:
    from typing import Any

_time = time.time
_STEP_MIN, _STEP_MAX = -(2**63), 2**63
_live_runs: "set[Run]" = set()  # strong: a run the script dropped is still finished at exit


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
        self.flush()

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
            self.flush()

    def flush(self) -> None:
        """Write every buffered point now."""
        with self._db_lock:
            with self._lock:
                if self._finished or not self._pending:
                    self._last_flush = _time()
                    return
                taken = self._buf
                self._buf = {key: [] for key in taken}
                self._pending = 0
                self._last_flush = _time()
            try:
                columns = {key: tuple(zip(*points)) for key, points in taken.items() if points}
                with write_tx(self._conn, self.workspace.db_path):
                    metric_store.write_batch(self._conn, self.id, columns)
            except BaseException:
                self._restore(taken)
                raise

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
            if self._pending and _time() - self._last_flush >= self._interval:
                try:
                    self.flush()
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
        with self._db_lock, write_tx(self._conn, self.workspace.db_path):
            run_store.set_values(self._conn, table, self.id, values)

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> Path:
        """Copy a file into the run's artifacts/ folder and record its size and sha256."""
        self._check_open()
        src = Path(path)
        if not src.is_file():
            raise ValueError(f"artifact {str(src)!r} is not a file.")
        rel = Path(name) if name else Path(src.name)
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"artifact name {str(rel)!r} must stay inside the run's artifacts/ folder.")
        dest = self.dir / "artifacts" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.resolve() != dest.resolve():
            import shutil

            shutil.copyfile(src, dest)
            os.chmod(dest, self._file_mode)
        import hashlib

        digest = hashlib.sha256()
        with open(dest, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        st = dest.stat()
        with self._db_lock, write_tx(self._conn, self.workspace.db_path):
            self._conn.execute(
                "INSERT INTO artifacts(run_id, path, size, sha256, modified) VALUES (?,?,?,?,?) "
                "ON CONFLICT(run_id, path) DO UPDATE SET size=excluded.size, sha256=excluded.sha256, "
                "modified=excluded.modified",
                (self.id, ("artifacts" / rel).as_posix(), st.st_size, digest.hexdigest(), st.st_mtime),
            )
        return dest

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

        If the store cannot be written, this raises and the run stays open with its points, so it
        can be called again.
        """
        with self._db_lock:
            if self._finished:
                return
            with self._lock:
                self._closing = True  # no more log() calls slip in behind the last flush
            try:
                self.flush()
                if not self.attached:
                    self._recheck_inputs()
                    final = status or ("failed" if self._failed else "finished")
                    with write_tx(self._conn, self.workspace.db_path):
                        run_store.update_run(self._conn, self.id, status=final, ended=_time(), exit_code=exit_code)
            except BaseException:
                with self._lock:
                    self._closing = False
                raise
            with self._lock:
                self._finished = True
            self._wake.set()
            self._conn.close()
            _live_runs.discard(self)

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
            self.finish()
        elif issubclass(exc_type, (KeyboardInterrupt, _Terminated)):
            self.finish("killed")
        elif issubclass(exc_type, SystemExit) and exc.code in (0, None):
            self.finish()  # sys.exit(0) is a normal end
        else:
            self._failed = True
            self.finish("failed")

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
) -> Run:
    """Start a run, or attach to the one mltui launched this process for (MLTUI_RUN_ID)."""
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
        run = Run(ws, attached_id, attached=True, batch_size=batch_size, flush_interval=flush_interval)
    else:
        run_id = create_run(ws, name=name, kind=kind, note=note)
        run = Run(ws, run_id, attached=False, batch_size=batch_size, flush_interval=flush_interval)
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
            run.finish(status or _ending)
        except Exception as exc:  # at exit, say it and go on
            print(f"mltui: could not finish run {run.id}: {exc}", file=sys.stderr)
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
