"""`mltui gc`: remove what nothing refers to any more: the folders of runs gone from the store and the cache
objects no dataset version, model version or pipeline stage needs, saying how many bytes that frees."""

from __future__ import annotations

import argparse
from contextlib import closing

from mltui.base.text import size
from mltui.cli.output import emit


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("gc", parents=[common], help="remove folders of deleted runs and unneeded cache objects",
                       description="Remove the folders of runs no longer in the store (left in runs/.trash "
                       "by an interrupted removal, or of runs deleted by other means: of those, folders younger "
                       "than an hour are left, as a run being created makes its folder just before its row) and "
                       "the objects in "
                       ".mltui/cache/ that no dataset version, model version or pipeline stage refers to. "
                       "Prints the bytes freed.")
    p.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_gc)


def cmd_gc(args: argparse.Namespace) -> int:
    from mltui.core.reader import open_workspace
    from mltui.core.runs.tidy import gc

    ws, conn = open_workspace(write=not args.dry_run)
    with closing(conn):
        report = gc(ws, conn, dry_run=args.dry_run)

    def text() -> None:
        verb = "Would remove" if args.dry_run else "Removed"
        print(f"{verb} {report.folders:,} run folders ({size(report.folder_bytes)}) and {report.objects:,} cache "
              f"objects ({size(report.object_bytes)}): {size(report.freed)} "
              f"{'would be ' if args.dry_run else ''}freed.")
        if report.young_folders:
            print(f"Left {report.young_folders:,} run folders without a run that are less than an hour old.")

    return emit(args, {"dry_run": args.dry_run, "run_folders": report.folders, "run_folder_bytes": report.folder_bytes,
                       "cache_objects": report.objects, "cache_object_bytes": report.object_bytes,
                       "cache_objects_kept": report.objects_kept, "temporary_files": report.temporary_files,
                       "young_folders": report.young_folders, "freed": report.freed}, text)
