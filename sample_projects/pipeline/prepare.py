"""Merge the raw CSV files, shuffle them with a seed and split them into train.csv and test.csv."""

import argparse
import csv
import random
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--raw", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--seed", type=int, default=1)
args = parser.parse_args()

rows = []
for path in sorted(Path(args.raw).glob("*.csv")):
    with open(path, newline="") as fh:
        rows += [(float(r["x1"]), float(r["x2"]), int(r["label"])) for r in csv.DictReader(fh)]
random.Random(args.seed).shuffle(rows)
cut = int(len(rows) * 0.8)
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
for name, part in (("train.csv", rows[:cut]), ("test.csv", rows[cut:])):
    with open(out / name, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["x1", "x2", "label"])
        writer.writerows(part)
print(f"prepared {len(rows)} rows from {args.raw}: {cut} to train, {len(rows) - cut} to test")
