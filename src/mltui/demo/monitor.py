"""The demo's monitoring story, through the real calls: classifier@production (demo/models.py) served
for twelve hours, its predictions written with PredictionLog (synthetic timestamps, one window an
hour, the inputs shifting half-way: longer tenures, many more annual plans, and annual customers
churning more), labels arriving late, a [monitor] config with a rule whose `then` is notify and
retrain, and one real `check`: the drift is measured against the production version's own training
data (lineage: churn@v1 or v2), the rule fires, the alert opens, and the rule launches the real
`retrain` command of mltui.toml (a tiny script: a few seconds of curves and a checkpoint). Its
[[register]] rule makes that checkpoint a candidate version as the run ends, and a second check files
the candidate to the promotion queue, where the gates and a person decide (key 7, then key 5).
"""

from __future__ import annotations

import csv
import math
import random
import time

from mltui.core.workspace import Workspace

MODEL = "classifier"
HOURS = 12  # windows of traffic, the last one the current hour
SHIFT_AT = 6  # hours ago when the customers change (windows from then on drift)
PER_HOUR = 500  # PSI on 40 bins reads ~0.1 from sampling alone at 250 rows; half that here
LABELS_LATE = 2  # the newest windows whose labels have not come yet
WAIT = 20.0  # seconds the builder waits for the retraining run to end and register

CONFIG = f"""
[monitor]
window = "1h"

# the reference is the production version's training data (lineage); its label column is not a feature
[monitor.models.{MODEL}]
target = "churned"
eval_metric = "val/acc"

# two windows in a row with most features drifted: an alert, a notice, and a retraining run whose
# version goes to the promotion queue (never promoted automatically)
[[monitor.rules]]
model = "{MODEL}"
when = "drift_share > 0.5"
for = 2
then = ["notify", "retrain"]
retrain = "retrain"
"""

RETRAIN_TOML = f"""
# What the monitor's rule starts (.mltui/config.toml, [[monitor.rules]] retrain = "retrain"): training
# on the newest churn data; the [[register]] rule makes its checkpoint a candidate version of {MODEL}.
[commands.retrain]
run = "python monitoring/retrain.py --seed {{seed}}"
params = {{ seed = 5 }}
kind = "train"

[[register]]
model = "{MODEL}"
pattern = "artifacts/retrained/*.safetensors"
"""

RETRAIN_PY = '''"""The demo's retraining, started by the monitor when drift holds: learns on the newest churn data
(recorded as the run's input), logs its curves, keeps a checkpoint as retrained/model.safetensors."""
import argparse
import json
import random
import struct
from pathlib import Path

import mltui

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=5)
args = parser.parse_args()
rng = random.Random(args.seed)
run = mltui.init(name="retrain-classifier")
run.use_dataset("churn")
acc = 0.62
for step in range(60):
    acc = min(0.93, acc + 0.006 + rng.gauss(0, 0.003))
    point = {"train/loss": 1.3 - acc + rng.gauss(0, 0.01), "train/acc": acc}
    if step % 10 == 9:
        point["val/acc"] = acc - 0.01
    run.log(point, step=step)
shapes = {"backbone.weight": [64, 32], "backbone.bias": [64], "head.weight": [10, 64], "head.bias": [10]}
header, offset = {}, 0
for name, shape in shapes.items():
    count = 1
    for d in shape:
        count *= d
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + 4 * count]}
    offset += 4 * count
blob = json.dumps(header).encode()
out = Path("monitoring/retrained")
out.mkdir(parents=True, exist_ok=True)
with open(out / "model.safetensors", "wb") as fh:
    fh.write(struct.pack("<Q", len(blob)) + blob + bytes([7]) * offset)
run.log_artifact(out / "model.safetensors", name="retrained/model.safetensors")
run.finish()
'''


def _reference_rows(ws: Workspace) -> list[dict[str, str]]:
    """The rows of the table the production version was trained on (through lineage, as the monitor finds it)."""
    from mltui.core.monitor.config import ModelSettings
    from mltui.core.monitor.reference import locate_table
    from mltui.core.reader import open_reader

    conn = open_reader(ws)
    try:
        _, path, _, _ = locate_table(ws, conn, MODEL, None, ModelSettings(target="churned"))
    finally:
        conn.close()
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def churn_risk(tenure: float) -> float:
    """What the served model believes (the demo data's own churn law before the shift)."""
    return 0.5 / (1.0 + tenure / 12.0)


def write_traffic(ws: Workspace, rows: list[dict[str, str]], now: float, seed: int = 21) -> int:
    """PER_HOUR predictions in each of the last HOURS windows through PredictionLog, with labels for all
    but the newest LABELS_LATE windows. Returns the number of predictions."""
    from mltui.monitor import PredictionLog

    rng = random.Random(seed)
    hour = math.floor(now / 3600) * 3600
    made = 0
    with PredictionLog(f"{MODEL}@production", folder=ws.root / "monitor", flush_seconds=3600) as log:
        for ago in range(HOURS - 1, -1, -1):
            start = hour - ago * 3600
            end = min(start + 3600, now)
            shifted = ago < SHIFT_AT
            for i in range(PER_HOUR):
                row = rng.choice(rows)
                tenure = float(row["tenure_months"])
                plan = row["plan"]
                if shifted:  # a campaign brings long-standing customers over to annual plans
                    tenure += 14.0
                    plan = rng.choices(("monthly", "annual", "family"), (0.25, 0.65, 0.1))[0]
                risk = churn_risk(tenure)
                truth = int(rng.random() < (0.45 if shifted and plan == "annual" else risk))
                rid = f"demo-{ago:02d}-{i:04d}"
                log.log({"tenure_months": round(tenure, 1), "monthly_spend": float(row["monthly_spend"]), "plan": plan},
                        int(risk > 0.2), id=rid, latency_ms=round(rng.lognormvariate(2.4, 0.35), 2),
                        scores={"1": round(risk, 4), "0": round(1 - risk, 4)},
                        ts=start + (i + rng.random()) * (end - start) / PER_HOUR)
                if ago >= LABELS_LATE:
                    log.label(rid, truth)
                made += 1
    return made


def _wait_for_version(ws: Workspace, run_id: str, timeout: float) -> bool:
    """True once the retraining run has ended and its supervisor has registered what it kept."""
    from mltui.core.models.registry import versions
    from mltui.core.reader import open_reader
    from mltui.store.runs import run_status

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        conn = open_reader(ws)
        try:
            status = run_status(conn, run_id)
            if status not in ("running", "queued", None) and any(v.run_id == run_id for v in versions(conn, MODEL)):
                return True
            if status in ("failed", "killed", "lost"):
                return False
            if status == "finished":  # its supervisor registers right after: a little longer, not the whole wait
                end = min(end, time.monotonic() + 3.0)
        finally:
            conn.close()
        time.sleep(0.05)
    return False


def build_monitoring(ws: Workspace) -> str | None:
    """The whole story, through the real calls. Returns a sentence when part of it could not be shown."""
    from mltui.base.errors import MltuiError
    from mltui.core.monitor.check import check
    from mltui.core.monitor.view import alert_list

    try:
        rows = _reference_rows(ws)
    except MltuiError as exc:
        return f"The demo shows no monitoring: {exc}"
    project = ws.project_dir
    (project / "monitoring").mkdir(exist_ok=True)
    (project / "monitoring" / "retrain.py").write_text(RETRAIN_PY, encoding="utf-8")
    with open(project / "mltui.toml", "a", encoding="utf-8") as fh:  # demo/launch.py keeps what is here
        fh.write(RETRAIN_TOML)
    with open(ws.config_path, "a", encoding="utf-8") as fh:
        fh.write(CONFIG)
    write_traffic(ws, rows, time.time())
    check(ws)  # the windows, the drift, the alert, and the retraining run the rule launches
    alert = next((a for a in alert_list(ws, MODEL) if a["closed"] is None), None)
    if alert is None:
        return "The demo's drift opened no alert."
    run_id = alert.get("retrain_run")
    if not run_id:
        outcome = next((a["outcome"] for a in alert["actions"] if a["action"] == "retrain"), "not started")
        return f"The demo's retraining did not start: {outcome}"
    if not _wait_for_version(ws, run_id, WAIT):
        return f"The demo's retraining run {run_id} registered no version yet; `mltui monitor check` files it once it has."
    check(ws)  # files the new version to the promotion queue
    return None

