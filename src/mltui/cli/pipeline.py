"""`mltui repro` and `mltui pipeline status|show|log`: stages from mltui.toml, re-run where changed."""

from __future__ import annotations

import argparse
import sys

from mltui.cli.output import age, emit, safe, span, table


def register(sub, common: argparse.ArgumentParser) -> None:
    r = sub.add_parser(
        "repro", parents=[common], help="run the pipeline's stages that changed (restoring from the run cache)",
        description="Run the stages of mltui.toml's [stages] whose command, params or deps changed since their last "
        "successful run, or whose outs are missing or modified, and what depends on them. A stage whose exact "
        "inputs ran before has its outs restored from the run cache instead of running. Each executed stage is a "
        "run under one pipeline run. Naming stages runs them and what they need.",
        epilog="Examples: `mltui repro`, `mltui repro train -p train.lr=0.1`, `mltui repro --dry-run`, "
        "`mltui repro --on slurm`. Exit code 1 when a stage failed.")
    r.add_argument("stages", nargs="*", metavar="STAGE", help="stages to bring up to date (default: all)")
    r.add_argument("-p", "--param", dest="params", action="append", default=[], metavar="STAGE.KEY=VALUE",
                   help="override a stage's param for this repro (repeatable), e.g. -p train.lr=0.1")
    r.add_argument("--force", action="store_true", help="run the named stages (or all) even if up to date, "
                   "without the run cache")
    r.add_argument("--dry-run", action="store_true", help="say what would run and why; run nothing")
    r.add_argument("--keep-going", action="store_true", help="after a stage fails, go on with the branches "
                   "that do not depend on it")
    r.add_argument("--on", choices=("local", "slurm"), default="local",
                   help="run stages on this machine (default) or submit them all to Slurm with afterok dependencies")
    r.add_argument("--json", action="store_true", help="print JSON: each stage's outcome")
    r.set_defaults(handler=cmd_repro)

    p = sub.add_parser("pipeline", parents=[common], help="the pipeline's stages: status, DAG, past runs",
                       description="Inspect the pipeline declared in mltui.toml's [stages].")
    verbs = p.add_subparsers(title="verbs", metavar="VERB", parser_class=type(p))
    st = verbs.add_parser("status", parents=[common], help="each stage: up to date, never run, or changed and why",
                          description="For each stage: up to date, never run, or changed with every reason (dep "
                          "files added, removed or modified; params changed from what to what; the command; outs "
                          "missing or modified; upstream changed). Runs nothing.")
    st.add_argument("stages", nargs="*", metavar="STAGE", help="only these stages and what they need")
    st.add_argument("-p", "--param", dest="params", action="append", default=[], metavar="STAGE.KEY=VALUE",
                    help="as if these params were given to repro")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(handler=cmd_status)
    sh = verbs.add_parser("show", parents=[common], help="the DAG drawn in text",
                          description="Draw the stages and what each reads from which, with deps and outs.")
    sh.add_argument("--json", action="store_true", help="print JSON: stages, parents, deps, outs")
    sh.set_defaults(handler=cmd_show)
    lg = verbs.add_parser("log", parents=[common], help="past pipeline runs and their stages",
                          description="The last pipeline runs (newest first), each with its stages' outcomes.")
    lg.add_argument("-n", "--limit", type=int, default=10, metavar="N", help="how many pipeline runs (default 10)")
    lg.add_argument("--json", action="store_true", help="print JSON")
    lg.set_defaults(handler=cmd_log)
    p.set_defaults(handler=lambda args: (p.print_help(), 0)[1])


def _load(args: argparse.Namespace, check_deps: bool = True):
    from mltui.base.errors import MltuiError
    from mltui.core.launch.commands import find_project_file
    from mltui.core.pipeline.repro import parse_overrides
    from mltui.core.pipeline.stages import load_pipeline
    from mltui.core.workspace import find_workspace

    ws = find_workspace()
    path = find_project_file(stop=ws.project_dir)
    if path is None:
        raise MltuiError(f"There is no mltui.toml here or above (up to {ws.project_dir}); declare stages in one "
                         "with [stages.NAME] tables (run, deps, outs).")
    pipe = load_pipeline(path, check_deps=check_deps)
    overrides = {}
    if getattr(args, "params", None):
        from mltui.core.launch.commands import parse_assignments

        overrides = parse_overrides(pipe, parse_assignments(args.params))
    return ws, pipe, overrides


def _say_step(step) -> None:
    """One line on stderr per stage event, so --json's stdout stays clean."""
    if step.state == "running":
        where = f"job {step.job_id}" if step.job_id else f"run {step.run_id}"
        why = f" ({'; '.join(step.reasons)})" if step.reasons else ""
        line = f"{step.stage}: running as {where}{why}"
    elif step.state == "would run":
        line = f"{step.stage}: would run ({'; '.join(step.reasons)})"
    elif step.state in ("done", "restored"):
        took = f" in {step.ended - step.started:.1f}s" if step.started and step.ended else ""
        line = f"{step.stage}: {'done' if step.state == 'done' else 'restored from the run cache'}{took}"
    elif step.state == "up to date":
        line = f"{step.stage}: up to date"
    else:
        line = f"{step.stage}: {step.state}" + (f" ({step.reason})" if step.reason else "")
    sys.stderr.write(safe(line) + "\n")
    sys.stderr.flush()


def cmd_repro(args: argparse.Namespace) -> int:
    from mltui.core.pipeline.repro import Options, Repro

    ws, pipe, overrides = _load(args)
    options = Options(targets=list(args.stages), overrides=overrides, force=args.force, dry_run=args.dry_run,
                      keep_going=args.keep_going, slurm={} if args.on == "slurm" else None)
    result = Repro(ws, pipe, options, report=_say_step).run()
    code = 0 if result.ok else 1

    def text() -> None:
        if result.nothing_done:
            print("Nothing to do: every stage is up to date.")
            return
        if args.dry_run:
            n = sum(1 for s in result.steps if s.state == "would run")
            print(f"{n} stage(s) would run; nothing was run (--dry-run).")
            return
        counts = {}
        for s in result.steps:
            counts[s.state] = counts.get(s.state, 0) + 1
        print(f"Pipeline run {result.pipeline_id}: " + ", ".join(f"{n} {st}" for st, n in counts.items()) + ".")

    return emit(args, lambda: {"pipeline_id": result.pipeline_id, "ok": result.ok,
                               "nothing_to_do": result.nothing_done,
                               "stages": [s.as_dict() for s in result.steps]}, text, code=code)


def cmd_status(args: argparse.Namespace) -> int:
    from mltui.core.pipeline.status import pipeline_status
    from mltui.core.reader import open_writer

    ws, pipe, overrides = _load(args, check_deps=False)
    conn = open_writer(ws)
    try:
        statuses = pipeline_status(ws, conn, pipe, overrides, list(args.stages))
    finally:
        conn.close()

    def text() -> None:
        for st in statuses:
            head = f"{st.stage}: {st.state}" + (f" (running as run {st.running})" if st.running else "")
            print(safe(head))
            for line in st.as_dict()["why"]:
                print(safe(f"    {line}"))
        stale = sum(1 for st in statuses if st.state != "up to date")
        print("Everything is up to date." if not stale else f"{stale} of {len(statuses)} stage(s) need `mltui repro`.")

    return emit(args, lambda: {"stages": [st.as_dict() for st in statuses]}, text)


def cmd_show(args: argparse.Namespace) -> int:
    from mltui.core.pipeline.stages import depths

    _ws, pipe, _ = _load(args, check_deps=False)
    depth = depths(pipe)

    def text() -> None:
        for name, stage in pipe.stages.items():
            pad = "    " * depth[name]
            parents = pipe.parents[name]
            arrow = f"  <- {', '.join(parents)}" if parents else ""
            print(safe(f"{pad}{'└─ ' if depth[name] else ''}{name}{arrow}"))
            inner = pad + ("   " if depth[name] else "") + "   "
            if stage.deps:
                print(safe(f"{inner}deps: {', '.join(stage.deps)}"))
            if stage.products:
                print(safe(f"{inner}outs: {', '.join(stage.products)}"))

    data = {"stages": [{"name": n, "parents": pipe.parents[n], "depth": depth[n], "deps": s.deps, "outs": s.outs,
                        "metrics": s.metrics, "params": s.params, "run": s.template, "kind": s.kind, "gpus": s.gpus}
                       for n, s in pipe.stages.items()]}
    return emit(args, data, text)


def cmd_log(args: argparse.Namespace) -> int:
    from mltui.core.pipeline.state import pipeline_runs, steps
    from mltui.core.reader import open_workspace

    _ws, conn = open_workspace()
    try:
        runs = pipeline_runs(conn, max(1, args.limit))
        for run in runs:
            run["stages"] = steps(conn, run["id"])
    finally:
        conn.close()

    def text() -> None:
        if not runs:
            print("No pipeline has run in this workspace yet (`mltui repro` runs one).")
            return
        for run in runs:
            print(safe(f"{run['id']}  {run['status']:<8}  {age(run['created'])}  {run['reason'] or ''}"))
            rows = [[s["stage"], s["state"], s["run_id"] or "-",
                     span(s["ended"] - s["started"]) if s["ended"] and s["started"] else "-", s["reason"] or ""]
                    for s in run["stages"]]
            for line in table(["stage", "state", "run", "took", "why"], rows).splitlines():
                print("    " + line)

    return emit(args, runs, text)
