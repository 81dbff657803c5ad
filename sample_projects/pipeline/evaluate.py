"""Accuracy of the model on the test split, written to --out as JSON (mltui reads it as metrics)."""

import argparse
import json
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--model", required=True)
parser.add_argument("--data", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

w = json.loads(Path(args.model).read_text())["weights"]
rows = [json.loads(line) for line in open(Path(args.data) / "test.jsonl")]
right = sum(1 for r in rows if (sum(wi * xi for wi, xi in zip(w, r["x"])) > 0) == bool(r["y"]))
result = {"accuracy": right / len(rows), "n": len(rows)}
Path(args.out).write_text(json.dumps(result))
print(f"accuracy {result['accuracy']:.3f} on {len(rows)} test rows")
