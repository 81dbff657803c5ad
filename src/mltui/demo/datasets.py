"""Two versions of a small tabular dataset for the demo, with drift between them and runs that used them."""

from __future__ import annotations

import json
import random
from pathlib import Path

from mltui.core.workspace import Workspace

PLANS = ("monthly", "annual", "family")


def _rows(rng: random.Random, n: int, tenure_mean: float, plan_weights: tuple[float, ...]) -> list[str]:
    lines = ["customer,tenure_months,monthly_spend,plan,churned"]
    for i in range(n):
        tenure = max(0.0, rng.gauss(tenure_mean, 9.0))
        plan = rng.choices(PLANS, plan_weights)[0]
        spend = round(max(5.0, rng.gauss(42.0 if plan == "family" else 25.0, 8.0)), 2)
        churned = int(rng.random() < 0.5 / (1.0 + tenure / 12.0))
        lines.append(f"c{i:05d},{tenure:.1f},{spend},{plan},{churned}")
    return lines


def build_datasets(ws: Workspace, run_ids: list[str], seed: int = 3) -> None:
    """Record churn@v1 and churn@v2 (stored in the cache) and link the demo's runs to them."""
    from mltui.core.data.versions import add
    from mltui.core.data.lineage import record
    from mltui.core.reader import open_writer

    rng = random.Random(seed)
    folder = ws.project_dir / "data" / "churn"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.csv").write_text("\n".join(_rows(rng, 4000, 18.0, (0.7, 0.2, 0.1))) + "\n")
    (folder / "test.csv").write_text("\n".join(_rows(rng, 1000, 18.0, (0.7, 0.2, 0.1))) + "\n")
    (folder / "README.txt").write_text("Customer churn export.\n")
    conn = open_writer(ws)
    try:
        v1 = add(ws, conn, folder, "churn", "January export", store=True).version
        # a later export: longer tenures, many more annual plans, the test split renamed, labels in JSON lines
        (folder / "train.csv").write_text("\n".join(_rows(rng, 5200, 24.0, (0.45, 0.45, 0.1))) + "\n")
        Path(folder / "test.csv").rename(folder / "holdout.csv")
        with open(folder / "labels.jsonl", "w") as fh:
            for i in range(200):
                fh.write(json.dumps({"customer": f"c{i:05d}", "reviewed": rng.random() < 0.3}) + "\n")
        v2 = add(ws, conn, folder, "churn", "March export: more annual plans", store=True).version
        half = len(run_ids) // 2
        for i, run_id in enumerate(run_ids):
            version = v1 if i < half else v2
            record(ws, conn, run_id, "churn", version.id, "explicit", str(folder), changed=False)
    finally:
        conn.close()
