"""Four-eyes on a shared box, with real Unix accounts: alice (the workspace's owner) and bob share a
group workspace (`mltui init --shared`), each with their own SSH key; carol is outside the group.
Every command runs as that account (`runuser -u`), through the real `python -m mltui`, and the store
is then read (and, for the tampering, rewritten) as root.

The accounts are made with useradd/groupadd under unique names and removed after the module. The
tests skip, saying why, only where accounts cannot be created (not root, no useradd). They run mltui
from a copy of this checkout's package in a folder every account can read, with a Python 3.11+
interpreter the accounts can execute (the virtualenv may sit where they cannot look).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
import grp
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import mltui
from mltui.core.models import audit

TOOLS = ("useradd", "userdel", "groupadd", "groupdel", "runuser")
CHECK_PYTHON = "import sys, sqlite3, tomllib; sys.exit(0 if sys.version_info >= (3, 11) else 1)"
TRAIN = textwrap.dedent("""\
    import os, sys
    import mltui
    run = mltui.init(name="train-" + sys.argv[1])
    with open("model.bin", "wb") as fh:
        fh.write(os.urandom(256))
    run.log({"val_acc": 0.93}, step=1)
    run.log_artifact("model.bin", "model.pt")
    run.finish()
    print(run.id)
""")
CONFIG = """
[promotion]
require_signed = true

[signing]
key = "~/.ssh/id_ed25519"
"""


@dataclass
class Accounts:
    base: Path
    group: str
    alice: str
    bob: str
    carol: str
    python: str = ""
    pkg: Path = Path()
    fingerprints: dict[str, str] = field(default_factory=dict)
    restore_modes: list[tuple[Path, int]] = field(default_factory=list)

    def home(self, user: str) -> Path:
        return self.base / "home" / user


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result


def _as(user: str, *argv: str, cwd: Path | None = None, env: dict | None = None, home: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    """`argv` as `user` (runuser), in a clean environment: nothing of root's leaks through."""
    clean = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(home or "/"), "COLUMNS": "200"}
    clean.update(env or {})
    return subprocess.run(["runuser", "-u", user, "--", "env", "-i", *(f"{k}={v}" for k, v in clean.items()), *argv],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _python_for(acc: Accounts, user: str) -> str | None:
    """A Python 3.11+ that `user` can run: this interpreter's real file first, then the system's."""
    seen = []
    for cand in (os.path.realpath(sys.executable), os.path.realpath(getattr(sys, "_base_executable", "") or ""),
                 "/usr/bin/python3.11", "/usr/local/bin/python3.11", shutil.which("python3") or "", "/usr/bin/python3"):
        if cand and cand not in seen and os.path.exists(cand):
            seen.append(cand)
            if _as(user, cand, "-c", CHECK_PYTHON, cwd=acc.base).returncode == 0:
                return cand
    # none: open this interpreter's folders to others for searching (x only), put back after the module
    prefix = Path(sys.base_prefix).resolve()
    for folder in (prefix, *prefix.parents):
        mode = stat.S_IMODE(folder.stat().st_mode)
        if not mode & 0o001:
            acc.restore_modes.append((folder, mode))
            os.chmod(folder, mode | 0o001)
    real = os.path.realpath(sys.executable)
    return real if _as(user, real, "-c", CHECK_PYTHON, cwd=acc.base).returncode == 0 else None


@pytest.fixture(scope="module")
def acc():
    if os.geteuid() != 0:
        pytest.skip(f"real Unix accounts need root to create (useradd, runuser); this runs as uid {os.geteuid()}")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"cannot create Unix accounts here: {', '.join(missing)} not installed")
    if shutil.which("ssh-keygen") is None:
        pytest.fail("ssh-keygen is not installed; .ci/run installs Debian's openssh-client")
    tag = secrets.token_hex(3)
    base = Path(tempfile.mkdtemp(prefix=f"mltui-4eyes-{tag}-", dir="/tmp"))
    os.chmod(base, 0o755)
    acc = Accounts(base, f"mt{tag}g", f"mt{tag}alice", f"mt{tag}bob", f"mt{tag}carol")
    made_users: list[str] = []
    made_group = False
    try:
        try:
            _sh("groupadd", acc.group)
            made_group = True
            (base / "home").mkdir(mode=0o755)
            for user, groups in ((acc.alice, [acc.group]), (acc.bob, [acc.group]), (acc.carol, [])):
                _sh("useradd", "-M", "-N", "-d", str(acc.home(user)), "-s", "/bin/sh",
                    *(["-G", ",".join(groups)] if groups else []), user)
                made_users.append(user)
        except RuntimeError as exc:
            pytest.skip(f"cannot create Unix accounts here: {exc}")
        for user in (acc.alice, acc.bob, acc.carol):
            home = acc.home(user)
            home.mkdir(mode=0o700)
            os.chown(home, _uid(user), -1)
            key = home / ".ssh" / "id_ed25519"
            assert _as(user, "mkdir", "-m", "700", str(home / ".ssh"), home=home).returncode == 0
            made = _as(user, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", user, "-f", str(key), home=home)
            assert made.returncode == 0, made.stderr
            pub = key.with_suffix(".pub").read_text()
            (base / f"{user}.pub").write_text(pub)  # readable by all, for `keys add`
            from mltui.core.models.signing import fingerprint

            acc.fingerprints[user] = fingerprint(pub.split()[1])
        # the package under test, where every account can read it
        acc.pkg = base / "pkg"
        shutil.copytree(Path(mltui.__file__).parent, acc.pkg / "mltui", ignore=shutil.ignore_patterns("__pycache__"))
        for root, dirs, files in os.walk(acc.pkg):
            for name in dirs:
                os.chmod(Path(root) / name, 0o755)
            for name in files:
                os.chmod(Path(root) / name, 0o644)
        (base / "train.py").write_text(TRAIN)
        os.chmod(base / "train.py", 0o644)
        python = _python_for(acc, acc.bob)
        if python is None:
            pytest.fail("no Python 3.11+ here that the test accounts can run")
        acc.python = python
        yield acc
    finally:
        for folder, mode in reversed(acc.restore_modes):
            os.chmod(folder, mode)
        for user in made_users:
            if shutil.which("pkill"):
                _sh("pkill", "-KILL", "-u", user, check=False)  # a supervisor left behind keeps the account busy
            _sh("userdel", user, check=False)
        if made_group:
            _sh("groupdel", acc.group, check=False)
        shutil.rmtree(base, ignore_errors=True)


def _uid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_uid


@dataclass
class Project:
    acc: Accounts
    path: Path

    @property
    def ws(self) -> Path:
        return self.path / ".mltui"

    @property
    def db(self) -> Path:
        return self.ws / "mltui.db"

    def mltui(self, user: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        extra = {"PYTHONPATH": str(self.acc.pkg), "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
        return _as(user, self.acc.python, "-m", "mltui", *args, cwd=self.path, env=extra,
                   home=self.acc.home(user))

    def ok(self, user: str, *args: str, env: dict | None = None) -> str:
        result = self.mltui(user, *args, env=env)
        assert result.returncode == 0, f"{user}: mltui {' '.join(args)} -> {result.returncode}\n{result.stderr}"
        assert "Traceback" not in result.stderr
        return result.stdout

    def refused(self, user: str, *args: str, env: dict | None = None, code: int = 1) -> str:
        """The one sentence a refused command says (nothing on stdout, no traceback)."""
        result = self.mltui(user, *args, env=env)
        assert result.returncode == code, f"{user}: mltui {' '.join(args)} -> {result.returncode}\n{result.stdout}"
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mltui: "), result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""
        return lines[0]

    def train(self, user: str, name: str) -> str:
        result = _as(user, self.acc.python, str(self.acc.base / "train.py"), name, cwd=self.path,
                     env={"PYTHONPATH": str(self.acc.pkg), "PYTHONDONTWRITEBYTECODE": "1"},
                     home=self.acc.home(user))
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def q(self, sql: str, args: tuple = ()) -> list[tuple]:
        with closing(sqlite3.connect(self.db, timeout=30)) as c:
            return c.execute(sql, args).fetchall()

    def snapshot(self) -> bytes:
        """Everything the store holds, as bytes (SQLite's own dump), to show nothing changed."""
        with closing(sqlite3.connect(self.db, timeout=30)) as c:
            return "\n".join(c.iterdump()).encode()


@pytest.fixture
def project(acc):
    """A shared workspace made by alice (the owner) for the group, requiring signed decisions, with both
    keys added by alice; bob has filed request #1 for clf@1."""
    path = acc.base / f"proj-{secrets.token_hex(3)}"
    path.mkdir()
    os.chown(path, _uid(acc.alice), grp.getgrnam(acc.group).gr_gid)
    os.chmod(path, 0o2770)
    p = Project(acc, path)
    assert "Created" in p.ok(acc.alice, "init", "--shared", "--group", acc.group)
    assert p.ok(acc.alice, "audit", "policy").startswith("Recorded the promotion policy")  # the template's
    cfg = p.ws / "config.toml"
    assert cfg.stat().st_uid == _uid(acc.alice)
    assert p.refused(acc.bob, "audit", "policy") == (
        f"mltui: Only the workspace's owner ({acc.alice}) may change the promotion policy; you are {acc.bob}.")
    with open(cfg, "a", encoding="utf-8") as fh:  # as root: the file stays alice's, and her next act records it
        fh.write(CONFIG)
    assert cfg.stat().st_uid == _uid(acc.alice)
    out = p.ok(acc.alice, "keys", "add", acc.alice, str(acc.base / f"{acc.alice}.pub"))
    assert f"{acc.alice} may now sign decisions with {acc.fingerprints[acc.alice]}." in out
    p.ok(acc.alice, "keys", "add", acc.bob, str(acc.base / f"{acc.bob}.pub"))
    run = p.train(acc.bob, "1")
    p.ok(acc.bob, "models", "register", "clf", "--run", run, "--path", "artifacts/model.pt")
    assert "Request #1" in p.ok(acc.bob, "promote", "clf", "1", "--to", "production", "-m", "ready")
    return p


# -- the four-eyes flow ---------------------------------------------------------------------------
def test_bob_files_cannot_approve_even_as_alice_and_alice_approves_signed(acc, project):
    p = project
    before = p.snapshot()
    said = p.refused(acc.bob, "queue", "approve", "1")
    assert said == (f"mltui: You ({acc.bob}) filed request #1; another reviewer must approve it (or set "
                    "promotion.allow_self_approval in config.toml).")
    # $MLTUI_USER changes nothing: the workspace does not trust it, so bob is still bob
    assert p.refused(acc.bob, "queue", "approve", "1", env={"MLTUI_USER": acc.alice}) == said
    assert p.refused(acc.bob, "queue", "approve", "1", env={"MLTUI_USER": acc.alice, "USER": acc.alice,
                                                            "LOGNAME": acc.alice}) == said
    assert p.snapshot() == before
    assert p.q("SELECT status, reviewer FROM promotion_requests") == [("open", None)]

    out = p.ok(acc.alice, "queue", "approve", "1", "-m", "looks right")
    assert f"approved by {acc.alice}" in out
    assert f"signed by {acc.alice} with {acc.fingerprints[acc.alice]} (~/.ssh/id_ed25519)" in out
    assert p.q("SELECT status, reviewer FROM promotion_requests") == [("approved", acc.alice)]
    assert p.q("SELECT stage FROM model_versions WHERE model = 'clf'") == [("production",)]
    rows = p.q("SELECT seq, actor, action, identity, signer_key, signature IS NOT NULL FROM audit_log ORDER BY seq")
    assert [r[1:3] for r in rows] == [(acc.alice, "policy"), (acc.alice, "policy"), (acc.alice, "key"),
                                      (acc.alice, "key"), (acc.bob, "register"), (acc.bob, "request"),
                                      (acc.alice, "stage"), (acc.alice, "approve")]
    assert {r[3] for r in rows} == {"os"}  # every identity is the OS account's
    signed = {r[2]: r[4] for r in rows if r[5]}
    assert signed["approve"] == signed["stage"] == acc.fingerprints[acc.alice]
    assert p.q("SELECT signature IS NULL FROM audit_log WHERE action IN ('register', 'request')") == [(1,), (1,)]

    verdict = json.loads(p.ok(acc.bob, "audit", "verify", "--json"))
    assert verdict["ok"] is True and verdict["problems"] == [] and verdict["first_bad"] is None
    # signed: the policy alice's first key came with, both keys, the stage move and the approval
    assert verdict["signed"] == 5 and verdict["asserted"] == 0
    text = p.ok(acc.bob, "audit", "verify")
    assert text.splitlines() == [f"The audit trail is intact: {len(rows)} rows, each linked to the one before.",
                                 "  5 signed row(s), each signature checked against allowed_signers."]


def test_everything_mltui_made_is_the_groups_and_nobody_elses(acc, project):
    p = project
    # a launched run too: its supervisor, log and lock files
    launched = p.mltui(acc.bob, "run", "--wait", "--name", "hello", "--", acc.python, "-c", "print('hi')")
    assert launched.returncode == 0, launched.stderr
    gid = grp.getgrnam(acc.group).gr_gid
    seen = 0
    for root, dirs, files in os.walk(p.ws):
        for name in [*dirs, *files]:
            path = Path(root) / name
            st = os.lstat(path)
            seen += 1
            assert st.st_gid == gid, path
            assert stat.S_IMODE(st.st_mode) & 0o007 == 0, f"{path} is open to others: {oct(st.st_mode)}"
            if stat.S_ISDIR(st.st_mode):
                assert st.st_mode & stat.S_ISGID and stat.S_IMODE(st.st_mode) & 0o070 == 0o070, path
            elif name in ("config.toml", "allowed_signers"):
                assert st.st_uid == _uid(acc.alice) and stat.S_IMODE(st.st_mode) == 0o640, path
            else:
                assert stat.S_IMODE(st.st_mode) & 0o040, f"{path} is not readable by the group"
    assert seen > 10
    logs = list((p.ws / "runs").glob("*/output.log"))
    assert logs and "hi" in logs[0].read_text()
    assert stat.S_IMODE(os.stat(p.ws).st_mode) == 0o3770  # sticky: no member replaces the owner's files
    # bob cannot change the owner's settings: not by mltui, not by hand
    assert p.refused(acc.bob, "keys", "add", acc.bob, str(acc.base / f"{acc.carol}.pub")) == (
        f"mltui: Only the workspace's owner ({acc.alice}) may change the allowed signers; you are {acc.bob}.")
    for target in ("config.toml", "allowed_signers"):
        assert _as(acc.bob, "sh", "-c", 'echo x >> "$0"', str(p.ws / target), cwd=p.path).returncode != 0
        assert _as(acc.bob, "mv", str(p.ws / target), str(p.ws / "stolen"), cwd=p.path).returncode != 0


def test_an_outsider_gets_one_sentence_and_nothing_changes(acc, project):
    p = project
    before = p.snapshot()
    expected = (f"mltui: You ({acc.carol}) cannot open the workspace {p.ws}: it is shared with the group "
                f"{acc.group}, and you are not in it.")
    for args in (("queue", "approve", "1"), ("queue", "list"), ("audit",), ("audit", "verify"), ("keys", "list"),
                 ("models", "list"), ("promote", "clf", "1", "--to", "staging")):
        assert p.refused(acc.carol, *args) == expected, args
    assert p.snapshot() == before
    for path in (p.ws / "config.toml", p.db, p.ws / "allowed_signers"):
        assert _as(acc.carol, "cat", str(path), cwd=acc.base).returncode != 0


def test_require_signed_refuses_a_decision_with_no_key(acc, project):
    p = project
    key = acc.home(acc.bob) / ".ssh" / "id_ed25519"
    p.ok(acc.alice, "promote", "clf", "1", "--to", "staging", "-m", "for staging")
    before = p.snapshot()
    key.rename(key.with_name("elsewhere"))
    try:
        said = p.refused(acc.bob, "queue", "reject", "2", "-m", "no")
    finally:
        key.with_name("elsewhere").rename(key)
    assert said == (f"mltui: This workspace requires signed decisions, and mltui has no key to sign with for {acc.bob} "
                    "(~/.ssh/id_ed25519 (signing.key) does not exist): set [signing] key = \"~/.ssh/id_ed25519\" in "
                    ".mltui/config.toml (or add the key to ssh-agent) and have the workspace's owner run "
                    f"`mltui keys add {acc.bob} ~/.ssh/id_ed25519.pub`.")
    assert p.snapshot() == before
    # with the key back, the same rejection goes through, signed
    assert f"signed by {acc.bob} with {acc.fingerprints[acc.bob]}" in p.ok(acc.bob, "queue", "reject", "2", "-m", "no")
    # carol's key is not in allowed_signers: it signs nothing here either (she is not even in the group)


def test_a_policy_changed_behind_mltuis_back_stops_other_deciders(acc, project):
    p = project
    with open(p.ws / "config.toml", "a", encoding="utf-8") as fh:  # root edits the owner's file by hand
        fh.write("\n[[promotion.gates]]\nkind = \"eval_run\"\n")
    before = p.snapshot()
    said = p.refused(acc.bob, "models", "alias", "clf@1", "champion")
    assert said == (f"mltui: The promotion policy or notification channels in config.toml changed since mltui last "
                    f"recorded them; the workspace's owner ({acc.alice}) must run `mltui audit policy` before anyone "
                    "else decides.")
    assert p.snapshot() == before
    assert "Recorded the promotion policy" in p.ok(acc.alice, "audit", "policy", "-m", "eval runs from now on")
    p.ok(acc.bob, "models", "alias", "clf@1", "champion")
    p.ok(acc.bob, "audit", "verify")


# -- tampering, each found by `audit verify` ------------------------------------------------------
def _approved(acc, p) -> int:
    p.ok(acc.alice, "queue", "approve", "1", "-m", "looks right")
    p.ok(acc.bob, "queue", "comment", "1", "-m", "thanks")  # an ordinary row after the decision
    p.ok(acc.bob, "audit", "verify")
    return p.q("SELECT seq FROM audit_log WHERE action = 'approve'")[0][0]


def _rechain(p: Project, conn: sqlite3.Connection) -> None:
    """What an attacker who can write the database does after a rewrite: every hash and the head again."""
    prev = audit.GENESIS
    cols = audit.COLUMNS
    for row in conn.execute(f"SELECT {cols} FROM audit_log ORDER BY seq").fetchall():
        seq, when, actor, action, model, details, _, _, identity, policy, sig, key = row
        digest = audit._digest(seq, when, actor, action, model, details, prev, (identity, policy, sig, key))
        conn.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, seq))
        prev, last = digest, seq
    conn.execute("UPDATE meta SET value = ? WHERE key = 'audit_head'", (f"{last}:{prev}",))
    conn.commit()


def _verdict(acc, p) -> dict:
    result = p.mltui(acc.bob, "audit", "verify", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def test_a_rewritten_approval_with_every_hash_recomputed_is_caught(acc, project):
    p = project
    seq = _approved(acc, p)
    with closing(sqlite3.connect(p.db)) as conn:
        conn.execute("UPDATE audit_log SET details = replace(details, 'looks right', 'overridden: hotfix') "
                     "WHERE seq = ?", (seq,))
        _rechain(p, conn)
    assert audit.verify(sqlite3.connect(p.db)) == []  # the chain alone holds: the attacker fixed every hash
    verdict = _verdict(acc, p)
    assert verdict["first_bad"] == seq
    assert verdict["problems"] == [f"row {seq} (approve by {acc.alice}) has a bad signature: the row, or one before "
                                   "it, was changed after it was signed"]
    text = p.mltui(acc.bob, "audit", "verify").stdout.splitlines()
    assert text == ["The audit trail was tampered with (1 problem(s)):", f"  {verdict['problems'][0]}"]


def test_a_request_rewritten_before_a_signed_decision_is_caught_at_that_decision(acc, project):
    p = project
    seq = _approved(acc, p)
    with closing(sqlite3.connect(p.db)) as conn:  # the unsigned request row, before alice's signed rows
        conn.execute("UPDATE audit_log SET actor = 'somebody' WHERE action = 'request'")
        _rechain(p, conn)
    verdict = _verdict(acc, p)
    assert verdict["first_bad"] == seq - 1  # the stage move alice signed first after it
    assert f"row {seq - 1} (stage by {acc.alice}) has a bad signature" in verdict["problems"][0]


def test_two_swapped_rows_are_caught_with_or_without_the_hashes_recomputed(acc, project):
    p = project
    seq = _approved(acc, p)  # seq - 1 is alice's stage move, seq her approval
    cols = "time, actor, action, model, details, prev_hash, hash, identity, policy_hash, signature, signer_key"
    with closing(sqlite3.connect(p.db)) as conn:
        a = conn.execute(f"SELECT {cols} FROM audit_log WHERE seq = ?", (seq - 1,)).fetchone()
        b = conn.execute(f"SELECT {cols} FROM audit_log WHERE seq = ?", (seq,)).fetchone()
        sets = ", ".join(f"{c.strip()} = ?" for c in cols.split(","))
        conn.execute(f"UPDATE audit_log SET {sets} WHERE seq = ?", (*b, seq - 1))
        conn.execute(f"UPDATE audit_log SET {sets} WHERE seq = ?", (*a, seq))
        conn.commit()
    verdict = _verdict(acc, p)
    assert verdict["first_bad"] == seq - 1
    assert f"row {seq - 1} (approve by {acc.alice}) is out of order: it was written after row {seq} (rows were " \
           "reordered)" in verdict["problems"]
    with closing(sqlite3.connect(p.db)) as conn:
        _rechain(p, conn)
    verdict = _verdict(acc, p)
    assert verdict["first_bad"] == seq - 1
    assert verdict["problems"][:2] == [
        f"row {seq - 1} (approve by {acc.alice}) has a bad signature: the row, or one before it, was changed after it "
        "was signed",
        f"row {seq} (stage by {acc.alice}) has a bad signature: the row, or one before it, was changed after it was "
        "signed"]


def test_alices_key_replaced_by_hand_in_allowed_signers_is_caught(acc, project):
    p = project
    seq = _approved(acc, p)
    mallory = acc.base / f"mallory-{secrets.token_hex(2)}"
    _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(mallory))
    signers = p.ws / "allowed_signers"
    alice_blob = (acc.base / f"{acc.alice}.pub").read_text().split()[1]
    text = signers.read_text()
    assert alice_blob in text
    signers.write_text(text.replace(alice_blob, Path(f"{mallory}.pub").read_text().split()[1]))  # still alice's file
    verdict = _verdict(acc, p)
    # the first row alice signed (the policy her first key came with) no longer checks, nor any after it
    first, action = p.q("SELECT seq, action FROM audit_log WHERE signature IS NOT NULL ORDER BY seq LIMIT 1")[0]
    assert verdict["first_bad"] == first
    unknown = (f"is signed with a key allowed_signers did not allow for {acc.alice} at that time "
               f"({acc.fingerprints[acc.alice]}: an unknown key, or allowed_signers was changed)")
    assert verdict["problems"][0] == f"row {first} ({action} by {acc.alice}) {unknown}"
    key_row = p.q("SELECT min(seq) FROM audit_log WHERE action = 'key'")[0][0]
    assert f"row {key_row} (key by {acc.alice}) {unknown}" in verdict["problems"]
    assert f"row {seq} (approve by {acc.alice}) {unknown}" in verdict["problems"]
    assert verdict["problems"][-1].startswith("allowed_signers is not the file `mltui keys add` wrote at row ")


def test_a_decision_forged_with_another_members_key_or_stripped_of_its_signature_is_caught(acc, project):
    p = project
    seq = _approved(acc, p)
    # bob (who may write the database) rewrites alice's approval and signs it with his own key
    with closing(sqlite3.connect(p.db)) as conn:
        row = conn.execute(f"SELECT {audit.COLUMNS} FROM audit_log WHERE seq = ?", (seq,)).fetchone()
        s, when, actor, action, model, details, prev, _, identity, policy, _, _ = row
        data = audit.payload(s, when, actor, action, model, details, prev, identity, policy)
        signed = subprocess.run(["runuser", "-u", acc.bob, "--", "ssh-keygen", "-Y", "sign", "-n", "mltui-decision",
                                 "-f", str(acc.home(acc.bob) / ".ssh" / "id_ed25519")],
                                input=data, capture_output=True, cwd=acc.base, timeout=60)
        assert signed.returncode == 0, signed.stderr
        conn.execute("UPDATE audit_log SET signature = ?, signer_key = ? WHERE seq = ?",
                     (signed.stdout.decode(), acc.fingerprints[acc.bob], seq))
        _rechain(p, conn)
    verdict = _verdict(acc, p)
    assert verdict["first_bad"] == seq
    assert verdict["problems"] == [f"row {seq} (approve by {acc.alice}) is signed with {acc.bob}'s key "
                                   f"{acc.fingerprints[acc.bob]}, not {acc.alice}'s (the signer is not the recorded "
                                   "actor)"]
    with closing(sqlite3.connect(p.db)) as conn:  # or strips the signature, leaving an unsigned "approval"
        conn.execute("UPDATE audit_log SET signature = NULL, signer_key = NULL WHERE seq = ?", (seq,))
        _rechain(p, conn)
    verdict = _verdict(acc, p)
    assert verdict["problems"] == [f"row {seq} (approve by {acc.alice}) is not signed, though allowed_signers allowed "
                                   f"a key for {acc.alice} then (its signature was removed, or the row was written "
                                   "behind mltui's back)"]
