"""Evaluate a checkpoint from train.py on the held-out test split, logged with mltui.

    python eval.py --model checkpoints/last.pt
    (launched by mltui from mltui.toml)   # attaches to the run mltui made for it
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from common import N_CLASSES, artifacts_dir, ensure_data, evaluate, load_split, make_model, start_run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="checkpoints/last.pt", help="a checkpoint written by train.py")
    parser.add_argument("--data", default="data/", help="folder of train/val/test CSVs (made if missing)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    started = time.perf_counter()

    model_path = Path(args.model)
    if not model_path.is_file():
        print(f"eval: no checkpoint at {model_path}; run train.py first.", file=sys.stderr)
        return 2
    checkpoint = torch.load(model_path, map_location="cpu", weights_only=True)
    config = checkpoint["config"]
    model = make_model(config["in_features"], config["hidden"], config["n_classes"])
    model.load_state_dict(checkpoint["model"])

    x_test, y_test = load_split(ensure_data(args.data), "test")
    norm = checkpoint["norm"]
    x_test = (x_test - norm["mean"]) / norm["std"]

    run = start_run(name=f"eval-{model_path.stem}", params={"model": str(model_path), "data": args.data,
                    "trained_epochs": checkpoint.get("epoch")}, tags={"project": "classifier"}, kind="eval")
    with torch.no_grad():
        test_loss, test_acc = evaluate(model, x_test, y_test)
        predicted = model(x_test).argmax(dim=1)
    per_class = {
        f"test/acc_class{c}": (predicted[y_test == c] == c).float().mean().item() for c in range(N_CLASSES)
    }
    metrics = {"test/loss": test_loss, "test/acc": test_acc, **per_class}
    if run is not None:
        run.log(metrics, step=int(checkpoint.get("epoch", 0)))
    print(f"{model_path} (epoch {checkpoint.get('epoch')}): test loss {test_loss:.4f}  test acc {test_acc:.3f}  "
          + "  ".join(f"class {c} {per_class[f'test/acc_class{c}']:.3f}" for c in range(N_CLASSES)), flush=True)

    out_dir = artifacts_dir(run)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "eval_summary.json"
        summary = {"model": str(model_path), "epoch": checkpoint.get("epoch"), **metrics,
                   "elapsed_s": round(time.perf_counter() - started, 3)}
        path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        if run is not None:
            run.log_artifact(path)
    if run is not None:
        run.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
