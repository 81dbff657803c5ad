"""Checking the audit trail whole: the hash chain (audit.chain), every signature against the key
allowed_signers allowed for its account at the time, the policy each decision was made under, and the
owner's files themselves. Reads only; `mltui audit verify` and the TUI's audit view show it.

What a rewrite looks like here: a row edited without fixing the hashes breaks the chain; a row edited
with every later hash recomputed (anyone who can write the database can) keeps the chain but not the
signatures: a signed row covers itself and the hash of the row before it, so the first signed row at
or after the edit no longer verifies.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field

from mltui.core.models import audit, signing
from mltui.core.models import signers
from mltui.core.workspace import Workspace

DECISIONS = ("approve", "reject", "rollback", "alias", "stage", "key", "policy")  # signed when the actor can


@dataclass
class RowState:
    """How one row stands: `state` is signed (verified), unsigned, asserted (an identity only named),
    bad (a problem names it) or legacy (written before mltui signed decisions)."""

    seq: int
    state: str
    detail: str = ""


@dataclass
class Verdict:
    rows: int
    problems: list[tuple[int | None, str]] = field(default_factory=list)  # (row or None, sentence), row order
    states: dict[int, RowState] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # worth saying, not a problem

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad(self) -> int | None:
        return next((seq for seq, _ in self.problems if seq is not None), None)

    def count(self, state: str) -> int:
        return sum(1 for s in self.states.values() if s.state == state)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "rows": self.rows, "problems": [p for _, p in self.problems],
                "first_bad": self.first_bad, "signed": self.count("signed"), "asserted": self.count("asserted"),
                "notes": self.notes}


def check(ws: Workspace, conn: sqlite3.Connection) -> Verdict:
    """Everything `mltui audit verify` checks, with each row's signature state."""
    from mltui.core.models.policy import policy_hash

    found = audit.rows(conn)
    verdict = Verdict(len(found), list(audit.chain(conn)))
    problems = verdict.problems
    entries = signers.read(ws)
    signers_file = ws.signers_path
    recorded: str | None = None
    key_row: tuple[int, str | None] | None = None
    enrolled: set[str] = set()  # keys added by a key row so far: an account must sign from its key's row on
    for seq, when, actor, action, model, details, prev, _, identity, policy, sig, fp in found:
        label = f"row {seq} ({action} by {actor})"
        if identity is None:
            verdict.states[seq] = RowState(seq, "legacy", "written before decisions were signed")
        elif sig:
            verdict.states[seq] = _signature(ws, signers_file, label, seq, when, actor, action, model, details, prev,
                                             identity, policy, sig, problems)
        elif action in DECISIONS and enrolled.intersection(signers.allowed_for(entries, actor, when)):
            problems.append((seq, f"{label} is not signed, though allowed_signers allowed a key for {actor} then "
                                  "(its signature was removed, or the row was written behind mltui's back)"))
            verdict.states[seq] = RowState(seq, "bad", "unsigned, though the account has a key")
        elif identity == "asserted":
            verdict.states[seq] = RowState(seq, "asserted", "identity named by $MLTUI_USER or a caller, not verified")
        else:
            verdict.states[seq] = RowState(seq, "unsigned", "not a decision" if action not in DECISIONS else "no key")
        if action in DECISIONS and policy:
            if action == "policy" or recorded is None:
                recorded = policy
            elif policy != recorded:
                problems.append((seq, f"{label} was made under a promotion policy mltui never recorded (config.toml "
                                      "was changed behind mltui's back)"))
        if action == "key":
            try:
                recorded_key = json.loads(details)
                key_row = (seq, recorded_key.get("signers"))
                enrolled.add(str(recorded_key.get("key")))
            except (ValueError, AttributeError):
                key_row = (seq, None)
    _files(ws, entries, key_row, problems)
    if recorded is not None and policy_hash(ws) != recorded:
        verdict.notes.append("config.toml's promotion policy or notification channels changed since they were last "
                             "recorded; the owner's next decision (or `mltui audit policy`) records them.")
    problems.sort(key=lambda p: (p[0] is None, p[0] or 0))
    return verdict


def _signature(ws, path, label, seq, when, actor, action, model, details, prev, identity, policy, sig,
               problems) -> RowState:
    data = audit.payload(seq, when, actor, action, model, details, prev, identity, policy)
    blob = signing.signature_key(sig)
    fp = signing.fingerprint(blob) if blob else "an unreadable key"
    if not path.exists():
        problems.append((seq, f"{label} is signed, but the workspace has no allowed_signers file to check it"))
        return RowState(seq, "bad", "no allowed_signers")
    if signing.verify(path, actor, sig, data, when):
        return RowState(seq, "signed", f"{actor}'s key {fp}")
    if not signing.intact(sig, data):
        problems.append((seq, f"{label} has a bad signature: the row, or one before it, was changed after it was "
                              "signed"))
        return RowState(seq, "bad", "bad signature")
    others = [p for p in signing.principals(path, sig, when) if p != actor]
    if others:
        problems.append((seq, f"{label} is signed with {', '.join(others)}'s key {fp}, not {actor}'s (the signer is "
                              "not the recorded actor)"))
        return RowState(seq, "bad", f"signed by {', '.join(others)}")
    problems.append((seq, f"{label} is signed with a key allowed_signers did not allow for {actor} at that time "
                          f"({fp}: an unknown key, or allowed_signers was changed)"))
    return RowState(seq, "bad", f"unknown key {fp}")


def _files(ws: Workspace, entries, key_row, problems) -> None:
    """The owner's files: allowed_signers as the last `mltui keys add` wrote it, config.toml and
    allowed_signers owned by the workspace's owner and written by nobody else."""
    text = signers.read_text(ws)
    if key_row is not None and key_row[1] != signers.digest(text):
        problems.append((None, f"allowed_signers is not the file `mltui keys add` wrote at row {key_row[0]}: it was "
                               "changed behind mltui's back"))
    elif key_row is None and entries:
        problems.append((None, "allowed_signers lists keys that no `mltui keys add` recorded: it was changed behind "
                               "mltui's back"))
    uid, owner = ws.owner()
    for path in (ws.config_path, ws.signers_path):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        except OSError:
            continue
        if st.st_uid != uid:
            problems.append((None, f"{path.name} is not the workspace owner's ({owner}'s) file, so someone else may "
                                   "have replaced it"))
        elif st.st_mode & 0o022:
            problems.append((None, f"{path.name} can be written by others than the workspace's owner ({owner})"))
