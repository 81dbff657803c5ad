"""`mltui init`: create a workspace (.mltui/ with its store, runs/ and config.toml), or bring one up to date."""

from __future__ import annotations

import argparse

from mltui.cli.output import emit, safe


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("init", parents=[common], help="create a workspace (.mltui/) in a folder",
                       description="Create .mltui/ (store, runs/, config.toml) in PATH, or in the current folder. "
                       "Running it again on an existing workspace only brings its store up to date.")
    p.add_argument("path", nargs="?", default=None, help="folder to hold .mltui/ (default: current folder)")
    p.add_argument("--shared", action="store_true",
                   help="a workspace for a group: its members read and write it, nobody else reads anything; "
                   "only you (the owner) change the promotion policy, allowed signers and notification channels")
    p.add_argument("--group", metavar="NAME", help="with --shared: the group (default: the folder's group, "
                   "when you are in it, else your own)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    from mltui.core.workspace import init_workspace

    ws, created = init_workspace(args.path, shared=args.shared, group=args.group)

    def text() -> None:
        verb = "Created" if created else "Already a workspace:"
        print(f"{verb} {safe(ws.root)}")

    return emit(args, {"workspace": str(ws.root), "created": created}, text)
