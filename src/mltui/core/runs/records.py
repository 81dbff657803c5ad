"""New run rows: the folder, the row with where and how it runs, its params. Used by `mltui.init()`,
the launcher, importers and the demo."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (import mltui stays lean)

from mltui.base.errors import MltuiError
from mltui.base.ids import new_run_id
from mltui.base.procs import boot_id, git_state, user
from mltui.core.workspace import Workspace
from mltui.store import runs as run_store
from mltui.core.reader import open_writer
from mltui.store.connection import write_tx

if TYPE_CHECKING:
    from typing import Any

_time = time.time


def create_run(
    workspace: Workspace,
    name: str | None = None,
    kind: str = "other",
    status: str = "running",
    command: list[str] | None = None,
    note: str | None = None,
    parent_id: str | None = None,
    created: float | None = None,
    *,
    cwd: str | None = None,
    git: bool = True,
    fields: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    stem: str | None = None,
    conn=None,
) -> str:
    """Insert a new run row and make its folder; returns the run id.

    `fields` sets more run columns (a launcher's spec, gpus); `git=False` leaves the git state to
    whoever fills it in later (the supervisor, off the launch's critical path)."""
    import json
    import socket

    config = workspace.config()
    now = _time() if created is None else created
    run_id = new_run_id(now)
    cwd = os.getcwd() if cwd is None else cwd
    if name is None:
        if stem is None:
            stem = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] not in ("", "-c") else "run"
        name = f"{stem}-{run_id[-4:]}"
    git_commit, git_dirty = git_state(cwd) if git else (None, None)
    run_dir = workspace.run_dir(run_id)
    try:
        run_dir.mkdir(mode=config.dir_mode, parents=False, exist_ok=False)
        (run_dir / "artifacts").mkdir(mode=config.dir_mode)
        if config.shared:  # mkdir's mode is cut by the umask; shared folders must really be group-writable
            os.chmod(run_dir, config.dir_mode)
            os.chmod(run_dir / "artifacts", config.dir_mode)
    except FileNotFoundError:
        workspace.runs_dir.mkdir(mode=config.dir_mode, exist_ok=True)
        return create_run(workspace, name, kind, status, command, note, parent_id, created,
                          cwd=cwd, git=git, fields=fields, params=params, stem=stem, conn=conn)
    except FileExistsError:
        return create_run(workspace, name, kind, status, command, note, parent_id, created,
                          cwd=cwd, git=git, fields=fields, params=params, stem=stem, conn=conn)
    except OSError as exc:
        import errno

        if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
            raise MltuiError(f"Cannot create a run folder in {workspace.runs_dir}: the workspace is read-only.") from None
        raise MltuiError(f"Cannot create a run folder in {workspace.runs_dir}: {exc.strerror}.") from None
    own = conn is None  # a launcher passes its connection: one open and close per launch
    if own:
        conn = open_writer(workspace)
    try:
        with write_tx(conn, workspace.db_path):
            run_store.insert_run(
                conn,
                {
                    "id": run_id,
                    "name": str(name),
                    "kind": kind,
                    "status": status,
                    "command": json.dumps(command if command is not None else list(sys.argv)),
                    "cwd": cwd,
                    "host": socket.gethostname(),
                    "user": user(),
                    "pid": os.getpid() if status == "running" else None,
                    "git_commit": git_commit,
                    "git_dirty": None if git_dirty is None else int(git_dirty),
                    "python": sys.version.split()[0],
                    "parent_id": parent_id,
                    "created": now,
                    "started": now if status == "running" else None,
                    "heartbeat": now,
                    "boot_id": boot_id() if status == "running" else None,
                    "run_dir": str(run_dir),
                    "note": note,
                    **(fields or {}),
                },
            )
            if params:
                run_store.set_values(conn, "params", run_id, params)
    finally:
        if own:
            conn.close()
    return run_id
