"""The supervisor: one small detached process per launched run (`python -m mltui.core.launch.supervisor WS RUN`).

It starts the command in its own process group with stdout and stderr going straight to
`runs/<id>/output.log`, then, until the command ends: writes a heartbeat, tails metrics.jsonl into
the store, records files appearing in the watched folders, and forwards SIGTERM/SIGINT to the whole
group (SIGKILL after the grace period); it samples the command's memory with each heartbeat (the peak
RSS goes on the run) and follows the memory cgroups it is in, so that a SIGKILL that mltui did not send
is told apart as the kernel's out-of-memory killer (oom.py). At the end it records the exit code, the
end time and the final status with the reason; a store that could not be written for a while (a full
disk) is named in it. It starts the command before anything slow (watchdog, fingerprint);
only when the command names a registered dataset is that data matched to a version first, so the
version recorded is the one the command starts on.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from mltui.base.errors import MltuiError, StoreError
from mltui.core.launch.child_env import child_env
from mltui.core.launch.oom import MemoryWatch, oom_reason
from mltui.core.runs import store_trouble
from mltui.core.workspace import Workspace
from mltui.core.reader import open_writer
from mltui.store import runs as run_store
from mltui.store.connection import write_tx

TICK = 0.2
_KILLED_BY = {signal.SIGTERM, signal.SIGINT, signal.SIGKILL, signal.SIGHUP, signal.SIGQUIT}


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def outcome(returncode: int, stop: str | None) -> tuple[str, str]:
    """(status, reason) for how the command ended; `stop` says who asked it to stop, if anyone."""
    if stop:
        return "killed", stop
    if returncode == 0:
        return "finished", "the command exited with code 0"
    if returncode < 0:
        sig = -returncode
        if sig in _KILLED_BY:
            return "killed", f"the command was killed by {signal_name(sig)}"
        return "failed", f"the command crashed with {signal_name(sig)}"
    return "failed", f"the command exited with code {returncode}"


class Supervisor:
    def __init__(self, ws: Workspace, run_id: str) -> None:
        self.ws = ws
        self.run_id = run_id
        self.config = ws.config()
        self.run_dir = ws.run_dir(run_id)
        self.conn = open_writer(ws)
        self.child: subprocess.Popen | None = None
        self.stop: str | None = None  # who asked the run to stop, in words
        self.kill_at: float | None = None
        self.stop_deadline: float | None = None  # the `runs kill` request this stop answers, if one
        self.forwarded: int | None = None
        self.watcher = None
        self.tail = None
        self.tb = None  # TensorboardTail: event files the command writes (SummaryWriter and friends)
        self._signalled: int | None = None
        self._bad_written = 0  # bad metrics.jsonl lines already on the run
        self._reported = 0  # refused artifact paths already said
        self.gpus: list[int] = []
        self._gpu_source = None
        self._gpu_samples = 0
        self.memory: MemoryWatch | None = None
        self.stall = None  # StallWatch (stall.py): alive but silent past runs.stall_seconds
        self.trouble: str | None = None  # why the store refused one of our writes, if it ever did
        self._unwritten: tuple[dict, list, list] = ({}, [], [])  # metrics and artifact rows a refused write left

    # -- the life of a run -------------------------------------------------------------------
    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        # Slurm's warning before a time limit (--signal=B:USR2@90) is the command's, to checkpoint on
        signal.signal(signal.SIGUSR2, lambda signum, frame: self.child is not None and self._signal_group(signum))
        row = self.conn.execute(
            "SELECT command, cwd, spec, gpus, status FROM runs WHERE id = ?", (self.run_id,)
        ).fetchone()
        if row is None:
            print(f"supervisor: run {self.run_id} is not in the store", file=sys.stderr)
            return 1
        command, cwd, spec_text, gpus_text, status = row
        if status not in ("running", "queued"):
            print(f"supervisor: run {self.run_id} is {status}; not starting it", file=sys.stderr)
            return 0
        if self._kill_deadline() is not None:  # killed before it could start
            self._finish("killed", "stopped by `mltui runs kill` before it started", None, time.time())
            return 0
        argv = json.loads(command)
        spec = json.loads(spec_text) if spec_text else {}
        gpus = json.loads(gpus_text) if gpus_text else None
        self.gpus = [int(g) for g in gpus] if gpus else []
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "artifacts").mkdir(exist_ok=True)
        # before the command starts, so the data it is recorded against is the data it starts on (quick
        # when the command names no registered dataset, and through the stat cache when it does)
        self._record_inputs(self.conn, argv, cwd, spec)
        log_path = self.run_dir / "output.log"
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, self.config.file_mode)
        started = time.time()
        try:
            self.child = subprocess.Popen(
                argv, cwd=cwd, env=child_env(self.ws, self.run_id, self.run_dir, gpus, spec.get("env")),
                stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT, process_group=0, close_fds=True,
            )
        except OSError as exc:
            message = f"cannot start {argv[0]!r}: {exc.strerror or exc}"
            os.write(fd, f"mltui: {message}\n".encode())
            os.close(fd)
            code = 127 if isinstance(exc, FileNotFoundError) else 126
            self._finish("failed", message, code, started)
            return 0
        os.close(fd)
        # after the spawn, so the command does not inherit it: a dropped SSH session is no reason to stop
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        pid = self.child.pid
        from mltui.base.procs import host, process_start, user
        from mltui.base.procs import boot_id

        self.memory = MemoryWatch(pid)
        self._follow_memory()
        with write_tx(self.conn, self.ws.db_path):
            run_store.mark_started(self.conn, self.run_id, pid=pid, sup_pid=os.getpid(), started=started, host=host,
                                   user=user(), pid_start=process_start(pid), boot_id=boot_id())
        fingerprint = threading.Thread(target=self._fingerprint, args=(argv, cwd, spec), daemon=True)
        fingerprint.start()  # off the start's critical path; a short run still waits for it below
        self._start_watching(spec, cwd, started)
        if self.config.stall_seconds > 0:
            from mltui.core.launch.stall import StallWatch

            self.stall = StallWatch(self.ws, self.conn, self.run_id, log_path, self.config.stall_seconds, started)
        returncode = self._loop()
        self._wrap_up(returncode, started)
        fingerprint.join(timeout=30)
        self._recheck_inputs()
        self._register_models()
        # the command's own exit code (a signal as 128 + N, like a shell): Slurm judges the job by it
        return returncode if returncode >= 0 else 128 - returncode

    def _loop(self) -> int:
        beat = sampled = 0.0
        while True:
            self._follow_memory()
            returncode = self.child.poll()
            if returncode is not None:
                return returncode
            now = time.time()
            if self._signalled is not None:
                self._begin_stop(self._signalled, now)
                self._signalled = None
            if self.kill_at is not None and now >= self.kill_at:
                self._signal_group(signal.SIGKILL)
                self.kill_at = None
            try:
                self._collect()
                if now - beat >= self.config.heartbeat_seconds:
                    self._heartbeat(now)
                    beat = now
                    if self.stall is not None:
                        self.stall.check(now)
                if self.gpus and now - sampled >= self.config.gpu_sample_seconds:
                    sampled = now
                    self._sample_gpus(now)
            except Exception as exc:  # a busy or failing store: say it, keep the run supervised
                if isinstance(exc, StoreError):
                    self.trouble = self.trouble or store_trouble.cause_of(exc)
                print(f"supervisor: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            try:
                self.child.wait(TICK)
            except subprocess.TimeoutExpired:
                pass

    def _on_signal(self, signum, frame) -> None:
        self._signalled = signum  # handled in the loop, never inside a store write

    def _begin_stop(self, signum: int, now: float) -> None:
        deadline = self._kill_deadline()
        if self.forwarded is not None:
            if deadline is not None and deadline == self.stop_deadline:
                return  # the signal of the `runs kill` whose request the heartbeat already acted on
            self._signal_group(signal.SIGKILL)  # asked twice: no more grace
            return
        self.stop_deadline = deadline
        self.stop = "stopped by `mltui runs kill`" if deadline is not None else f"stopped by {signal_name(signum)}"
        self._signal_group(signum)
        self.forwarded = signum
        self.kill_at = deadline if deadline is not None else now + self.config.kill_grace_seconds

    def _kill_deadline(self) -> float | None:
        try:
            row = self.conn.execute("SELECT kill_requested FROM runs WHERE id = ?", (self.run_id,)).fetchone()
        except Exception:
            return None
        return row[0] if row else None

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.child.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def _follow_memory(self) -> None:
        """Where the command's memory is accounted (its cgroups), while it lives; cheap, so each tick."""
        try:
            if self.memory is not None:
                self.memory.follow()
        except Exception as exc:
            print(f"supervisor: cannot follow the command's memory cgroup: {exc}", file=sys.stderr, flush=True)

    def _heartbeat(self, now: float) -> None:
        peak = None
        if self.memory is not None:
            self.memory.sample()
            peak = self.memory.peak or None
        with write_tx(self.conn, self.ws.db_path):
            run_store.beat(self.conn, self.run_id, now, peak_rss=peak)
        if self.forwarded is None and self._kill_deadline() is not None:
            self._begin_stop(signal.SIGTERM, now)  # `runs kill` from another host can only leave a note

    # -- metrics.jsonl and artifacts -------------------------------------------------------------
    def _start_watching(self, spec: dict, cwd: str, started: float) -> None:
        from mltui.core.launch.artifact_watch import ArtifactWatcher, Root
        from mltui.core.launch.jsonl_tail import JsonlTail

        self.tail = JsonlTail(self.run_dir / "metrics.jsonl")
        self._tail_event_files(spec, cwd, started)
        roots = [Root(self.run_dir / "artifacts", "artifacts")]
        for folder in spec.get("watch", []):
            roots.append(Root(Path(cwd) / folder, folder, since=started - 1.0, exclude=str(self.ws.root)))
        self.watcher = ArtifactWatcher(roots)
        try:
            self.watcher.start()
        except Exception as exc:  # inotify limits: the run goes on
            print(f"supervisor: cannot watch artifacts: {exc}", file=sys.stderr, flush=True)
            self.watcher = None
            return
        for problem in self.watcher.problems:
            print(f"supervisor: {problem}", file=sys.stderr, flush=True)

    def _tail_event_files(self, spec: dict, cwd: str, started: float) -> None:
        from mltui.core.launch.tb_tail import TensorboardTail, roots_for

        roots = roots_for(cwd, spec.get("watch", []), self.run_dir)
        self.tb = TensorboardTail(roots, started - 1.0, [str(self.ws.root)], self.conn, self.run_id)

    def _read_event_files(self, columns: dict, final: bool) -> tuple[dict, dict]:
        """Scalars of the command's TensorBoard event files joined to `columns`; (columns, tags and params
        to set: hparams as params, damaged records counted as tags)."""
        if self.tb is None:
            return columns, {}
        batch = self.tb.read(final=final)
        if self.tb.problem:  # said once, in the run's own log too (where `mltui runs log` shows it)
            print(f"supervisor: {self.tb.problem}", file=sys.stderr, flush=True)
            self._say_in_output(f"mltui: {self.tb.problem}")
            self.tb.problem = None
        for key, (steps, values, times) in batch.columns.items():
            into = columns.get(key)
            if into is None:
                columns[key] = (steps, values, times)
            else:
                columns[key] = (list(into[0]) + steps, list(into[1]) + values, list(into[2]) + times)
        if batch.bad or batch.truncated:
            print(f"supervisor: TensorBoard event files: {batch.bad} damaged record(s) skipped, {batch.truncated} "
                  "cut short", file=sys.stderr, flush=True)
        return columns, self.tb.unsaid()

    def _say_in_output(self, line: str) -> None:
        try:
            fd = os.open(self.run_dir / "output.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, self.config.file_mode)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        except OSError:
            pass

    def _collect(self, final: bool = False) -> None:
        from mltui.store import metrics as metric_store

        columns = self.tail.read(final=final) if self.tail else {}
        columns, values = self._read_event_files(columns, final)
        bad = self.tail.bad if self.tail else 0
        rows, removed = self.watcher.poll(final=final) if self.watcher else ([], [])
        if any(self._unwritten):  # what a refused write left comes first, so nothing read is lost
            columns, rows, removed = self._merge_unwritten(columns, rows, removed)
        if self.watcher:
            for path in self.watcher.refused[self._reported:]:
                print(f"supervisor: refused artifact {path!r}: it points outside the watched folder",
                      file=sys.stderr, flush=True)
                self._reported += 1
        if not (columns or rows or removed or bad != self._bad_written or any(values.values())):
            return
        try:
            with write_tx(self.conn, self.ws.db_path):
                if columns:
                    metric_store.write_batch(self.conn, self.run_id, columns)
                for table, items in values.items():
                    if items:
                        run_store.set_values(self.conn, table, self.run_id, items)
                if bad != self._bad_written:
                    run_store.update_run(self.conn, self.run_id, bad_lines=bad)
                for name, size, digest, modified, location, replaced in rows:
                    if replaced is None:
                        run_store.record_artifact(self.conn, self.run_id, name, size, digest, modified, location)
                    else:  # new bytes over hashed ones: the row keeps what they replaced
                        run_store.replace_artifact(self.conn, self.run_id, name, size, digest, modified,
                                                   *replaced, location=location)
                for name in removed:
                    run_store.forget_artifact(self.conn, self.run_id, name)
        except StoreError:
            self._unwritten = (columns, list(rows), list(removed))
            raise
        self._bad_written = bad
        if self.tb is not None:
            self.tb.said(values)

    def _merge_unwritten(self, columns: dict, rows: list, removed: list) -> tuple[dict, list, list]:
        old_columns, old_rows, old_removed = self._unwritten
        self._unwritten = ({}, [], [])
        merged = {key: tuple(list(part) for part in series) for key, series in old_columns.items()}
        for key, (steps, values, times) in columns.items():
            into = merged.setdefault(key, ([], [], []))
            into[0].extend(steps)
            into[1].extend(values)
            into[2].extend(times)
        return merged, [*old_rows, *rows], [*old_removed, *removed]

    def _sample_gpus(self, now: float) -> None:
        """Log the run's own GPUs (only those it was given) as system metrics beside its training metrics."""
        from mltui.core.gpu.sources import open_gpus
        from mltui.store import metrics as metric_store

        if self._gpu_source is None:
            self._gpu_source = open_gpus(self.config.gpu_backend, workspace=self.ws)
        state = self._gpu_source.snapshot()
        step = self._gpu_samples
        columns: dict[str, tuple[list, list, list]] = {}
        for gpu in state.gpus:
            if gpu.index not in self.gpus or gpu.error:
                continue
            for key, value in (("util", gpu.util), ("mem_used_gb", gpu.mem_used / 2**30), ("power_w", gpu.power),
                               ("temp_c", gpu.temperature)):
                if value is not None:
                    columns[f"sys/gpu{gpu.index}/{key}"] = ([step], [float(value)], [now])
        if columns:
            with write_tx(self.conn, self.ws.db_path):
                metric_store.write_batch(self.conn, self.run_id, columns)
            self._gpu_samples += 1

    # -- the end -------------------------------------------------------------------------------
    def _wrap_up(self, returncode: int, started: float) -> None:
        self._reap_group()
        if self.watcher:
            self.watcher.scan()
        for attempt in range(5):
            try:
                self._collect(final=True)
                while (self.tail is not None and self.tail.more) or (self.tb is not None and self.tb.more):
                    self._collect(final=True)  # the rest of a big file, in bounded steps
                break
            except Exception as exc:
                print(f"supervisor: could not record the last metrics: {exc}", file=sys.stderr, flush=True)
                time.sleep(0.5 * (attempt + 1))
        if self.watcher:
            self.watcher.stop()
        status, reason = self._verdict(returncode)
        self._finish(status, reason, returncode, started)

    def _verdict(self, returncode: int) -> tuple[str, str]:
        """(status, reason): how the command ended, an out-of-memory kill told apart from a SIGKILL someone
        sent, and a store that could not be written for a while (ours, or the script's) named."""
        status, reason = outcome(returncode, self.stop)
        if self.stop is None and returncode == -signal.SIGKILL and self.memory is not None:
            try:
                if self.memory.oom_killed():
                    status, reason = "failed", oom_reason(self.memory.last)
            except Exception as exc:
                print(f"supervisor: cannot read the kernel's out-of-memory records: {exc}", file=sys.stderr,
                      flush=True)
        cause, dropped, unsaved = self.trouble, 0, 0
        note = store_trouble.read_note(self.run_dir)  # the script could not write its last points
        if note:
            cause = cause or note.get("cause")
            unsaved = int(note.get("unsaved") or 0)
        try:
            row = self.conn.execute("SELECT store_trouble, dropped_points FROM runs WHERE id = ?",
                                    (self.run_id,)).fetchone()
        except Exception:
            row = None
        if row:
            cause = cause or row[0]
            dropped = row[1] or 0
        if note:  # points dropped after the last count the script could write on the run
            dropped += int(note.get("dropped") or 0)
        if cause:  # a command that exited with an error may well have met the full disk itself
            reason = store_trouble.with_trouble(status, reason, cause, dropped, unsaved, blame=returncode > 0)
        return status, reason

    def _reap_group(self) -> None:
        """Stop what the command left behind in its group (data loader workers, shells)."""
        pgid = self.child.pid
        if not group_alive(pgid):
            return
        self._signal_group(signal.SIGTERM)
        end = time.time() + 2.0
        while time.time() < end:
            if not group_alive(pgid):
                return
            time.sleep(0.05)
        self._signal_group(signal.SIGKILL)

    def _finish(self, status: str, reason: str, returncode: int | None, started: float) -> None:
        now = time.time()
        peak = self.memory.peak if self.memory is not None else 0
        for attempt in range(10):  # the end of a run must be recorded: retry a busy store
            try:
                with write_tx(self.conn, self.ws.db_path):
                    run_store.mark_ended(self.conn, self.run_id, status, reason, now, exit_code=returncode,
                                         heartbeat=now, started=started)
                    if peak:
                        run_store.raise_peak_rss(self.conn, self.run_id, peak)
                store_trouble.forget_spare_note(self.run_dir)  # the script's note, if any, is in the reason now
                from mltui.core.notify.runs import run_ended

                run_ended(self.ws, self.conn, self.run_id)  # run.finished / failed (never raises, never waits)
                return
            except Exception as exc:
                if isinstance(exc, StoreError) and not self.trouble:
                    self.trouble = store_trouble.cause_of(exc)
                    reason = store_trouble.with_trouble(status, reason, self.trouble,
                                                        blame=returncode is not None and returncode > 0)
                print(f"supervisor: could not record the end ({exc}); retrying", file=sys.stderr, flush=True)
                time.sleep(min(5.0, 0.5 * (attempt + 1)))
        # the store never took it: the run folder carries the end, for whoever next finds the run dead
        store_trouble.write_note(self.run_dir, {"status": status, "reason": reason, "exit_code": returncode,
                                                "cause": self.trouble, "ended": now, "pid": os.getpid()})

    # -- environment fingerprint -----------------------------------------------------------------
    def _fingerprint(self, argv: list[str], cwd: str, spec: dict) -> None:
        from mltui.core.launch.fingerprint import fingerprint

        try:
            fp = fingerprint(argv, cwd, spec.get("params") or {})
            conn = open_writer(self.ws)
            try:
                with write_tx(conn, self.ws.db_path):
                    run_store.update_run(conn, self.run_id, git_commit=fp.get("git_commit"), git_dirty=fp.get("git_dirty"),
                                         python=fp.get("python"), env_hash=fp.get("packages_hash"),
                                         fingerprint=json.dumps(fp))
            finally:
                conn.close()
        except Exception as exc:
            print(f"supervisor: no environment fingerprint: {exc}", file=sys.stderr, flush=True)

    # -- lineage: the dataset versions the command names --------------------------------------------
    def _record_inputs(self, conn, argv: list[str], cwd: str, spec: dict) -> None:
        try:
            if conn.execute("SELECT 1 FROM dataset_versions LIMIT 1").fetchone() is None:
                return  # no datasets: nothing to look for (nor to import)
            from mltui.core.data.lineage import from_params

            from_params(self.ws, conn, self.run_id, spec.get("params") or {}, argv, cwd)
        except Exception as exc:
            print(f"supervisor: could not record the run's datasets: {exc}", file=sys.stderr, flush=True)

    def _register_models(self) -> None:
        """A finished run's artifacts that match a `[[register]]` rule of mltui.toml become model versions."""
        try:
            if run_store.run_status(self.conn, self.run_id) != "finished" or not (self.ws.project_dir / "mltui.toml").is_file():
                return
            from mltui.core.models.registry import auto_register

            for mv in auto_register(self.ws, self.conn, self.run_id):
                print(f"supervisor: registered {mv.path} as {mv.label}", file=sys.stderr, flush=True)
        except Exception as exc:
            print(f"supervisor: could not register the run's models: {exc}", file=sys.stderr, flush=True)

    def _recheck_inputs(self) -> None:
        try:
            if self.conn.execute("SELECT 1 FROM run_inputs WHERE run_id = ? AND path IS NOT NULL LIMIT 1",
                                 (self.run_id,)).fetchone() is None:
                return
            from mltui.core.data.lineage import recheck

            recheck(self.ws, self.conn, self.run_id)
        except Exception as exc:
            print(f"supervisor: could not check the run's datasets again: {exc}", file=sys.stderr, flush=True)


def group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in the group. Zombies count as gone: where the
    init process does not reap orphans (some containers) they linger, but they run nothing."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    from mltui.base.procs import proc_stat

    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for entry in entries:
        fields = proc_stat(entry) if entry.isdigit() else None
        if fields and len(fields) > 2 and fields[2] == str(pgid).encode() and fields[0] not in (b"Z", b"X"):
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m mltui.core.launch.supervisor WORKSPACE RUN_ID", file=sys.stderr)
        return 2
    store_trouble.forgiving_output()  # its log is in the run folder: a full disk must not stop it
    ws = Workspace(Path(args[0]))
    try:
        supervisor = Supervisor(ws, args[1])
    except (MltuiError, sqlite3.Error) as exc:  # the store cannot be reached from this node
        from mltui.core.launch.storeless import JOB_FILE, run_without_store

        if not (ws.run_dir(args[1]) / JOB_FILE).exists():
            raise
        return run_without_store(ws, args[1], str(exc))
    return supervisor.run()


if __name__ == "__main__":
    raise SystemExit(main())
