"""The classifier: logistic regression on standardised numbers and a one-hot plan, pure Python.
model.json holds everything needed to predict (train.py writes it; serve.py reads it)."""

from __future__ import annotations

import math

NUMBERS = ("age", "tenure", "charges")
PLANS = ("basic", "standard", "pro")
CLASSES = ("no", "yes")


def encode(model: dict, x: dict) -> list[float]:
    """The feature vector of one customer; a missing or unknown value counts as the average."""
    row = []
    for name, mean, std in zip(NUMBERS, model["means"], model["stds"]):
        try:
            row.append((float(x[name]) - mean) / std)
        except (KeyError, TypeError, ValueError):
            row.append(0.0)
    row += [1.0 if x.get("plan") == plan else 0.0 for plan in PLANS]
    return row


def probability(model: dict, x: dict) -> float:
    z = model["bias"] + sum(w * v for w, v in zip(model["weights"], encode(model, x)))
    return 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))


def fit(rows: list[dict], labels: list[int], epochs: int, lr: float, l2: float = 1e-3) -> dict:
    """Full-batch gradient descent; yields nothing, returns the model. `labels` are 0/1."""
    means = [sum(float(r[n]) for r in rows) / len(rows) for n in NUMBERS]
    stds = [max(1e-9, math.sqrt(sum((float(r[n]) - m) ** 2 for r in rows) / len(rows))) for n, m in zip(NUMBERS, means)]
    model = {"kind": "logistic-regression", "numbers": list(NUMBERS), "plans": list(PLANS), "classes": list(CLASSES),
             "means": means, "stds": stds, "weights": [0.0] * (len(NUMBERS) + len(PLANS)), "bias": 0.0}
    xs = [encode(model, r) for r in rows]
    history = []
    for _ in range(epochs):
        grad, grad_b, loss = [0.0] * len(model["weights"]), 0.0, 0.0
        for x, y in zip(xs, labels):
            z = model["bias"] + sum(w * v for w, v in zip(model["weights"], x))
            p = 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))
            loss -= math.log(max(1e-12, p if y else 1 - p))
            for i, v in enumerate(x):
                grad[i] += (p - y) * v
            grad_b += p - y
        n = len(xs)
        model["weights"] = [w - lr * (g / n + l2 * w) for w, g in zip(model["weights"], grad)]
        model["bias"] -= lr * grad_b / n
        history.append(loss / n)
    model["loss"] = history
    return model


def accuracy(model: dict, rows: list[dict], labels: list[int]) -> float:
    right = sum((probability(model, r) >= 0.5) == bool(y) for r, y in zip(rows, labels))
    return right / len(rows) if rows else float("nan")
