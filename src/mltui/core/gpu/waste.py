"""Idle GPUs: the one rule for "holding a GPU without using it", and the waste report built on it.

The rule (thresholds live here and nowhere else): a GPU is idle while it holds at least HOLDING_GB of
memory at under IDLE_UTIL percent utilisation, and it is flagged once it has stayed so for the
window (config: gpu.idle_seconds, IDLE_WINDOW by default). Two readers apply it:

- `idle_runs`, the waste report of `mltui gpu`: from what the supervisors already log
  (`sys/gpuN/util`, `sys/gpuN/mem_used_gb`, every few seconds), so any mltui process can answer it
  without watching the GPUs itself.
- `IdleWatch`, the GPUs pane: from the live samples it polls.
"""

from __future__ import annotations

import sqlite3
import time

IDLE_UTIL = 5.0  # percent: below it a GPU counts as unused
IDLE_WINDOW = 300.0  # seconds the utilisation must have stayed below IDLE_UTIL (config: gpu.idle_seconds)
MIN_SAMPLES = 3
HOLDING_GB = 1.0  # memory that counts as holding the GPU


def low_util(util: float | None, below: float = IDLE_UTIL) -> bool:
    """A utilisation sample under the idle threshold (None, not available, is not idle)."""
    return util is not None and util < below


def holding(mem_gb: float | None) -> bool:
    """Memory (GB) enough to count as holding the GPU, so that leaving it unused wastes it."""
    return mem_gb is not None and mem_gb >= HOLDING_GB


def idle_sample(util: float | None, mem_gb: float | None) -> bool:
    """One moment of the rule: the GPU holds memory while its utilisation is under the threshold."""
    return low_util(util) and holding(mem_gb)


def held_gb(gpu) -> float:
    """The memory (GB) a live GPU (sources.Gpu) holds for processes: its used memory while any
    process is on it, else none."""
    return gpu.mem_used / 2**30 if gpu.processes and gpu.mem_used else 0.0


class IdleWatch:
    """The rule over live samples: when each GPU (by any key) became idle, and whether it has stayed
    idle for the window. Feed it every sample, busy ones too (a busy sample ends the idle spell)."""

    def __init__(self, window: float = IDLE_WINDOW) -> None:
        self.window = window
        self.since: dict[object, float] = {}

    def see(self, key: object, util: float | None, mem_gb: float | None, at: float) -> None:
        if idle_sample(util, mem_gb):
            self.since.setdefault(key, at)
        else:
            self.since.pop(key, None)

    def idle_for(self, key: object, now: float | None = None) -> float:
        """Seconds `key` has been idle (0 while it is not)."""
        since = self.since.get(key)
        return 0.0 if since is None else (time.time() if now is None else now) - since

    def flagged(self, key: object, now: float | None = None) -> bool:
        """Idle for the whole window: the GPU is wasted."""
        return self.idle_for(key, now) >= self.window


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
        if len(recent) < MIN_SAMPLES or any(not low_util(v, util_below) for t, v in recent if t >= now - window):
            continue
        busy = [t for t, v in recent if not low_util(v, util_below)]
        since = max(busy) if busy else recent[0][0]  # idle since the last busy sample (or the first we have)
        if now - since < window:
            continue  # idle, but not for long enough yet
        mem = conn.execute("SELECT last FROM metric_summary WHERE run_id = ? AND key = ?",
                           (run_id, f"sys/gpu{gpu}/mem_used_gb")).fetchone()
        if not holding(mem[0] if mem is not None else None):
            continue
        entry = out.setdefault(run_id, {"gpus": [], "idle_seconds": 0.0, "mem_gb": 0.0})
        entry["gpus"].append(int(gpu) if gpu.isdigit() else gpu)
        entry["idle_seconds"] = max(entry["idle_seconds"], now - since)
        entry["mem_gb"] += float(mem[0])
    return out
