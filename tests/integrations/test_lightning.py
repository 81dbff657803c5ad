"""MltuiLogger under a real Lightning Trainer.fit on CPU: a tiny model built in the script, no downloads."""

from __future__ import annotations

import hashlib
import json
import sys

import pytest

from conftest import OFFLINE, run_script  # noqa: E402  (tests/integrations/conftest.py)
from launching import kill_workspace_processes, wait_ended  # noqa: E402


MODEL = """\
import json, os, sys, torch, lightning as L
from torch.utils.data import DataLoader, TensorDataset
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from mltui.integrations.lightning import MltuiLogger

class Tiny(L.LightningModule):
    def __init__(self, lr=0.05, hidden=4, fail_at=-1, sched={"gamma": 0.5}):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def training_step(self, batch, i):
        if self.global_step == self.hparams.fail_at:
            raise RuntimeError("diverged")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

def fit(name, ckpt, **hparams):
    torch.manual_seed(0)
    x = torch.randn(32, 3)
    data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)  # 8 steps an epoch
    logger = MltuiLogger(name=name)
    trainer = L.Trainer(max_epochs=2, logger=logger, log_every_n_steps=1, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", devices=1,
                        callbacks=[ModelCheckpoint(dirpath=ckpt, save_top_k=-1)])
    try:
        trainer.fit(Tiny(**hparams), data)
    except RuntimeError as exc:
        print("fit raised", exc)
    return logger
"""

STANDALONE = MODEL + """
out = {"ok": fit("lit-ok", "ckpt-ok").version, "bad": fit("lit-bad", "ckpt-bad", fail_at=5).version}
# another rank logs nothing and opens no run
rank_zero_only.rank = 1
other = MltuiLogger(name="rank-1")
other.log_hyperparams({"lr": 1.0})
other.log_metrics({"loss": 1.0}, step=0)
other.finalize("success")
rank_zero_only.rank = 0
out["other"] = other._run is None
print(json.dumps(out))
"""

LAUNCHED = MODEL + """
print(json.dumps({"version": fit(None, "ckpt").version}))
"""


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path):
    yield
    kill_workspace_processes(tmp_path / ".mltui")


def test_fit_gives_params_curves_status_and_checkpoints(ws, store, tmp_path):
    done = run_script(tmp_path, STANDALONE)
    ids = json.loads(done.stdout.strip().splitlines()[-1])
    assert ids["other"] is True
    runs = {r["name"]: r for r in store.runs()}
    assert set(runs) == {"lit-ok", "lit-bad"}  # nothing from rank 1

    ok = runs["lit-ok"]
    assert ok["id"] == ids["ok"] and ok["status"] == "finished" and ok["kind"] == "train"
    assert store.params(ok["id"]) == {"lr": 0.05, "hidden": 4, "fail_at": -1, "sched.gamma": 0.5}
    loss = store.series(ok["id"], "train/loss")
    assert [s for s, _, _ in loss] == list(range(16))  # Lightning's global step when it logs, 8 steps x 2 epochs
    assert all(v > 0 for _, v, _ in loss)
    assert [(s, v) for s, v, _ in store.series(ok["id"], "epoch")] == [(s, float(s >= 8)) for s in range(16)]
    arts = store.artifacts(ok["id"])
    assert set(arts) == {"artifacts/checkpoints/epoch=0-step=8.ckpt", "artifacts/checkpoints/epoch=1-step=16.ckpt"}
    for path, row in arts.items():
        copy = (ws.run_dir(ok["id"]) / path).read_bytes()
        assert row["sha256"] == hashlib.sha256(copy).hexdigest()
        assert copy == (tmp_path / "ckpt-ok" / path.rsplit("/", 1)[1]).read_bytes()

    bad = runs["lit-bad"]
    assert bad["status"] == "failed"
    assert [s for s, _, _ in store.series(bad["id"], "train/loss")] == [0, 1, 2, 3, 4]
    assert store.artifacts(bad["id"]) == {}  # it never reached the end of an epoch


def test_under_mltui_run_it_logs_to_the_launched_run(ws, cli, store, tmp_path):
    (tmp_path / "train.py").write_text(LAUNCHED)
    started = cli("run", "--json", "--name", "launched", "--", sys.executable, "train.py", env=OFFLINE)
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["id"]
    row = wait_ended(ws, run_id, timeout=180)
    log = (ws.run_dir(run_id) / "output.log").read_text()
    assert row["status"] == "finished", log[-3000:]
    assert json.loads(log.strip().splitlines()[-1]) == {"version": run_id}
    assert [r["id"] for r in store.runs()] == [run_id]  # attached: no second run
    assert store.params(run_id)["lr"] == 0.05
    assert len(store.series(run_id, "train/loss")) == 16
    assert len(store.artifacts(run_id)) == 2
