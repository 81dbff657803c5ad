"""`mltui import tensorboard DIR`: each folder of event files under DIR becomes one run, as TensorBoard
groups them (a folder's own event files, not its subfolders', make one run named by its path under DIR).

Scalars become metrics (the tag is the key, at its step and wall time), hparams become params, the first
and last event give the run's start and end. Each run remembers how far it read each file (in its run
folder), so importing again takes only what was appended since, and files that appeared since, without
repeating a point. A damaged record (CRC mismatch) is counted on the run and skipped; a last record cut
short is left for the next import; a folder without event files is an error that says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from mltui.base.errors import MltuiError, UsageError
from mltui.core.launch.tb_tail import BAD_TAG
from mltui.core.runs.ingest import Ingest
from mltui.core.runs.tb_files import EventSet, find_event_files
from mltui.core.runs.tfevents import PREFIX, proto
from mltui.core.workspace import Workspace

SOURCE_TAG = "tensorboard.logdir"  # the folder a run was imported from (its real path)
STATE = "tensorboard-import.json"  # {file: offset}: how far each event file was read
CHUNK = 4 << 20  # bytes read (and written to the store) at a time: the progress bar moves by these
NAME_FROM = ("dir", "tag")


class NoEventFiles(MltuiError):
    """The folder holds no TensorBoard event files."""


def groups(root: Path) -> dict[Path, list[Path]]:
    """{folder: its event files} under `root`, as TensorBoard groups runs."""
    found: dict[Path, list[Path]] = {}
    for path in find_event_files([root], max_entries=10**9):
        found.setdefault(path.parent, []).append(path)
    return found


def run_name(root: Path, folder: Path, params: dict, name_from: str) -> str:
    """The run's name: its folder's path under DIR (`dir`, TensorBoard's own run name), or with `tag` the
    name the script logged (an hparam `run_name` or `name`), falling back to the folder."""
    if name_from == "tag":
        for key in ("run_name", "name"):
            if isinstance(params.get(key), str) and params[key].strip():
                return params[key].strip()
    rel = os.path.relpath(folder, root)
    return root.resolve().name if rel == "." else Path(rel).as_posix()


def import_tensorboard(ws: Workspace, folder: str | os.PathLike[str], *, name_from: str = "dir",
                       progress: Callable[[int, int], None] | None = None) -> dict:
    """Import every run under `folder`; returns a report {"folder", "runs": [...], "points", "bad"}."""
    if name_from not in NAME_FROM:
        raise UsageError(f"--name-from must be one of {', '.join(NAME_FROM)}, not {name_from!r}.")
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise UsageError(f"{str(root)!r} is not a folder.")
    found = groups(root)
    if not found:
        raise NoEventFiles(f"There are no TensorBoard event files ({PREFIX}*) under {root}; point at the folder "
                           "given to SummaryWriter (log_dir) or to TensorBoard's --logdir.")
    proto()  # the tensorboard package, or one sentence naming the pip install, before anything is written
    report: dict = {"folder": str(root.resolve()), "runs": [], "points": 0, "bad": 0}
    with Ingest(ws) as ingest:
        known = ingest.runs_by_tag(SOURCE_TAG)
        sets = []
        for sub, files in sorted(found.items()):
            source = os.path.realpath(sub)
            run_id = known.get(source)
            offsets = ingest.load_state(run_id, STATE) if run_id else {}
            existing = (lambda key, rid=run_id: ingest.existing(rid, key)) if run_id else None
            events = EventSet(existing=existing, offsets=offsets)
            for path in files:
                events.add(path)
            sets.append((sub, source, run_id, events))
        total = sum(events.pending() for *_, events in sets)
        done = 0
        for sub, source, run_id, events in sets:
            entry = _import_one(ingest, root, sub, source, run_id, events, name_from,
                                lambda n: progress(done + n, total) if progress else None)
            done += entry.pop("bytes")
            report["runs"].append(entry)
            report["points"] += entry["points"]
            report["bad"] += entry["bad"]
        if progress:
            progress(total, total)
    return report


def _import_one(ingest: Ingest, root: Path, sub: Path, source: str, run_id: str | None, events: EventSet,
                name_from: str, moved: Callable[[int], None]) -> dict:
    entry = {"folder": os.path.relpath(sub, root), "run": run_id, "name": None, "new": run_id is None,
             "files": len(events.files), "points": 0, "params": 0, "bad": 0, "waiting": [], "bytes": 0}
    params: dict = {}
    bad = 0
    while True:
        batch = events.read(final=False, max_bytes=CHUNK)
        entry["bytes"] += batch.bytes
        bad += batch.bad
        fresh = {k: v for k, v in batch.params.items() if params.get(k, object()) != v}
        params.update(batch.params)
        if run_id is None and (batch.records or batch.params):
            name = run_name(root, sub, params, name_from)
            first = batch.first_time if batch.first_time is not None else os.path.getmtime(sub)
            run_id = ingest.create(name, status="finished", created=first, started=first, ended=batch.last_time,
                                   cwd=str(sub), reason="imported from TensorBoard event files",
                                   tags={SOURCE_TAG: source})
            entry["run"] = run_id
        if run_id is not None:
            entry["points"] += ingest.points(run_id, batch.columns)
            if fresh:
                ingest.values(run_id, params=fresh)
                entry["params"] += len(fresh)
            ingest.times(run_id, started=batch.first_time, ended=batch.last_time)
            ingest.save_state(run_id, STATE, events.offsets())
        moved(entry["bytes"])
        if not events.more:
            break
    if run_id is not None:
        if bad:
            count = ingest.tags(run_id).get(BAD_TAG) or 0
            ingest.values(run_id, tags={BAD_TAG: int(count) + bad})
        entry["name"] = ingest.run(run_id)["name"]
    entry["bad"] = bad
    entry["waiting"] = [{"file": os.path.relpath(path, root), "bytes": n} for path, n in events.waiting()]
    return entry
