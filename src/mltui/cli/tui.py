"""`mltui` (bare), `mltui tui` and `mltui demo`: the commands that open the screen."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("tui", parents=[common], help="open the TUI (the same as bare `mltui`)",
                       description="Open the TUI on the workspace found from the current folder.")
    p.add_argument("--theme", default=argparse.SUPPRESS, help="theme by name")
    p.set_defaults(handler=open_tui)

    d = sub.add_parser("demo", parents=[common], help="open the TUI on a throw-away workspace of sample runs",
                       description="Build a temporary workspace full of realistic runs (finished, failed and "
                       "still running), launch real runs of the sample projects under supervisors, and "
                       "open the TUI on it. The workspace (and its runs) go when you quit, unless --path "
                       "is given.")
    d.add_argument("--path", type=Path, help="build the demo workspace here and keep it")
    d.add_argument("--runs", type=int, default=24, help="how many runs to make (default 24)")
    d.add_argument("--no-tui", action="store_true", help="only build the workspace (with --path) and exit")
    d.add_argument("--no-launch", action="store_true",
                   help="do not launch the real sample runs (the sample projects under supervisors)")
    d.add_argument("--theme", default=argparse.SUPPRESS, help="theme by name")
    d.set_defaults(handler=cmd_demo)


def _theme(args: argparse.Namespace) -> str | None:
    return getattr(args, "theme", None)


def open_tui(args: argparse.Namespace) -> int:
    from mltui.core.workspace import find_workspace

    ws = find_workspace()  # fail in one line before the screen takes over
    if not ws.db_path.exists():
        from mltui.base.errors import UsageError

        raise UsageError(f"The workspace {ws.root} has no store yet; run `mltui init` there.")
    from mltui.tui.app import create_app

    create_app(ws, theme=_theme(args)).run()
    return 0


def _stop_runs(ws) -> None:
    """A throw-away demo must not leave runs behind: stop what it launched before deleting its folder."""
    from contextlib import closing

    from mltui.core.launch.stop import kill_run
    from mltui.core.reader import open_writer
    from mltui.core.runs.listing import active_launched

    with closing(open_writer(ws)) as conn:
        active = active_launched(conn)
    for run_id in active:
        try:
            kill_run(ws, run_id, grace=2.0, wait=5.0)
        except Exception:
            pass


def cmd_demo(args: argparse.Namespace) -> int:
    from mltui.demo.build import DemoFeeder, build_demo
    from mltui.base.errors import UsageError

    if args.runs < 1 or args.runs > 5000:
        raise UsageError("--runs must be between 1 and 5000.")
    if args.no_tui and args.path is None:
        raise UsageError("--no-tui needs --path, or the demo would be built and thrown away at once.")
    keep = args.path is not None
    where = args.path if keep else Path(tempfile.mkdtemp(prefix="mltui-demo-"))
    if keep:
        where.mkdir(parents=True, exist_ok=True)
        if (where / ".mltui").exists():
            raise UsageError(f"{where} already holds a workspace; pick an empty folder for the demo.")
    try:
        if not args.no_tui:
            sys.stderr.write("Building the demo workspace…\n")
        notes: list[str] = []
        ws, running = build_demo(where, n_runs=args.runs, notes=notes)
        for note in notes:
            sys.stderr.write(note + "\n")
        launched: list[str] = []
        if not args.no_launch:
            from mltui.demo.launch import launch_samples

            launched, note = launch_samples(ws)
            if note:
                sys.stderr.write(note + "\n")
        if args.no_tui:
            print(f"Demo workspace with {args.runs} runs in {ws.root}" +
                  (f"; {len(launched)} real runs launched" if launched else ""))
            return 0
        from mltui.tui.app import create_app

        feeder = DemoFeeder(ws, running).start()
        try:
            create_app(ws, theme=_theme(args), title="mltui demo").run()
        finally:
            feeder.stop()
            if not keep:
                _stop_runs(ws)
    finally:
        if not keep:
            shutil.rmtree(where, ignore_errors=True)
    return 0
