"""`mltui runs list|show|rm`: finding runs (filtered, sorted), one run in full, and removing runs.

The verbs that act on launched runs (log, kill, rerun) live in cli/runs_control.py."""

from __future__ import annotations

import argparse
import shlex
from contextlib import closing

from mltui.cli.output import age, emit, metric_table, safe, span, table, when
from mltui.base.values import display


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("runs", parents=[common], help="list, show and remove runs",
                       description="List, show and remove runs.")
    verbs = p.add_subparsers(title="verbs", metavar="VERB", required=True, parser_class=type(p))

    ls = verbs.add_parser("list", parents=[common], help="list runs, filtered and sorted",
                          description="List runs, newest first.",
                          epilog="WHERE examples: \"params.lr > 0.01 and metrics.val_acc >= 0.9\", "
                          "\"status in (running, queued)\", \"name like 'resnet%' and created > 2d\", "
                          "\"not tags.team = vision\", \"params.opt is null\". Fields: params.NAME, metrics.NAME "
                          "(latest value), tags.NAME, id, name, kind, status, created, started, ended, duration, "
                          "host, user, exit_code, note. Keys with odd characters: metrics.`val acc`.")
    ls.add_argument("--where", "-w", metavar="EXPR", help="filter, e.g. \"params.lr > 0.01 and status = finished\"")
    ls.add_argument("--sort", "-s", metavar="KEY", help="sort key; '-' in front for descending, e.g. -metrics.val_acc")
    ls.add_argument("--limit", "-n", type=int, default=100, metavar="N", help="show at most N runs (0: all; default 100)")
    ls.add_argument("--json", action="store_true", help="print JSON: a list of runs with params, tags and metrics")
    ls.set_defaults(handler=cmd_list)

    show = verbs.add_parser("show", parents=[common], help="show one run in full",
                            description="Show one run: its fields, params, tags, metric summary and artifacts.")
    show.add_argument("run", metavar="ID", help="run id or a unique prefix of it")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=cmd_show)

    rm = verbs.add_parser("rm", parents=[common], help="remove runs and their folders",
                          description="Remove runs from the store and delete their folders (logs, artifacts).")
    rm.add_argument("runs", metavar="ID", nargs="+", help="run ids or unique prefixes")
    rm.add_argument("--force", action="store_true", help="also remove queued or running runs")
    rm.add_argument("--json", action="store_true", help="print the removed ids as JSON")
    rm.set_defaults(handler=cmd_rm)

    from mltui.cli import runs_control

    runs_control.register_verbs(verbs, common)


def cmd_list(args: argparse.Namespace) -> int:
    from mltui.core.launch.liveness import reap_lost
    from mltui.core.runs.listing import list_runs
    from mltui.core.reader import open_workspace

    ws, conn = open_workspace()
    with closing(conn):
        reap_lost(ws, conn)
        result = list_runs(conn, where=args.where, sort=args.sort, limit=args.limit)
    return emit(args, result.runs, lambda: _print_list(args, result))


def _print_list(args: argparse.Namespace, result) -> None:
    from mltui.core.runs.listing import duration, pick_columns, status_label

    if not result.runs:
        print("No runs match." if args.where else "No runs yet: log one with mltui.init() in a training script.")
        return
    params = pick_columns(result.runs, "params", 3, varying=True)
    metrics = pick_columns(result.runs, "metrics", 3, varying=False)
    headers = ["ID", "STATUS", "NAME", "AGE", "TIME", *params, *metrics]
    rows = []
    for run in result.runs:
        rows.append([
            run["id"], status_label(run), run["name"], age(run["created"]), span(duration(run)),
            *(display(run["params"].get(k)) if k in run["params"] else "-" for k in params),
            *(display(run["metrics"][k]["last"]) if k in run["metrics"] else "-" for k in metrics),
        ])
    print(table(headers, rows))
    if result.total > len(result.runs):
        import sys

        sys.stderr.write(f"({len(result.runs)} of {result.total} runs shown; --limit 0 shows all)\n")


def cmd_show(args: argparse.Namespace) -> int:
    from mltui.core.launch.liveness import reap_lost
    from mltui.core.runs.listing import get_run
    from mltui.core.reader import open_workspace

    ws, conn = open_workspace()
    with closing(conn):
        reap_lost(ws, conn)
        run = get_run(conn, args.run)
    return emit(args, run, lambda: _print_run(run))


def _print_run(run: dict) -> None:
    from mltui.core.runs.listing import duration

    command = run.get("command")
    lines = [
        f"run      {run['id']}",
        f"name     {safe(run['name'])}",
        f"status   {run['status']}" + (f" (exit code {run['exit_code']})" if run.get("exit_code") is not None else ""),
        *([f"reason   {safe(run['reason'])}"] if run.get("reason") else []),
        f"kind     {safe(run['kind'])}",
        f"created  {when(run['created'])}  ({age(run['created'])})",
        f"duration {span(duration(run))}",
        f"host     {safe(run.get('host') or '-')}   user {safe(run.get('user') or '-')}",
    ]
    if command:
        lines.append(f"command  {safe(shlex.join(command) if isinstance(command, list) else command)}")
    if run.get("git_commit"):
        lines.append(f"git      {run['git_commit'][:12]}{' (dirty)' if run.get('git_dirty') else ''}")
    if run.get("cwd"):
        lines.append(f"cwd      {safe(run['cwd'])}")
    if run.get("gpus"):
        hours = len(run["gpus"]) * (duration(run) or 0) / 3600
        peaks = [m["max"] for k, m in run["metrics"].items() if k.startswith("sys/gpu") and k.endswith("/mem_used_gb")]
        peak = f", peak {max(peaks):.1f} GB" if peaks and max(peaks) is not None else ""
        lines.append(f"gpus     {', '.join(str(g) for g in run['gpus'])}  ({hours:.2f} GPU-hours{peak})")
    if run.get("peak_rss"):
        from mltui.base.text import gigabytes

        lines.append(f"memory   peak RSS {gigabytes(run['peak_rss'])}")
    if run.get("store_trouble") or run.get("dropped_points"):
        dropped = run.get("dropped_points") or 0
        lines.append(f"store    not writable for a while ({safe(run.get('store_trouble') or 'unknown cause')}); "
                     f"{dropped:,} metric points dropped")
    if run.get("rerun_of"):
        lines.append(f"rerun of {run['rerun_of']}")
    if run.get("bad_lines"):
        lines.append(f"bad metrics.jsonl lines: {run['bad_lines']}")
    if run.get("note"):
        lines.append(f"note     {safe(run['note'])}")
    print("\n".join(lines))
    for title, values in (("params", run["params"]), ("tags", run["tags"])):
        if values:
            print(f"\n{title}")
            print(table(["KEY", "VALUE"], [[k, display(v)] for k, v in values.items()]))
    if run["metrics"]:
        print("\nmetrics")
        print(metric_table(run["metrics"]))
    if run["artifacts"]:
        print("\nartifacts")
        print(table(["PATH", "SIZE", "SHA256"],
                    [[a["path"], str(a["size"]), (a["sha256"] or "")[:12]] for a in run["artifacts"]]))
    if run["data"]:
        print("\ndata")
        print(table(["DATASET", "VERSION", "HOW", "NOTE"],
                    [[d["dataset"], f"v{d['seq']} {d['version'][:12]}" if d["seq"] else d["version"][:12], d["how"],
                      "changed on disk during the run" if d["changed"] else ""] for d in run["data"]]))


def cmd_rm(args: argparse.Namespace) -> int:
    from mltui.core.runs.listing import ACTIVE, remove_run, runs_by_id, unique_ids
    from mltui.core.reader import open_workspace
    from mltui.base.errors import MltuiError

    ws, conn = open_workspace(write=True)
    with closing(conn):
        ids = unique_ids(conn, args.runs)  # every name checked before anything goes
        active = [run for run in runs_by_id(conn, ids) if run["status"] in ACTIVE]
        if active and not args.force:
            raise MltuiError(f"Run {active[0]['id']} is {active[0]['status']}; stop it first or pass --force.")
        for run in active:  # a launched run would go on unseen once its row is gone: stop it first
            if run.get("spec") and run["status"] == "running":
                from mltui.core.launch.stop import kill_run

                try:
                    kill_run(ws, run["id"], grace=2.0)
                except MltuiError:
                    pass
        removed = [remove_run(ws, conn, run_id, force=args.force)["id"] for run_id in ids]

    def text() -> None:
        for run_id in removed:
            print(f"Removed {run_id}")

    return emit(args, {"removed": removed}, text)
