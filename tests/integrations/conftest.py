"""Helpers for the bridge tests: run a script in a fresh Python (frameworks load there, never in the
test process), read what the store holds, and write real TensorBoard event files with tensorboard's own
writer."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mltui.store.metrics import read_series
from mltui.store.runs import artifacts_for, get_runs, values_for

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled",
           "KERAS_BACKEND": "torch", "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore",
           "MLFLOW_ALLOW_FILE_STORE": "true"}


def script_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTUI_")}
    env.update(OFFLINE)
    env.update(extra)
    return env


def run_script(folder: Path, code: str, *, env: dict | None = None, timeout: float = 240,
               check: bool = True) -> subprocess.CompletedProcess:
    """`code` as folder/script.py, run by this Python in `folder`, offline."""
    path = folder / "script.py"
    path.write_text(textwrap.dedent(code))
    done = subprocess.run([sys.executable, str(path)], cwd=folder, env=env or script_env(), capture_output=True,
                          text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return done


class Store:
    """Read-only looks at a workspace's store."""

    def __init__(self, ws) -> None:
        self.ws = ws

    def _conn(self) -> sqlite3.Connection:
        return sqlite3.connect(self.ws.db_path, timeout=10)

    def runs(self) -> list[dict]:
        conn = self._conn()
        try:
            return get_runs(conn, [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY created, id")])
        finally:
            conn.close()

    def run(self, run_id: str) -> dict:
        conn = self._conn()
        try:
            return get_runs(conn, [run_id])[0]
        finally:
            conn.close()

    def params(self, run_id: str) -> dict:
        conn = self._conn()
        try:
            return values_for(conn, "params", [run_id])[run_id]
        finally:
            conn.close()

    def tags(self, run_id: str) -> dict:
        conn = self._conn()
        try:
            return values_for(conn, "tags", [run_id])[run_id]
        finally:
            conn.close()

    def series(self, run_id: str, key: str) -> list[tuple[int, float, float]]:
        """Every point of one metric, as (step, value, wall time), ordered by step."""
        conn = self._conn()
        try:
            steps, values, times = read_series(conn, run_id, key)
            return list(zip(steps, values, times))
        finally:
            conn.close()

    def counts(self, run_id: str) -> dict[str, int]:
        """{key: points stored}, counting every stored point (duplicates included)."""
        conn = self._conn()
        try:
            return dict(conn.execute("SELECT key, sum(n) FROM metrics WHERE run_id = ? GROUP BY key", (run_id,)))
        finally:
            conn.close()

    def artifacts(self, run_id: str) -> dict[str, dict]:
        conn = self._conn()
        try:
            return {a["path"]: a for a in artifacts_for(conn, run_id)}
        finally:
            conn.close()


@pytest.fixture
def store(ws) -> Store:
    return Store(ws)


def write_events(folder: Path, scalars: dict[str, list[tuple[int, float]]], *, hparams: dict | None = None,
                 start: float = 1_700_000_000.0, tensor_style: bool = False) -> Path:
    """One event file in `folder`, written by tensorboard's own EventFileWriter: each (step, value) of each
    tag at wall time start + step; `tensor_style`: as TF2 writes scalars (a tensor under the scalars plugin)."""
    from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    folder.mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(folder))
    if hparams:
        writer.add_event(event_pb2.Event(wall_time=start, step=0, summary=hparams_summary(hparams)))
    steps = sorted({step for points in scalars.values() for step, _ in points})
    for step in steps:
        values = []
        for tag, points in scalars.items():
            for s, v in points:
                if s != step:
                    continue
                if tensor_style:
                    meta = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(
                        plugin_name="scalars"))
                    values.append(summary_pb2.Summary.Value(tag=tag, metadata=meta, tensor=tensor_pb2.TensorProto(
                        dtype=1, float_val=[v])))
                else:
                    values.append(summary_pb2.Summary.Value(tag=tag, simple_value=v))
        writer.add_event(event_pb2.Event(wall_time=start + step, step=step, summary=summary_pb2.Summary(value=values)))
    writer.close()
    files = sorted(folder.glob("events.out.tfevents.*"))
    return files[-1]


def hparams_summary(hparams: dict):
    """The Summary the hparams plugin reads (session_start_info), built from its own protobuf messages as
    torch's SummaryWriter.add_hparams builds it."""
    from google.protobuf import struct_pb2
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import plugin_data_pb2

    values = {}
    for key, value in hparams.items():
        if isinstance(value, bool):
            values[key] = struct_pb2.Value(bool_value=value)
        elif isinstance(value, (int, float)):
            values[key] = struct_pb2.Value(number_value=value)
        else:
            values[key] = struct_pb2.Value(string_value=str(value))
    content = plugin_data_pb2.HParamsPluginData(version=0, session_start_info=plugin_data_pb2.SessionStartInfo(
        hparams=values))
    meta = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(
        plugin_name="hparams", content=content.SerializeToString()))
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="_hparams_/session_start_info", metadata=meta)])
