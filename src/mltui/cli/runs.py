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
                          "host, user, exit_code, note, stalled (stalled = true: alive but silent past "
                          "runs.stall_seconds), stalled_since. Keys with odd characters: metrics.`val acc`.")
    ls.add_argument("--where", "-w", metavar="EXPR", help="filter, e.g. \"params.lr > 0.01 and status = finished\"")
    ls.add_argument("--sort", "-s", metavar="KEY", help="sort key; '-' in front for descending, e.g. -metrics.val_acc")
    ls.add_argument("--limit", "-n", type=int, default=100, metavar="N", help="show at most N runs (0: all; default 100)")
    ls.add_argument("--group-by", "-g", metavar="SPEC",
                    help="group the runs: 'params.model,params.lr' (bare names are params; tags.NAME too), or "
                    "'*,-seed' for every param but seed; each group shows N and mean ± std [min, max] of the metrics")
    ls.add_argument("--metric", "-m", action="append", metavar="K",
                    help="with --group-by: a metric to aggregate (repeat; default the three most logged)")
    ls.add_argument("--archived", action="store_true",
                    help="include archived runs (a filter that names `archived` includes them too)")
    out = ls.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON: a list of runs with params, tags and metrics "
                     "(with --group-by: the groups and their aggregates)")
    out.add_argument("--jsonl", action="store_true", help="print JSON lines: one run per line, as they are read")
    ls.set_defaults(handler=cmd_list)

    show = verbs.add_parser("show", parents=[common], help="show one run in full",
                            description="Show one run: its fields, params, tags, metric summary and artifacts.")
    show.add_argument("run", metavar="ID", help="run id or a unique prefix of it")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=cmd_show)

    rm = verbs.add_parser("rm", parents=[common], help="remove runs and their folders",
                          description="Remove runs from the store and delete their folders (logs, artifacts). "
                          "With --where, every matching run, in batches that never hold up a run logging at the "
                          "same time; queued or running runs refuse the removal unless --force (which stops "
                          "launched runs first). Each run goes whole or not at all: an interrupted removal is "
                          "finished by running it again, and the folders it had not deleted yet by mltui gc.")
    rm.add_argument("runs", metavar="ID", nargs="*", help="run ids or unique prefixes")
    rm.add_argument("--where", "-w", metavar="EXPR", help="remove every run matching this filter")
    rm.add_argument("--archived", action="store_true", help="with --where: archived runs match too")
    rm.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    rm.add_argument("--force", action="store_true", help="also remove queued or running runs")
    rm.add_argument("--json", action="store_true", help="print the removed ids as JSON")
    rm.set_defaults(handler=cmd_rm)

    for verb, helps in (("archive", "hide runs from listings (kept in the store; --archived shows them)"),
                        ("unarchive", "bring archived runs back into listings")):
        a = verbs.add_parser(verb, parents=[common], help=helps, description=helps[0].upper() + helps[1:] + ".")
        a.add_argument("runs", metavar="ID", nargs="*", help="run ids or unique prefixes")
        a.add_argument("--where", "-w", metavar="EXPR", help="every run matching this filter")
        a.add_argument("--dry-run", action="store_true", help="say which runs, change nothing")
        a.add_argument("--json", action="store_true", help="print JSON")
        a.set_defaults(handler=cmd_archive, archive=verb == "archive")

    from mltui.cli import runs_control

    runs_control.register_verbs(verbs, common)


def cmd_list(args: argparse.Namespace) -> int:
    from mltui.base.errors import UsageError
    from mltui.core.launch.liveness import reap_lost
    from mltui.core.runs.listing import iter_runs_json, list_runs, select_ids
    from mltui.core.reader import open_workspace

    if args.limit < 0:
        raise UsageError("--limit must be 0 (no limit) or a positive number.")
    if args.metric and not args.group_by:
        raise UsageError("--metric goes with --group-by (the runs table shows the most logged metrics).")
    ws, conn = open_workspace()
    with closing(conn):
        reap_lost(ws, conn)
        if args.group_by:
            from mltui.cli.groups import list_groups

            return list_groups(args, conn)
        if args.json or args.jsonl:  # written as read, a batch at a time: flat memory at any size
            from mltui.cli.output import stream_json

            ids = select_ids(conn, args.where, args.sort, args.archived)
            stream_json(iter_runs_json(conn, ids[:args.limit] if args.limit else ids), lines=args.jsonl)
            return 0
        result = list_runs(conn, where=args.where, sort=args.sort, limit=args.limit, archived=args.archived)
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
        *([f"stalled  no output and no metric since {when(run['stalled_since'])} ({age(run['stalled_since'])})"]
          if run.get("stalled_since") is not None else []),
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
    from mltui.base.errors import MltuiError, UsageError

    if bool(args.runs) == bool(args.where):
        raise UsageError("Name the runs to remove (ids) or give --where, not both." if args.runs
                         else "Run ids or --where EXPR are required: say which runs to remove.")
    if args.where:
        return _rm_where(args)
    if args.dry_run or args.archived:
        raise UsageError("--dry-run and --archived go with --where.")
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


def _rm_where(args: argparse.Namespace) -> int:
    from mltui.base.errors import MltuiError
    from mltui.cli.progress import progress_bar
    from mltui.core.reader import open_workspace
    from mltui.core.runs.tidy import remove_where

    ws, conn = open_workspace(write=True)

    def stop(run_id: str) -> None:  # a launched run would go on unseen once its row is gone
        from mltui.core.launch.stop import kill_run

        try:
            kill_run(ws, run_id, grace=2.0)
        except MltuiError:
            pass

    with closing(conn), progress_bar("Removing runs", unit="runs", quiet=args.json) as update:
        result = remove_where(ws, conn, args.where, archived=args.archived, dry_run=args.dry_run, force=args.force,
                              progress=update, stop=stop)

    def text() -> None:
        if args.dry_run:
            print(f"Would remove {result.matched:,} runs (nothing removed: --dry-run).")
            return
        print(f"Removed {len(result.done):,} runs.")
        if result.kept:
            print(f"Kept {len(result.kept):,} that were started again meanwhile (such as {result.kept[0]}).")

    return emit(args, {"removed": [] if args.dry_run else result.done, "matched": result.matched,
                       "dry_run": args.dry_run, **({"would_remove": result.done} if args.dry_run else {}),
                       "kept": result.kept}, text)


def cmd_archive(args: argparse.Namespace) -> int:
    from mltui.base.errors import UsageError
    from mltui.cli.progress import progress_bar
    from mltui.core.reader import open_workspace
    from mltui.core.runs.listing import unique_ids
    from mltui.core.runs.tidy import archive_where

    verb = "archive" if args.archive else "unarchive"
    if bool(args.runs) == bool(args.where):
        raise UsageError(f"Name the runs to {verb} (ids) or give --where, not both." if args.runs
                         else f"Run ids or --where EXPR are required: say which runs to {verb}.")
    ws, conn = open_workspace(write=True)
    with closing(conn), progress_bar(f"{verb.capitalize()[:-1]}ing runs", unit="runs", quiet=args.json) as update:
        ids = unique_ids(conn, args.runs) if args.runs else None
        result = archive_where(ws, conn, args.where, ids, archive=args.archive, dry_run=args.dry_run, progress=update)

    def text() -> None:
        done = "Would " + verb if args.dry_run else verb.capitalize() + "d"
        print(f"{done} {len(result.done):,} runs." + (" (nothing changed: --dry-run)" if args.dry_run else ""))

    return emit(args, {verb + "d": result.done, "dry_run": args.dry_run}, text)
