"""`mltui runs log|kill|rerun`: the verbs that act on launched runs (registered by cli/runs.py), and
`follow`, which `runs log -f`, `run --wait` and `runs rerun --wait` share."""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import closing

from mltui.cli.output import emit, safe, wants_json


def register_verbs(verbs, common: argparse.ArgumentParser) -> None:
    log = verbs.add_parser("log", parents=[common], help="print a run's output (and follow it)",
                           description="Print the output of a launched run (its stdout and stderr). Escape "
                           "sequences are shown as text on a terminal; piped output is passed through as is.")
    log.add_argument("run", metavar="ID", help="run id or a unique prefix of it")
    log.add_argument("--follow", "-f", action="store_true", help="keep printing new output until the run ends")
    log.add_argument("--tail", "-n", type=int, default=None, metavar="N", help="start with only the last N lines")
    log.set_defaults(handler=cmd_log)

    kill = verbs.add_parser("kill", parents=[common], help="stop running or queued runs",
                            description="Stop runs: SIGTERM to the run's whole process group, SIGKILL after the "
                            "grace period (runs.kill_grace_seconds). A queued run is taken off the queue.")
    kill.add_argument("runs", metavar="ID", nargs="+", help="run ids or unique prefixes")
    kill.add_argument("--grace", type=float, default=None, metavar="SECONDS",
                      help="seconds between SIGTERM and SIGKILL (default from config, 10)")
    kill.add_argument("--no-wait", action="store_true", help="return once the signal is sent")
    kill.add_argument("--json", action="store_true", help="print JSON")
    kill.set_defaults(handler=cmd_kill)

    rerun = verbs.add_parser("rerun", parents=[common], help="launch a run again, maybe with other params",
                             description="Launch a new run with the same command and params as an earlier one "
                             "(changing the params given with -p); the new run links back to the original.")
    rerun.add_argument("run", metavar="ID", help="run id or a unique prefix of it")
    rerun.add_argument("-p", "--param", dest="params", action="append", default=[], metavar="KEY=VALUE",
                       help="change a param (repeatable)")
    rerun.add_argument("--queue", action="store_true", default=None, help="queue it instead of starting it now")
    rerun.add_argument("--wait", action="store_true", help="follow the output until the run ends")
    rerun.add_argument("--json", action="store_true", help="print JSON")
    rerun.set_defaults(handler=cmd_rerun)


class _Writer:
    """Where log text goes: raw bytes into a pipe; on a terminal, whole lines made safe (a line or an
    escape sequence split across two reads is held until its end arrives; a line longer than
    HOLD_LIMIT is shown in pieces rather than held without bound)."""

    HOLD_LIMIT = 1 << 20

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.held: list[bytes] = []
        self.held_size = 0

    def __call__(self, data: bytes) -> None:
        if not self.tty:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        cut = data.rfind(b"\n")
        if cut < 0:  # no line ends here: keep it (joined only once its line is complete)
            self.held.append(data)
            self.held_size += len(data)
            if self.held_size > self.HOLD_LIMIT:
                self.close()
            return
        whole = b"".join([*self.held, data[:cut]])
        self.held, self.held_size = ([data[cut + 1:]], len(data) - cut - 1) if cut + 1 < len(data) else ([], 0)
        self._show(whole.split(b"\n"))

    def _show(self, lines: list[bytes]) -> None:
        from mltui.core.runs.logfile import clean

        sys.stdout.write("".join(clean(line.decode("utf-8", errors="replace")) + "\n" for line in lines))
        sys.stdout.flush()

    def close(self) -> None:
        """Write what is held (a last line that never got its newline)."""
        if self.held and self.tty:
            data, self.held, self.held_size = b"".join(self.held), [], 0
            self._show([data])


def exit_code_of(run: dict) -> int:
    """What `--wait` exits with: the command's own exit code, or 128+N for a signal, as a shell does."""
    code = run.get("exit_code")
    if run["status"] == "finished":
        return 0
    if code is None:
        return 1
    return 128 - code if code < 0 else (code or 1)


def follow(ws, run_id: str, json_out: bool = False, start: int = 0) -> int:
    """Print the run's output from byte `start` as it grows, until the run ends; return its exit code.
    With `json_out` only the end is printed, as JSON."""
    from mltui.core.launch.liveness import reap_lost
    from mltui.core.reader import open_readonly
    from mltui.core.runs.listing import run_status, runs_by_id

    path = ws.run_dir(run_id) / "output.log"
    write = (lambda data: None) if json_out else _Writer()
    offset = start
    conn = open_readonly(ws)
    last_check = 0.0
    try:
        while True:
            status = run_status(conn, run_id)
            if status is None:
                from mltui.base.errors import MltuiError

                raise MltuiError(f"Run {run_id} was removed (from the queue or the store) while being followed.")
            offset = _copy(path, offset, write)
            if status not in ("running", "queued"):
                offset = _copy(path, offset, write)
                break
            if time.time() - last_check > 5:
                reap_lost(ws, conn)
                last_check = time.time()
            time.sleep(0.1)
        run = runs_by_id(conn, [run_id])[0]
        if not json_out:
            write.close()
    except KeyboardInterrupt:
        sys.stderr.write(f"\nmltui: stopped following; the run goes on (`mltui runs kill {run_id}` stops it).\n")
        return 130
    finally:
        conn.close()

    def text() -> None:
        if run["status"] != "finished":
            sys.stderr.write(f"mltui: run {run_id} {run['status']}: {run.get('reason') or 'no reason recorded'}.\n")

    return emit(json_out, {"id": run_id, "status": run["status"], "exit_code": run.get("exit_code"),
                           "reason": run.get("reason")}, text, code=exit_code_of(run))


def _copy(path, offset: int, write) -> int:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            while True:
                data = fh.read(1 << 16)
                if not data:
                    return offset
                write(data)
                offset += len(data)
    except FileNotFoundError:
        return offset


def cmd_log(args: argparse.Namespace) -> int:
    from mltui.core.reader import open_workspace
    from mltui.core.runs.listing import resolve_id

    ws, conn = open_workspace()
    with closing(conn):
        run_id = resolve_id(conn, args.run)
    path = ws.run_dir(run_id) / "output.log"
    start = 0
    if args.tail is not None:
        from mltui.core.runs.logfile import tail

        if args.tail < 0:
            from mltui.base.errors import UsageError

            raise UsageError("--tail takes a number of lines, 0 or more.")
        size = path.stat().st_size if path.exists() else 0
        lines = tail(path, args.tail) if args.tail else []
        text = "".join(line + "\n" for line in lines)
        _Writer()(text.encode("utf-8", errors="replace"))
        start = size
    if args.follow:
        follow(ws, run_id, start=start)
        return 0
    if args.tail is None:
        if not path.exists():
            sys.stderr.write(f"mltui: run {run_id} has no output (it was not launched by mltui, or has not started).\n")
            return 0
        writer = _Writer()
        _copy(path, 0, writer)
        writer.close()
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    from mltui.core.launch.stop import kill_run
    from mltui.core.reader import open_workspace
    from mltui.core.runs.listing import unique_ids

    ws, conn = open_workspace(write=True)
    with closing(conn):
        ids = unique_ids(conn, args.runs)
    if args.grace is not None and args.grace < 0:
        from mltui.base.errors import UsageError

        raise UsageError("--grace takes a number of seconds, 0 or more.")
    from mltui.base.errors import MltuiError

    results, problems = [], []
    for run_id in ids:  # one run that cannot be killed does not spare the others
        try:
            status = kill_run(ws, run_id, grace=args.grace, wait=0 if args.no_wait else None)
        except MltuiError as exc:
            problems.append(str(exc))
            results.append({"id": run_id, "status": None, "error": str(exc)})
            continue
        results.append({"id": run_id, "status": status})
        if not wants_json(args):  # a line as each run ends: killing the next may take its grace period
            note = "" if status != "running" else " (signalled; it has not ended yet)"
            print(f"{run_id} {status}{note}")
    emit(args, results)
    if problems:
        if len(problems) == 1 and len(ids) == 1:
            raise MltuiError(problems[0].rstrip("."))
        sys.stderr.write(f"mltui: {len(problems)} of {len(ids)} runs could not be killed: {' '.join(problems)}\n")
        return 1
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    from mltui.core.launch.commands import parse_assignments
    from mltui.core.launch.launcher import launch, rerun_launch
    from mltui.core.runs.listing import get_run
    from mltui.core.reader import open_workspace

    ws, conn = open_workspace(write=True)
    with closing(conn):
        run = get_run(conn, args.run)
    spec = rerun_launch(ws, run, parse_assignments(args.params), queue=args.queue)
    run_id = launch(ws, spec)
    if args.wait:
        return follow(ws, run_id, json_out=wants_json(args))

    def text() -> None:
        print(run_id)
        if sys.stdout.isatty():
            sys.stderr.write(f"Started {run_id}, a rerun of {run['id']} ({safe(run['name'])}): "
                             f"`mltui runs log {run_id} -f` follows it.\n")

    return emit(args, {"id": run_id, "rerun_of": run["id"], "command": spec.argv, "params": spec.params}, text)

