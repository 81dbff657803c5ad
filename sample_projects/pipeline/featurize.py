"""Polynomial features of (x1, x2) up to --degree, written as JSON lines per split."""

import argparse
import csv
import json
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--data", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--degree", type=int, default=2)
args = parser.parse_args()


def features(x1: float, x2: float) -> list[float]:
    return [x1 ** i * x2 ** j for i in range(args.degree + 1) for j in range(args.degree + 1 - i)]


out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
for split in ("train", "test"):
    with open(Path(args.data) / f"{split}.csv", newline="") as fh, open(out / f"{split}.jsonl", "w") as sink:
        for r in csv.DictReader(fh):
            sink.write(json.dumps({"x": features(float(r["x1"]), float(r["x2"])), "y": int(r["label"])}) + "\n")
print(f"features of degree {args.degree} written to {out}")
