"""What a screen shows of the pipeline, without the screen: each stage with its depth in the DAG, its
state, why, its last run and how long that took.

Two reads of different cost, so a screen can poll the cheap one often and the dear one rarely:

- `read_progress(conn, pipe)`: the latest repro (`mltui repro`'s pipeline run) and its steps, and each
  stage's last successful run. A few small queries; run it whenever the store changed.
- `check(ws, pipe)`: `pipeline_status`, which hashes the deps (through the stat cache, but still a
  walk of every dep); run it off the UI thread, when the screen is shown, after a repro's step
  settles, or now and then.

`stage_rows` puts the two together. A step of a repro still going, or one that settled after the
last check, says what is happening; after that the check says it, except that a recent repro's
failed and skipped steps stay named (with their reason) for as long as the stage is still stale,
and a stage it restored from the run cache says "restored" while it is up to date.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mltui.base import procs
from mltui.base.errors import MltuiError
from mltui.core.launch.commands import PROJECT_FILE, find_project_file
from mltui.core.pipeline import state as pstate
from mltui.core.pipeline.stages import Pipeline, depths, load_pipeline, read_table
from mltui.core.pipeline.status import UP_TO_DATE, StageStatus, pipeline_status, say
from mltui.core.workspace import Workspace
from mltui.store.runs import get_runs

RECENT = 15 * 60  # seconds a finished repro's failed, skipped and restored steps stay named
STALE = ("never run", "changed", "failed", "skipped")  # states `R` (repro everything stale) acts on
# what each state of a repro's step is called on screen (a step "done" is a stage now up to date)
FROM_STEP = {"waiting": "waiting", "running": "running", "done": "up to date", "up to date": "up to date",
             "restored": "restored", "failed": "failed", "skipped": "skipped"}
NO_FILE = ("There is no mltui.toml in {where}; declare a pipeline there with [stages.NAME] tables "
           "(run, deps, outs), e.g. [stages.train] run = \"python train.py\" deps = [\"train.py\"] outs = [\"model.pt\"].")
NO_STAGES = "{path} declares no stages; add [stages.NAME] tables (run, deps, outs) to make a pipeline."


# -- the pipeline file -------------------------------------------------------------------------------
def project_file(ws: Workspace, start: str | os.PathLike[str] | None = None) -> Path | None:
    """The mltui.toml `mltui repro` would use from `start` (default: the current folder), else the
    workspace project's own. A folder outside the project (MLTUI_WORKSPACE names another) is not
    searched: a mltui.toml found there would not be this workspace's."""
    here = Path(start if start is not None else os.getcwd()).absolute()
    path = find_project_file(here, stop=ws.project_dir) if here.is_relative_to(ws.project_dir) else None
    if path is None and (ws.project_dir / PROJECT_FILE).is_file():
        path = ws.project_dir / PROJECT_FILE
    return path


@dataclass
class Source:
    """The pipeline as a screen knows it: loaded, or one sentence on why there is none."""

    path: Path | None
    pipe: Pipeline | None = None
    problem: str | None = None  # no file, no stages, or the load error (a cycle, two writers, ...)


class PipelineFile:
    """Loads the pipeline again only when mltui.toml changed (its path, size or mtime): a screen may
    ask on every poll."""

    def __init__(self, ws: Workspace, start: str | os.PathLike[str] | None = None) -> None:
        self.ws = ws
        self.start = start if start is not None else os.getcwd()
        self.source = Source(None, problem=None)
        self._key: tuple | None = None

    def refresh(self) -> bool:
        """Reload if the file changed; True when the source may differ from before."""
        path = project_file(self.ws, self.start)
        try:
            st = path.stat() if path is not None else None
            key = (path, st.st_mtime_ns, st.st_size) if st else (None,)
        except OSError:
            key = (path, None)
        if key == self._key:
            return False
        self._key = key
        self.source = load_source(self.ws, path)
        return True


def load_source(ws: Workspace, path: Path | None) -> Source:
    if path is None:
        return Source(None, problem=NO_FILE.format(where=ws.project_dir))
    try:
        if not read_table(path):
            return Source(path, problem=NO_STAGES.format(path=path))
        return Source(path, load_pipeline(path, check_deps=False))
    except MltuiError as exc:
        return Source(path, problem=str(exc))


# -- the cheap read: the latest repro and each stage's last run --------------------------------------
@dataclass
class Progress:
    repro: dict[str, Any] | None  # the latest pipeline run (id, status, created, ended, reason)
    live: bool  # it is still going (its process alive)
    steps: dict[str, dict[str, Any]]  # stage -> its step in that repro
    last_ok: dict[str, str | None]  # stage -> the run of its last successful execution
    runs: dict[str, dict[str, Any]]  # run id -> started, ended, status of the runs named above
    read_at: float = 0.0


def read_progress(conn: sqlite3.Connection, pipe: Pipeline, now: float | None = None) -> Progress:
    """The latest repro with its steps, and each stage's last successful run (no hashing)."""
    now = time.time() if now is None else now
    latest = pstate.pipeline_runs(conn, 1)
    repro = latest[0] if latest else None
    steps: dict[str, dict[str, Any]] = {}
    live = False
    if repro is not None:
        steps = {s["stage"]: s for s in pstate.steps(conn, repro["id"]) if s["stage"] in pipe.stages}
        live = repro["status"] == "running" and _alive(conn, repro["id"])
    lasts = pstate.last_runs(conn, str(pipe.project))
    last_ok = {name: lasts[name].run_id if name in lasts else None for name in pipe.stages}
    ids = {s["run_id"] for s in steps.values() if s.get("run_id")} | {r for r in last_ok.values() if r}
    runs = {r["id"]: {"started": r["started"], "ended": r["ended"], "status": r["status"]}
            for r in get_runs(conn, sorted(ids))}
    return Progress(repro, live, steps, last_ok, runs, now)


def _alive(conn: sqlite3.Connection, run_id: str) -> bool:
    """A pipeline run marked running whose `mltui repro` process is gone (killed) is not going."""
    found = get_runs(conn, [run_id])
    if not found:
        return False
    run = found[0]
    if run["host"] != procs.host or run["pid"] is None:
        return True  # another machine's: take the store's word
    return procs.pid_alive(run["pid"])


# -- the dear read: hashing the deps -----------------------------------------------------------------
@dataclass
class Check:
    statuses: dict[str, StageStatus]
    started: float  # when the check began: a step that settled later is newer than it


def check(ws: Workspace, conn: sqlite3.Connection, pipe: Pipeline) -> Check:
    """Every stage's status (hashes deps through the stat cache, so it may write that cache)."""
    started = time.time()
    return Check({st.stage: st for st in pipeline_status(ws, conn, pipe)}, started)


# -- the rows ----------------------------------------------------------------------------------------
@dataclass
class StageRow:
    name: str
    depth: int
    parents: list[str]
    state: str  # up to date | never run | changed | waiting | running | failed | skipped | restored | checking
    reasons: list[str] = field(default_factory=list)  # why it is in that state, in words
    run_id: str | None = None  # the run `enter` opens: the latest repro's, else the last successful one
    seconds: float | None = None  # how long that run took (so far, while it runs)
    deps: list[str] = field(default_factory=list)
    outs: list[str] = field(default_factory=list)

    @property
    def stale(self) -> bool:
        return self.state in STALE


def stage_rows(pipe: Pipeline, progress: Progress | None, checked: Check | None,
               now: float | None = None) -> list[StageRow]:
    """Each stage, in DAG order, with what the screen says of it (see the module's docstring)."""
    now = time.time() if now is None else now
    depth = depths(pipe)
    repro = progress.repro if progress else None
    live = bool(progress and progress.live)
    recent = live or bool(repro and repro.get("ended") and now - repro["ended"] < RECENT)
    rows = []
    for name, stage in pipe.stages.items():
        step = progress.steps.get(name) if progress else None
        st = checked.statuses.get(name) if checked else None
        state, reasons = _state(step, st, live, recent, checked.started if checked else None)
        run_id = (step or {}).get("run_id") or (progress.last_ok.get(name) if progress else None)
        if st is not None and st.running and state not in ("running", "waiting"):
            state, run_id = "running", st.running  # another repro's step executing it
        seconds = _took(progress.runs.get(run_id) if progress and run_id else None, now)
        rows.append(StageRow(name, depth[name], list(pipe.parents[name]), state, reasons, run_id, seconds,
                             list(stage.deps), list(stage.products)))
    return rows


def _state(step: Mapping[str, Any] | None, st: StageStatus | None, live: bool, recent: bool,
           checked_at: float | None) -> tuple[str, list[str]]:
    why = [say(r) if r.get("kind") != "error" else r["error"] for r in st.reasons] if st else []
    if step is not None:
        own = [step["reason"]] if step.get("reason") else []
        newer = checked_at is not None and step.get("ended") is not None and step["ended"] >= checked_at
        if (live and step["state"] in ("waiting", "running")) or newer:
            return FROM_STEP.get(step["state"], step["state"]), own
        if recent and step["state"] in ("failed", "skipped") and (st is None or st.state != UP_TO_DATE):
            return step["state"], own + why
    if st is None:
        return "checking", []
    if st.state == UP_TO_DATE:
        restored = step is not None and recent and step["state"] == "restored"
        return ("restored" if restored else UP_TO_DATE), []
    return st.state, why


def _took(run: Mapping[str, Any] | None, now: float) -> float | None:
    if not run or not run.get("started"):
        return None
    end = run.get("ended") or (now if run.get("status") in ("running", "queued") else None)
    return None if end is None else max(0.0, end - run["started"])


def took(seconds: float | None) -> str:
    """A stage's duration: tenths under ten seconds (stages are often quick), else 42s, 3m05s, 2h10m."""
    from mltui.base.text import span

    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" if seconds < 10 else span(seconds)


def needs(pipe: Pipeline, rows: Sequence[StageRow], name: str) -> list[str]:
    """The stages `mltui repro NAME` would run: NAME and what it needs, where stale (or not checked yet)."""
    by_name = {r.name: r for r in rows}
    return [s for s in pipe.select([name]) if s not in by_name or by_name[s].stale or by_name[s].state == "checking"]


# -- starting a repro in the background --------------------------------------------------------------
@dataclass
class Started:
    process: subprocess.Popen
    log: Path
    argv: list[str]


def start_repro(ws: Workspace, project: Path, stages: Sequence[str] = ()) -> Started:
    """`mltui repro [STAGE...]` as a detached process of its own session (closing the screen does not
    stop it), run in the pipeline's folder on this workspace; its output is appended to
    .mltui/repro.log. An argv list, never a shell."""
    argv = [sys.executable, "-m", "mltui", "repro", *stages]
    log = ws.root / "repro.log"
    env = {**os.environ, "MLTUI_WORKSPACE": str(ws.root)}
    try:
        with open(log, "ab") as fh:
            fh.write(f"\n== {time.strftime('%Y-%m-%d %H:%M:%S')} mltui repro {' '.join(stages)}\n".encode())
            fh.flush()
            proc = subprocess.Popen(argv, cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=fh,
                                    stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        raise MltuiError(f"Cannot start `mltui repro`: {exc.strerror or exc}.") from None
    return Started(proc, log, argv)


def last_line(log: Path, limit: int = 4096) -> str:
    """The last non-empty line of a log (what a failed repro said last)."""
    try:
        with open(log, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - limit))
            lines = [ln.strip() for ln in fh.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""
