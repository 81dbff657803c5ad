"""Runs that hold GPU memory while barely using the GPU: the waste report.

It reads what the supervisors already log (`sys/gpuN/util`, `sys/gpuN/mem_used_gb`, every few seconds),
so any mltui process can answer it without watching the GPUs itself.
"""

from __future__ import annotations

import sqlite3
import time

IDLE_UTIL = 5.0  # percent
IDLE_WINDOW = 300.0  # seconds the utilisation must have stayed below IDLE_UTIL (config: gpu.idle_seconds)
MIN_SAMPLES = 3
HOLDING_GB = 1.0  # memory that counts as holding the GPU


def idle_runs(conn: sqlite3.Connection, window: float = IDLE_WINDOW, util_below: float = IDLE_UTIL,
              now: float | None = None) -> dict[str, dict]:
    """{run id: {"gpus": [...], "idle_seconds": s, "mem_gb": m}} for running runs whose every GPU sample in
    the last `window` seconds was under `util_below` percent while holding memory."""
    from mltui.store.metrics import read_series

    now = time.time() if now is None else now
    out: dict[str, dict] = {}
    rows = conn.execute(
        "SELECT s.run_id, s.key FROM metric_summary s JOIN runs r ON r.id = s.run_id "
        "WHERE r.status = 'running' AND s.key LIKE 'sys/gpu%/util' AND s.last_time >= ?", (now - max(window, 60.0),)
    ).fetchall()
    for run_id, key in rows:
        gpu = key.split("/")[1].removeprefix("gpu")
        steps, values, times = read_series(conn, run_id, key)
        recent = [(t, v) for t, v in zip(times, values) if t >= now - 2 * window]
        if len(recent) < MIN_SAMPLES or any(v >= util_below for t, v in recent if t >= now - window):
            continue
        busy = [t for t, v in recent if v >= util_below]
        since = max(busy) if busy else recent[0][0]  # idle since the last busy sample (or the first we have)
        if now - since < window:
            continue  # idle, but not for long enough yet
        mem = conn.execute("SELECT last FROM metric_summary WHERE run_id = ? AND key = ?",
                           (run_id, f"sys/gpu{gpu}/mem_used_gb")).fetchone()
        if mem is None or mem[0] is None or mem[0] < HOLDING_GB:
            continue
        entry = out.setdefault(run_id, {"gpus": [], "idle_seconds": 0.0, "mem_gb": 0.0})
        entry["gpus"].append(int(gpu) if gpu.isdigit() else gpu)
        entry["idle_seconds"] = max(entry["idle_seconds"], now - since)
        entry["mem_gb"] += float(mem[0])
    return out
