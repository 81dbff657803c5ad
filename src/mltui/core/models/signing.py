"""SSH signatures for decisions, the way git signs commits with SSH keys: `ssh-keygen -Y sign` with
the namespace `mltui-decision`, checked with `ssh-keygen -Y verify` against the workspace's
allowed_signers file at the time the decision was made.

ssh-keygen is always run with an argv list (never a shell) and the signed bytes on its stdin. The key
is the file named by `[signing] key` in config.toml (`~` is the account's home from the password
database), or a key ssh-agent holds that allowed_signers lists for the account.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mltui.base.errors import MltuiError

NAMESPACE = "mltui-decision"
TIMEOUT = 60.0  # seconds: an agent may ask its user to confirm


@dataclass(frozen=True)
class Key:
    """A key this account can sign with. `path` is what ssh-keygen -f gets: the private key file, or a
    public key file whose private half ssh-agent holds (None: an agent key, written to a temp file)."""

    public: str  # "ssh-ed25519 AAAA..."
    fingerprint: str  # SHA256:...
    source: str  # how a person recognises it: "~/.ssh/id_ed25519", "ssh-agent"
    path: str | None


def keygen() -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        raise MltuiError("ssh-keygen is not installed, and mltui signs and checks decisions with it "
                         "(Debian: apt-get install openssh-client).")
    return found


def _run(args: list[str], data: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([keygen(), *args], input=data, stdin=None if data is not None else subprocess.DEVNULL,
                              capture_output=True, timeout=TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        raise MltuiError(f"ssh-keygen did not answer within {TIMEOUT:g} seconds.") from None
    except OSError as exc:
        raise MltuiError(f"Cannot run ssh-keygen: {exc.strerror}.") from None


def _said(result: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in result.stderr.decode("utf-8", "replace").splitlines()
             if ln.strip() and not ln.startswith("Signing data on standard input")]
    return lines[-1].strip().rstrip(".") if lines else f"ssh-keygen exited with {result.returncode}"


# -- public keys ----------------------------------------------------------------------------------
def split_public(text: str) -> tuple[str, str, str]:
    """(type, base64 blob, comment) of one OpenSSH public key line; a sentence when it is not one."""
    parts = text.strip().split(None, 2)
    if len(parts) < 2 or not (parts[0].startswith("ssh-") or parts[0].startswith("ecdsa-")
                              or parts[0].startswith("sk-")):
        raise MltuiError("That is not an OpenSSH public key (a line like `ssh-ed25519 AAAA... you@host`).")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise MltuiError("That public key's base64 part is damaged.") from None
    if not blob.startswith(len(parts[0]).to_bytes(4, "big") + parts[0].encode()):
        raise MltuiError("That public key's type does not match its contents.")
    return parts[0], parts[1], parts[2] if len(parts) > 2 else ""


def fingerprint(blob_b64: str) -> str:
    """OpenSSH's SHA256 fingerprint of a key (the base64 part of its public line)."""
    digest = hashlib.sha256(base64.b64decode(blob_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def signature_key(signature: str) -> str | None:
    """The public key (base64 blob) inside an armored SSH signature; None when it cannot be read."""
    body = "".join(ln for ln in signature.strip().splitlines() if not ln.startswith("-----"))
    try:
        raw = base64.b64decode(body)
        if not raw.startswith(b"SSHSIG"):
            return None
        size = int.from_bytes(raw[10:14], "big")  # after the magic and a uint32 version
        return base64.b64encode(raw[14:14 + size]).decode()
    except (ValueError, IndexError):
        return None


def agent_keys() -> list[str]:
    """Public key lines ssh-agent holds ($SSH_AUTH_SOCK), none when there is no agent."""
    if not os.environ.get("SSH_AUTH_SOCK"):
        return []
    add = shutil.which("ssh-add")
    if add is None:
        return []
    try:
        out = subprocess.run([add, "-L"], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return []
    return [ln.strip() for ln in out.stdout.splitlines() if ln.strip()] if out.returncode == 0 else []


def configured(ws) -> tuple[Path | None, str | None]:
    """The key file `[signing] key` names (`~` is this account's home), and that setting as written."""
    from mltui.base.procs import home

    section = ws.config().raw.get("signing", {})
    if not isinstance(section, dict) or set(section) - {"key"}:
        raise MltuiError(f"{ws.config_path}: [signing] takes one setting, key = \"~/.ssh/id_ed25519\".")
    written = section.get("key")
    if written is None:
        return None, None
    if not isinstance(written, str) or not written.strip():
        raise MltuiError(f"{ws.config_path}: signing.key must be the path of an SSH key, in quotes.")
    path = str(home()) + written[1:] if written == "~" or written.startswith("~/") else written
    return Path(path), written


def _file_key(path: Path, shown: str, agent: set[str]) -> tuple[Key | None, str]:
    """The key in `path` (private, or public with its private half in ssh-agent), or why not."""
    if path.suffix == ".pub" or not path.is_file():
        pub_path = path
    else:
        derived = _run(["-y", "-P", "", "-f", str(path)])
        if derived.returncode == 0:
            kind, blob, _ = split_public(derived.stdout.decode("ascii", "replace"))
            return Key(f"{kind} {blob}", fingerprint(blob), shown, str(path)), ""
        pub_path = Path(str(path) + ".pub")
        if not pub_path.is_file():
            return None, f"{shown} cannot be used without a passphrase ({_said(derived)})"
    try:
        kind, blob, _ = split_public(pub_path.read_text(encoding="ascii", errors="replace"))
    except OSError as exc:
        return None, f"{shown} cannot be read ({exc.strerror})"
    except MltuiError:
        return None, f"{shown} is not an SSH key"
    if f"{kind} {blob}" not in agent:
        return None, f"{shown} has a passphrase and ssh-agent does not hold it (run `ssh-add {shown}`)"
    return Key(f"{kind} {blob}", fingerprint(blob), f"{shown} (through ssh-agent)", str(pub_path)), ""


def find_key(ws, allowed: list[str]) -> tuple[Key | None, str]:
    """The key to sign with: the configured one, else one in ssh-agent that `allowed` (public key lines
    allowed_signers lists for this account now) holds. (None, why) when there is none to use."""
    path, written = configured(ws)
    agent = {" ".join(line.split()[:2]) for line in agent_keys()}
    why = ""
    if path is not None:
        if path.exists():
            key, why = _file_key(path, written or str(path), agent)
            if key is not None:
                if key.public in allowed:
                    return key, ""
                why = f"your key {key.fingerprint} ({key.source}) is not in the workspace's allowed_signers"
        else:
            why = f"{written} (signing.key) does not exist"
    for public in agent:
        if public in allowed:
            blob = public.split()[1]
            return Key(public, fingerprint(blob), "ssh-agent", None), ""
    if not why:
        why = ("no key is set ([signing] key in config.toml) and ssh-agent holds none allowed_signers lists for you"
               if allowed else "allowed_signers lists no key for you")
    return None, why


# -- signing and checking -------------------------------------------------------------------------
def sign(key: Key, data: bytes) -> str:
    """An armored SSH signature of `data` in the mltui-decision namespace."""
    temp = None
    try:
        path = key.path
        if path is None:  # an agent key: ssh-keygen finds the private half from the public one
            fd, temp = tempfile.mkstemp(prefix="mltui-key-", suffix=".pub")
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(key.public + "\n")
            path = temp
        result = _run(["-Y", "sign", "-n", NAMESPACE, "-f", path], data)
    finally:
        if temp is not None:
            os.unlink(temp)
    if result.returncode != 0 or b"BEGIN SSH SIGNATURE" not in result.stdout:
        raise MltuiError(f"Signing with {key.source} failed: {_said(result)}.")
    return result.stdout.decode("ascii")


def stamp(when: float) -> str:
    """A time as allowed_signers and -O verify-time write it (UTC)."""
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(when))


def _with_signature(signature: str, args: list[str], data: bytes) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="mltui-sig-") as folder:
        sig = Path(folder) / "decision.sig"
        sig.write_text(signature, encoding="ascii")
        return _run([*args, "-s", str(sig)], data)


def verify(signers: Path, principal: str, signature: str, data: bytes, when: float) -> bool:
    """Whether `signature` over `data` is by a key allowed_signers allowed for `principal` at `when`."""
    return _with_signature(signature, ["-Y", "verify", "-f", str(signers), "-I", principal, "-n", NAMESPACE,
                                       "-O", f"verify-time={stamp(when)}"], data).returncode == 0


def intact(signature: str, data: bytes) -> bool:
    """Whether the signature matches `data` at all, whoever's key made it."""
    return _with_signature(signature, ["-Y", "check-novalidate", "-n", NAMESPACE], data).returncode == 0


def principals(signers: Path, signature: str, when: float) -> list[str]:
    """The accounts allowed_signers allowed the signing key for at `when`."""
    result = _with_signature(signature, ["-Y", "find-principals", "-f", str(signers),
                                         "-O", f"verify-time={stamp(when)}"], b"")
    if result.returncode != 0:
        return []
    return [p for line in result.stdout.decode("utf-8", "replace").splitlines() for p in line.split(",") if p]
