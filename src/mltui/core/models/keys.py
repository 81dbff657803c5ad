"""The owner's settings: adding keys to the workspace's allowed_signers file (signers.py reads it),
and recording the promotion policy.

mltui writes each key with `namespaces="mltui-decision"` and `valid-after` (when it was added); a key
replaced later gets `valid-before`, so a decision is checked against the key allowed for its account
at that time.

Only the workspace's owner changes either, and each change is itself an audited decision, signed.
The audit row of a key change records the hash of the file it wrote: a file edited behind mltui's
back no longer matches (trail.py).
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from pathlib import Path

from mltui.base.errors import MltuiError, UsageError
from mltui.core.models import audit
from mltui.core.models.signers import Entry, digest, read
from mltui.core.models.signing import NAMESPACE, fingerprint, split_public, stamp
from mltui.core.workspace import Workspace
from mltui.store.connection import write_tx

ACCOUNT_RE = re.compile(r"[a-z_][a-z0-9_.-]{0,31}\$?", re.I)


def add(ws: Workspace, conn: sqlite3.Connection, account: str, pubkey_file: str | os.PathLike[str],
        replace: bool = False) -> dict:
    """Allow `account` to sign with the key in `pubkey_file` (the owner only). `replace`: the account's
    other keys stop being valid now (decisions they signed before still verify)."""
    import pwd

    from mltui.core.models.identity import account as me
    from mltui.core.models.identity import decider, settle_policy

    ws.require_owner("the allowed signers")
    if not ACCOUNT_RE.fullmatch(account or ""):
        raise UsageError(f"{account!r} is not an account name.")
    try:
        pwd.getpwnam(account)
    except KeyError:
        raise UsageError(f"There is no account named {account!r} on this machine.") from None
    try:
        text = Path(pubkey_file).read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise MltuiError(f"Cannot read {pubkey_file}: {exc.strerror}.") from None
    if "PRIVATE KEY" in text:
        raise UsageError(f"{pubkey_file} is a private key; give its public half (the .pub file).")
    kind, blob, comment = split_public(text.strip().splitlines()[0] if text.strip() else "")
    now = time.time()
    entries = read(ws)
    for e in entries:
        if e.blob == blob and e.valid_at(now):
            owner = ", ".join(e.principals)
            raise MltuiError(f"That key ({fingerprint(blob)}) is already allowed for {owner}.")
    retired = []
    if replace:
        for e in entries:
            if account in e.principals and e.valid_at(now):
                e.options["valid-before"] = stamp(now + 1)
                retired.append(e.fingerprint)
    new = Entry([account], kind, blob, comment, {"namespaces": NAMESPACE, "valid-after": stamp(now)})
    entries.append(new)
    body = "".join(e.line() + "\n" for e in entries)
    if account == me():
        from mltui.core.models.signing import find_key

        usable, why = find_key(ws, [new.public])
        if usable is None:
            raise MltuiError(f"To add your own key, mltui signs the change with that key ({new.fingerprint}), and "
                             f"cannot reach it ({why}): set [signing] key in .mltui/config.toml to its private key, or "
                             "add it to ssh-agent, then run this again.")
    actor = decider(ws, me(), signers=body)  # the owner's own account: never an asserted name
    with write_tx(conn, ws.db_path):
        settle_policy(ws, conn, actor)
        audit.append(conn, actor, "key", None, {"account": account, "key": new.public, "fingerprint": new.fingerprint,
                                                "retired": retired, "signers": digest(body)})
        _write(ws, body)
    return {**new.as_dict(), "retired": retired, "signed": actor.describe()}


def _write(ws: Workspace, text: str) -> None:
    """Replace allowed_signers whole (a new file, renamed over the old one), readable by the group only
    when the workspace is shared, written by the owner only."""
    mode = ws.config().guarded_mode
    temp = ws.signers_path.with_name(f".{ws.signers_path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, ws.signers_path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise MltuiError(f"Cannot write {ws.signers_path}: {exc.strerror}.") from None


def record_policy(ws: Workspace, conn: sqlite3.Connection, message: str | None = None) -> dict:
    """The owner records config.toml's promotion policy and notification channels as they are now (a
    signed `policy` row); decisions are then held to them. Returns {"recorded": bool, "hash": ...}."""
    from mltui.core.models.identity import account, decider
    from mltui.core.models.policy import guarded_settings

    ws.require_owner("the promotion policy")
    actor = decider(ws, account())
    with write_tx(conn, ws.db_path):
        was = audit.recorded_policy(conn)
        last = conn.execute("SELECT policy_hash FROM audit_log WHERE action = 'policy' ORDER BY seq DESC "
                            "LIMIT 1").fetchone()
        if last is not None and last[0] == actor.policy_hash:
            return {"recorded": False, "hash": actor.policy_hash, "signed": actor.describe()}
        audit.append(conn, actor, "policy", None, {"settings": guarded_settings(ws), "was": was,
                                                   "hash": actor.policy_hash, "message": message})
    return {"recorded": True, "hash": actor.policy_hash, "signed": actor.describe()}
