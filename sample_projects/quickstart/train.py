"""Logistic regression on a synthetic two-moons-like dataset, in pure Python, logged with mltui.

    mltui init          # once, in this folder
    python train.py --lr 0.1 --epochs 30
    mltui runs list
"""

from __future__ import annotations

import argparse
import math
import random

import mltui


def make_data(n: int, seed: int) -> list[tuple[list[float], int]]:
    rng = random.Random(seed)
    data = []
    for _ in range(n):
        label = rng.random() < 0.5
        cx, cy = (1.0, 0.5) if label else (-1.0, -0.5)
        x, y = rng.gauss(cx, 0.9), rng.gauss(cy, 0.9)
        data.append(([x, y, x * y, 1.0], int(label)))
    return data


def evaluate(w: list[float], data) -> tuple[float, float]:
    loss = correct = 0.0
    for x, y in data:
        z = sum(wi * xi for wi, xi in zip(w, x))
        p = 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))
        loss -= math.log(max(1e-12, p if y else 1 - p))
        correct += (p >= 0.5) == bool(y)
    return loss / len(data), correct / len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    train, val = make_data(800, args.seed), make_data(200, args.seed + 1)
    rng = random.Random(args.seed)
    w = [0.0] * 4
    with mltui.init(name=f"logreg-lr{args.lr:g}", params=vars(args), tags={"project": "quickstart"}) as run:
        step = 0
        for epoch in range(args.epochs):
            rng.shuffle(train)
            for x, y in train:
                z = sum(wi * xi for wi, xi in zip(w, x))
                p = 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))
                w = [wi - args.lr * (p - y) * xi for wi, xi in zip(w, x)]
                step += 1
            train_loss, train_acc = evaluate(w, train)
            val_loss, val_acc = evaluate(w, val)
            run.log({"train/loss": train_loss, "train/acc": train_acc, "val/loss": val_loss, "val/acc": val_acc},
                    step=epoch)
            print(f"epoch {epoch:3d}  train loss {train_loss:.4f}  val acc {val_acc:.3f}")


if __name__ == "__main__":
    main()
