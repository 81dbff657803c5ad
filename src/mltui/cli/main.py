"""The `mltui` command: parses arguments, routes to a noun's module, turns errors into one line."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys

from mltui.base.errors import MltuiError


class Parser(argparse.ArgumentParser):
    """argparse that reports bad usage in one line (exit 2) instead of usage text and a traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"mltui: {message[0].upper() + message[1:]} (see `{self.prog} --help`).\n")


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks on errors")
    return common


NOUNS = {  # command -> the module that registers it (a command line builds only the parser it uses)
    "init": "workspace", "run": "launch", "sweep": "launch", "runs": "runs", "queue": "queue",
    "metrics": "metrics", "compare": "compare", "views": "compare", "export": "compare", "tui": "tui",
    "demo": "tui", "gpu": "gpu", "data": "data", "models": "models", "promote": "models", "audit": "models",
    "keys": "keys",
    "repro": "pipeline", "pipeline": "pipeline", "monitor": "monitor", "notify": "notify",
    "gc": "gc",
    "import": "imports",
}


def _open_tui(args: argparse.Namespace) -> int:
    from mltui.cli.tui import open_tui

    return open_tui(args)


def build_parser(argv: list[str] | None = None) -> Parser:
    """The whole parser, or, when `argv` names a command, only the parts that command needs (building
    every subcommand's parser is a good share of a short command's start-up)."""
    import importlib

    common = _common()
    parser = Parser(
        prog="mltui",
        description="A terminal MLOps workbench. With no command it opens the TUI on the workspace found "
        "from the current folder (like git finds .git/).",
        epilog="Every command takes --json where it prints data. Exit codes: 0 ok, 1 failed, 2 bad usage.",
        parents=[common],
    )
    parser.set_defaults(debug=False, handler=_open_tui, theme=None)
    parser.add_argument("--theme", help="TUI theme by name (default: the workspace config's theme)")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    first = next((a for a in argv or () if not a.startswith("-")), None)
    if first is None and argv is not None and not {"-h", "--help"} & set(argv):
        first = "tui"  # bare `mltui` opens the TUI: the other commands' parsers would only delay its first row
    names = [NOUNS[first]] if first in NOUNS else list(dict.fromkeys(NOUNS.values()))
    for name in names:
        importlib.import_module(f"mltui.cli.{name}").register(sub, common)
    return parser


def _glue_negative_values(args: list[str]) -> list[str]:
    """`--sort -metrics.acc` means descending, not an unknown option: glue such values to their flag."""
    out: list[str] = []
    i = 0
    while i < len(args):
        if args[i] in ("--sort", "-s") and i + 1 < len(args) and args[i + 1].startswith("-"):
            out.append(f"--sort={args[i + 1]}")
            i += 2
            continue
        if args[i] == "--":
            out.extend(args[i:])
            break
        out.append(args[i])
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    args_list = _glue_negative_values(sys.argv[1:] if argv is None else list(argv))
    command_argv = None
    if "--" in args_list:  # `mltui run [options] -- COMMAND ...`: the command is not ours to parse
        cut = args_list.index("--")
        args_list, command_argv = args_list[:cut], args_list[cut + 1:]
    debug = "--debug" in args_list or bool(os.environ.get("MLTUI_DEBUG"))
    try:
        parser = build_parser(args_list)
        args = parser.parse_args(args_list)
        if command_argv is not None:
            if not getattr(args, "accepts_argv", False):
                parser.error("only `mltui run` takes a command after --")
            if not command_argv:
                parser.error("there is no command after --")
            args.argv = command_argv
        return int(args.handler(args) or 0)
    except MltuiError as exc:
        if debug:
            raise
        sys.stderr.write(f"mltui: {exc}\n")
        return exc.exit_code
    except sqlite3.Error as exc:  # a store that fails mid-command (damaged pages, full disk)
        if debug:
            raise
        from mltui.core.reader import store_error

        sys.stderr.write(f"mltui: {store_error(exc)}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("mltui: interrupted.\n")
        return 130
    except BrokenPipeError:
        # the reader (head, less) went away: not an error worth a message
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except Exception as exc:  # a bug: one line unless --debug
        if debug:
            raise
        sys.stderr.write(f"mltui: unexpected error: {type(exc).__name__}: {exc} (run with --debug for details).\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
