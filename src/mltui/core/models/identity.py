"""Who acts, and with which key a decision is signed.

The actor is the account of the real user id (`pwd.getpwuid(os.getuid())`), never a variable of the
environment. `$MLTUI_USER` stands in only where the workspace's policy says `trust_env_user = true`
(single-user demos), and a caller of the Python API may name someone (the demo builder does); either
way the row records the identity as asserted, not verified, and nothing is signed for it.

A decision (approve, reject, override, rollback, an alias move, a key or policy change) is signed with
the actor's SSH key when there is one allowed_signers lists for the account. It must be, when the
policy says `require_signed = true`, or when allowed_signers lists a key for that account at all: an
enrolled account's decisions are always signed, so a signature stripped from a row shows.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass

from mltui.base.errors import MltuiError
from mltui.core.models.signing import Key
from mltui.core.workspace import PermissionDenied, Workspace

SETUP = ("set [signing] key = \"~/.ssh/id_ed25519\" in .mltui/config.toml (or add the key to ssh-agent) and have "
         "the workspace's owner run `mltui keys add {name} ~/.ssh/id_ed25519.pub`")


@dataclass
class Actor:
    """Who acts. `key`: what a decision is signed with (None: unsigned, `why` says why); `policy_hash`: set
    for decisions, the guarded settings they are made under."""

    name: str
    asserted: bool = False
    key: Key | None = None
    policy_hash: str | None = None
    why: str = ""

    @property
    def identity(self) -> str:
        return "asserted" if self.asserted else "os"

    def describe(self) -> dict:
        """What the faces show before and after a decision: who, and whether and with what it is signed."""
        return {"actor": self.name, "identity": self.identity, "signed": self.key is not None,
                "key": self.key.fingerprint if self.key else None, "source": self.key.source if self.key else None,
                "why": self.why or None}


def account() -> str:
    from mltui.base.procs import user

    return user()


def who_acts(ws: Workspace, who: str | None = None) -> tuple[str, bool]:
    """(name, asserted): the OS account, unless a caller names someone else or the policy trusts
    $MLTUI_USER."""
    me = account()
    if who is not None:
        return who, who != me
    env = os.environ.get("MLTUI_USER")
    if env and env != me:
        from mltui.core.models.policy import load_policy

        if load_policy(ws).trust_env_user:
            return env, True
    return me, False


def plain(ws: Workspace, who: str | None = None) -> Actor:
    """The actor of what is not a decision (registering, filing a request, a comment): never signed."""
    name, asserted = who_acts(ws, who)
    return Actor(name, asserted)


def decider(ws: Workspace, who: str | None = None, signers: str | None = None) -> Actor:
    """The actor of a decision, with the key it will be signed with. Refuses, in one sentence, a decision
    that must be signed and cannot be. `signers`: allowed_signers as it will read (a key being added)."""
    from mltui.core.models import signers as keys
    from mltui.core.models.policy import load_policy, policy_hash
    from mltui.core.models.signing import find_key

    policy = load_policy(ws)
    name, asserted = who_acts(ws, who)
    entries = keys.parse(signers) if signers is not None else keys.read(ws)
    allowed = keys.allowed_for(entries, name, time.time())
    actor = Actor(name, asserted, policy_hash=policy_hash(ws))
    if asserted:
        if allowed:
            raise PermissionDenied(f"allowed_signers lists a key for {name}, so only {name}'s own account can decide "
                                   f"as {name}, signing it; you are {account()}.")
        if policy.require_signed:
            raise MltuiError(f"This workspace requires signed decisions, and {name} is only named (by $MLTUI_USER "
                             f"or the caller), not logged in: log in as {name} and " + SETUP.format(name=name) + ".")
        actor.why = "the identity is asserted, not the OS account's"
        return actor
    key, why = find_key(ws, allowed)
    actor.key, actor.why = key, why
    if key is None and policy.require_signed:
        raise MltuiError(f"This workspace requires signed decisions, and mltui has no key to sign with for {name} "
                         f"({why}): " + SETUP.format(name=name) + ".")
    if key is None and allowed:
        raise MltuiError(f"allowed_signers lists a key for {name}, so {name}'s decisions must be signed, but mltui "
                         f"cannot use it ({why}): " + SETUP.format(name=name).split(" and have")[0] + ".")
    return actor


def settle_policy(ws: Workspace, conn: sqlite3.Connection, actor: Actor) -> None:
    """Inside a decision's transaction: when config.toml's guarded settings differ from the ones last
    recorded, the owner's account records the change first (a `policy` row); anyone else is refused, so
    no decision is made under settings nobody recorded."""
    from mltui.core.models import audit
    from mltui.core.models.policy import guarded_settings

    recorded = audit.recorded_policy(conn)
    if recorded is None or recorded == actor.policy_hash:
        return
    uid, owner = ws.owner()
    if os.getuid() != uid:
        raise PermissionDenied(f"The promotion policy or notification channels in config.toml changed since mltui "
                               f"last recorded them; the workspace's owner ({owner}) must run `mltui audit policy` "
                               "before anyone else decides.")
    recorder = actor if not actor.asserted else decider(ws, account())
    audit.append(conn, recorder, "policy", None, {"settings": guarded_settings(ws), "was": recorded,
                                                  "hash": actor.policy_hash})
