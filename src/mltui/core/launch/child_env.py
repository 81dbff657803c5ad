"""The environment a launched command runs in: the one it was submitted from, plus MLTUI_RUN_ID,
MLTUI_WORKSPACE, MLTUI_RUN_DIR and CUDA_VISIBLE_DEVICES for the GPUs it was given."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mltui.core.workspace import Workspace


def child_env(ws: Workspace, run_id: str, run_dir: Path, gpus: list[int] | None, extra: dict | None) -> dict:
    env = dict(os.environ)
    try:  # a queued run gets the environment it was submitted from, not the queue worker's
        with open(run_dir / "env.json", encoding="utf-8") as fh:
            env = dict(json.load(fh))
    except (OSError, ValueError):
        pass
    env.update(extra or {})
    env.update({
        "MLTUI_RUN_ID": run_id,
        "MLTUI_WORKSPACE": str(ws.root),
        "MLTUI_RUN_DIR": str(run_dir),
        "PYTHONUNBUFFERED": "1",  # a log that streams, not one that arrives in 8 KiB lumps
    })
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
    return env
