"""`mltui repro`: run the stages whose fingerprint changed, restore from the run cache what was made
before, and record every executed stage as a run under one pipeline run.

One repro at a time per workspace (a lock file; a second says it is busy). Stages run as launched runs
(detached, supervised, with output, metrics and GPUs like any other), in parallel within
`queue.max_parallel`; on Slurm every stage that must run is submitted at once, each after its parents
(`afterok`). A repro that was killed half-way leaves its stage runs going: the next one adopts a run
still executing the very fingerprint it needs, or records one that finished meanwhile, so no stage
whose fingerprint already succeeded runs twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mltui.base import procs
from mltui.base.errors import MltuiError
from mltui.core.launch.launcher import Launch, launch
from mltui.core.pipeline import state
from mltui.core.pipeline.fingerprint import StageInputs, pack_files, stage_inputs
from mltui.core.pipeline.runcache import keep_outs, remove_outs, restorable, restore_outs
from mltui.core.pipeline.stages import Pipeline, Stage
from mltui.core.pipeline.status import compare, say
from mltui.core.reader import open_writer
from mltui.core.workspace import Workspace
from mltui.store import runs as run_store
from mltui.store.connection import write_tx

SETTLED_OK = ("done", "restored", "up to date")
POLL = 0.1


@dataclass
class Options:
    targets: list[str] = field(default_factory=list)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    force: bool = False
    dry_run: bool = False
    keep_going: bool = False
    slurm: dict[str, Any] | None = None  # None: this machine


@dataclass
class Step:
    stage: str
    state: str = "waiting"  # waiting | running | done | restored | up to date | failed | skipped | would run
    run_id: str | None = None
    job_id: str | None = None
    reason: str | None = None
    reasons: list[str] = field(default_factory=list)
    inputs: StageInputs | None = None
    started: float | None = None
    ended: float | None = None

    def as_dict(self) -> dict[str, Any]:
        seconds = round(self.ended - self.started, 3) if self.started and self.ended else None
        return {"stage": self.stage, "state": self.state, "run_id": self.run_id, "job_id": self.job_id,
                "reason": self.reason, "why": self.reasons, "seconds": seconds,
                "fingerprint": self.inputs.fingerprint if self.inputs else None}


@dataclass
class Result:
    pipeline_id: str | None
    steps: list[Step]

    @property
    def ok(self) -> bool:
        return all(s.state in (*SETTLED_OK, "would run") for s in self.steps)

    @property
    def nothing_done(self) -> bool:
        return all(s.state == "up to date" for s in self.steps)


class Busy(MltuiError):
    pass


class ProjectLock:
    """Held for a whole repro: two in one workspace would write the same outs."""

    def __init__(self, ws: Workspace) -> None:
        self.path = ws.root / "pipeline.lock"
        self.fd: int | None = None

    def __enter__(self) -> ProjectLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~0o022)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise Busy(f"Another `mltui repro` (pid {holder}) is running in this workspace; wait for it to end "
                       "(`mltui pipeline status` shows its progress).") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)


class Repro:
    def __init__(self, ws: Workspace, pipe: Pipeline, options: Options,
                 report: Callable[[Step], None] = lambda step: None) -> None:
        self.ws = ws
        self.pipe = pipe
        self.opt = options
        self.report = report
        self.project = str(pipe.project)
        self.conn: sqlite3.Connection = open_writer(ws)
        self.selected = pipe.select(options.targets)
        self.steps = {name: Step(name) for name in self.selected}
        self.pipeline_id: str | None = None
        self.stopping: str | None = None  # set when a stage failed and --keep-going is off
        self.lasts = state.last_runs(self.conn, self.project)

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> Result:
        try:
            if self.opt.dry_run:
                return self._dry_run()
            with ProjectLock(self.ws):
                self._reap()
                self.pipeline_id = self._open_pipeline_run()
                try:
                    self._loop()
                except BaseException:
                    self._interrupted()
                    raise
                self._close_pipeline_run()
            return Result(self.pipeline_id, list(self.steps.values()))
        finally:
            self.conn.close()

    def _loop(self) -> None:
        while True:
            progressed = self._schedule()
            progressed |= self._poll()
            if all(s.state not in ("waiting", "running") for s in self.steps.values()):
                return
            if not progressed:
                time.sleep(POLL)

    def _schedule(self) -> bool:
        progressed = False
        for name in self.selected:
            step = self.steps[name]
            if step.state != "waiting":
                continue
            parents = [self.steps[p] for p in self.pipe.parents[name] if p in self.steps]
            bad = [p.stage for p in parents if p.state in ("failed", "skipped")]
            if bad:
                self._settle(step, "skipped", f"upstream stage {bad[0]} {self.steps[bad[0]].state}")
                progressed = True
                continue
            if self.stopping:
                self._settle(step, "skipped", f"not started: {self.stopping} failed (use --keep-going to go on)")
                progressed = True
                continue
            submitted_parents = [p for p in parents if p.state == "running"]
            if any(p.state == "waiting" for p in parents):
                continue
            if submitted_parents and self.opt.slurm is None:
                continue
            if not self._has_room(self.pipe.stages[name]):
                continue
            self._start(step, after=[p.job_id for p in submitted_parents if p.job_id])
            progressed = True
        return progressed

    def _has_room(self, stage: Stage) -> bool:
        if self.opt.slurm is not None:
            return True
        running = [s for s in self.steps.values() if s.state == "running"]
        if len(running) >= self.ws.config().max_parallel:
            return False
        return not (stage.gpus and any(self.pipe.stages[s.stage].gpus for s in running))

    # -- deciding and starting one stage ----------------------------------------------------------
    def _start(self, step: Step, after: list[str]) -> None:
        stage = self.pipe.stages[step.stage]
        if after:  # a Slurm stage after parents still to run: what it will read is not there yet
            step.reasons = ["upstream changed"]
            self._launch(step, stage, None, after)
            return
        try:
            inputs = stage_inputs(self.ws, self.conn, self.pipe.project, stage, self.opt.overrides.get(stage.name, {}))
        except MltuiError as exc:
            self._settle(step, "failed", str(exc))
            return
        step.inputs = inputs
        last = self.lasts.get(stage.name)
        forced = self.opt.force and (not self.opt.targets or stage.name in self.opt.targets)
        reasons = [{"kind": "forced"}] if forced else compare(self.ws, self.conn, self.pipe, stage, inputs, last)
        parents_ran = [p for p in self.pipe.parents[stage.name] if p in self.steps and self.steps[p].state == "done"]
        if not reasons:
            self._settle(step, "up to date", None)
            return
        step.reasons = [say(r) for r in reasons] + ([f"upstream ran ({', '.join(parents_ran)})"] if parents_ran else [])
        orphan = state.unfinished(self.conn, stage.name, inputs.fingerprint)
        if orphan and orphan[1] not in ("running", "queued", "finished"):
            state.settle_orphans(self.conn, self.ws.db_path, stage.name, inputs.fingerprint, "failed",
                                 f"its run {orphan[0]} {orphan[1]}")
            orphan = None
        if orphan and not forced:
            self._adopt(step, stage, *orphan)
            return
        if not forced and self._restore(step, stage, inputs):
            return
        self._launch(step, stage, inputs, after)

    def _launch(self, step: Step, stage: Stage, inputs: StageInputs | None, after: list[str]) -> None:
        remove_outs(self.pipe.project, stage.products)
        params = stage.params_with(self.opt.overrides.get(stage.name, {}))
        try:
            run_id = launch(self.ws, Launch(stage.argv(params), params=params, cwd=self.project,
                                            name=f"{stage.name}-{self.pipeline_id[-4:]}", kind=stage.kind,
                                            gpus=0 if self.opt.slurm is not None else stage.gpus,
                                            parent_id=self.pipeline_id,
                                            slurm=({**self.opt.slurm, **({"gpus": stage.gpus} if stage.gpus else {})}
                                                   if self.opt.slurm is not None else None),
                                            after=after))
        except MltuiError as exc:
            self._settle(step, "failed", str(exc))
            return
        step.run_id = run_id
        step.started = time.time()
        step.job_id = self.conn.execute("SELECT job_id FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
        self._tag(run_id, stage, inputs)
        step.state = "running"
        state.set_step(self.conn, self.ws.db_path, self.pipeline_id, stage.name, "running", run_id=run_id,
                       fingerprint=inputs.fingerprint if inputs else None, job_id=step.job_id)
        self.report(step)

    def _adopt(self, step: Step, stage: Stage, run_id: str, status: str) -> None:
        """A killed repro's run of this very fingerprint: wait for it, or record it if it finished."""
        step.run_id = run_id
        step.started = time.time()
        step.state = "running"
        step.reasons.append(f"adopted run {run_id} of an interrupted repro")
        state.set_step(self.conn, self.ws.db_path, self.pipeline_id, stage.name, "running", run_id=run_id,
                       fingerprint=step.inputs.fingerprint if step.inputs else None)
        self.report(step)

    def _restore(self, step: Step, stage: Stage, inputs: StageInputs) -> bool:
        outs = state.cached_outs(self.conn, inputs.fingerprint)
        if outs is None or set(outs) != set(stage.products) or not restorable(self.ws, outs):
            return False
        step.started = time.time()
        try:
            restore_outs(self.ws, self.pipe.project, outs)
        except MltuiError as exc:
            step.reasons.append(f"the run cache could not restore it ({exc})")
            return False
        source = self.conn.execute("SELECT run_id FROM pipeline_cache WHERE fingerprint = ?",
                                   (inputs.fingerprint,)).fetchone()[0]
        run_id = self._restored_run(stage, inputs, source)
        step.run_id = run_id
        self._commit(step, stage, inputs, restored=True, kept=outs)
        return True

    def _restored_run(self, stage: Stage, inputs: StageInputs, source: str | None) -> str:
        from mltui.core.runs.records import create_run

        run_id = create_run(self.ws, name=f"{stage.name}-{self.pipeline_id[-4:]}", kind=stage.kind, status="running",
                            command=inputs.argv, parent_id=self.pipeline_id, cwd=self.project, git=False,
                            params=inputs.params, conn=self.conn)
        why = f"restored from the run cache (first made by run {source})" if source else "restored from the run cache"
        with write_tx(self.conn, self.ws.db_path):
            run_store.mark_ended(self.conn, run_id, "finished", why, exit_code=0, started=time.time())
        self._tag(run_id, stage, inputs, restored=True)
        return run_id

    def _tag(self, run_id: str, stage: Stage, inputs: StageInputs | None, restored: bool = False) -> None:
        tags = {"pipeline.stage": stage.name, "pipeline.id": self.pipeline_id}
        if inputs is not None:
            tags["pipeline.fingerprint"] = inputs.fingerprint
        if restored:
            tags["pipeline.restored"] = True
        with write_tx(self.conn, self.ws.db_path):
            run_store.set_values(self.conn, "tags", run_id, tags)

    # -- following runs ---------------------------------------------------------------------------
    def _poll(self) -> bool:
        running = [s for s in self.steps.values() if s.state == "running" and s.run_id]
        if not running:
            return False
        if self.opt.slurm is not None:
            from mltui.core.launch.slurm import refresh

            refresh(self.ws, self.conn)
        progressed = False
        for step in running:
            status, reason = self.conn.execute("SELECT status, reason FROM runs WHERE id = ?", (step.run_id,)).fetchone()
            if status in ("running", "queued") or step.state != "running":
                continue
            if any(self.steps[p].state == "running" for p in self.pipe.parents[step.stage] if p in self.steps):
                continue  # Slurm ended it before its parent's end is read (afterok): the parent settles it
            stage = self.pipe.stages[step.stage]
            if status == "finished":
                inputs = step.inputs
                if inputs is None:  # a Slurm stage submitted before its deps existed: they are there now
                    inputs = stage_inputs(self.ws, self.conn, self.pipe.project, stage,
                                          self.opt.overrides.get(stage.name, {}))
                    step.inputs = inputs
                self._commit(step, stage, inputs)
            else:
                self._fail(step, f"run {step.run_id} {status}" + (f": {reason}" if reason else ""))
            progressed = True
        return progressed

    def _commit(self, step: Step, stage: Stage, inputs: StageInputs, restored: bool = False,
                kept: dict | None = None) -> None:
        """A successful stage: its outs into the cache (a restore's are there already, as `kept`), its
        fingerprint recorded, metrics and lineage."""
        missing = [out for out in stage.products if not os.path.lexists(os.path.join(self.project, out))]
        if missing:
            self._fail(step, f"it did not write its out {missing[0]}")
            return
        try:
            if kept is None:
                kept = keep_outs(self.ws, self.conn, self.pipe.project, stage.products)
        except MltuiError as exc:
            self._fail(step, f"its outs could not be kept: {exc}")
            return
        last = state.LastRun(inputs.fingerprint, inputs.argv, inputs.params, inputs.deps,
                             {out: info["id"] for out, info in kept.items()}, step.run_id, time.time())
        state.record_success(self.conn, self.ws.db_path, self.project, stage.name, last, pack_files(inputs.files),
                             None if restored else kept)
        self.lasts[stage.name] = last
        state.settle_orphans(self.conn, self.ws.db_path, stage.name, inputs.fingerprint, "done",
                             f"recorded by pipeline run {self.pipeline_id}")
        if step.run_id:
            self._metrics(step.run_id, stage)
            self._lineage(step.run_id, stage, inputs)
        self._settle(step, "restored" if restored else "done", None)

    def _metrics(self, run_id: str, stage: Stage) -> None:
        from mltui.store.metrics import write_batch

        series: dict[str, tuple[list, list, list]] = {}
        now = time.time()
        for rel in stage.metrics:
            try:
                with open(os.path.join(self.project, rel), encoding="utf-8") as fh:
                    data = json.load(fh)
            except (OSError, ValueError):
                continue
            for key, value in _numbers(data):
                series[key] = ([0], [float(value)], [now])
        if series:
            with write_tx(self.conn, self.ws.db_path):
                write_batch(self.conn, run_id, series)

    def _lineage(self, run_id: str, stage: Stage, inputs: StageInputs) -> None:
        """The outs of upstream stages are inputs of this run, by content."""
        from mltui.core.data.lineage import record

        for dep, content in inputs.deps.items():
            who = next((s for out, s in self.pipe.producer.items() if dep == out or dep.startswith(out + "/")
                        or out.startswith(dep + "/")), None)
            if who and content:
                record(self.ws, self.conn, run_id, dep, content[:12], f"out of stage {who}",
                       os.path.join(self.project, dep))

    def _fail(self, step: Step, reason: str) -> None:
        self._settle(step, "failed", reason)
        if not self.opt.keep_going and not self.stopping:
            self.stopping = f"stage {step.stage}"
        for name in self.pipe.descendants(step.stage):
            child = self.steps.get(name)
            if child and child.state == "running" and child.run_id and self.opt.slurm is not None:
                self._cancel(child)  # submitted after it with afterok: Slurm must not keep it waiting

    def _cancel(self, step: Step) -> None:
        from mltui.core.launch.slurm import cancel

        run = self.conn.execute("SELECT id, job_id FROM runs WHERE id = ?", (step.run_id,)).fetchone()
        try:
            if run and run[1]:
                cancel(self.ws, self.conn, {"id": run[0], "job_id": run[1]})
        except MltuiError:
            pass
        with write_tx(self.conn, self.ws.db_path):
            run_store.mark_ended(self.conn, step.run_id, "killed", "cancelled: an upstream stage failed",
                                 only_from=("queued", "running"))
        self._settle(step, "skipped", "cancelled: an upstream stage failed")

    def _settle(self, step: Step, st: str, reason: str | None) -> None:
        step.state = st
        step.reason = reason
        step.ended = time.time()
        step.started = step.started or step.ended
        if self.pipeline_id:
            state.set_step(self.conn, self.ws.db_path, self.pipeline_id, step.stage, st, run_id=step.run_id,
                           fingerprint=step.inputs.fingerprint if step.inputs else None, reason=reason)
        self.report(step)

    # -- the pipeline run -------------------------------------------------------------------------
    def _reap(self) -> None:
        from mltui.core.launch.liveness import reap_lost

        reap_lost(self.ws, self.conn)

    def _open_pipeline_run(self) -> str:
        from mltui.core.runs.records import create_run

        flat = {f"{s}.{k}": v for s, ps in self.opt.overrides.items() for k, v in ps.items()}
        run_id = create_run(self.ws, kind="pipeline", status="running", command=["mltui", "repro", *self.opt.targets],
                            cwd=self.project, git=True, stem="repro", params=flat, conn=self.conn,
                            fields={"pid": os.getpid(), "host": procs.host, "boot_id": procs.boot_id(),
                                    "started": time.time()})
        for name in self.selected:
            state.set_step(self.conn, self.ws.db_path, run_id, name, "waiting")
        return run_id

    def _close_pipeline_run(self) -> None:
        steps = list(self.steps.values())
        failed = [s.stage for s in steps if s.state == "failed"]
        counts = {st: sum(1 for s in steps if s.state == st) for st in ("done", "restored", "up to date", "skipped")}
        summary = ", ".join(f"{n} {st}" for st, n in counts.items() if n)
        reason = (f"stage {failed[0]} failed; " if failed else "") + summary
        with write_tx(self.conn, self.ws.db_path):
            run_store.mark_ended(self.conn, self.pipeline_id, "failed" if failed else "finished", reason,
                                 exit_code=1 if failed else 0)

    def _interrupted(self) -> None:
        """Ctrl-C or an error: the stage runs go on in their supervisors; the next repro adopts them."""
        try:
            with write_tx(self.conn, self.ws.db_path):
                run_store.mark_ended(self.conn, self.pipeline_id, "killed",
                                     "interrupted; stages still running go on, and the next repro adopts them",
                                     only_from=("running",))
        except Exception:
            pass

    def _dry_run(self) -> Result:
        """What would run, without running or writing anything but the stat cache."""
        from mltui.core.pipeline.status import pipeline_status

        for st in pipeline_status(self.ws, self.conn, self.pipe, self.opt.overrides, self.opt.targets):
            step = self.steps[st.stage]
            forced = self.opt.force and (not self.opt.targets or st.stage in self.opt.targets)
            if st.reasons or forced:
                step.state = "would run"
                step.reasons = ["--force"] if forced and not st.reasons else [say(r) for r in st.reasons]
                if st.fingerprint and not forced and state.cached_outs(self.conn, st.fingerprint) is not None:
                    step.reasons.append("its outs are in the run cache: they would be restored")
            else:
                step.state = "up to date"
            self.report(step)
        return Result(None, list(self.steps.values()))


def _numbers(data: Any, prefix: str = "") -> list[tuple[str, float]]:
    """Every number in a JSON document, keyed by its dotted path."""
    out: list[tuple[str, float]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            out += _numbers(value, f"{prefix}{key}.")
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        out.append((prefix.rstrip("."), float(data)))
    return out


def parse_overrides(pipe: Pipeline, assignments: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """`-p train.lr=0.1` (or `-p lr=0.1` when one stage has that param) into {stage: {param: value}}."""
    from mltui.base.errors import UsageError

    out: dict[str, dict[str, Any]] = {}
    for key, value in assignments.items():
        stage, dot, param = key.partition(".")
        if dot and stage in pipe.stages:
            if param not in pipe.stages[stage].params:
                known = ", ".join(pipe.stages[stage].params) or "none"
                raise UsageError(f"Stage {stage} has no param {param!r} (its params: {known}).")
            out.setdefault(stage, {})[param] = value
            continue
        having = [s.name for s in pipe.stages.values() if key in s.params]
        if len(having) != 1:
            raise UsageError(f"-p {key}=... must name a stage's param, e.g. -p train.lr=0.1"
                             + (f" (stages {', '.join(having)} all have {key!r})." if having else "."))
        out.setdefault(having[0], {})[key] = value
    return out
