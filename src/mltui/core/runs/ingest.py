"""Writing runs that were recorded elsewhere (TensorBoard folders, MLflow stores) into the store.

The importers in mltui.integrations go through this, so they hold no SQL: a run is created with its
source's times and status, its points written in big batches (the store's own bulk path, the same as
the supervisor's), its artifacts copied with their sha256, and the run that came from a given source
found again by a tag, so that importing twice does not import twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from mltui.core.reader import open_writer
from mltui.core.runs.records import create_run
from mltui.core.workspace import Workspace
from mltui.store import metrics as metric_store
from mltui.store import runs as run_store
from mltui.store.connection import write_tx

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

Columns = Mapping[str, "tuple[list[int], list[float], list[float]]"]


class Ingest:
    """One writer connection for a whole import; `close()` when done (or use it as a context manager)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.conn = open_writer(ws)
        self._mode = ws.config().file_mode

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Ingest":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- finding what came before --------------------------------------------------------------
    def runs_by_tag(self, key: str) -> dict[str, str]:
        """{tag value: run id} for every run carrying tag `key` (the source each was imported from)."""
        rows = self.conn.execute("SELECT value, run_id FROM tags WHERE key = ?", (key,)).fetchall()
        return {str(value): run_id for value, run_id in rows}

    def existing(self, run_id: str, key: str) -> dict[int, float]:
        """The points a run has for one key, {step: value}."""
        steps, values, _ = metric_store.read_series(self.conn, run_id, key)
        return dict(zip(steps, values))

    def run(self, run_id: str) -> dict[str, Any]:
        return run_store.get_runs(self.conn, [run_id])[0]

    def tags(self, run_id: str) -> dict[str, Any]:
        return run_store.values_for(self.conn, "tags", [run_id])[run_id]

    # -- writing ---------------------------------------------------------------------------------
    def create(self, name: str, *, status: str, created: float, started: float | None = None,
               ended: float | None = None, kind: str = "other", cwd: str = "", note: str | None = None,
               reason: str | None = None, command: list[str] | None = None,
               params: Mapping[str, Any] | None = None, tags: Mapping[str, Any] | None = None) -> str:
        """A new run row and folder, with the source's own times; returns its id."""
        fields = {"started": started, "ended": ended, "heartbeat": None, "pid": None, "reason": reason}
        run_id = create_run(self.ws, name=name, kind=kind, status=status, command=command or [], note=note,
                            created=created, cwd=cwd, git=False, fields=fields, params=params, conn=self.conn)
        if tags:
            self.values(run_id, tags=tags)
        return run_id

    def values(self, run_id: str, params: Mapping[str, Any] | None = None,
               tags: Mapping[str, Any] | None = None) -> None:
        with write_tx(self.conn, self.ws.db_path):
            if params:
                run_store.set_values(self.conn, "params", run_id, params)
            if tags:
                run_store.set_values(self.conn, "tags", run_id, tags)

    def points(self, run_id: str, columns: Columns) -> int:
        """Write metric columns {key: (steps, values, times)} in one transaction; returns the points."""
        if not columns:
            return 0
        with write_tx(self.conn, self.ws.db_path):
            return metric_store.write_batch(self.conn, run_id, columns)

    def times(self, run_id: str, *, started: float | None = None, ended: float | None = None) -> None:
        """Widen the run's span to take in `started`..`ended` (a re-import that found later events)."""
        row = self.run(run_id)
        fields: dict[str, Any] = {}
        if started is not None and (row["started"] is None or started < row["started"]):
            fields["started"] = started
        if ended is not None and (row["ended"] is None or ended > row["ended"]):
            fields["ended"] = ended
        if fields:
            with write_tx(self.conn, self.ws.db_path):
                run_store.update_run(self.conn, run_id, **fields)

    def artifact(self, run_id: str, src: Path, rel: str) -> tuple[str, int, str]:
        """Copy one file into the run's artifacts/ as `rel` and record it with its sha256:
        (its recorded path, size, sha256)."""
        from mltui.core.runs import artifacts as art

        placed = art.place(self.conn, run_id, self.ws.run_dir(run_id), Path(src), PurePosixPath(rel),
                           self._mode, overwrite=True)
        with write_tx(self.conn, self.ws.db_path):
            placed.record(self.conn)
        return placed.path, placed.size, placed.sha256

    # -- state an importer keeps beside a run ----------------------------------------------------
    def load_state(self, run_id: str, name: str) -> dict:
        try:
            with open(self.ws.run_dir(run_id) / name, encoding="utf-8") as fh:
                data = json.load(fh)
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def save_state(self, run_id: str, name: str, data: dict) -> None:
        """Written whole (a temporary file renamed over the old one), so a crash leaves the old state."""
        folder = self.ws.run_dir(run_id)
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, folder / name)
