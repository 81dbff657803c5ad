"""`mltui models register|list|show|alias|rollback|inspect`, `mltui promote` and `mltui audit`: the model
registry, filing promotion requests, and the audit trail.

Reviewing requests (`mltui queue show|approve|reject|comment`) lives in cli/review.py, beside the run queue.
"""

from __future__ import annotations

import argparse
from contextlib import closing

from mltui.cli.output import age, emit, safe, table, when
from mltui.base.text import size

SPEC = "NAME@N, NAME@production, NAME@<alias> or NAME (the latest)"


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("models", parents=[common], help="the model registry: versions, stages, aliases",
                       description="Registered model versions. A version is a run's artifact copied into the store, "
                       "so deleting the run cannot lose it. Versions move between stages (candidate, staging, "
                       "production, archived) only through reviewed promotion requests (`mltui promote`).")
    verbs = p.add_subparsers(title="verbs", metavar="VERB", required=True, parser_class=type(p))

    def verb(name: str, text: str, handler, description: str | None = None):
        v = verbs.add_parser(name, parents=[common], help=text, description=description or text)
        v.add_argument("--json", action="store_true", help="print JSON")
        v.set_defaults(handler=handler)
        return v

    reg = verb("register", "register a run's artifact as a new version of a model", cmd_register)
    reg.add_argument("name", metavar="NAME")
    reg.add_argument("--run", required=True, metavar="ID", help="the run that wrote it (id or unique prefix)")
    reg.add_argument("--path", required=True, help="the file, relative to the run's folder (artifacts/model.pt)")
    verb("list", "models with their latest and production versions", cmd_list)
    show = verb("show", "a model's versions, or one version in full", cmd_show)
    show.add_argument("spec", metavar="NAME[@VERSION]", help=SPEC)
    al = verb("alias", "point an alias (champion, challenger, ...) at a version", cmd_alias)
    al.add_argument("spec", metavar="NAME@VERSION", help=SPEC)
    al.add_argument("alias", metavar="ALIAS")
    rb = verb("rollback", "put the previous production version back in production", cmd_rollback)
    rb.add_argument("name", metavar="NAME")
    rb.add_argument("-m", "--message", required=True, help="why (kept in the audit trail)")
    ins = verb("inspect", "parameters and tensors of a version's checkpoint (never runs code in it)", cmd_inspect)
    ins.add_argument("spec", metavar="NAME@VERSION|FILE", help=SPEC + ", or a checkpoint file")

    pr = sub.add_parser("promote", parents=[common], help="ask for a version to move to staging or production",
                        description="File a promotion request. Nothing moves yet: the workspace's gates "
                        "([[promotion.gates]] in .mltui/config.toml) are evaluated and stored with it, and another "
                        "user approves it with `mltui queue approve ID`.")
    pr.add_argument("name", metavar="NAME")
    pr.add_argument("version", metavar="VERSION", help="a number, an alias or a stage")
    pr.add_argument("--to", required=True, choices=("staging", "production"))
    pr.add_argument("-m", "--message", help="why it should move")
    pr.add_argument("--json", action="store_true", help="print JSON")
    pr.set_defaults(handler=cmd_promote)

    au = sub.add_parser("audit", parents=[common], help="the audit trail of the registry (and `audit verify`)",
                        description="Every registration, request, decision, stage or alias move and rollback, "
                        "oldest first. Each row holds the hash of the one before, and each decision is signed with "
                        "its actor's SSH key: `mltui audit verify` finds any row edited, removed or reordered since, "
                        "and any signature that does not check against .mltui/allowed_signers. `mltui audit policy` "
                        "(the workspace's owner) records config.toml's promotion policy and notification channels "
                        "after a change, so that decisions can be held to them.")
    au.add_argument("what", nargs="?", choices=("verify", "policy"),
                    help="verify: check the chain and every signature; policy: record the current policy")
    au.add_argument("-m", "--message", help="with policy: why it changed (kept in the trail)")
    au.add_argument("--model", metavar="NAME", help="only this model's rows")
    au.add_argument("-n", "--limit", type=int, metavar="N", help="only the last N rows")
    au.add_argument("--json", action="store_true", help="print JSON")
    au.set_defaults(handler=cmd_audit)


def _open(write: bool = False):
    from mltui.core.reader import open_workspace

    return open_workspace(write=write)


def _version_row(v) -> list[str]:
    return [str(v.version), v.stage, ", ".join(v.aliases) or "-", size(v.size), v.sha256[:12], v.run_id or "-",
            v.path, age(v.created)]


VERSION_HEADERS = ["VERSION", "STAGE", "ALIASES", "SIZE", "SHA256", "RUN", "PATH", "REGISTERED"]


def cmd_register(args: argparse.Namespace) -> int:
    from mltui.core.models.registry import register as do_register

    ws, conn = _open(write=True)
    with closing(conn):
        mv, created = do_register(ws, conn, args.name, args.run, args.path)

    def text() -> None:
        said = "registered as" if created else "is already"
        print(f"{safe(args.path)} of run {mv.run_id} {said} {safe(mv.label)} ({mv.stage}, {size(mv.size)}, "
              f"sha256 {mv.sha256[:12]})")

    return emit(args, {"version": mv.as_dict(), "created": created}, text)


def cmd_list(args: argparse.Namespace) -> int:
    from mltui.core.models.registry import list_models

    _, conn = _open()
    with closing(conn):
        found = list_models(conn)

    def text() -> None:
        if not found:
            print("No models yet; `mltui models register NAME --run ID --path artifacts/model.pt` adds one.")
            return
        print(table(["MODEL", "VERSIONS", "LATEST", "PRODUCTION"],
                    [[m["name"], str(m["versions"]), str(m["latest"] or "-"), str(m["production"] or "-")]
                     for m in found]))

    return emit(args, found, text)


def cmd_show(args: argparse.Namespace) -> int:
    from mltui.core.models.promotion import eval_runs
    from mltui.core.models.registry import history, resolve, versions

    _, conn = _open()
    with closing(conn):
        if "@" not in args.spec:
            found = versions(conn, args.spec)
            moves = history(conn, args.spec)
            return emit(args, {"model": args.spec, "versions": [v.as_dict() for v in found], "moves": moves},
                        lambda: print(table(VERSION_HEADERS, [_version_row(v) for v in found])))
        mv = resolve(conn, args.spec)
        evals = eval_runs(conn, mv)

    def text() -> None:
        print(table(VERSION_HEADERS, [_version_row(mv)]))
        if evals:
            print("\neval runs: " + ", ".join(f"{e['id']} ({safe(e['name'])})" for e in evals))

    return emit(args, {**mv.as_dict(), "eval_runs": evals}, text)


def cmd_alias(args: argparse.Namespace) -> int:
    from mltui.core.models.registry import set_alias

    ws, conn = _open(write=True)
    with closing(conn):
        mv = set_alias(ws, conn, args.spec, args.alias)
    return emit(args, mv.as_dict(), lambda: print(f"{safe(mv.model)}@{safe(args.alias)} -> version {mv.version}"))


def cmd_rollback(args: argparse.Namespace) -> int:
    from mltui.core.models.registry import rollback

    ws, conn = _open(write=True)
    with closing(conn):
        old, new = rollback(ws, conn, args.name, args.message)
    return emit(args, {"from": old.as_dict(), "to": new.as_dict()}, lambda: print(
        f"{safe(args.name)}: production is version {new.version} again (version {old.version} archived)."))


def cmd_inspect(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mltui.core.models.checkpoint import inspect

    if "@" in args.spec or not Path(args.spec).exists():
        from mltui.core.data.versions import cache_of
        from mltui.core.models.registry import resolve

        ws, conn = _open()
        with closing(conn):
            mv = resolve(conn, args.spec)
        info = inspect(cache_of(ws).path(mv.sha256), shown_name=mv.path)
        title = f"{mv.label} ({mv.path})"
    else:
        info = inspect(args.spec)
        title = args.spec

    def text() -> None:
        print(f"{safe(title)}: {info['format']}, {size(info['size'])}, {info['parameters']:,} parameters in "
              f"{len(info['tensors'])} tensors")
        print(table(["TENSOR", "SHAPE", "DTYPE", "PARAMETERS"],
                    [[t["name"], "x".join(map(str, t["shape"])) or "scalar", t["dtype"], f"{t['numel']:,}"]
                     for t in info["tensors"]]))

    return emit(args, info, text)


def gate_lines(gates: list[dict]) -> list[str]:
    return [f"  {'pass' if g['ok'] else 'FAIL'}  {safe(g['gate'])}: {safe(g['detail'])}" for g in gates]


def cmd_promote(args: argparse.Namespace) -> int:
    from mltui.core.models.promotion import request

    ws, conn = _open(write=True)
    with closing(conn):
        req = request(ws, conn, f"{args.name}@{args.version}", args.to, args.message)

    def text() -> None:
        print(f"Request #{req['id']}: {safe(req['label'])} to {req['target']}, by {safe(req['requester'])}.")
        print("\n".join(gate_lines(req["gates"])) or "  (no gates in the workspace policy)")
        if req["failed"]:
            print(f"{len(req['failed'])} gate(s) fail: a reviewer can only approve it with --override REASON.")
        print(f"Another user approves it with `mltui queue approve {req['id']}`.")

    return emit(args, req, text)


def cmd_audit(args: argparse.Namespace) -> int:
    from mltui.core.models.audit import entries

    if args.limit is not None and args.limit < 0:
        from mltui.base.errors import UsageError

        raise UsageError("-n takes a number of rows, 0 or more.")
    if args.what == "verify":
        return _audit_verify(args)
    if args.what == "policy":
        return _audit_policy(args)
    _, conn = _open()
    with closing(conn):
        rows = entries(conn, args.model, args.limit)

    def text() -> None:
        if not rows:
            print("The audit trail is empty.")
            return
        print(table(["#", "WHEN", "WHO", "ACTION", "MODEL", "DETAILS", "SIGNED"],
                    [[str(r["seq"]), when(r["time"]), r["actor"], r["action"], r["model"] or "-",
                      _details(r["details"]), _signed(r)] for r in rows]))

    return emit(args, rows, text)


def _signed(row: dict) -> str:
    """What a row says of its signature (checked by `audit verify`, not here)."""
    if row["signed_by"]:
        return row["signed_by"][:19] + "…"
    return "asserted" if row["identity"] == "asserted" else "-"


def _audit_verify(args: argparse.Namespace) -> int:
    """`mltui audit verify`: exit 1 when the chain is broken or a signature does not check."""
    from mltui.core.models.trail import check

    ws, conn = _open()
    with closing(conn):
        verdict = check(ws, conn)

    def text() -> None:
        if verdict.problems:
            print(f"The audit trail was tampered with ({len(verdict.problems)} problem(s)):")
            for _, p in verdict.problems:
                print(f"  {safe(p)}")
        else:
            print(f"The audit trail is intact: {verdict.rows} rows, each linked to the one before.")
            signed, asserted = verdict.count("signed"), verdict.count("asserted")
            if signed:
                print(f"  {signed} signed row(s), each signature checked against allowed_signers.")
            if asserted:
                print(f"  {asserted} row(s) by an identity only asserted ($MLTUI_USER under trust_env_user, or "
                      "named by a caller), not verified.")
        for note in verdict.notes:
            print(f"  note: {note}")

    return emit(args, verdict.as_dict(), text, code=1 if verdict.problems else 0)


def _audit_policy(args: argparse.Namespace) -> int:
    """`mltui audit policy`: the owner records the promotion policy and notification channels as they are."""
    from mltui.core.models.keys import record_policy

    ws, conn = _open(write=True)
    with closing(conn):
        done = record_policy(ws, conn, args.message)

    def text() -> None:
        signed = done["signed"]
        how = f"signed with {signed['key']}" if signed["signed"] else f"unsigned: {safe(signed['why'])}"
        print(f"Recorded the promotion policy {done['hash'][:12]} ({how})." if done["recorded"] else
              f"The promotion policy {done['hash'][:12]} is already the one recorded.")

    return emit(args, done, text)


def _details(d: dict) -> str:
    keep = {k: v for k, v in d.items() if k not in ("gates", "sha256", "settings", "key", "signers")
            and v not in (None, [], "")}
    return " ".join(f"{k}={v}" for k, v in keep.items())
