"""Train a small MLP on a synthetic 3-class tabular data set (CPU, a few seconds), logged with mltui.

    python train.py                       # plain: trains and prints; logs to the nearest .mltui/ if any
    (launched by mltui from mltui.toml)   # attaches to the run mltui made for it
    python train.py --lr 0.01 --epochs 30 --hidden 128

The data set is generated into --data on first use. Checkpoints go to checkpoints/epoch_N.pt and
checkpoints/last.pt; under mltui a metrics_summary.json lands in $MLTUI_RUN_DIR/artifacts/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

from common import N_CLASSES, artifacts_dir, ensure_data, evaluate, load_split, make_model, start_run


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lr", type=float, default=0.003, help="Adam learning rate")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64, help="width of the two hidden layers")
    parser.add_argument("--seed", type=int, default=0, help="model init and shuffling (the data is fixed)")
    parser.add_argument("--data", default="data/", help="folder of train/val/test CSVs (made if missing)")
    parser.add_argument("--checkpoints", default="checkpoints", help="folder for epoch_N.pt and last.pt")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.hidden < 1 or args.threads < 1:
        parser.error("--epochs, --batch-size, --hidden and --threads must be at least 1")
    if not args.lr > 0:
        parser.error("--lr must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.perf_counter()

    data = ensure_data(args.data)
    x_train, y_train = load_split(data, "train")
    x_val, y_val = load_split(data, "val")
    mean, std = x_train.mean(dim=0), x_train.std(dim=0).clamp_min(1e-6)
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std

    model = make_model(x_train.shape[1], args.hidden, N_CLASSES)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    shuffle = torch.Generator().manual_seed(args.seed)
    ckpt_dir = Path(args.checkpoints)
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    params = {k: v for k, v in vars(args).items() if k not in ("checkpoints", "threads")}
    run = start_run(name=f"mlp-h{args.hidden}-lr{args.lr:g}", params=params,
                    tags={"project": "classifier", "model": "mlp"}, kind="train")
    print(f"training: {len(x_train)} train / {len(x_val)} val rows, {args.epochs} epochs, "
          f"batch {args.batch_size}, hidden {args.hidden}, lr {args.lr:g}", flush=True)

    step = 0
    best = {"val/acc": -1.0, "val/loss": float("nan"), "epoch": 0}
    history = []
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train), generator=shuffle)
        loss_sum = correct = 0.0
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            logits = model(x_train[idx])
            loss = nn.functional.cross_entropy(logits, y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_value = loss.item()
            loss_sum += loss_value * len(idx)
            correct += (logits.argmax(dim=1) == y_train[idx]).sum().item()
            if run is not None:
                run.log({"train/step_loss": loss_value}, step=step)
            step += 1
        train_loss, train_acc = loss_sum / len(x_train), correct / len(x_train)
        val_loss, val_acc = evaluate(model, x_val, y_val)
        metrics = {"train/loss": train_loss, "train/acc": train_acc, "val/loss": val_loss, "val/acc": val_acc}
        if run is not None:
            run.log(metrics, step=epoch)
        history.append({"epoch": epoch, "step": step, **metrics})
        if val_acc > best["val/acc"]:
            best = {"val/acc": val_acc, "val/loss": val_loss, "epoch": epoch}

        checkpoint = {
            "model": model.state_dict(),
            "config": {"in_features": x_train.shape[1], "hidden": args.hidden, "n_classes": N_CLASSES},
            "norm": {"mean": mean, "std": std},
            "epoch": epoch,
            "step": step,
            "metrics": metrics,
            "args": vars(args),
        }
        path = ckpt_dir / f"epoch_{epoch}.pt"
        torch.save(checkpoint, path)
        tmp = ckpt_dir / f".last.pt.{os.getpid()}.tmp"
        torch.save(checkpoint, tmp)
        os.replace(tmp, ckpt_dir / "last.pt")  # a reader never sees half a last.pt
        print(f"epoch {epoch:3d}/{args.epochs}  train loss {train_loss:.4f} acc {train_acc:.3f}  "
              f"val loss {val_loss:.4f} acc {val_acc:.3f}  ({time.perf_counter() - t0:.2f}s)  -> {path}",
              flush=True)

    elapsed = time.perf_counter() - started
    summary = {
        "best_epoch": best["epoch"],
        "best_val_acc": best["val/acc"],
        "best_val_loss": best["val/loss"],
        "final": history[-1],
        "epochs": args.epochs,
        "steps": step,
        "elapsed_s": round(elapsed, 3),
        "params": params,
        "checkpoint": str(ckpt_dir / "last.pt"),
    }
    out_dir = artifacts_dir(run)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        summary_path = out_dir / "metrics_summary.json"
        summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        if run is not None:
            run.log_artifact(summary_path)
            if not run.attached:  # a launched run records checkpoints/ itself (watch = ["checkpoints"])
                run.log_artifact(ckpt_dir / "last.pt", name="checkpoints/last.pt")
    print(f"done in {elapsed:.1f}s: best val acc {best['val/acc']:.3f} at epoch {best['epoch']}; "
          f"last checkpoint {ckpt_dir / 'last.pt'}", flush=True)
    # An exception or SIGTERM before this point is left to mltui's exit hooks, which end a run of
    # our own as failed or killed (a launched run's status is set by its supervisor).
    if run is not None:
        run.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
