"""The waste report: runs holding GPU memory at near-zero utilisation for a while, from what supervisors log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import closing

import pytest

from launching import configure, kill_workspace_processes, wait_for, wait_output
from mltui.core.gpu.waste import idle_runs
from mltui.core.launch.launcher import Launch, launch
from mltui.core.runs.records import create_run
from mltui.store.connection import write_tx
from mltui.store.opening import open_store
from mltui.store.metrics import write_batch


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path):
    yield
    kill_workspace_processes(tmp_path / ".mltui")


def _run(ws, name: str, util: list[float], mem_gb: float, start: float, every: float = 10.0,
         status: str = "running") -> str:
    run_id = create_run(ws, name=name, status=status)
    times = [start + i * every for i in range(len(util))]
    with closing(open_store(ws.db_path)) as conn, write_tx(conn):
        write_batch(conn, run_id, {
            "sys/gpu0/util": (list(range(len(util))), util, times),
            "sys/gpu0/mem_used_gb": (list(range(len(util))), [mem_gb] * len(util), times),
        })
    return run_id


def test_only_runs_idle_for_the_whole_window_while_holding_memory_are_flagged(ws):
    now = time.time()
    idle = _run(ws, "idle", [1.0, 0.0, 2.0, 0.5, 0.0, 0.0, 1.0], 20.0, now - 65)
    busy_once = _run(ws, "busy-once", [1.0, 0.0, 80.0, 0.5, 0.0, 0.0, 1.0], 20.0, now - 65)
    too_new = _run(ws, "too-new", [0.0, 0.0, 0.0], 20.0, now - 25)
    no_memory = _run(ws, "no-memory", [0.0] * 7, 0.2, now - 65)
    _run(ws, "finished", [0.0] * 7, 20.0, now - 65, status="finished")
    with closing(open_store(ws.db_path)) as conn:
        found = idle_runs(conn, window=60.0, now=now)
    assert set(found) == {idle}
    assert found[idle]["gpus"] == [0] and found[idle]["mem_gb"] == 20.0
    assert 60.0 <= found[idle]["idle_seconds"] <= 66.0
    assert busy_once not in found and too_new not in found and no_memory not in found


def test_a_launched_run_idling_on_its_gpu_is_in_the_report(ws, tmp_path, monkeypatch):
    configure(ws, sample_seconds=0.2, idle_seconds=1.0)
    monkeypatch.setenv("MLTUI_GPU_SIM", "1x24")  # a still GPU: 0% utilisation, the run's memory on it
    run_id = launch(ws, Launch(["python", "-c", "import time; print('ready', flush=True); time.sleep(60)"],
                               name="idler", gpus=1))
    wait_output(ws, run_id, "ready")
    with closing(open_store(ws.db_path)) as conn:
        wait_for(lambda: idle_runs(conn, window=1.0).get(run_id), 10, what="the run to count as idle")
    env = {**os.environ, "MLTUI_GPU_SIM": "1x24"}
    out = subprocess.run([sys.executable, "-m", "mltui", "gpu", "--json"], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [r["id"] for r in data["idle_runs"]] == [run_id]
    (proc,) = [p for g in data["gpus"] for p in g["processes"]]
    assert proc["run"]["id"] == run_id and proc["run"]["idle"] is True
    plain = subprocess.run([sys.executable, "-m", "mltui", "gpu"], cwd=tmp_path, env=env, capture_output=True,
                           text=True)
    assert "idler" in plain.stdout and "idle" in plain.stdout.split("idler", 1)[1]
