"""Shared by train.py and eval.py: the synthetic data set, the model and mltui helpers.

The data set is made with Python's own `random` from a fixed seed, so every machine and every
torch version gets the same numbers. It is written to CSV files in the data folder the first
time it is needed (train.csv, val.csv, test.csv: columns f0..f9 then label).
"""

from __future__ import annotations

import csv
import math
import os
import random
import sys
from pathlib import Path

import torch
from torch import nn

try:  # the scripts still train without mltui installed
    import mltui
except ImportError:  # pragma: no cover - depends on the environment
    mltui = None

N_FEATURES = 10
N_CLASSES = 3
SPLITS = {"train": 3000, "val": 1000, "test": 1000}
DATA_SEED = 1234  # the data never changes with --seed: only the model's init and shuffling do


# -- data -------------------------------------------------------------------------------------
def _make_points(n: int, rng: random.Random, mix: list[list[float]]) -> list[list[float]]:
    """Three interleaved spirals in 2-D, seen through a fixed random linear map plus noise features."""
    rows = []
    for _ in range(n):
        label = rng.randrange(N_CLASSES)
        t = rng.uniform(0.25, 1.0)
        angle = 2.0 * math.pi * (1.6 * t + label / N_CLASSES)
        x, y = t * math.cos(angle) + rng.gauss(0, 0.04), t * math.sin(angle) + rng.gauss(0, 0.04)
        latent = [x, y, x * y, x * x - y * y, math.hypot(x, y)]
        features = [sum(m * v for m, v in zip(row, latent)) + rng.gauss(0, 0.05) for row in mix]
        rows.append([round(f, 5) for f in features] + [label])
    return rows


def ensure_data(folder: str | os.PathLike[str]) -> Path:
    """Make the CSV splits in `folder` unless they are all there; returns the folder."""
    folder = Path(folder)
    if all((folder / f"{split}.csv").is_file() for split in SPLITS):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(DATA_SEED)
    latent_dims = 5
    mix = [[rng.gauss(0, 1) for _ in range(latent_dims)] for _ in range(N_FEATURES)]
    header = [f"f{i}" for i in range(N_FEATURES)] + ["label"]
    for split, n in SPLITS.items():
        rows = _make_points(n, rng, mix)
        tmp = folder / f".{split}.csv.{os.getpid()}.tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(tmp, folder / f"{split}.csv")  # atomic: two runs starting at once both see whole files
    print(f"generated synthetic data in {folder}/ ({', '.join(f'{n} {s}' for s, n in SPLITS.items())})", flush=True)
    return folder


def load_split(folder: str | os.PathLike[str], split: str) -> tuple[torch.Tensor, torch.Tensor]:
    with open(Path(folder) / f"{split}.csv", newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        rows = [[float(v) for v in row] for row in reader if row]
    table = torch.tensor(rows, dtype=torch.float32)
    return table[:, :-1], table[:, -1].long()


# -- model ------------------------------------------------------------------------------------
def make_model(in_features: int, hidden: int, n_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(),
        nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, n_classes),
    )


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over the whole set."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size])
        target = y[i:i + batch_size]
        loss_sum += nn.functional.cross_entropy(logits, target, reduction="sum").item()
        correct += (logits.argmax(dim=1) == target).sum().item()
    return loss_sum / len(x), correct / len(x)


# -- mltui ------------------------------------------------------------------------------------
def start_run(**kwargs):
    """mltui.init(**kwargs), or None when there is nothing to log to (plain `python train.py`
    outside any workspace, or mltui not installed). Launched by mltui, a failure to attach is an error."""
    if mltui is None:
        print("mltui is not installed: training without tracking", file=sys.stderr, flush=True)
        return None
    try:
        run = mltui.init(**kwargs)
    except mltui.MltuiError as exc:
        if os.environ.get("MLTUI_RUN_ID"):
            raise
        print(f"not tracking with mltui: {exc}", file=sys.stderr, flush=True)
        return None
    how = "attached to" if run.attached else "logging to"
    print(f"mltui: {how} run {run.id} ({run.name})", flush=True)
    return run


def artifacts_dir(run) -> Path | None:
    """Where this run's artifacts go: $MLTUI_RUN_DIR/artifacts, else the run's own folder, else None."""
    env = os.environ.get("MLTUI_RUN_DIR")
    if env:
        return Path(env) / "artifacts"
    if run is not None:
        return run.dir / "artifacts"
    return None
