"""The file of a registered model version, for code that loads a model (a serving process):

    from mltui.core.models.files import version_file
    mv, path = version_file("classifier@production")
    weights = json.loads(path.read_text())

The path is the version's object in the workspace's content-addressed cache (read-only; the run
folder it came from may be gone). Its bytes are checked against the sha256 the registry recorded,
so a damaged copy is refused rather than served.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mltui.base.errors import MltuiError
from mltui.core.models.registry import ModelVersion, resolve
from mltui.core.workspace import Workspace, find_workspace


def version_file(spec: str, workspace: Workspace | str | os.PathLike[str] | None = None, *,
                 verify: bool = True) -> tuple[ModelVersion, Path]:
    """(version, path of its file) for NAME, NAME@N, NAME@<stage> or NAME@<alias>; MltuiError, in one
    sentence, when there is no such version or its file is missing or damaged."""
    from mltui.core.data.versions import cache_of
    from mltui.core.reader import open_reader

    ws = workspace if isinstance(workspace, Workspace) else find_workspace(workspace)
    conn = open_reader(ws)
    try:
        mv = resolve(conn, spec)
    finally:
        conn.close()
    path = cache_of(ws).path(mv.sha256)
    try:
        size = path.stat().st_size
    except OSError:
        raise MltuiError(f"The file of {mv.label} ({mv.path}) is missing from the workspace's cache "
                         f"({path}).") from None
    if size != mv.size or (verify and _sha256(path) != mv.sha256):
        raise MltuiError(f"The file of {mv.label} ({mv.path}) in the workspace's cache is damaged: its bytes "
                         "are not the ones registered.")
    return mv, path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
