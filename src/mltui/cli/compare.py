"""`mltui compare`, `mltui views list|rm` and `mltui export`: comparing runs (best-of tables, param
diffs, terminal charts), the saved comparison views, and runs or metric points written to files."""

from __future__ import annotations

import argparse
import shutil
import sys
from contextlib import closing

from mltui.cli.output import emit, safe, table
from mltui.base.values import display

MAX_RUNS = 50


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("compare", parents=[common], help="compare runs: best-of table, param diff, charts",
                       description="Compare runs: for each metric the last value, the best value and its step "
                       "(the best run marked *), the params that differ, and with --plot the curves drawn over "
                       "each other. Better is inferred from the name (loss down, acc up) unless config.toml's "
                       "[compare.direction] says otherwise.")
    p.add_argument("runs", metavar="ID", nargs="*", help="run ids or unique prefixes")
    p.add_argument("--where", "-w", metavar="EXPR", help="compare every run matching this filter (at most 50)")
    p.add_argument("--view", metavar="NAME", help="open a saved view")
    p.add_argument("--metric", "-m", action="append", metavar="K", help="metric to compare (repeat; default all)")
    p.add_argument("--plot", action="store_true", help="draw the chart of each chosen metric in the terminal")
    p.add_argument("--axis", choices=["step", "time", "relative"], help="x axis of the chart (default step)")
    p.add_argument("--smooth", type=float, metavar="W", help="EMA smoothing weight in [0, 1) (default 0)")
    p.add_argument("--log-y", action="store_true", default=None, help="log-scale y axis")
    p.add_argument("--clip", action="store_true", default=None, help="clip outliers out of the y range")
    p.add_argument("--all-params", action="store_true", help="show every param, not only those that differ")
    p.add_argument("--save", metavar="NAME", help="save this comparison as a named view")
    p.add_argument("--group-by", "-g", metavar="SPEC",
                   help="compare groups of runs instead: 'params.model,params.lr' or '*,-seed' (every param but "
                   "seed); each group shows N and mean ± std [min, max], and --plot draws each group's mean "
                   "over a band (--band). A saved view that groups opens grouped")
    p.add_argument("--band", choices=["std", "minmax", "none"],
                   help="with --group-by --plot: the band drawn around each group's mean, ± std (the default), "
                   "min–max or none")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON")
    fmt.add_argument("--csv", action="store_true", help="print the metric table as CSV")
    p.set_defaults(handler=cmd_compare)

    v = sub.add_parser("views", parents=[common], help="list or remove saved comparison views",
                       description="Saved comparisons (made with `mltui compare ... --save NAME` or ctrl+s in the "
                       "Compare pane).")
    verbs = v.add_subparsers(title="verbs", metavar="VERB", required=True, parser_class=type(p))
    ls = verbs.add_parser("list", parents=[common], help="list saved views")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_views_list)
    rm = verbs.add_parser("rm", parents=[common], help="remove a saved view")
    rm.add_argument("name")
    rm.set_defaults(handler=cmd_views_rm)

    e = sub.add_parser("export", parents=[common], help="write runs or metric points to CSV, Parquet or JSON",
                       description="Export through polars. `runs`: one row per run with params.*, metrics.* "
                       "(latest values) and tags.* columns. `metrics`: one row per point (run_id, key, step, "
                       "value, time).")
    e.add_argument("what", choices=["runs", "metrics"])
    e.add_argument("--where", "-w", metavar="EXPR", help="only runs matching this filter")
    e.add_argument("--format", "-f", choices=["csv", "parquet", "json"], default=None,
                   help="file format (default: from the file name, else csv)")
    e.add_argument("-o", "--output", metavar="FILE", required=True, help="file to write ('-' for stdout)")
    e.set_defaults(handler=cmd_export)


def _view_from_args(args, conn):
    from mltui.core.runs.views import View, get_view

    view = get_view(conn, args.view) if args.view else View()
    if args.runs:
        view.runs, view.where = list(args.runs), None
    if args.where:
        view.where, view.runs = args.where, [] if not args.runs else view.runs
    if args.metric:
        view.metrics = list(args.metric)
    if args.axis:
        view.axis = args.axis
    if args.smooth is not None:
        view.smoothing = args.smooth
    if args.log_y:
        view.log_y = True
    if args.clip:
        view.clip = True
    return view.check()


def full_ids(conn, view):
    """The view with its run ids written out in full and once each (prefixes can turn ambiguous later)."""
    from mltui.core.runs.listing import unique_ids

    if view.runs:
        view.runs = unique_ids(conn, view.runs)
    return view


def resolve_runs(conn, view) -> list[dict]:
    """The runs of a view (ids, or its --where now), with params and metric summaries."""
    from mltui.base.errors import UsageError
    from mltui.core.runs.listing import list_runs, runs_by_id, unique_ids

    if view.runs:
        runs = runs_by_id(conn, unique_ids(conn, view.runs), details=True)
    else:
        result = list_runs(conn, where=view.where, limit=MAX_RUNS + 1)
        runs = result.runs
    if len(runs) > MAX_RUNS:
        raise UsageError(f"Compare at most {MAX_RUNS} runs at once; narrow the filter.")
    if not runs:
        raise UsageError("No runs to compare: name some ids or a --where that matches runs.")
    return runs


def cmd_compare(args: argparse.Namespace) -> int:
    from mltui.chart import buckets_for
    from mltui.core.runs.compare import clip_limits, compare, load_series
    from mltui.base.errors import UsageError
    from mltui.core.runs.views import save_view
    from mltui.core.reader import open_workspace

    if not args.runs and not args.where and not args.view:
        raise UsageError("Name runs to compare (ids), or give --where or --view.")
    if args.group_by or (args.view and _saved_grouping(args.view)):
        return compare_groups(args)
    if args.band:
        raise UsageError("--band goes with --group-by.")
    ws, conn = open_workspace(write=bool(args.save))
    with closing(conn):
        view = full_ids(conn, _view_from_args(args, conn))
        runs = resolve_runs(conn, view)
        known = {k for r in runs for k in r["metrics"]}
        missing = [k for k in view.metrics if k not in known]
        if missing:
            raise UsageError(f"None of these runs has the metric {missing[0]!r}.")
        comp = compare(conn, runs, view.metrics or None, ws.config().directions)
        charts = []
        if args.plot:
            width, height = shutil.get_terminal_size((100, 30))
            keys = comp.metrics[:6]
            for key in keys:
                series = load_series(conn, [r["id"] for r in runs], key, view.axis, view.smoothing,
                                     buckets=buckets_for(width, len(runs)))
                charts.append((key, series))
        if args.save:
            save_view(conn, args.save, view)

    def text() -> None:
        if args.csv:
            _print_csv(comp)
        else:
            _print_text(comp, args.all_params)

    emit(args, lambda: _as_json(comp), text)
    if charts:
        from mltui.chart import draw

        names = {r["id"]: r["name"] for r in runs}
        for key, series in charts:
            print()
            print(draw(series, [safe(names[s.run_id]) for s in series], width, max(10, min(height - 4, 30)),
                       title=key, axis=view.axis, log_y=view.log_y,
                       ylim=clip_limits(series) if view.clip else None, colour=sys.stdout.isatty()))
    if args.save:
        sys.stderr.write(f"Saved view {args.save!r}.\n")
    return 0


def _saved_grouping(name: str) -> str | None:
    """The --group-by spec a saved view keeps (None when it compares single runs)."""
    from mltui.core.reader import open_workspace
    from mltui.core.runs.views import get_view

    _, conn = open_workspace()
    with closing(conn):
        return get_view(conn, name).group_by


def compare_groups(args: argparse.Namespace) -> int:
    """`compare --group-by`: the runs named (ids, --where or --view; no cap on how many) in groups, a table
    per metric; with --plot each group's mean drawn, its legend giving N."""
    from mltui.base.errors import UsageError
    from mltui.cli.groups import group_json, print_groups, shown_metrics
    from mltui.core.reader import open_workspace
    from mltui.core.runs.compare import direction
    from mltui.core.runs.groups import expand_group_by, group_runs, group_series, param_keys

    if args.save or args.csv:
        raise UsageError("--save and --csv do not go with --group-by.")
    ws, conn = open_workspace()
    with closing(conn):
        view = full_ids(conn, _view_from_args(args, conn))
        where = view.where if not view.runs else "id in (" + ", ".join(view.runs) + ")"
        spec = args.group_by or view.group_by
        band = args.band or view.band
        columns = expand_group_by(spec, param_keys(conn))
        metrics = view.metrics or shown_metrics(conn, where, False, None)
        groups = group_runs(conn, where, columns, metrics)
        if not groups:
            raise UsageError("No runs to compare: name some ids or a --where that matches runs.")
        charts = []
        if args.plot:
            width, height = shutil.get_terminal_size((100, 30))
            for key in metrics[:6]:
                bands = [(g, group_series(conn, g.run_ids, key, points=max(20, width - 20))) for g in groups[:20]]
                charts.append((key, [(g, b) for g, b in bands if b.steps]))
    directions = {k: direction(k, ws.config().directions) for k in metrics}

    def text() -> None:
        print(f"Comparing {groups.runs:,} runs in {groups.total:,} groups by {', '.join(columns)}")
        for key in metrics:
            better = "lower" if directions[key] == "min" else "higher"
            print(f"\n{safe(key)} ({better} is better)")
            print_groups(groups, columns, [key])
        for key, drawn in charts:
            from mltui.chart import draw_bands
            from mltui.core.runs.compare_groups import BAND_NAMES, band_limits, n_text

            if not drawn:
                continue
            labels = [safe(", ".join(f"{c.removeprefix('params.')}={display(g.key[c])}" for c in columns))
                      + f" ({n_text(b, g)})" for g, b in drawn]
            title = f"{key}: mean per group" + (f", band {BAND_NAMES[band]}" if band != "none" else "")
            print()
            print(draw_bands([b for _, b in drawn], [band_limits(b, band) for _, b in drawn], labels, width,
                             max(10, min(height - 4, 30)), title=title, colour=sys.stdout.isatty()))

    return emit(args, lambda: group_json(groups, columns, metrics, total=groups.total, runs=groups.runs,
                                         directions=directions), text)


def _as_json(comp) -> dict:
    return {
        "runs": [{"id": r["id"], "name": r["name"], "status": r["status"]} for r in comp.runs],
        "metrics": {
            key: {
                "direction": comp.directions[key],
                "runs": {rid: {"last": c.last, "best": c.best, "best_step": c.best_step, "is_best": c.is_best}
                         for rid, cells in comp.cells.items() if (c := cells[key]).last is not None},
            }
            for key in comp.metrics
        },
        "params": {
            "differ": comp.params_differ,
            "values": {r["id"]: r["params"] for r in comp.runs},
        },
    }


def _print_csv(comp) -> None:
    import csv

    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["run_id", "name", "metric", "direction", "last", "best", "best_step", "is_best"])
    for run in comp.runs:
        for key in comp.metrics:
            c = comp.cells[run["id"]][key]
            if c.last is not None:
                out.writerow([run["id"], run["name"], key, comp.directions[key], display(c.last), display(c.best),
                              c.best_step if c.best_step is not None else "", int(c.is_best)])


def _print_text(comp, all_params: bool) -> None:
    names = {r["id"]: r["name"] for r in comp.runs}
    print(f"Comparing {len(comp.runs)} runs (* marks the best run of each metric)")
    for key in comp.metrics:
        better = "lower" if comp.directions[key] == "min" else "higher"
        rows = []
        for run in comp.runs:
            c = comp.cells[run["id"]][key]
            if c.last is None:
                continue
            rows.append([("* " if c.is_best else "  ") + run["id"], names[run["id"]], display(c.last),
                         display(c.best), "-" if c.best_step is None else str(c.best_step)])
        print(f"\n{safe(key)} ({better} is better)")
        if rows:
            print(table(["  RUN", "NAME", "LAST", "BEST", "AT STEP"], rows))
        else:
            print("  no run has this metric")
    params = comp.params_all if all_params else comp.params_differ
    print("\nparams" + ("" if all_params else " that differ"))
    if not params:
        print("  none: every run has the same params" if comp.params_all else "  no params logged")
        return
    print(table(["RUN", *params], [[run["id"], *(display(run["params"].get(k)) if k in run["params"] else "-"
                                                  for k in params)] for run in comp.runs]))


def cmd_views_list(args: argparse.Namespace) -> int:
    from mltui.core.runs.views import list_views
    from mltui.core.reader import open_workspace

    _, conn = open_workspace()
    with closing(conn):
        views = list_views(conn)

    def data() -> list[dict]:
        from dataclasses import asdict

        return [{"name": name, **asdict(view), "updated": updated} for name, view, updated in views]

    def text() -> None:
        if not views:
            print("No saved views: save one with `mltui compare ... --save NAME` or ctrl+s in the Compare pane.")
            return
        print(table(["NAME", "RUNS", "METRICS", "AXIS", "SMOOTH", "GROUPS"], [
            [name, view.where or " ".join(view.runs), ", ".join(view.metrics) or "all", view.axis,
             f"{view.smoothing:g}", f"{view.group_by} ({view.band})" if view.group_by else "-"]
            for name, view, _ in views]))

    return emit(args, data, text)


def cmd_views_rm(args: argparse.Namespace) -> int:
    from mltui.core.runs.views import delete_view
    from mltui.core.reader import open_workspace

    _, conn = open_workspace(write=True)
    with closing(conn):
        delete_view(conn, args.name)
    print(f"Removed view {safe(args.name)}")  # no --json here: nothing to decide
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from mltui.core.runs.export import export
    from mltui.core.reader import open_workspace

    _, conn = open_workspace()
    with closing(conn):
        count = export(conn, args.what, args.output, args.format, args.where)
    if args.output != "-":
        sys.stderr.write(f"Wrote {count:,} rows to {args.output}\n")
    return 0
