"""Train the churn classifier on the reference data, optionally plus the recent labelled predictions.

    python train.py --data data                  # the registered dataset only
    python train.py --data data --from-monitor   # plus what serving logged and was labelled since

Launched by mltui (`mltui run train`, or the monitor's retraining), the run logs its loss per epoch and
its holdout accuracy, and model.json becomes its artifact; the [[register]] rule in mltui.toml then
makes it a candidate version of "classifier". The data folder is a param, so the run's lineage records
the dataset version it read. Labelled predictions are not a registered dataset: their count is a param
(`monitor_rows`) and their own holdout accuracy is `accuracy_recent`.
"""

import argparse
import csv
import json
import os
import random
import tempfile
from pathlib import Path

import model as logreg

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--data", required=True, help="the folder holding train.csv (a registered dataset)")
parser.add_argument("--epochs", type=int, default=60)
parser.add_argument("--lr", type=float, default=1.0)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--from-monitor", action="store_true",
                    help="add the labelled predictions found in the monitored folder (.mltui/monitor/)")
parser.add_argument("--recent", type=int, default=5000, help="at most this many labelled predictions, newest first")
parser.add_argument("--out", default="model.json", help="where to write the model (also kept as the run's artifact)")
args = parser.parse_args()


def reference(folder: str) -> tuple[list[dict], list[int]]:
    rows, labels = [], []
    with open(Path(folder) / "train.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            rows.append({k: r[k] for k in logreg.NUMBERS + ("plan",)})
            labels.append(1 if r["churned"] == "yes" else 0)
    return rows, labels


def labelled_predictions(limit: int) -> tuple[list[dict], list[int]]:
    """Predictions of "classifier" whose label has arrived, joined by id (the newest `limit`)."""
    from mltui.monitor import monitor_folder

    folder = monitor_folder()
    inputs, labels = {}, {}
    for path in sorted(folder.rglob("*.jsonl")) if folder.is_dir() else []:
        with open(path, "rb") as fh:
            for line in fh:
                if not line.endswith(b"\n"):
                    break  # a line still being written
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(record, dict) or str(record.get("model", "")).split("@")[0] != "classifier":
                    continue
                if "label" in record and "inputs" not in record:
                    labels[str(record.get("id"))] = record["label"]
                elif isinstance(record.get("inputs"), dict) and record.get("id") is not None:
                    inputs[str(record["id"])] = (record.get("ts", 0), record["inputs"])
    joined = sorted(((inputs[i][0], inputs[i][1], labels[i]) for i in labels if i in inputs),
                    key=lambda item: item[0])[-limit:]
    return [x for _, x, _ in joined], [1 if label == "yes" else 0 for _, _, label in joined]


def split(rows, labels, rng):
    """80% to learn from, 20% held out."""
    order = list(range(len(rows)))
    rng.shuffle(order)
    cut = int(len(order) * 0.8)
    pick = lambda idx: ([rows[i] for i in idx], [labels[i] for i in idx])  # noqa: E731
    return pick(order[:cut]), pick(order[cut:])


try:
    import mltui
except ImportError:  # run by hand without mltui installed: no tracking, no monitor rows
    mltui = None

rng = random.Random(args.seed)
(train_x, train_y), (hold_x, hold_y) = split(*reference(args.data), rng)
recent_hold = ([], [])
recent = 0
if args.from_monitor and mltui is not None:
    new_x, new_y = labelled_predictions(args.recent)
    recent = len(new_x)
    (more_x, more_y), recent_hold = split(new_x, new_y, rng)
    train_x, train_y = train_x + more_x, train_y + more_y
    hold_x, hold_y = hold_x + recent_hold[0], hold_y + recent_hold[1]

run = None
if mltui is not None:
    try:
        run = mltui.init(params={"monitor_rows": recent})
    except mltui.MltuiError as exc:  # no workspace here: train anyway, untracked
        print(f"not tracked: {exc}")
fitted = logreg.fit(train_x, train_y, args.epochs, args.lr)
for step, loss in enumerate(fitted.pop("loss")):
    if run is not None:
        run.log({"train/loss": loss}, step=step)
acc = logreg.accuracy(fitted, hold_x, hold_y)
metrics = {"accuracy": acc}
if recent_hold[0]:
    metrics["accuracy_recent"] = logreg.accuracy(fitted, *recent_hold)
fitted["trained_on"] = {"reference_rows": len(train_x) + len(hold_x) - recent, "monitor_rows": recent}

out = Path(args.out)
fd, temp = tempfile.mkstemp(dir=out.parent if str(out.parent) else ".", suffix=".part")
with os.fdopen(fd, "w") as fh:
    json.dump(fitted, fh, indent=1)
os.replace(temp, out)
print(f"trained on {len(train_x)} rows ({recent} from labelled predictions); holdout "
      + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
if run is not None:
    run.log(metrics, step=args.epochs)
    run.log_artifact(out, name="model.json", overwrite=True)
    run.finish()
