"""`mltui data add|list|log|show|files|diff|profile|drift|checkout|verify|gc`: versioned datasets (hashing,
history, diffs, table profiles and drift, restoring from the cache, and cache upkeep)."""

from __future__ import annotations

import argparse
from contextlib import closing

from mltui.cli.output import age, emit, safe, table
from mltui.core.data.drift import drift_note, schema_note
from mltui.core.data.profile import short
from mltui.base.text import size

SPEC_HELP = "NAME, NAME@latest, NAME@~1 (one before the latest), NAME@v3 (the third) or NAME@<id prefix>"


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("data", parents=[common], help="dataset versions: add, diff, drift, checkout, lineage",
                       description="Version data like code. Each version's id is the sha256 of its manifest "
                       "(paths, sizes, hashes): the same bytes give the same id. Versions are named " + SPEC_HELP + ".")
    verbs = p.add_subparsers(title="verbs", metavar="VERB", required=True, parser_class=type(p))

    def verb(name: str, text: str, handler, description: str | None = None):
        v = verbs.add_parser(name, parents=[common], help=text, description=description or text)
        v.add_argument("--json", action="store_true", help="print JSON")
        v.set_defaults(handler=handler)
        return v

    add = verb("add", "record a version of a file or folder", cmd_add,
               "Hash every file under PATH (on every core; files unchanged since they were last hashed are "
               "skipped) and record a version of dataset NAME. Unchanged data adds no version. Symbolic links "
               "are recorded as links and never followed.")
    add.add_argument("path", metavar="PATH", help="a file or folder")
    add.add_argument("--name", "-n", required=True, help="the dataset's name (letters, digits, . _ -)")
    add.add_argument("-m", "--message", help="what changed in this version")
    add.add_argument("--store", action="store_true",
                     help="also copy the bytes into .mltui/cache/, so the version can be checked out later")
    verb("list", "datasets with their latest version", cmd_list)
    log = verb("log", "a dataset's versions, newest first", cmd_log)
    log.add_argument("name", metavar="NAME")
    show = verb("show", "a version: its summary, its tables and the runs that used it", cmd_show)
    show.add_argument("spec", metavar="NAME@VERSION", help=SPEC_HELP)
    fl = verb("files", "the files of a version", cmd_files)
    fl.add_argument("spec", metavar="NAME@VERSION", help=SPEC_HELP)
    df = verb("diff", "files added, removed, modified and renamed from A to B", cmd_diff)
    df.add_argument("a", metavar="A", help="the older version (" + SPEC_HELP + ")")
    df.add_argument("b", metavar="B", help="the newer version")
    pr = verb("profile", "rows, schema and per-column statistics of a table (CSV, TSV, Parquet, JSON lines)",
              cmd_profile)
    pr.add_argument("spec", metavar="NAME@VERSION", help=SPEC_HELP)
    pr.add_argument("--file", metavar="PATH", help="which table, when the version holds several")
    dr = verb("drift", "how the columns of B's tables moved from A's, most drifted first", cmd_drift,
              "Compare the tables of two versions column by column: schema changes, the population stability "
              "index (PSI, over A's deciles) and the Kolmogorov–Smirnov statistic for numbers, share changes for "
              "categories. PSI above 0.25 is usually read as a major shift, 0.1 to 0.25 as a moderate one.")
    dr.add_argument("a", metavar="A", help="the reference version")
    dr.add_argument("b", metavar="B", help="the version compared with it")
    dr.add_argument("--file", metavar="PATH", help="compare only this table")
    co = verb("checkout", "restore a version into a new folder, verifying every byte", cmd_checkout)
    co.add_argument("spec", metavar="NAME@VERSION", help=SPEC_HELP)
    co.add_argument("dest", metavar="DEST", help="a new (or empty) folder")
    co.add_argument("--link", choices=("auto", "reflink", "hardlink", "copy"), default="auto",
                    help="auto: reflink where the filesystem can, else copy (default); hardlink: read-only files "
                    "sharing the cache's bytes (fast, no extra space)")
    ve = verb("verify", "check that the cache holds every byte of a version", cmd_verify)
    ve.add_argument("spec", metavar="NAME@VERSION", help=SPEC_HELP)
    ve.add_argument("--repair", action="store_true",
                    help="put damaged or missing bytes back from the folder the version was added from, where "
                    "the files there still hold them (checked by hash)")
    gc = verb("gc", "remove cached bytes no version needs", cmd_gc)
    gc.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")


def _open(write: bool = False):
    from mltui.core.reader import open_workspace

    return open_workspace(write=write)


def _version_dict(v) -> dict:
    return v.as_dict() if v is not None else None


# -- add ------------------------------------------------------------------------------------------
def cmd_add(args: argparse.Namespace) -> int:
    from mltui.cli.progress import progress_bar
    from mltui.core.data.versions import add

    ws, conn = _open(write=True)
    with closing(conn), progress_bar("hashing") as bar:
        result = add(ws, conn, args.path, args.name, args.message, store=args.store, progress=bar)
    v = result.version

    def text() -> None:
        what = "new version" if result.created else "unchanged; already version"
        print(f"{safe(v.label)}  ({what} {v.seq}): {v.files:,} files, {size(v.bytes)}"
              + ("" if not args.store else ", stored in the cache"))
        print(f"hashed {result.hashed_files:,} files ({size(result.hashed_bytes)}), {result.cached_files:,} "
              f"unchanged, in {result.seconds:.2f} s")

    return emit(args, {"version": _version_dict(v), "created": result.created, "hashed_files": result.hashed_files,
                       "hashed_bytes": result.hashed_bytes, "unchanged_files": result.cached_files,
                       "seconds": round(result.seconds, 3)}, text)


# -- reading --------------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    from mltui.core.data.versions import list_datasets

    _, conn = _open()
    with closing(conn):
        found = list_datasets(conn)

    def text() -> None:
        if not found:
            print("No datasets yet; `mltui data add PATH --name NAME` records one.")
            return
        print(table(["NAME", "VERSIONS", "LATEST", "FILES", "SIZE", "ADDED", "MESSAGE"],
                    [[d["name"], str(d["versions"]), f"v{d['latest'].seq} {d['latest'].id[:12]}",
                      f"{d['latest'].files:,}", size(d["latest"].bytes), age(d["latest"].created),
                      d["latest"].message or ""] for d in found if d["latest"]]))

    return emit(args, [{**d, "latest": _version_dict(d["latest"])} for d in found], text)


def cmd_log(args: argparse.Namespace) -> int:
    from mltui.core.data.versions import versions

    _, conn = _open()
    with closing(conn):
        history = versions(conn, args.name)
    return emit(args, [v.as_dict() for v in history], lambda: print(table(
        ["VERSION", "ID", "FILES", "SIZE", "STORED", "ADDED", "USER", "MESSAGE"],
        [[f"v{v.seq}", v.id[:12], f"{v.files:,}", size(v.bytes), "yes" if v.stored else "no",
          age(v.created), v.user or "-", v.message or ""] for v in history])))


def cmd_show(args: argparse.Namespace) -> int:
    from mltui.core.data.tables import tables
    from mltui.core.data.versions import printable, resolve
    from mltui.core.data.hashing import show
    from mltui.core.data.lineage import runs_using

    _, conn = _open()
    with closing(conn):
        v = resolve(conn, args.spec)
        runs = runs_using(conn, v.dataset, v.id)
        found = [show(e.path) for e in tables(conn, v)]

    def text() -> None:
        print(f"{safe(v.label)}  version {v.seq} of {safe(v.dataset)}")
        print(f"  id       {v.id}")
        print(f"  files    {v.files:,} ({size(v.bytes)}), {'stored in the cache' if v.stored else 'not stored'}")
        print(f"  source   {safe(printable(v.source) or '-')}")
        print(f"  added    {age(v.created)} by {safe(v.user or '-')}" + (f": {safe(v.message)}" if v.message else ""))
        if v.parent:
            print(f"  parent   {v.parent[:12]}")
        if found:
            print(f"  tables   {', '.join(safe(t) for t in found[:8])}" + (" …" if len(found) > 8 else ""))
        if not runs:
            print("No run has used this version.")
            return
        print(f"Used by {len(runs)} run{'s' if len(runs) != 1 else ''}:")
        print(table(["RUN", "NAME", "STATUS", "HOW", "DATA"],
                    [[r["id"], r["name"] or "", r["status"], r["how"], "changed on disk during the run" if r["changed"]
                      else "-"] for r in runs]))

    return emit(args, {"version": v.as_dict(), "tables": found, "runs": runs}, text)


def cmd_files(args: argparse.Namespace) -> int:
    from mltui.core.data.versions import files, resolve
    from mltui.core.data.hashing import show

    _, conn = _open()
    with closing(conn):
        v = resolve(conn, args.spec)
        entries = files(conn, v.id)

    def text() -> None:
        rows = []
        for e in entries:
            if e.kind == "link":
                rows.append([show(e.path) + " -> " + show(e.target or b""), "link", "-"])
            elif e.kind == "dir":
                rows.append([show(e.path) + "/", "empty folder", "-"])
            else:
                rows.append([show(e.path), size(e.size), (e.sha256 or "")[:12]])
        print(table(["PATH", "SIZE", "SHA256"], rows))

    return emit(args, lambda: [{"path": show(e.path), "kind": e.kind, "size": e.size, "sha256": e.sha256,
                                "target": show(e.target) if e.target is not None else None} for e in entries], text)


def cmd_diff(args: argparse.Namespace) -> int:
    from mltui.core.data.ops import diff
    from mltui.core.data.versions import resolve

    _, conn = _open()
    with closing(conn):
        a, b = resolve(conn, args.a), resolve(conn, args.b)
        d = diff(conn, a, b).as_dict()

    def text() -> None:
        counts = {k: len(d[k]) for k in ("added", "removed", "modified", "renamed")}
        print(f"{safe(a.label)} -> {safe(b.label)}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
        for e in d["added"]:
            print(f"  + {safe(e['path'])}  ({size(e['size'])})")
        for e in d["removed"]:
            print(f"  - {safe(e['path'])}  ({size(e['size'])})")
        for e in d["modified"]:
            print(f"  M {safe(e['path'])}  ({size(e['size_a'])} -> {size(e['size_b'])})")
        for e in d["renamed"]:
            print(f"  R {safe(e['from'])} -> {safe(e['to'])}  ({size(e['size'])})")

    return emit(args, {"a": a.as_dict(), "b": b.as_dict(), **d}, text)


def cmd_profile(args: argparse.Namespace) -> int:
    from mltui.cli.progress import progress_bar
    from mltui.core.data.profile import column_summary
    from mltui.core.data.tables import pick, profile_of
    from mltui.core.data.versions import resolve

    ws, conn = _open()
    with closing(conn):
        v = resolve(conn, args.spec)
        entry = pick(conn, v, args.file)
        with progress_bar("profiling columns", unit="columns") as bar:
            prof = profile_of(ws, conn, v, entry, bar)

    def text() -> None:
        how = f" (read {prof['read']})" if prof.get("read") else ""  # which path was taken
        print(f"{safe(v.label)}  {safe(prof['path'])}: {prof['rows']:,} rows, {len(prof['columns'])} columns{how}")
        rows = [[c["name"], c["dtype"], f"{c['nulls']:,}", column_summary(c)] for c in prof["columns"]]
        print(table(["COLUMN", "TYPE", "NULLS", "SUMMARY"], rows))

    return emit(args, {"version": v.as_dict(), **prof}, text)


def cmd_drift(args: argparse.Namespace) -> int:
    from mltui.cli.progress import progress_bar
    from mltui.core.data.tables import drift_of
    from mltui.core.data.versions import resolve

    ws, conn = _open()
    with closing(conn):
        a, b = resolve(conn, args.a), resolve(conn, args.b)
        with progress_bar("comparing columns", unit="columns") as bar:
            results = drift_of(ws, conn, a, b, args.file, bar)

    def text() -> None:
        for r in results:
            title = r["path_a"] if r["path_a"] == r["path_b"] else f"{r['path_a']} -> {r['path_b']}"
            how = f"  ({r['read']}; KS {r['ks_method']})" if r.get("read") else ""  # which path was taken
            print(f"{safe(title)}: {r['rows_a']:,} -> {r['rows_b']:,} rows"
                  + ("  (same bytes)" if r["same_bytes"] else how))
            print(table(["COLUMN", "KIND", "SCHEMA", "PSI", "", "KS", "NOTE"],
                        [_drift_row(c) for c in r["columns"]]))

    return emit(args, {"a": a.as_dict(), "b": b.as_dict(), "tables": results}, text)


def _drift_row(c: dict) -> list[str]:
    psi = c.get("psi")
    bar = "█" * min(10, round((psi or 0) * 20)) if psi is not None else ""
    return [c["name"], c.get("kind", "-"), schema_note(c), short(psi), bar, short(c.get("ks")), drift_note(c)]


# -- checkout, verify, gc -------------------------------------------------------------------------
def cmd_checkout(args: argparse.Namespace) -> int:
    from mltui.cli.progress import progress_bar
    from mltui.core.data.ops import checkout
    from mltui.core.data.versions import resolve

    ws, conn = _open()
    with closing(conn):
        v = resolve(conn, args.spec)
        with progress_bar("restoring") as bar:
            result = checkout(ws, conn, v, args.dest, args.link, bar)

    def text() -> None:
        how = ", ".join(f"{n:,} {k}" for k, n in sorted(result.how.items())) or "no files"
        print(f"{safe(v.label)} -> {safe(result.dest)}: {result.files:,} files, {size(result.bytes)} verified ({how})")

    return emit(args, {"version": v.as_dict(), "dest": str(result.dest), "files": result.files, "bytes": result.bytes,
                       "how": result.how}, text)


def cmd_verify(args: argparse.Namespace) -> int:
    from mltui.cli.progress import progress_bar
    from mltui.core.data.ops import repair, verify
    from mltui.core.data.versions import printable, resolve

    ws, conn = _open()
    repaired: list[dict] = []
    with closing(conn):
        v = resolve(conn, args.spec)
        with progress_bar("verifying") as bar:
            problems = verify(ws, conn, v, bar)
        if problems and args.repair:
            with progress_bar("repairing") as bar:
                repaired, problems = repair(ws, conn, v, problems, bar)
    out = {"version": v.as_dict(), "ok": not problems, "problems": problems}
    if args.repair:
        out["repaired"] = repaired

    def text() -> None:
        if repaired:
            names = ", ".join(safe(p["path"]) for p in repaired[:5]) + (" ..." if len(repaired) > 5 else "")
            print(f"{safe(v.label)}: put back {len(repaired)} damaged or missing file(s) from "
                  f"{safe(printable(v.source) or '')}: {names}.")
        if not problems:
            print(f"{safe(v.label)}: all {v.files:,} files are in the cache and intact.")
            return
        print(f"{safe(v.label)}: {len(problems)} of {v.files:,} files are damaged or missing"
              + ("" if v.stored else " (this version was added without --store)") + ":")
        print(table(["PATH", "SHA256", "PROBLEM"],
                    [[p["path"], (p["sha256"] or "")[:12], p["problem"]] for p in problems]))
        if not args.repair:
            print("`mltui data verify --repair` puts back what the source folder still holds.")

    return emit(args, out, text, code=1 if problems else 0)


def cmd_gc(args: argparse.Namespace) -> int:
    from mltui.core.data.ops import gc

    ws, conn = _open()
    with closing(conn):
        result = gc(ws, conn, dry_run=args.dry_run)

    def text() -> None:
        verb = "would remove" if args.dry_run else "removed"
        print(f"{verb} {result.removed:,} objects ({size(result.freed)}) and {result.temps} leftover temporary "
              f"files; {result.kept:,} objects are still needed.")

    return emit(args, {"dry_run": args.dry_run, "removed": result.removed, "freed": result.freed, "kept": result.kept,
                       "temporary_files": result.temps}, text)
