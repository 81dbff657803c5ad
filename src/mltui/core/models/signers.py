"""Reading the workspace's allowed_signers file (git's `gpg.ssh.allowedSignersFile` format, see
ssh-keygen(1), ALLOWED SIGNERS): one line per key, `account [options] keytype base64 [comment]`.
mltui writes each key with `namespaces="mltui-decision"` and `valid-after`, and a replaced key gets
`valid-before` (keys.py writes the file; this module only reads it)."""

from __future__ import annotations

import calendar
import hashlib
import shlex
import time
from dataclasses import dataclass, field

from mltui.base.errors import MltuiError
from mltui.core.models.signing import NAMESPACE, fingerprint
from mltui.core.workspace import Workspace


@dataclass
class Entry:
    principals: list[str]
    kind: str
    blob: str
    comment: str = ""
    options: dict[str, str] = field(default_factory=dict)

    @property
    def public(self) -> str:
        return f"{self.kind} {self.blob}"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)

    def valid_at(self, when: float) -> bool:
        after, before = _time(self.options.get("valid-after")), _time(self.options.get("valid-before"))
        return (after is None or when >= after) and (before is None or when < before)

    def line(self) -> str:
        opts = ",".join(f'{k}="{v}"' if v != "" else k for k, v in self.options.items())
        return " ".join(p for p in (",".join(self.principals), opts, self.kind, self.blob, self.comment) if p)

    def as_dict(self) -> dict:
        return {"accounts": self.principals, "key": self.public, "fingerprint": self.fingerprint,
                "comment": self.comment, "valid_after": self.options.get("valid-after"),
                "valid_before": self.options.get("valid-before"), "namespaces": self.options.get("namespaces")}


def _time(text: str | None) -> float | None:
    """YYYYMMDD[HHMM[SS]][Z] as allowed_signers writes it (local time without the Z)."""
    if not text:
        return None
    utc = text.endswith("Z")
    digits = text.rstrip("Z").ljust(14, "0")
    try:
        parts = time.strptime(digits, "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return float(calendar.timegm(parts) if utc else time.mktime(parts))


def parse(text: str) -> list[Entry]:
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        if len(words) < 3:
            continue
        principals, rest = words[0].split(","), words[1:]
        options: dict[str, str] = {}
        if not _is_type(rest[0]):
            for opt in rest[0].split(","):
                key, _, value = opt.partition("=")
                options[key.lower()] = value
            rest = rest[1:]
        if len(rest) < 2:
            continue
        out.append(Entry(principals, rest[0], rest[1], " ".join(rest[2:]), options))
    return out


def _is_type(word: str) -> bool:
    return word.startswith(("ssh-", "ecdsa-", "sk-"))


def read_text(ws: Workspace) -> str:
    try:
        return ws.signers_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise MltuiError(f"Cannot read {ws.signers_path}: {exc.strerror}.") from None


def read(ws: Workspace) -> list[Entry]:
    return parse(read_text(ws))


def allowed_for(entries: list[Entry], account: str, when: float) -> list[str]:
    """Public key lines allowed for `account` (for mltui's namespace) at `when`."""
    return [e.public for e in entries if account in e.principals and e.valid_at(when)
            and NAMESPACE in e.options.get("namespaces", NAMESPACE).split(",")]


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
