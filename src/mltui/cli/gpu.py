"""`mltui gpu` (like gpustat, with the run that owns each GPU process) and `mltui gpu free`."""

from __future__ import annotations

import argparse
import sys
import time

from mltui.cli.output import emit, safe, table


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("gpu", parents=[common], help="GPUs now: use, memory, and the runs on them",
                       description="Show each GPU's utilisation, memory, temperature and power, and the processes "
                       "on it with the mltui run that owns them. Without an NVIDIA driver it says why in one line.",
                       epilog="`--json --watch 1 > gpus.jsonl` records snapshots that MLTUI_GPU=replay:gpus.jsonl "
                       "replays. MLTUI_GPU=sim:4 (or --sim-gpus 4) shows four simulated GPUs.")
    p.add_argument("--json", action="store_true", help="print JSON (one object per snapshot with --watch)")
    p.add_argument("--watch", type=float, metavar="SECONDS", help="print again every SECONDS until Ctrl-C")
    p.add_argument("--sim-gpus", type=int, metavar="N", help="show N simulated GPUs instead of the real ones")
    p.add_argument("--visible", action="store_true",
                   help="only the GPUs CUDA_VISIBLE_DEVICES lets this shell see, in its order")
    p.set_defaults(handler=cmd_gpu)
    verbs = p.add_subparsers(title="verbs", metavar="VERB", parser_class=type(p))
    free = verbs.add_parser("free", parents=[common], help="GPUs with no process and enough free memory",
                            description="List the GPUs no run or process is using that have at least --mem GB "
                            "free, for scripts (`CUDA_VISIBLE_DEVICES=$(mltui gpu free -n 1)`).")
    free.add_argument("--mem", type=float, default=0.0, metavar="GB", help="free memory each GPU must have")
    free.add_argument("-n", type=int, default=None, metavar="N", help="at most N GPUs")
    # SUPPRESS: given before the verb (`mltui gpu --sim-gpus 2 free`) they must not be reset here
    free.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    free.add_argument("--sim-gpus", type=int, metavar="N", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    free.set_defaults(handler=cmd_free)


def _source(args):
    from mltui.core.gpu.sources import SimulatedGpus, open_gpus

    backend, ws = "auto", None
    try:
        from mltui.core.workspace import find_workspace

        ws = find_workspace()
        backend = ws.config().gpu_backend
    except Exception:  # no workspace is fine: GPUs are a machine's, not a project's
        pass
    if args.sim_gpus is not None:
        if args.sim_gpus < 0:
            from mltui.base.errors import UsageError

            raise UsageError("--sim-gpus takes a number of GPUs, 0 or more.")
        return SimulatedGpus(str(args.sim_gpus), workspace=ws)
    try:
        return open_gpus(backend, workspace=ws)
    except ValueError as exc:
        from mltui.base.errors import UsageError

        raise UsageError(f"{exc}.") from None


def _owners(state) -> dict[int, dict]:
    """pid -> the run that owns it (with "idle" set from the waste report), where a workspace is found."""
    from mltui.core.gpu.owners import owners

    pids = [p.pid for g in state.gpus for p in g.processes]
    if not pids:
        return {}
    try:
        from mltui.core.workspace import find_workspace

        ws = find_workspace()
    except Exception:
        return {}
    found = owners(ws, pids)
    idle = _idle(ws)
    return {pid: {**run, "idle": idle.get(run["id"])} for pid, run in found.items()}


def _idle(ws) -> dict[str, dict]:
    from contextlib import closing

    from mltui.core.gpu.waste import idle_runs
    from mltui.core.reader import open_readonly

    try:
        with closing(open_readonly(ws)) as conn:
            return idle_runs(conn, window=ws.config().gpu_idle_seconds)
    except Exception:
        return {}


def _gib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:.1f}"


def _num(v, unit: str = "", digits: int = 0) -> str:
    return "-" if v is None else f"{v:.{digits}f}{unit}"


def _print_state(state, owners: dict[int, dict]) -> None:
    if state.error:
        sys.stderr.write(f"mltui: {state.error}\n")
    if not state.gpus:
        return
    rows = [[str(g.index), safe(g.name), _num(g.util, "%"), f"{_gib(g.mem_used)}/{_gib(g.mem_total)} GiB",
             _num(g.temperature, "C"), _num(g.power, "W"), str(len(g.processes)) if not g.error else safe(g.error)]
            for g in state.gpus]
    print(table(["GPU", "NAME", "UTIL", "MEMORY", "TEMP", "POWER", "PROCS"], rows))
    procs = [p for g in state.gpus for p in g.processes]
    if procs:
        print()
        prows = []
        for p in procs:
            run = owners.get(p.pid)
            idle = run.get("idle") if run else None
            prows.append([str(p.gpu), str(p.pid), _gib(p.used_memory) + " GiB",
                          run["id"] if run else "-", safe(run["name"]) if run else "(no run)",
                          safe(run["user"]) if run and run.get("user") else "-",
                          f"idle {idle['idle_seconds'] / 60:.0f} min" if idle else ""])
        print(table(["GPU", "PID", "MEMORY", "RUN", "NAME", "USER", "WASTE"], prows))


def _as_json(state, owners: dict[int, dict]) -> dict:
    data = state.as_dict()
    idle: dict[str, dict] = {}
    for gpu in data["gpus"]:
        for proc in gpu["processes"]:
            run = owners.get(proc["pid"])
            proc["run"] = {k: run.get(k) for k in ("id", "name", "user", "status")} if run else None
            if run:
                proc["run"]["idle"] = bool(run.get("idle"))
                if run.get("idle"):
                    idle[run["id"]] = {"id": run["id"], "name": run["name"], **run["idle"]}
    data["idle_runs"] = list(idle.values())  # holding GPU memory at near-zero utilisation for a while
    return data


def cmd_gpu(args: argparse.Namespace) -> int:
    source = _source(args)
    if args.watch is not None and args.watch <= 0:
        from mltui.base.errors import UsageError

        raise UsageError("--watch takes a number of seconds above 0.")
    while True:
        state = source.snapshot()
        if args.visible:
            from mltui.core.gpu.sources import GpuState, visible

            state = GpuState(visible(state.gpus), state.error, state.source, state.taken)
        owners = _owners(state)

        def text() -> None:
            if args.watch is not None and sys.stdout.isatty():
                sys.stdout.write("\x1b[H\x1b[2J")
            _print_state(state, owners)

        # with --watch, one JSON line per snapshot (what MLTUI_GPU=replay:FILE reads back)
        emit(args, lambda: _as_json(state, owners), text, lines=args.watch is not None)
        if args.watch is None:
            return 1 if state.error and not state.gpus else 0
        try:
            time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0


def cmd_free(args: argparse.Namespace) -> int:
    source = _source(args)
    state = source.snapshot()
    need = int(args.mem * 2**30)
    free = [g for g in state.gpus if g.error is None and not g.processes and g.mem_free >= need]
    if args.n is not None:
        free = free[: max(0, args.n)]

    def text() -> int:
        if state.error and not state.gpus:
            sys.stderr.write(f"mltui: {state.error}\n")
            return 1
        print(",".join(str(g.index) for g in free))
        return 0

    return emit(args, {"error": state.error, "free": [g.as_dict() for g in free]}, text)
