"""`runs list --group-by` and `compare --group-by`: groups of runs as a table (N and mean ± std [min, max]
of each metric shown) or as JSON (the aggregates)."""

from __future__ import annotations

import argparse
import sys

from mltui.base.values import display
from mltui.cli.output import emit, table


def group_json(groups, columns: list[str], metrics: list[str], **extra) -> dict:
    from dataclasses import asdict

    return {"group_by": columns, "metrics": metrics, **extra,
            "groups": [{"key": g.key, "n": g.n, "run_ids": g.run_ids,
                        "stats": {k: asdict(s) for k, s in g.stats.items()}} for g in groups]}


def spread(stats) -> str:
    """0.812 ± 0.021 [0.79, 0.84]; a group of one is just its value."""
    if stats is None or stats.n == 0:
        return "-"
    if stats.n == 1:
        return display(stats.mean)
    return f"{display(stats.mean)} ± {display(stats.std)} [{display(stats.min)}, {display(stats.max)}]"


def print_groups(groups, columns: list[str], metrics: list[str]) -> None:
    # key columns whose value is the same in every group shown say nothing in a table: name them once
    varying = [c for c in columns if len({display(g.key[c]) for g in groups}) > 1] or columns
    same = [c for c in columns if c not in varying]
    if same and groups:
        print("same in every group: " + ", ".join(f"{c.removeprefix('params.')}={display(groups[0].key[c])}"
                                                  for c in same))
    headers = [c.removeprefix("params.") for c in varying] + ["N"] + [f"{m} (mean ± std [min, max])" for m in metrics]
    rows = [[display(g.key[c]) for c in varying] + [str(g.n)] + [spread(g.stats.get(m)) for m in metrics]
            for g in groups]
    print(table(headers, rows))


def shown_metrics(conn, where: str | None, archived: bool, asked: list[str] | None) -> list[str]:
    """The metrics asked for, or the three most logged by the newest 200 matching runs (validation first)."""
    if asked:
        return list(dict.fromkeys(asked))
    from mltui.core.runs.listing import list_runs, pick_columns

    sample = list_runs(conn, where=where, limit=200, archived=archived).runs
    return pick_columns(sample, "metrics", 3, varying=False)


def list_groups(args: argparse.Namespace, conn) -> int:
    from mltui.core.runs.groups import expand_group_by, group_runs, param_keys

    columns = expand_group_by(args.group_by, param_keys(conn))
    metrics = shown_metrics(conn, args.where, args.archived, args.metric)
    groups = group_runs(conn, args.where, columns, metrics, args.archived, limit=args.limit or None)
    if args.jsonl:
        from mltui.cli.output import stream_json

        stream_json([group_json(groups, columns, metrics)["groups"]], lines=True)
        return 0

    def text() -> None:
        if not groups:
            print("No runs match." if args.where else "No runs yet: log one with mltui.init() in a training script.")
            return
        print_groups(groups, columns, metrics)
        if groups.total > len(groups):
            sys.stderr.write(f"({len(groups)} of {groups.total:,} groups shown; --limit 0 shows all)\n")

    return emit(args, lambda: group_json(groups, columns, metrics, total=groups.total, runs=groups.runs), text)

