"""Write the reference data: data/train.csv, customers from before the shift with whether they churned."""

import argparse
import csv
import random
from pathlib import Path

from world import FEATURES, TARGET, churns, customer

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--out", default="data", help="the folder to write train.csv into (default: data)")
parser.add_argument("--rows", type=int, default=3000)
parser.add_argument("--seed", type=int, default=7)
args = parser.parse_args()

rng = random.Random(args.seed)
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
with open(out / "train.csv", "w", newline="") as fh:
    writer = csv.DictWriter(fh, fieldnames=[*FEATURES, TARGET])
    writer.writeheader()
    for _ in range(args.rows):
        x = customer(rng, shifted=False)
        writer.writerow({**x, TARGET: churns(rng, x)})
print(f"wrote {args.rows} customers to {out / 'train.csv'}")
