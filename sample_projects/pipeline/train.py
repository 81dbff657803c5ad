"""Logistic regression by gradient descent, pure Python; logs its loss through mltui when launched by it."""

import argparse
import json
import math
from pathlib import Path

try:
    import mltui
except ImportError:  # run by hand without mltui installed
    mltui = None

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--data", required=True)
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--out", required=True)
args = parser.parse_args()

rows = [json.loads(line) for line in open(Path(args.data) / "train.jsonl")]
w = [0.0] * len(rows[0]["x"])
run = mltui.init() if mltui is not None else None
for epoch in range(args.epochs):
    grad = [0.0] * len(w)
    loss = 0.0
    for row in rows:
        z = sum(wi * xi for wi, xi in zip(w, row["x"]))
        p = 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))
        loss -= math.log(p if row["y"] else 1 - p + 1e-12) if row["y"] else math.log(1 - p + 1e-12)
        for i, xi in enumerate(row["x"]):
            grad[i] += (p - row["y"]) * xi
    w = [wi - args.lr * g / len(rows) for wi, g in zip(w, grad)]
    if run is not None:
        run.log({"train/loss": loss / len(rows)}, step=epoch)
Path(args.out).parent.mkdir(parents=True, exist_ok=True)
Path(args.out).write_text(json.dumps({"weights": w}))
print(f"trained {args.epochs} epochs at lr {args.lr}: loss {loss / len(rows):.4f}")
if run is not None:
    run.finish()
