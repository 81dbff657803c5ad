"""A plain torch script that writes with SummaryWriter and imports nothing of mltui, launched with
`mltui run`: its scalars are the run's metrics while it runs, and all of them at the end."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import OFFLINE  # noqa: E402  (tests/integrations/conftest.py)
from launching import kill_workspace_processes, wait_ended, wait_for  # noqa: E402


SCRIPT = """\
import os, sys, time
from torch.utils.tensorboard import SummaryWriter

assert "mltui" not in sys.modules
w = SummaryWriter("tb")
for step in range(5):
    w.add_scalar("train/loss", 1.0 / (step + 1), step)
    w.add_scalar("lr", 0.1, step)
w.flush()
deadline = time.time() + 60
while not os.path.exists("go") and time.time() < deadline:  # the test reads the metrics meanwhile
    time.sleep(0.05)
# a second writer on the same folder (a restart) logs steps 0-9 again: steps 0-4 must not be doubled
w2 = SummaryWriter("tb")
for step in range(10):
    w2.add_scalar("train/loss", 1.0 / (step + 1), step)
w2.add_hparams({"lr": 0.1, "batch": 32, "opt": "adam"}, {"hp/acc": 0.75})
w2.close()
w.close()
assert "mltui" not in sys.modules
"""


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path):
    yield
    kill_workspace_processes(tmp_path / ".mltui")


def metrics(cli, run_id: str) -> dict:
    done = cli("metrics", run_id, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["metrics"]


def test_summarywriter_scalars_appear_while_the_script_runs_and_all_at_the_end(ws, cli, store, tmp_path):
    (tmp_path / "train.py").write_text(SCRIPT)
    started = cli("run", "--json", "--", sys.executable, "train.py", env=OFFLINE)
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["id"]

    live = wait_for(lambda: (m := metrics(cli, run_id)).get("train/loss", {}).get("count") == 5 and m, timeout=60,
                    what="the first five steps in `mltui metrics`")
    assert store.run(run_id)["status"] == "running"  # the script is still waiting for us
    assert live["lr"]["count"] == 5 and live["train/loss"]["last"] == pytest.approx(0.2)

    (tmp_path / "go").write_text("")
    row = wait_ended(ws, run_id, timeout=60)
    assert row["status"] == "finished", (row["reason"], (ws.run_dir(run_id) / "output.log").read_text()[-2000:])
    final = metrics(cli, run_id)
    assert final["train/loss"]["count"] == 10 and final["train/loss"]["last_step"] == 9
    assert store.counts(run_id)["train/loss"] == 10  # no step stored twice
    assert [s for s, _, _ in store.series(run_id, "train/loss")] == list(range(10))
    assert final["lr"]["count"] == 5
    assert final["hp/acc"]["last"] == pytest.approx(0.75)
    assert store.params(run_id) == {"lr": 0.1, "batch": 32, "opt": "adam"}
    assert "tensorboard.bad_records" not in store.tags(run_id)
