"""Shared fixtures for the mltui test suite.

Fixtures (names are stable; other test modules rely on them):

``ws``
    A fresh, empty workspace made with ``init_workspace(tmp_path)``. The test runs with
    ``tmp_path`` as its current directory and without ``MLTUI_WORKSPACE``, ``MLTUI_RUN_ID``
    or ``MLTUI_DEBUG`` in the environment. Returns the ``Workspace``: ``ws.root`` is
    ``tmp_path / ".mltui"``, ``ws.project_dir`` is ``tmp_path``, ``ws.db_path`` the store.

``populated``
    ``ws`` filled with the twelve runs described by ``POPULATED_RUNS`` below, logged through the
    real tracking API (``mltui.init`` / ``run.log`` / ``run.finish``); statuses, times, exit codes
    and notes are then set with ``mltui.store.runs.update_run`` inside ``write_tx``. Returns a
    dict ``{run name: run id}``. Every run's connection is closed when the fixture returns.

``cli``
    A callable ``cli(*args, cwd=None, env=None, input=None, timeout=60)`` that runs
    ``python -m mltui *args`` in a subprocess (``subprocess.run(capture_output=True, text=True)``)
    and returns the ``CompletedProcess``. ``cwd`` defaults to the current directory (``tmp_path``
    under ``ws``). The child gets the current environment minus ``MLTUI_WORKSPACE``,
    ``MLTUI_RUN_ID`` and ``MLTUI_DEBUG``, with ``COLUMNS=200`` (so tables are not cut), then
    ``env`` on top. After the test, the fixture fails the test if any call's stderr held a
    Python traceback (calls that passed ``--debug`` are exempt).

``populated_factory``
    Session-scoped: the function ``build_populated(project_dir) -> {name: id}`` that ``populated``
    uses, for module-scoped fixtures that want the same runs once (``project_dir`` must already
    hold a workspace).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mltui
from mltui.core.workspace import init_workspace
from mltui.store import runs as run_store
from mltui.store.connection import write_tx
from mltui.store.opening import open_store

HOUR = 3600.0
DAY = 86400.0

# name -> what the run holds. "age" is how long before the fixture ran it was created (and started);
# "duration" is ended - started in seconds (None: not ended / not started). Metric lists are logged
# at steps 0, 1, 2, ... one value per step; NaN and +-inf are deliberate.
POPULATED_RUNS: dict[str, dict] = {
    "resnet-adam-1": dict(
        params={"lr": 0.001, "optimizer": "adam", "batch_size": 32, "augment": True},
        tags={"team": "vision", "dataset": "cifar10"},
        metrics={"loss": [0.9, 0.5, 0.3], "val/acc": [0.6, 0.8]},
        status="finished", age=1 * HOUR, duration=600.0, exit_code=0, artifact=True,
    ),
    "resnet-adam-2": dict(
        params={"lr": 0.01, "optimizer": "adam", "batch_size": 64, "augment": False},
        tags={"team": "vision", "dataset": "imagenet"},
        metrics={"loss": [0.8, 0.4, 0.25], "val/acc": [0.7, 0.85]},
        status="finished", age=2 * HOUR, duration=1200.0, exit_code=0,
    ),
    "resnet-sgd": dict(
        params={"lr": 0.1, "optimizer": "sgd", "batch_size": 128, "augment": True},
        tags={"team": "platform", "dataset": "cifar10"},
        metrics={"loss": [1.2, 0.9], "val/acc": [0.5, 0.7]},
        status="failed", age=3 * HOUR, duration=400.0, exit_code=1, note="diverged",
    ),
    "vit-sgd": dict(
        params={"lr": 0.05, "optimizer": "sgd", "batch_size": 64, "augment": False},
        tags={"team": "platform"},
        metrics={"loss": [1.0, 0.6], "val/acc": [0.9]},
        status="killed", age=4 * HOUR, duration=5400.0,
    ),
    "vit-adamw": dict(
        params={"lr": 0.003, "optimizer": "adamw", "batch_size": 256, "augment": True},
        tags={"dataset": "imagenet"},
        metrics={"loss": [0.7, 0.2], "val/acc": [0.95]},
        status="finished", age=5 * HOUR, duration=7200.0, exit_code=0,
    ),
    "nan-run": dict(
        params={"lr": 1.0, "optimizer": "sgd", "batch_size": 32, "augment": False},
        tags={"team": "vision"},
        metrics={"loss": [1.0, 0.5, math.nan], "val/acc": [0.1]},
        status="failed", age=6 * HOUR, duration=100.0, exit_code=1, note="loss went NaN",
    ),
    "inf-run": dict(
        params={"lr": 10.0, "optimizer": "sgd", "batch_size": 16, "augment": False},
        tags={"team": "vision"},
        metrics={"loss": [2.0, 1.0, math.inf]},
        status="finished", age=7 * HOUR, duration=50.0, exit_code=0,
    ),
    "running-1": dict(
        params={"lr": 0.001, "optimizer": "adam", "batch_size": 32, "augment": True},
        tags={"team": "platform"},
        metrics={"loss": [0.9]},
        status="running", age=8 * HOUR, duration=None,
    ),
    "queued-1": dict(
        params={"optimizer": "adam"},
        tags={},
        metrics={},
        status="queued", age=9 * HOUR, duration=None, started=False,
    ),
    "lost-run": dict(
        params={"lr": 0.003, "optimizer": "lion", "batch_size": 512, "augment": False},
        tags={"team": "research"},
        metrics={"loss": [0.35], "val/acc": [0.91], "delta": [1.0, -math.inf]},
        status="lost", age=11 * HOUR, duration=900.0,
    ),
    "debug-run": dict(
        params={},
        tags={"debug": True},
        metrics={"loss": [5.0]},
        status="finished", age=10 * DAY, duration=30.0, exit_code=0, kind="eval",
    ),
    "old-run": dict(
        params={"lr": 0.02, "optimizer": "adam", "batch_size": 64, "augment": True},
        tags={"team": "vision"},
        metrics={"loss": [0.4], "val/acc": [0.88]},
        status="finished", age=30 * DAY, duration=10800.0, exit_code=0,
    ),
}

# Newest first: the default order of `runs list` (created DESC).
POPULATED_ORDER = sorted(POPULATED_RUNS, key=lambda n: POPULATED_RUNS[n]["age"])

_CHILD_ENV_DROP = ("MLTUI_WORKSPACE", "MLTUI_RUN_ID", "MLTUI_DEBUG")


def build_populated(project_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Log POPULATED_RUNS into the workspace in `project_dir`; returns {name: run id}."""
    project_dir = Path(project_dir)
    saved = {k: os.environ.pop(k) for k in ("MLTUI_RUN_ID",) if k in os.environ}
    ids: dict[str, str] = {}
    try:
        now = time.time()
        for name, spec in POPULATED_RUNS.items():
            run = mltui.init(
                name=name,
                params=spec["params"] or None,
                tags=spec["tags"] or None,
                kind=spec.get("kind", "train"),
                workspace=project_dir,
                flush_interval=60.0,  # only finish() flushes: one chunk per key
            )
            for key, values in spec["metrics"].items():
                for step, value in enumerate(values):
                    run.log({key: value}, step=step)
            if spec.get("artifact"):
                src = project_dir / f"{name}-model.txt"
                src.write_text("weights\n")
                run.log_artifact(src, name="model.txt")
            run.finish()
            ids[name] = run.id

        ws_db = project_dir / ".mltui" / "mltui.db"
        conn = open_store(ws_db)
        try:
            with write_tx(conn, ws_db):
                for name, spec in POPULATED_RUNS.items():
                    created = now - spec["age"]
                    started = None if spec.get("started") is False else created
                    ended = None if spec["duration"] is None else created + spec["duration"]
                    run_store.update_run(
                        conn, ids[name], status=spec["status"], created=created, started=started,
                        ended=ended, heartbeat=created, exit_code=spec.get("exit_code"), note=spec.get("note"),
                    )
        finally:
            conn.close()
    finally:
        os.environ.update(saved)
    return ids


def run_cli(*args: str, cwd=None, env=None, input=None, timeout=60) -> subprocess.CompletedProcess:
    """`python -m mltui *args` in a subprocess (see the module docstring)."""
    child_env = {k: v for k, v in os.environ.items() if k not in _CHILD_ENV_DROP}
    child_env["COLUMNS"] = "200"
    child_env.setdefault("PYTHONIOENCODING", "utf-8")
    if env:
        child_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "mltui", *map(str, args)],
        cwd=None if cwd is None else str(cwd),
        env=child_env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """A fresh workspace in tmp_path; cwd is tmp_path; no MLTUI_* variables set."""
    for var in _CHILD_ENV_DROP:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    workspace, created = init_workspace(tmp_path)
    assert created
    return workspace


@pytest.fixture
def populated(ws) -> dict[str, str]:
    """`ws` holding the runs of POPULATED_RUNS; returns {name: run id}."""
    return build_populated(ws.project_dir)


@pytest.fixture(scope="session")
def populated_factory():
    """build_populated, for fixtures of a wider scope than `populated`."""
    return build_populated


@pytest.fixture
def cli():
    """run_cli, checking afterwards that no call printed a traceback."""
    calls: list[tuple[tuple, subprocess.CompletedProcess]] = []

    def call(*args, cwd=None, env=None, input=None, timeout=60):
        result = run_cli(*args, cwd=cwd, env=env, input=input, timeout=timeout)
        calls.append((args, result))
        return result

    yield call
    for args, result in calls:
        if "--debug" in args:
            continue
        assert "Traceback" not in result.stderr, f"mltui {' '.join(map(str, args))} printed:\n{result.stderr}"


def make_run(project, name: str, series: dict[str, list[float]] | None = None, params=None) -> str:
    """A run logged through the tracking API; series values go to steps 0, 1, 2, ..."""
    run = mltui.init(name=name, params=params, workspace=project, flush_interval=60.0)
    for key, values in (series or {}).items():
        for step, value in enumerate(values):
            run.log({key: value}, step=step)
    run.finish()
    return run.id
