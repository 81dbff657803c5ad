"""The supervisor's tail of TensorBoard event files: what a launched script writes with SummaryWriter
(torch, tensorboardX, Lightning's default logger, Hugging Face's TensorBoard callback) becomes the run's
metrics while it runs, with no change to the script.

Event files are looked for under the run's working folder, its watched folders and its run folder, and
only those written since the run started (an older run's files in the same folder are not this run's).
The folders are walked again every RESCAN seconds; files already found are read at every call, each
from where the last read stopped, in bounded steps (MAX_READ bytes per call for all files together).
Nothing is imported from tensorboard until an event file is found, so a run without one costs a walk.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from mltui.core.runs.tb_files import EventSet, find_event_files
from mltui.core.runs.tfevents import MAX_READ, Batch, TensorboardMissing

RESCAN = 2.0

BAD_TAG = "tensorboard.bad_records"  # records whose CRC did not match, counted on the run
CUT_TAG = "tensorboard.truncated"  # records cut short when the run ended


class TensorboardTail:
    """Reads the event files of one launched run: `read()` gives a Batch of the new points, `unsaid()` the
    hparams and damaged-record counts the run's rows still lack."""

    def __init__(self, roots: list[Path], since: float, skip: list[str], conn: sqlite3.Connection,
                 run_id: str) -> None:
        self.roots = roots
        self.since = since
        self.skip = skip
        self.conn = conn
        self.run_id = run_id
        self.events = EventSet(existing=self._existing)
        self.more = False
        self.problem: str | None = None  # one sentence for the supervisor's log, said once
        self.bad = 0
        self.truncated = 0
        self._scanned = 0.0
        self._params: dict[str, object] = {}  # hparams read so far
        self._unsaid: dict[str, object] = {}  # of which not yet written to the run
        self._counted: dict[str, int] = {}  # the damaged-record counts last written
        self._unusable = False

    def _existing(self, key: str) -> dict[int, float]:
        """The points the run has for `key` (a second event file must not repeat the first's)."""
        from mltui.store.metrics import read_series

        steps, values, _ = read_series(self.conn, self.run_id, key)
        return dict(zip(steps, values))

    def read(self, final: bool = False) -> Batch:
        now = time.monotonic()
        if final or now - self._scanned >= RESCAN:
            self._scanned = now
            for path in find_event_files(self.roots, since=self.since, skip=self.skip):
                self.events.add(path)
        if self._unusable or not self.events.files:
            return Batch()
        try:
            batch = self.events.read(final=final, max_bytes=MAX_READ)
        except TensorboardMissing as exc:
            self._unusable = True
            names = ", ".join(sorted({os.path.basename(f) for f in self.events.files})[:3])
            self.problem = f"the run writes TensorBoard event files ({names}) but they cannot be read: {exc}"
            return Batch()
        self.more = self.events.more
        self.bad += batch.bad
        self.truncated += batch.truncated
        fresh = {k: v for k, v in batch.params.items() if self._params.get(k, object()) != v}
        self._params.update(fresh)
        self._unsaid.update(fresh)
        return batch

    def unsaid(self) -> dict[str, dict[str, object]]:
        """What the run's rows do not have yet: {"params": hparams, "tags": counts of damaged records}.
        Call `said()` once it is written; until then each call gives it again."""
        counts = {}
        if self.bad:
            counts[BAD_TAG] = self.bad
        if self.truncated:
            counts[CUT_TAG] = self.truncated
        if counts == self._counted:
            counts = {}
        return {"params": dict(self._unsaid), "tags": counts}

    def said(self, values: dict[str, dict[str, object]]) -> None:
        for key in values.get("params", {}):
            self._unsaid.pop(key, None)
        if values.get("tags"):
            self._counted = dict(values["tags"])


def roots_for(cwd: str, watched: list[str], run_dir: Path) -> list[Path]:
    """The run's working folder, its watched folders (those outside it) and its run folder."""
    base = Path(cwd)
    roots = [base]
    for folder in watched:
        path = base / folder
        real = os.path.realpath(path)
        if os.path.commonpath([real, os.path.realpath(base)]) != os.path.realpath(base):
            roots.append(path)
    roots.append(run_dir)
    return roots
