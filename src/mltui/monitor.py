"""Prediction logs for serving code, standard library only.

    from mltui.monitor import PredictionLog
    log = PredictionLog("classifier@production")
    log.log({"age": 41, "plan": "pro"}, "churn", id=request_id, latency_ms=12.5, scores={"churn": 0.81})
    log.label(request_id, "stay")          # later, when the truth is known (any process may do this)

Each record is one JSON line:
    {"ts": 1733580000.123, "model": "classifier@3", "id": "r-81", "inputs": {...}, "output": "churn",
     "scores": {"churn": 0.81, "stay": 0.19}, "latency_ms": 12.5}
and a label is {"id": "r-81", "label": "stay", "model": "classifier"} (the model is optional). `ts` is
seconds since the epoch (an ISO 8601 string is read too). `output` is a class or a number; `scores` is
optional (a class -> probability object, or one number: the positive class's probability).

Lines are buffered in memory and written by whole lines (never a half record on disk), at the latest
every `flush_seconds` and at exit; several threads may log at once. Each process writes its own file
in the monitored folder (the workspace's `.mltui/monitor/` unless `folder` or $MLTUI_MONITOR_DIR
says otherwise) and starts a new one past `rotate_bytes`, so old files can be moved away whole.
`mltui monitor check` reads every file there, from where it stopped.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["PredictionLog", "monitor_folder"]


def monitor_folder(start: str | os.PathLike[str] | None = None) -> Path:
    """$MLTUI_MONITOR_DIR, else the `.mltui/monitor/` of the workspace found from `start` (like git)."""
    env = os.environ.get("MLTUI_MONITOR_DIR")
    if env:
        return Path(env)
    ws = os.environ.get("MLTUI_WORKSPACE")
    if ws:
        root = Path(ws)
        return (root if root.name == ".mltui" else root / ".mltui") / "monitor"
    here = Path(start or os.getcwd()).absolute()
    for folder in (here, *here.parents):
        if (folder / ".mltui").is_dir():
            return folder / ".mltui" / "monitor"
    raise FileNotFoundError(f"No .mltui workspace at or above {here}; pass folder= or set MLTUI_MONITOR_DIR.")


class PredictionLog:
    def __init__(self, model: str, folder: str | os.PathLike[str] | None = None, *, flush_seconds: float = 1.0,
                 buffer_lines: int = 1000, rotate_bytes: int = 64 * 2**20) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ValueError("PredictionLog needs the model as NAME@VERSION (or NAME@alias), e.g. 'churn@production'.")
        self.model = model
        self.folder = Path(folder) if folder is not None else monitor_folder()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.flush_seconds = flush_seconds
        self.buffer_lines = buffer_lines
        self.rotate_bytes = rotate_bytes
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._last_flush = time.monotonic()
        self._file = None
        self._written = 0
        self._part = 0
        self._stem = re.sub(r"[^A-Za-z0-9_.-]", "_", model.split("@")[0]) or "model"
        self._closed = False
        self._timer = threading.Thread(target=self._tick, name="mltui-prediction-log", daemon=True)
        self._timer.start()
        atexit.register(self.close)

    # -- logging ----------------------------------------------------------------------------------
    def log(self, inputs: dict[str, Any], output: Any, *, id: Any = None, latency_ms: float | None = None,
            scores: Any = None, ts: float | None = None) -> None:
        """Record one prediction (buffered; cheap)."""
        record: dict[str, Any] = {"ts": time.time() if ts is None else ts, "model": self.model,
                                  "id": None if id is None else str(id), "inputs": inputs, "output": output}
        if scores is not None:
            record["scores"] = scores
        if latency_ms is not None:
            record["latency_ms"] = latency_ms
        self._add(json.dumps(record, default=str, separators=(",", ":")))

    def label(self, id: Any, label: Any) -> None:
        """Record the true label of an earlier prediction, whenever it is known."""
        self._add(json.dumps({"id": str(id), "label": label, "model": self.model.split("@")[0]},
                             default=str, separators=(",", ":")))

    def _add(self, line: str) -> None:
        with self._lock:
            if self._closed:
                raise ValueError("This PredictionLog is closed.")
            self._lines.append(line)
            if len(self._lines) >= self.buffer_lines:
                self._flush_locked()

    # -- writing ----------------------------------------------------------------------------------
    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        self._last_flush = time.monotonic()
        if not self._lines:
            return
        data = ("\n".join(self._lines) + "\n").encode()
        self._lines.clear()
        if self._file is None or self._written >= self.rotate_bytes:
            self._open_next()
        os.write(self._file, data)  # O_APPEND: one write of whole lines
        self._written += len(data)

    def _open_next(self) -> None:
        if self._file is not None:
            os.close(self._file)
        self._part += 1
        name = f"{self._stem}-{int(time.time())}-{os.getpid()}-{self._part}.jsonl"
        self._file = os.open(self.folder / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._written = 0

    def _tick(self) -> None:
        while not self._closed:
            time.sleep(min(0.2, self.flush_seconds))
            if time.monotonic() - self._last_flush >= self.flush_seconds:
                try:
                    self.flush()
                except OSError:
                    pass  # a full disk must not kill the serving process; the lines wait for the next try

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._flush_locked()
            finally:
                self._closed = True
                if self._file is not None:
                    os.close(self._file)
                    self._file = None

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
