"""`mltui import mlflow PATH_OR_URI`: MLflow's history, run by run, through MLflow's own client.

A file store (a `mlruns/` folder), a SQL store (`sqlite:///mlflow.db`, or the .db file's path) or any
tracking URI MLflow takes. Each MLflow run becomes an mltui run with its name, experiment (a tag),
params, tags, status, start and end times, every metric point (step, value, timestamp) and its artifacts,
copied into the run folder and recorded with their sha256. MLflow's run id is kept as a tag, so a second
import skips the runs it already has and says so. `--experiment` and `--where` (MLflow's own filter
syntax, e.g. "params.lr = '0.01'") narrow what is read.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

from mltui.base.errors import NotFound, UsageError
from mltui.core.runs.ingest import Ingest
from mltui.core.runs.metric_keys import metric_key
from mltui.core.workspace import Workspace
from mltui.integrations import need

RUN_TAG = "mlflow.run_id"
EXPERIMENT_TAG = "mlflow.experiment"
URI_TAG = "mlflow.tracking_uri"
STATUS = {"FINISHED": "finished", "FAILED": "failed", "KILLED": "killed"}  # RUNNING, SCHEDULED: lost
_INT = re.compile(r"-?[0-9]+")


def tracking_uri(source: str) -> str:
    """The MLflow tracking URI for a path or URI: a folder is a file store, a file a SQLite store."""
    if "://" in source:
        parsed = urlparse(source)
        if parsed.scheme == "sqlite":
            path = unquote(parsed.path)
            path = path[1:] if path.startswith("//") else path  # sqlite:////abs and sqlite:///rel
            if path and path != ":memory:" and not Path(path).is_file():
                raise NotFound(f"There is no MLflow database at {path}.")
        elif parsed.scheme == "file" and not Path(unquote(parsed.path)).is_dir():
            raise NotFound(f"There is no MLflow file store at {unquote(parsed.path)}.")
        return source
    path = Path(source).expanduser()
    if path.is_dir():
        return path.resolve().as_uri()
    if path.is_file():
        return f"sqlite:///{path.resolve()}"
    raise NotFound(f"There is no MLflow store at {source!r}: give a mlruns/ folder, a .db file or a tracking URI.")


def _value(text: str):
    """An MLflow param (always text) as the value it spells, where that is exact: '32' -> 32,
    '0.1' -> 0.1, 'true' -> True; anything else (including '0.10' or '1e3') stays text."""
    if _INT.fullmatch(text) and str(int(text)) == text:
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return {"true": True, "false": False, "True": True, "False": False}.get(text, text)
    return number if repr(number) == text else text


class _Timed:
    """The MLflow client, with the time spent inside its calls added up (what `mlflow_seconds` reports)."""

    def __init__(self, client) -> None:
        self._client = client
        self.seconds = 0.0

    def __getattr__(self, name: str):
        method = getattr(self._client, name)

        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return call


def import_mlflow(ws: Workspace, source: str, *, experiment: str | None = None, where: str | None = None,
                  progress: Callable[[int, int], None] | None = None) -> dict:
    """Import the runs of an MLflow store; returns a report {"uri", "imported": [...], "skipped": [...]}."""
    uri = tracking_uri(source)
    if uri.startswith("file:") and not os.environ.get("MLFLOW_ALLOW_FILE_STORE"):
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # we only read it: MLflow 3 asks for this opt-in
    need("mlflow", "mlflow", "Importing from MLflow")
    import logging

    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no "Creating initial MLflow database tables"
    started = time.perf_counter()
    try:
        client = _Timed(MlflowClient(tracking_uri=uri))
        experiments = client.search_experiments(view_type=ViewType.ALL)
        if experiment is not None:
            experiments = [e for e in experiments if e.name == experiment]
            if not experiments:
                names = ", ".join(sorted(e.name for e in client.search_experiments(view_type=ViewType.ALL)))
                raise NotFound(f"MLflow at {uri} has no experiment {experiment!r} (it has: {names or 'none'}).")
        names = {e.experiment_id: e.name for e in experiments}
        runs = _all_runs(client, list(names), where) if names else []
    except MlflowException as exc:
        message = str(exc.message if hasattr(exc, "message") else exc).strip().rstrip(".")
        lowered = message.lower()
        if where and any(word in lowered for word in ("filter", "parse", "invalid", "unsupported")):
            raise UsageError(f"MLflow refused --where {where!r}: {message}.") from None
        raise NotFound(f"MLflow could not read {uri}: {message}.") from None
    report: dict = {"uri": uri, "imported": [], "skipped": [], "points": 0, "artifacts": 0}
    with Ingest(ws) as ingest:
        known = ingest.runs_by_tag(RUN_TAG)
        for i, run in enumerate(runs):
            mlflow_id = run.info.run_id
            if mlflow_id in known:
                report["skipped"].append({"mlflow_run_id": mlflow_id, "run": known[mlflow_id]})
            else:
                entry = _import_run(ingest, client, uri, run, names.get(run.info.experiment_id, ""))
                known[mlflow_id] = entry["run"]
                report["imported"].append(entry)
                report["points"] += entry["points"]
                report["artifacts"] += entry["artifacts"]
            if progress:
                progress(i + 1, len(runs))
    report["seconds"] = time.perf_counter() - started
    report["mlflow_seconds"] = client.seconds
    return report


def _all_runs(client, experiment_ids: list[str], where: str | None) -> list:
    from mlflow.entities import ViewType

    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string=where or "", run_view_type=ViewType.ALL,
                                  max_results=1000, order_by=["attributes.start_time ASC"], page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _import_run(ingest: Ingest, client, uri: str, run, experiment: str) -> dict:
    info, data = run.info, run.data
    start = info.start_time / 1000 if info.start_time else None
    end = info.end_time / 1000 if info.end_time else None
    status = STATUS.get(info.status, "lost")
    reason = f"imported from MLflow ({info.status})"
    if status == "lost":
        reason = f"imported from MLflow while MLflow still listed it as {info.status}"
    tags = {_tag_key(k): v for k, v in data.tags.items()}
    tags.update({RUN_TAG: info.run_id, EXPERIMENT_TAG: experiment, URI_TAG: uri})
    if info.lifecycle_stage == "deleted":
        tags["mlflow.deleted"] = True
    name = info.run_name or data.tags.get("mlflow.runName") or info.run_id[:8]
    run_id = ingest.create(name, status=status, created=start or time.time(), started=start, ended=end,
                           kind="other", reason=reason, params={_tag_key(k): _value(v) for k, v in data.params.items()},
                           tags=tags, command=[])
    points = 0
    for key in sorted(data.metrics):
        history = client.get_metric_history(info.run_id, key)
        history.sort(key=lambda m: (m.step, m.timestamp))
        columns = {metric_key(key): ([m.step for m in history], [float(m.value) for m in history],
                                     [m.timestamp / 1000 for m in history])}
        points += ingest.points(run_id, columns)
    artifacts = _copy_artifacts(ingest, client, run_id, info)
    return {"run": run_id, "name": name, "mlflow_run_id": info.run_id, "experiment": experiment, "status": status,
            "params": len(data.params), "tags": len(data.tags), "points": points, "artifacts": artifacts}


def _tag_key(key: str) -> str:
    return metric_key(key)  # the same rule: keep what the store allows, '_' for the rest


def _copy_artifacts(ingest: Ingest, client, run_id: str, info) -> int:
    """Copy the run's artifacts (read in place from a local artifact store, else downloaded by MLflow)."""
    local = _local_path(info.artifact_uri)
    scratch = None
    try:
        if local is None or not local.is_dir():
            if not client.list_artifacts(info.run_id):
                return 0
            scratch = tempfile.mkdtemp(prefix=".mlflow-import-", dir=ingest.ws.root)
            local = Path(client.download_artifacts(info.run_id, "", scratch))
        count = 0
        for path in sorted(local.rglob("*")):
            if path.is_file() and not path.is_symlink():
                ingest.artifact(run_id, path, path.relative_to(local).as_posix())
                count += 1
        return count
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _local_path(artifact_uri: str | None) -> Path | None:
    if not artifact_uri:
        return None
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return Path(artifact_uri)
    return None
