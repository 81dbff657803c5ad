"""The model registry: versions of named models, their stage and aliases, and rollback.

A version is a run's artifact copied into the content-addressed cache (so deleting the run folder
cannot lose it), numbered per model; the same bytes registered twice are one version. Every change
appends to the audit trail in the same transaction.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mltui.core.models import audit
from mltui.core.data.versions import NAME_RE  # models, aliases and datasets follow the same naming rule
from mltui.base.errors import MltuiError, NotFound, UsageError
from mltui.core.workspace import Workspace
from mltui.store.connection import write_tx

STAGES = ("candidate", "staging", "production", "archived")
COLUMNS = ("model", "version", "sha256", "size", "run_id", "path", "stage", "user", "created")


def actor() -> str:
    """Who is acting: the account of the real user id (never an environment variable; see identity.py)."""
    from mltui.core.models.identity import account

    return account()


def _name(who) -> str:
    return who if isinstance(who, str) else who.name


@dataclass
class ModelVersion:
    model: str
    version: int
    sha256: str
    size: int
    run_id: str | None
    path: str
    stage: str
    user: str | None
    created: float
    aliases: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.model}@{self.version}"

    def as_dict(self) -> dict:
        return {**asdict(self), "label": self.label}


def check_name(name: str, what: str = "model name") -> str:
    if not NAME_RE.fullmatch(name or "") or name in STAGES or name.isdigit() or re.fullmatch(r"v\d+", name):
        raise UsageError(f"{name!r} is not a usable {what}: use letters, digits, '.', '_' and '-' (at most 100, "
                         "starting with a letter or digit; not a stage name, a number or v<number>).")
    return name


def _load(conn: sqlite3.Connection, where: str, args: tuple) -> list[ModelVersion]:
    rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM model_versions WHERE {where}", args).fetchall()
    out = [ModelVersion(*r) for r in rows]
    if out:
        aliases: dict[tuple[str, int], list[str]] = {}
        for model, alias, version in conn.execute(
                "SELECT model, alias, version FROM model_aliases WHERE model IN (SELECT value FROM json_each(?)) "
                "ORDER BY alias", (json.dumps(sorted({v.model for v in out})),)):
            aliases.setdefault((model, version), []).append(alias)
        for v in out:
            v.aliases = aliases.get((v.model, v.version), [])
    return out


# -- reading --------------------------------------------------------------------------------------
def list_models(conn: sqlite3.Connection) -> list[dict]:
    """Each model with its number of versions, the newest in production and the latest (counted in SQL:
    a model may have thousands of versions)."""
    return [{"name": name, "versions": count, "production": prod, "latest": latest}
            for name, count, prod, latest in conn.execute(
                "SELECT m.name, count(v.version), max(CASE WHEN v.stage = 'production' THEN v.version END), "
                "max(v.version) FROM models m LEFT JOIN model_versions v ON v.model = m.name "
                "GROUP BY m.name ORDER BY m.name")]


def versions(conn: sqlite3.Connection, name: str) -> list[ModelVersion]:
    """Newest first."""
    if conn.execute("SELECT 1 FROM models WHERE name = ?", (name,)).fetchone() is None:
        raise NotFound(f"There is no model named {name!r}; `mltui models list` shows them.")
    return _load(conn, "model = ? ORDER BY version DESC", (name,))


def resolve(conn: sqlite3.Connection, spec: str) -> ModelVersion:
    """NAME (the latest version), NAME@N or NAME@vN, NAME@<stage> (the newest in it), NAME@<alias>."""
    name, _, ref = spec.partition("@")
    history = versions(conn, name)
    if not history:
        raise NotFound(f"The model {name!r} has no versions yet.")
    if not ref or ref == "latest":
        return history[0]
    number = ref[1:] if ref.startswith("v") and ref[1:].isdigit() else ref
    if number.isdigit():
        found = next((v for v in history if v.version == int(number)), None)
        if found is None:
            raise NotFound(f"{name!r} has no version {number} (it has 1 to {history[0].version}).")
        return found
    if ref in STAGES:
        found = next((v for v in history if v.stage == ref), None)
        if found is None:
            raise NotFound(f"{name!r} has no version in {ref}.")
        return found
    found = next((v for v in history if ref in v.aliases), None)
    if found is None:
        raise NotFound(f"{name!r} has no version, stage or alias called {ref!r}.")
    return found


def production(conn: sqlite3.Connection, name: str) -> ModelVersion | None:
    found = _load(conn, "model = ? AND stage = 'production'", (name,))
    return found[0] if found else None


# -- registering ----------------------------------------------------------------------------------
def register(ws: Workspace, conn: sqlite3.Connection, name: str, run_ref: str, path: str,
             who: str | None = None) -> tuple[ModelVersion, bool]:
    """Version N+1 of `name` from a file of a run: a path inside its folder (artifacts/model.pt) or an
    artifact it recorded in a watched folder (checkpoints/best.pt). The bytes are copied into the
    cache first. Returns (version, created): the same bytes again are the same version."""
    from mltui.store.runs import resolve_id

    check_name(name)
    run_id = resolve_id(conn, run_ref)
    run_dir = ws.run_dir(run_id).resolve()
    row = conn.execute("SELECT location FROM artifacts WHERE run_id = ? AND path = ? AND location IS NOT NULL",
                       (run_id, path)).fetchone()
    if row is not None and not Path(path).is_absolute():
        target, rel_path = Path(row[0]), path  # an artifact recorded in a watched folder outside the run's
    else:
        rel = Path(path)
        target = (run_dir / rel) if not rel.is_absolute() else rel
        rel_path = None
    try:
        target = target.resolve(strict=True)
    except (OSError, RuntimeError):
        raise NotFound(f"Run {run_id} has no file {path!r} (give a path inside its folder, like artifacts/model.pt, "
                       "or an artifact it recorded).") from None
    if rel_path is None:
        if not target.is_relative_to(run_dir):
            raise UsageError(f"{path!r} is outside run {run_id}'s folder; register a file the run wrote.")
        rel_path = target.relative_to(run_dir).as_posix()
    if not target.is_file():
        raise UsageError(f"{path!r} in run {run_id} is not a file.")
    from mltui.core.models.identity import plain

    return _register_file(ws, conn, name, run_id, target, rel_path, plain(ws, who))


def _register_file(ws: Workspace, conn: sqlite3.Connection, name: str, run_id: str, target: Path, rel_path: str,
                   who) -> tuple[ModelVersion, bool]:
    from mltui.core.data.cache import Cache
    from mltui.core.data.hashing import Found

    st = target.stat()
    sha, st = Cache(ws.root / "cache").store(Found(target.name.encode(), os.fsencode(target), st.st_size,
                                                   st.st_mtime_ns, st.st_ino, st.st_ctime_ns))
    with write_tx(conn, ws.db_path):
        existing = _load(conn, "model = ? AND sha256 = ?", (name, sha))
        if existing:
            return existing[0], False
        conn.execute("INSERT OR IGNORE INTO models(name, created) VALUES (?, ?)", (name, time.time()))
        number = conn.execute("SELECT coalesce(max(version), 0) + 1 FROM model_versions WHERE model = ?",
                              (name,)).fetchone()[0]
        now = time.time()
        conn.execute(f"INSERT INTO model_versions({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                     (name, number, sha, st.st_size, run_id, rel_path, "candidate", _name(who), now))
        conn.execute("INSERT INTO stage_moves(model, version, from_stage, to_stage, actor, reason, time) "
                     "VALUES (?,?,?,?,?,?,?)", (name, number, None, "candidate", _name(who), "registered", now))
        audit.append(conn, who, "register", name, {"version": number, "run": run_id, "path": rel_path,
                                                   "sha256": sha, "size": st.st_size})
    return _load(conn, "model = ? AND version = ?", (name, number))[0], True


def register_rules(project: Path) -> list[tuple[str, str]]:
    """(model, pattern) from `[[register]]` tables of the project's mltui.toml: a finished launched run
    registers each of its artifacts whose path matches the pattern (fnmatch, e.g. "checkpoints/best*.pt")."""
    import tomllib

    path = project / "mltui.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MltuiError(f"{path} cannot be read: {exc}.") from None
    rules = data.get("register", [])
    if isinstance(rules, dict):
        rules = [rules]
    out = []
    for i, rule in enumerate(rules if isinstance(rules, list) else [None], 1):
        if not isinstance(rule, dict) or not isinstance(rule.get("model"), str) \
                or not isinstance(rule.get("pattern"), str) or set(rule) - {"model", "pattern"}:
            raise MltuiError(f"{path}: register rule {i} needs exactly model = \"NAME\" and pattern = \"GLOB\".")
        out.append((check_name(rule["model"]), rule["pattern"]))
    return out


def auto_register(ws: Workspace, conn: sqlite3.Connection, run_id: str) -> list[ModelVersion]:
    """Register the run's artifacts that match the project's rules (run by the supervisor at the end)."""
    from fnmatch import fnmatchcase

    from mltui.core.models.identity import plain

    rules = register_rules(ws.project_dir)
    made = []
    for path, location in conn.execute("SELECT path, location FROM artifacts WHERE run_id = ? AND sha256 IS NOT NULL "
                                       "ORDER BY path", (run_id,)).fetchall():
        for model, pattern in rules:
            if fnmatchcase(path, pattern):
                target = Path(location) if location else ws.run_dir(run_id) / path
                if target.is_file():
                    made.append(_register_file(ws, conn, model, run_id, target, path, plain(ws))[0])
    return made


# -- stages and aliases ---------------------------------------------------------------------------
def move(conn: sqlite3.Connection, mv: ModelVersion, to: str, who, reason: str) -> None:
    """Put a version in a stage (inside the caller's transaction). Into production, the version there
    now goes to archived first: at most one production version, always. `who`: the deciding Actor (its
    rows are signed) or an account name."""
    if to not in STAGES:
        raise UsageError(f"{to!r} is not a stage ({', '.join(STAGES)}).")
    now = time.time()
    if to == "production":
        for old in _load(conn, "model = ? AND stage = 'production' AND version != ?", (mv.model, mv.version)):
            _set_stage(conn, old, "archived", who, f"replaced by version {mv.version}", now)
    current = conn.execute("SELECT stage FROM model_versions WHERE model = ? AND version = ?",
                           (mv.model, mv.version)).fetchone()[0]
    if current != to:
        _set_stage(conn, mv, to, who, reason, now, current)


def _set_stage(conn, mv: ModelVersion, to: str, who, reason: str, now: float, current: str | None = None) -> None:
    current = current or mv.stage
    conn.execute("UPDATE model_versions SET stage = ? WHERE model = ? AND version = ?", (to, mv.model, mv.version))
    conn.execute("INSERT INTO stage_moves(model, version, from_stage, to_stage, actor, reason, time) "
                 "VALUES (?,?,?,?,?,?,?)", (mv.model, mv.version, current, to, _name(who), reason, now))
    audit.append(conn, who, "stage", mv.model, {"version": mv.version, "from": current, "to": to, "reason": reason})


def set_alias(ws: Workspace, conn: sqlite3.Connection, spec: str, alias: str, who: str | None = None) -> ModelVersion:
    """Point `alias` of a model at a version (moving it if it pointed elsewhere)."""
    check_name(alias, "alias")
    if alias == "latest":
        raise UsageError("'latest' always means the newest version; pick another alias.")
    from mltui.core.models.identity import decider, settle_policy

    who = decider(ws, who)
    with write_tx(conn, ws.db_path):
        settle_policy(ws, conn, who)
        mv = resolve(conn, spec)
        before = conn.execute("SELECT version FROM model_aliases WHERE model = ? AND alias = ?",
                              (mv.model, alias)).fetchone()
        conn.execute("INSERT INTO model_aliases(model, alias, version) VALUES (?,?,?) "
                     "ON CONFLICT(model, alias) DO UPDATE SET version = excluded.version", (mv.model, alias, mv.version))
        audit.append(conn, who, "alias", mv.model, {"alias": alias, "version": mv.version,
                                                    "from": before[0] if before else None})
    return resolve(conn, f"{mv.model}@{mv.version}")


def rollback(ws: Workspace, conn: sqlite3.Connection, name: str, reason: str, who: str | None = None) -> tuple:
    """Production goes back to the version that was there before the current one. Returns (old, new)."""
    if not reason or not reason.strip():
        raise UsageError("A rollback needs a reason (-m WHY).")
    from mltui.core.models.identity import decider, settle_policy

    who = decider(ws, who)
    with write_tx(conn, ws.db_path):
        settle_policy(ws, conn, who)
        current = production(conn, name)
        if current is None:
            versions(conn, name)  # an unknown model says so
            raise MltuiError(f"{name!r} has no version in production to roll back.")
        stack = _production_stack(conn, name)
        if len(stack) < 2 or stack[-1] != current.version:
            raise MltuiError(f"{current.label} is the first version of {name!r} in production; there is nothing "
                             "to roll back to.")
        row = (stack[-2],)
        previous = _load(conn, "model = ? AND version = ?", (name, row[0]))[0]
        _set_stage(conn, current, "archived", who, f"rolled back: {reason}", time.time())
        move(conn, previous, "production", who, f"rollback from version {current.version}: {reason}")
        audit.append(conn, who, "rollback", name, {"from": current.version, "to": previous.version, "reason": reason})
    return current, resolve(conn, f"{name}@{previous.version}")


def _production_stack(conn: sqlite3.Connection, name: str) -> list[int]:
    """The versions production went through, replayed from the stage moves: an approval pushes, a
    rollback pops. A rollback goes to the entry under the top, so it never returns to a version it
    rolled back, however many times it is repeated."""
    stack: list[int] = []
    for version, reason in conn.execute("SELECT version, reason FROM stage_moves WHERE model = ? AND "
                                        "to_stage = 'production' ORDER BY id", (name,)):
        if (reason or "").startswith("rollback from"):
            if stack:
                stack.pop()
            if not stack or stack[-1] != version:
                stack.append(version)
        elif not stack or stack[-1] != version:
            stack.append(version)
    return stack


def history(conn: sqlite3.Connection, name: str) -> list[dict]:
    return [{"version": v, "from": f, "to": t, "actor": a, "reason": r, "time": tm} for v, f, t, a, r, tm in
            conn.execute("SELECT version, from_stage, to_stage, actor, reason, time FROM stage_moves WHERE model = ? "
                         "ORDER BY id", (name,))]
