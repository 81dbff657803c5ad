"""A throw-away workspace full of realistic runs, so a newcomer sees the product at once."""

from __future__ import annotations

import math
import random
import threading
import time
from pathlib import Path

from mltui.core.runs.tracking import Run, create_run
from mltui.core.workspace import Workspace, init_workspace
from mltui.store import runs as run_store
from mltui.core.reader import open_writer
from mltui.store.connection import write_tx

MODELS = [
    ("resnet18", 0.55), ("resnet50", 0.42), ("vit-small", 0.38), ("convnext-tiny", 0.40),
    ("mobilenet-v3", 0.62), ("efficientnet-b0", 0.47),
]
OPTIMIZERS = ["adamw", "sgd", "lion"]
DATASETS = ["cifar10@v3", "cifar10@v4", "imagenette@v1"]


def _curves(rng: random.Random, steps: int, difficulty: float, lr: float, diverge: bool):
    """Train/val loss and accuracy that look like a real image classifier learning."""
    floor = difficulty * (0.6 + rng.random() * 0.3) * (1.0 + abs(math.log10(lr) + 3) * 0.15)
    tau = steps / (3.0 + rng.random() * 2)
    for step in range(steps):
        base = floor + (2.3 - floor) * math.exp(-step / tau)
        if diverge and step > steps * 0.6:
            base *= 1 + (step - steps * 0.6) / (steps * 0.05)
        loss = max(1e-4, base * (1 + rng.gauss(0, 0.04)))
        acc = max(0.0, min(1.0, 1.0 - base / 2.3 * 0.9 + rng.gauss(0, 0.01)))
        point = {"train/loss": loss, "train/acc": acc}
        if step % 10 == 9:
            point["val/loss"] = base * 1.08 + rng.gauss(0, 0.01)
            point["val/acc"] = max(0.0, min(1.0, acc - 0.02 + rng.gauss(0, 0.008)))
        if diverge and step > steps * 0.8:
            point["train/loss"] = math.nan
        yield step, point


def build_demo(where: str | Path, n_runs: int = 24, seed: int = 7,
               notes: list[str] | None = None) -> tuple[Workspace, list[str]]:
    """Fill a new workspace in `where` with finished, failed and running runs, datasets, models and a
    monitored model with drift, an alert and a retrained candidate. Returns the ids still running;
    `notes` gets a sentence for each part that could not be built."""
    rng = random.Random(seed)
    ws, _ = init_workspace(where)
    now = time.time()
    running: list[str] = []
    made: list[str] = []
    for i in range(n_runs):
        model, difficulty = MODELS[i % len(MODELS)]
        lr = rng.choice([3e-4, 1e-3, 3e-3, 1e-2])
        opt = rng.choice(OPTIMIZERS)
        batch = rng.choice([64, 128, 256])
        fate = "running" if i >= n_runs - 3 else ("failed" if i % 7 == 3 else "finished")
        created = now - (n_runs - i) * 2400 - rng.random() * 600
        steps = rng.choice([300, 500, 800])
        run_id = create_run(ws, name=f"{model}-{opt}-lr{lr:g}", kind="train", status="running",
                            command=["python", "train.py", "--model", model, "--lr", str(lr)], created=created)
        made.append(run_id)
        run = Run(ws, run_id, attached=True, batch_size=50_000, flush_interval=0)
        run.log_params({"model": model, "lr": lr, "optimizer": opt, "batch_size": batch,
                        "epochs": steps // 100, "weight_decay": rng.choice([0.0, 0.01, 0.05]),
                        "augment": rng.random() > 0.5})
        run.set_tags({"team": rng.choice(["vision", "platform"]), "dataset": rng.choice(DATASETS)})
        upto = steps if fate != "running" else int(steps * (0.3 + 0.4 * rng.random()))
        if fate == "failed":
            upto = int(steps * 0.7)
        for step, point in _curves(rng, upto, difficulty, lr, diverge=(fate == "failed")):
            run._log_at(point, step, created + step * 2.0)
        run.finish()
        conn = open_writer(ws)
        try:
            with write_tx(conn):
                if fate == "running":
                    run_store.update_run(conn, run_id, started=created, heartbeat=time.time())
                    running.append(run_id)
                else:
                    run_store.update_run(conn, run_id, status=fate, started=created, ended=created + upto * 2.0,
                                         exit_code=0 if fate == "finished" else 1,
                                         note="loss went NaN at step %d" % int(upto * 0.8) if fate == "failed" else None)
        finally:
            conn.close()
    from mltui.demo.datasets import build_datasets
    from mltui.demo.models import build_models

    build_datasets(ws, made)
    build_models(ws, made)
    from mltui.demo.monitor import build_monitoring

    note = build_monitoring(ws)
    if note and notes is not None:
        notes.append(note)
    return ws, running


class DemoFeeder:
    """Keeps the demo's running runs logging, so the screen has something live to show."""

    def __init__(self, ws: Workspace, run_ids: list[str], interval: float = 0.5, seed: int = 11) -> None:
        self.ws = ws
        self.run_ids = run_ids
        self.interval = interval
        self.rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mltui-demo-feeder", daemon=True)

    def start(self) -> "DemoFeeder":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        runs = [Run(self.ws, rid, attached=True, flush_interval=0) for rid in self.run_ids]
        conn = open_writer(self.ws)
        try:  # carry on from where each curve stopped
            state = {}
            for run in runs:
                row = conn.execute("SELECT last FROM metric_summary WHERE run_id = ? AND key = 'train/loss'",
                                   (run.id,)).fetchone()
                state[run.id] = row[0] if row and row[0] is not None else 2.3
        finally:
            conn.close()
        try:
            while not self._stop.wait(self.interval):
                for run in runs:
                    step = run._step
                    base = state[run.id] = max(0.05, state[run.id] * 0.997)
                    noisy = base * (1 + self.rng.gauss(0, 0.04))
                    point = {"train/loss": noisy, "train/acc": min(1.0, 1 - noisy / 2.3 * 0.9)}
                    if step % 10 == 9:
                        point["val/loss"] = base * 1.08
                        point["val/acc"] = min(1.0, 1 - base / 2.3 * 0.9 - 0.02)
                    run.log(point, step=step)
                    run.flush()
        finally:
            for run in runs:
                run.finish()
