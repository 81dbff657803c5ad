"""What a stage's result depends on, as one hash: the filled command, the params, the content of every
dep (through the stat-cached hasher that `data add` uses, so a no-op hashes nothing) and the outs.

Also the reasons a stage is stale, named as a person would: which dep files were added, removed or
modified, which param changed from what to what, a changed command, outs missing or modified.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mltui.base.errors import MltuiError
from mltui.core.data.hashing import show
from mltui.core.data.versions import Snapshot, snapshot
from mltui.core.pipeline.stages import Stage
from mltui.core.workspace import Workspace

MISSING = None  # the content id of a path that is not there


@dataclass
class Contents:
    """The content ids of some paths (None: missing), with each one's files when asked for."""

    ids: dict[str, str | None]
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # path -> {file in it: sha256}


def contents(ws: Workspace, conn: sqlite3.Connection, project: Path, paths: list[str], store: bool = False,
             keep_files: bool = False) -> Contents:
    """Hash each path under `project` (only files the stat cache cannot vouch for)."""
    out = Contents({})
    for rel in paths:
        where = project / rel
        if not where.exists() and not where.is_symlink():
            out.ids[rel] = MISSING
            continue
        snap: Snapshot = snapshot(ws, conn, where, store=store)
        out.ids[rel] = snap.id
        if keep_files:
            out.files[rel] = {show(row[0]): row[3] or row[1] for row in snap.rows}
    return out


def fingerprint(argv: list[str], params: Mapping[str, Any], deps: Mapping[str, str | None], outs: list[str]) -> str:
    text = json.dumps({"command": argv, "params": params, "deps": deps, "outs": outs}, sort_keys=True,
                      default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def pack_files(files: Mapping[str, Mapping[str, str]]) -> bytes:
    return zlib.compress(json.dumps(files, separators=(",", ":")).encode(), 1)


def unpack_files(blob: bytes | None) -> dict[str, dict[str, str]]:
    if not blob:
        return {}
    try:
        return json.loads(zlib.decompress(blob))
    except (zlib.error, ValueError):
        return {}


@dataclass
class StageInputs:
    """What a stage would run with now."""

    argv: list[str]
    params: dict[str, Any]
    deps: dict[str, str | None]
    fingerprint: str
    files: dict[str, dict[str, str]]  # dep -> {file: sha256}, to name what changed next time


def stage_inputs(ws: Workspace, conn: sqlite3.Connection, project: Path, stage: Stage,
                 overrides: Mapping[str, Any]) -> StageInputs:
    params = stage.params_with(overrides)
    argv = stage.argv(params)
    found = contents(ws, conn, project, stage.deps, keep_files=True)
    plain = {k: _plain(v) for k, v in params.items()}
    return StageInputs(argv, plain, found.ids, fingerprint(argv, plain, found.ids, stage.products), found.files)


def _plain(value: Any) -> Any:
    from mltui.core.launch.commands import plain

    return plain(value)


def file_changes(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, list[str]]:
    """Files added, removed and modified between two {file: sha256} maps, as `data diff` names them."""
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    modified = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return {"added": added, "removed": removed, "modified": modified}


def describe_dep_change(ws: Workspace, conn: sqlite3.Connection, project: Path, dep: str, old_id: str | None,
                        new_id: str | None, old_files: Mapping[str, str] | None) -> dict[str, Any]:
    """One dep's change, with its files when the last run's files are known."""
    if new_id is MISSING:
        return {"kind": "dep", "dep": dep, "change": "missing"}
    if old_id is MISSING:
        return {"kind": "dep", "dep": dep, "change": "added"}
    reason: dict[str, Any] = {"kind": "dep", "dep": dep, "change": "modified"}
    if old_files is not None:
        try:
            now = contents(ws, conn, project, [dep], keep_files=True).files.get(dep, {})
        except MltuiError:
            return reason
        reason.update(file_changes(old_files, now))
    return reason


def param_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key in sorted(set(old) | set(new)):
        if old.get(key, MISSING) != new.get(key, MISSING) or (key in old) != (key in new):
            out.append({"param": key, "from": old.get(key), "to": new.get(key)})
    return out
