"""`mltui keys add|list`: the workspace's allowed signers, the SSH keys decisions are signed with.

The file is .mltui/allowed_signers (git's allowedSignersFile format). Only the workspace's owner adds
keys, and each addition is an audited decision, signed like the others (core/models/keys.py).
"""

from __future__ import annotations

import argparse
from contextlib import closing

from mltui.cli.output import emit, safe, table


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("keys", parents=[common], help="the SSH keys allowed to sign decisions (allowed_signers)",
                       description="Decisions (approvals, rejections, overrides, rollbacks, alias moves) are signed "
                       "with the actor's SSH key (ssh-keygen -Y sign) and checked by `mltui audit verify` against "
                       ".mltui/allowed_signers, which maps accounts to public keys. Each account signs with the key "
                       "[signing] key in config.toml names (~ is the account's home), or one ssh-agent holds.")
    verbs = p.add_subparsers(title="verbs", metavar="VERB", required=True, parser_class=type(p))
    add = verbs.add_parser("add", parents=[common], help="allow an account's public key (the owner only; audited)",
                           description="Allow ACCOUNT to sign decisions with the key in PUBKEY_FILE. Only the "
                           "workspace's owner may; the change is an audited, signed decision.")
    add.add_argument("account", metavar="USER", help="the OS account the key belongs to")
    add.add_argument("pubkey", metavar="PUBKEY_FILE", help="its public key (~/.ssh/id_ed25519.pub)")
    add.add_argument("--replace", action="store_true",
                     help="the account's other keys stop being valid now (what they signed before still verifies)")
    add.add_argument("--json", action="store_true", help="print JSON")
    add.set_defaults(handler=cmd_add)
    ls = verbs.add_parser("list", parents=[common], help="the allowed keys, with when each is valid")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(handler=cmd_list)


def cmd_add(args: argparse.Namespace) -> int:
    from mltui.core.models.keys import add
    from mltui.core.reader import open_workspace

    ws, conn = open_workspace(write=True)
    with closing(conn):
        done = add(ws, conn, args.account, args.pubkey, replace=args.replace)

    def text() -> None:
        print(f"{safe(args.account)} may now sign decisions with {done['fingerprint']}.")
        if done["retired"]:
            print(f"  no longer valid from now: {', '.join(done['retired'])}")
        signed = done["signed"]
        print(f"  recorded in the audit trail, signed with {signed['key']} ({safe(signed['source'])})."
              if signed["signed"] else f"  recorded in the audit trail, unsigned: {safe(signed['why'])}.")

    return emit(args, done, text)


def cmd_list(args: argparse.Namespace) -> int:
    from mltui.core.models.signers import read
    from mltui.core.workspace import find_workspace

    ws = find_workspace()
    found = [e.as_dict() for e in read(ws)]

    def text() -> None:
        if not found:
            print(f"No keys are allowed yet; the workspace's owner adds one with `mltui keys add USER "
                  f"~USER/.ssh/id_ed25519.pub` ({safe(ws.signers_path)}).")
            return
        print(table(["ACCOUNT", "FINGERPRINT", "VALID FROM", "UNTIL", "COMMENT"],
                    [[", ".join(e["accounts"]), e["fingerprint"], _when(e["valid_after"]),
                      _when(e["valid_before"]) if e["valid_before"] else "-", e["comment"] or "-"] for e in found]))

    return emit(args, found, text)


def _when(stamp: str | None) -> str:
    """20250102030405Z as 2025-01-02 03:04:05 UTC."""
    if not stamp:
        return "-"
    s = stamp.rstrip("Z").ljust(14, "0")
    return f"{s[:4]}-{s[4:6]}-{s[6:8]} {s[8:10]}:{s[10:12]}:{s[12:14]}" + (" UTC" if stamp.endswith("Z") else "")
