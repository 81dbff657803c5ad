"""`mltui run` and `mltui sweep`: start commands from mltui.toml (or any command) under a supervisor,
now, through the workspace queue, or as Slurm batch jobs."""

from __future__ import annotations

import argparse
import sys

from mltui.cli.output import emit, safe, wants_json

EPILOG = (
    "Examples: `mltui run train -p lr=0.1 -p epochs=3`; `mltui run -- python train.py --lr 0.1`; "
    "`mltui run train --queue --gpus 1 --gpu-mem 20`. A named command comes from the nearest mltui.toml; "
    "its template is split into arguments first and each {param} is filled inside its argument, so a value "
    "never goes through a shell. `python` in a command means the Python mltui runs in. The run id is printed "
    "at once and the run goes on after this command (and your SSH session) ends."
)


def _launch_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-p", "--param", dest="params", action="append", default=[], metavar="KEY=VALUE",
                   help="set a param (repeatable); values are typed like TOML: 3, 0.1, true, text")
    p.add_argument("--queue", action="store_true", help="put the run in the workspace queue instead of starting it now")
    p.add_argument("--gpus", type=int, default=0, metavar="N", help="GPUs the run needs (given through CUDA_VISIBLE_DEVICES)")
    p.add_argument("--gpu-mem", type=float, default=None, metavar="GB", help="free memory each of those GPUs must have")
    p.add_argument("--note", help="a note kept on the run")
    p.add_argument("--parent", metavar="ID", help="the run this one belongs to (an eval points at the run it evaluates)")
    p.add_argument("--json", action="store_true", help="print JSON")
    slurm = p.add_argument_group("Slurm", "with --on slurm the run is a batch job; defaults come from [slurm] in "
                                 ".mltui/config.toml, and --gpus becomes --gres=gpu:N")
    slurm.add_argument("--on", choices=("local", "slurm"), default=None,
                       help="where to run: this machine (default) or a Slurm cluster")
    slurm.add_argument("--partition", metavar="P", help="the Slurm partition")
    slurm.add_argument("--time", metavar="T", help="the job's time limit (minutes, H:MM:SS or D-HH:MM:SS)")
    slurm.add_argument("--mem", metavar="M", help="memory for the job, like 32G")
    slurm.add_argument("--account", metavar="A", help="the Slurm account to charge")


def _slurm(args: argparse.Namespace) -> dict | None:
    """Slurm options, or None for this machine; a Slurm option without --on slurm is a mistake."""
    from mltui.base.errors import UsageError

    given = {k: getattr(args, k) for k in ("partition", "time", "mem", "account") if getattr(args, k)}
    if args.on != "slurm":
        if given:
            raise UsageError(f"--{next(iter(given))} is a Slurm option: add --on slurm.")
        return None
    return given


def register(sub, common: argparse.ArgumentParser) -> None:
    run = sub.add_parser("run", parents=[common], help="launch a command under a supervisor",
                         description="Launch a named command from mltui.toml, or any command given after --, "
                         "detached under a supervisor that records its output, metrics, artifacts and exit.",
                         epilog=EPILOG)
    run.add_argument("name", nargs="?", metavar="COMMAND", help="a command from mltui.toml (omit with -- ARGV)")
    run.add_argument("--name", dest="run_name", metavar="NAME", help="the run's name (default: command-xxxx)")
    run.add_argument("--wait", action="store_true", help="follow the output until the run ends; exit with its exit code")
    _launch_options(run)
    run.set_defaults(handler=cmd_run, accepts_argv=True)

    sweep = sub.add_parser("sweep", parents=[common], help="queue one run per combination of param values",
                           description="Queue one run of a named command for every combination of the given "
                           "values; the queue worker starts them as resources allow (queue.max_parallel, GPUs).",
                           epilog="Example: `mltui sweep train -p lr=0.1,0.01,0.001 -p bs=32,64` queues 6 runs.")
    sweep.add_argument("name", metavar="COMMAND", help="a command from mltui.toml")
    _launch_options(sweep)
    sweep.set_defaults(handler=cmd_sweep)


def _command(ws, name: str):
    from mltui.core.launch.commands import find_project_file, load_commands
    from mltui.base.errors import MltuiError, UsageError

    path = find_project_file(stop=ws.project_dir)
    if path is None:
        raise MltuiError(f"There is no mltui.toml here or above (up to {ws.project_dir}) to define {name!r}; "
                         "write one, or run a command directly with `mltui run -- COMMAND ...`.")
    commands = load_commands(path)
    if name not in commands:
        from mltui.base.text import safe

        known = ", ".join(safe(c) for c in commands) or "none"
        raise UsageError(f"{path} has no command {safe(name)!r} (it has: {known}).")
    return commands[name]


def _workspace_and_parent(prefix: str | None):
    """The workspace (its store is opened by the launch itself) and the full id of --parent, if given."""
    from contextlib import closing

    from mltui.core.workspace import find_workspace
    from mltui.core.reader import open_workspace
    from mltui.core.runs.listing import resolve_id

    if not prefix:
        ws = find_workspace()
        if not ws.db_path.exists():
            from mltui.base.errors import StoreError

            raise StoreError(f"The workspace {ws.root} has no store yet; run `mltui init` there.")
        return ws, None
    ws, conn = open_workspace(write=True)
    with closing(conn):
        return ws, resolve_id(conn, prefix)


def cmd_run(args: argparse.Namespace) -> int:
    from mltui.core.launch.commands import parse_assignments
    from mltui.base.errors import UsageError
    from mltui.core.launch.launcher import Launch, launch

    argv = getattr(args, "argv", None)
    if argv is not None and args.name:
        raise UsageError("Give either a command name from mltui.toml or a command after --, not both.")
    if argv is None and not args.name:
        raise UsageError("Name a command from mltui.toml, or give one after --, e.g. `mltui run -- python train.py`.")
    ws, parent = _workspace_and_parent(args.parent)
    params = parse_assignments(args.params)
    slurm = _slurm(args)
    common = dict(params=params, name=args.run_name, note=args.note, queue=args.queue, gpus=args.gpus,
                  gpu_mem=args.gpu_mem, parent_id=parent, slurm=slurm)
    spec = Launch(argv, **common) if argv is not None else Launch(command=_command(ws, args.name), **common)
    run_id = launch(ws, spec)
    queued = args.queue or slurm is not None
    if args.wait:
        from mltui.cli.runs_control import follow

        return follow(ws, run_id, json_out=wants_json(args))

    def data() -> dict:
        out = {"id": run_id, "status": "queued" if queued else "running", "command": spec.argv, "params": spec.params}
        if slurm is not None:
            out["job_id"] = _job_id(ws, run_id)
        return out

    def text() -> None:
        print(run_id)
        if sys.stdout.isatty():
            what = f"Submitted {run_id} to Slurm (job {_job_id(ws, run_id)})" if slurm is not None else \
                f"{'Queued' if args.queue else 'Started'} {run_id}"
            sys.stderr.write(f"{what}: `mltui runs log {run_id} -f` follows its output, `mltui runs kill {run_id}` "
                             "stops it.\n")

    return emit(args, data, text)


def _job_id(ws, run_id: str) -> str | None:
    from contextlib import closing

    from mltui.core.reader import open_writer
    from mltui.core.runs.listing import job_id

    with closing(open_writer(ws)) as conn:
        return job_id(conn, run_id)


def cmd_sweep(args: argparse.Namespace) -> int:
    from mltui.core.launch.commands import parse_assignments, sweep_grid
    from mltui.core.launch.launcher import Launch, launch

    ws, parent = _workspace_and_parent(args.parent)
    command = _command(ws, args.name)
    grid = sweep_grid(parse_assignments(args.params, sweep=True))
    slurm = _slurm(args)
    if slurm is not None and args.queue:
        from mltui.base.errors import UsageError

        raise UsageError("--queue is for this machine's queue; Slurm queues the job itself.")
    launches = [Launch(command=command, params=combo, note=args.note, queue=slurm is None, gpus=args.gpus,
                       gpu_mem=args.gpu_mem, parent_id=parent, slurm=slurm) for combo in grid]  # every one checked first
    from mltui.core.launch.launcher import ensure_worker

    ids: list[str] = []
    try:
        for one in launches:
            ids.append(launch(ws, one, wake_queue=False))
    finally:
        if ids and slurm is None:  # what was queued before a failure still gets a worker
            ensure_worker(ws)

    def text() -> None:
        for run_id, one in zip(ids, launches):
            print(f"{run_id}  " + " ".join(f"{k}={safe(v)}" for k, v in one.params.items()))
        if sys.stdout.isatty():
            where = "Submitted {n} runs to Slurm; `mltui runs list` shows them." if slurm is not None else \
                "Queued {n} runs; `mltui queue list` shows them."
            sys.stderr.write(where.format(n=len(ids)) + "\n")

    return emit(args, [{"id": run_id, "params": one.params} for run_id, one in zip(ids, launches)], text)
